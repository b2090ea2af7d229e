"""A `tick --push` killed with -9 at each stage of pulling and pushing, and the next beat
(issue 7's adversarial pass): during the fetch, inside the replay, inside the branch move
(between git's read-tree and the update of HEAD, and between HEAD and the index), and while
pushing. The next beat must bring HEAD, the index and the working tree back in step, leave
the user's staged and unstaged edits exactly as they were, lose no journal line (and double
none), and deliver everything.

The kills are placed, not timed: a git hook of the user's kind (`reference-transaction`,
`post-index-change`, `pre-push`) that, once armed, kills its git's parent — looopbot — at
the exact point, then lets git finish or refuse; inside the in-process replay, a FIFO where
it reads the bot commit's journal blob. Nothing of looopbot is replaced.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import NOOP, Repo, git
from gitops import (
    fsck,
    human,
    human_push,
    not_mid_rebase,
    published,
    remote_log,
    show,
    users_notes,
)
from test_interrupted import kill_when_paused
from test_robustness import popen

# Armed by a file; matched against "<hook args>:<git's command line>:<index>:<stdin>".
KILLER = """#!/bin/sh
{read}
[ -e {armed} ] || exit 0
case "$*:$(tr '\\0' ' ' < /proc/$PPID/cmdline):$GIT_INDEX_FILE:$input" in
  {pattern}) ;;
  *) exit 0 ;;
esac
rm -f {armed}
kill -9 $(cut -d' ' -f4 /proc/$PPID/stat)
exit {exit}
"""
HUMAN_LINE = "- 2026-01-01 00:00 the human's line"


class Scene:
    """A published data repo with the user's staged and unstaged edits, a pushed beat, an
    unpushed one (optionally), and a human's goal and journal line pushed since."""

    def __init__(self, tmp_path: Path, *, unpushed: bool) -> None:
        self.repo, self.remote = published(tmp_path)
        repo = self.repo
        users_notes(repo, "staged", "unstaged")
        self.status = repo.status_porcelain()
        self.lines = ["pushed"]
        repo.decide({**NOOP, "journal": "pushed"})
        assert repo.tick("--push").code == 0
        if unpushed:
            goal = {"action": "write_goal", "id": "b", "body": "goal: b", "journal": "unpushed"}
            repo.decide(goal)
            assert repo.tick("--force").code == 0
            self.lines.append("unpushed")
        self.human = human(tmp_path, remote=self.remote)
        human_push(
            self.human,
            {"goals/h.md": "goal: the human's\n", "journal.md": HUMAN_LINE + "\n"},
            "human: a goal and a line",
            append=True,
        )
        self.lines.append("the human's line")
        self.before = repo.head()
        self.tmp = tmp_path

    def arm(self, hook: str, pattern: str, exit: int = 0) -> Path:
        armed = self.tmp / f"armed-{hook}"
        path = self.repo.root / ".git" / "hooks" / hook
        read = "input=$(cat)" if hook in ("reference-transaction", "pre-push") else "input="
        path.write_text(KILLER.format(read=read, armed=armed, pattern=pattern, exit=exit))
        path.chmod(0o755)
        armed.touch()
        return armed

    def drop_queue(self) -> None:
        """A beat killed before it decided leaves its answer queued: not the next one's."""
        for step in (self.repo.fake / "queue").glob("*.json"):
            step.unlink()

    def next_beat_recovers(self) -> None:
        repo, remote = self.repo, self.remote
        repo.decide({**NOOP, "journal": "next"})
        run = repo.tick("--push", "--force")
        assert run.code == 0, run.out + run.err
        assert run.json()["push"]["result"] == "pushed"
        assert remote_log(remote)[0] == repo.head()
        assert repo.status_porcelain() == self.status
        assert repo.git("diff", "--cached", "--name-only").split() == ["user/staged.txt"]
        assert repo.read("user/unstaged.txt") == "first\nunstaged\n"
        assert repo.read("goals/h.md") == "goal: the human's\n"
        gitdir = repo.root / ".git"
        assert not (repo.root / ".looopbot" / "advance.json").exists()
        assert not (gitdir / "index.lock").exists()
        assert not list(gitdir.glob("looopbot-index.*"))
        journal = show(remote, "journal.md")
        for line in [*self.lines, "next"]:
            assert journal.count(f" {line}\n") == 1, (line, journal)
        not_mid_rebase(repo.root)
        fsck(repo.root)
        fsck(remote)


def tracking(repo: Repo) -> str:
    return repo.git("rev-parse", "@{upstream}").strip()


def intent(repo: Repo) -> bool:
    return (repo.root / ".looopbot" / "advance.json").exists()


def half_moved(s: Scene) -> bool:
    """The working tree has the remote's new file; HEAD has not moved."""
    return s.repo.head() == s.before and intent(s.repo) and (s.repo.root / "goals/h.md").exists()


def head_has(repo: Repo, text: str) -> bool:
    return text in repo.git("show", "HEAD:journal.md")


# stage -> (hook, pattern, hook's exit after the kill, what the kill left)
STAGES: dict[str, tuple[str, str, int, Callable[[Scene], bool]]] = {
    "fetch, before the tracking ref moves": (
        "reference-transaction",
        "prepared:*fetch*refs/remotes/origin/*",
        1,
        lambda s: s.repo.head() == s.before and tracking(s.repo) != remote_log(s.remote)[0],
    ),
    "fetch, once the tracking ref moved": (
        "reference-transaction",
        "committed:*fetch*refs/remotes/origin/*",
        0,
        lambda s: s.repo.head() == s.before and tracking(s.repo) == remote_log(s.remote)[0],
    ),
    "move, between read-tree and HEAD": (
        "post-index-change",
        "*read-tree*looopbot-index*",
        0,
        lambda s: half_moved(s),
    ),
    "move, HEAD's update refused after the kill": (
        "reference-transaction",
        "prepared:*update-ref*HEAD*",
        1,
        lambda s: half_moved(s),
    ),
    "move, between HEAD and the index": (
        "reference-transaction",
        "committed:*update-ref*HEAD*",
        0,
        lambda s: (
            s.repo.head() != s.before
            and intent(s.repo)
            and s.repo.git("ls-files", "goals/h.md") == ""
        ),
    ),
    "push, which then goes through": (
        "pre-push",
        "*",
        0,
        lambda s: head_has(s.repo, "killed"),
    ),
    "push, which then is refused": (
        "pre-push",
        "*",
        1,
        lambda s: head_has(s.repo, "killed") and not head_has_remote(s, "killed"),
    ),
}


def head_has_remote(s: Scene, text: str) -> bool:
    return text in show(s.remote, "journal.md")


@pytest.mark.parametrize(
    ("stage", "unpushed"),
    [*((stage, True) for stage in STAGES), *((s, False) for s in STAGES if s.startswith("move"))],
)
def test_a_push_beat_killed_at_each_stage_is_recovered_by_the_next(
    tmp_path: Path, stage: str, unpushed: bool
) -> None:
    s = Scene(tmp_path, unpushed=unpushed)
    hook, pattern, code, left = STAGES[stage]
    armed = s.arm(hook, pattern, code)
    s.repo.decide({**NOOP, "journal": "killed"})
    run = s.repo.tick("--push", "--force")
    assert run.code == -signal.SIGKILL, run.out + run.err
    assert not armed.exists(), "the hook never fired"
    assert left(s), "the kill did not land where it was meant to"
    if stage.startswith("push"):
        s.lines.append("killed")  # committed before the push: it must be delivered
    s.drop_queue()
    s.next_beat_recovers()


def test_a_push_beat_killed_inside_the_replay_is_recovered_by_the_next(tmp_path: Path) -> None:
    s = Scene(tmp_path, unpushed=True)
    # The replay reads the unpushed commit's journal to merge it with the human's; a FIFO
    # in that object's place stops the beat right there (open(2) waits for a writer).
    blob = s.repo.git("rev-parse", "HEAD:journal.md").strip()
    obj = s.repo.root / ".git" / "objects" / blob[:2] / blob[2:]
    data = obj.read_bytes()
    obj.chmod(0o644)
    obj.unlink()
    os.mkfifo(obj)
    s.repo.decide({**NOOP, "journal": "killed"})
    beat = popen(s.repo, "tick", "--push", "--force")
    try:
        kill_when_paused(beat)
    finally:
        obj.unlink()
        obj.write_bytes(data)
    assert s.repo.head() == s.before and not intent(s.repo)
    s.drop_queue()
    s.next_beat_recovers()


def test_a_push_beat_killed_fetching_again_after_a_rejection_is_recovered(
    tmp_path: Path,
) -> None:
    """The human pushes while the runner decides; the beat's push is rejected; it is killed
    in the fetch that follows. Its commit is delivered by the next beat."""
    s = Scene(tmp_path, unpushed=False)
    armed = s.arm("reference-transaction", "prepared:*fetch*refs/remotes/origin/*")
    armed.unlink()  # armed by the human, once their push is in
    push = (
        f"cd {s.human} && git pull -q --rebase && echo during > goals/during.md"
        f" && git add -A && git commit -qm during && git push -q && touch {armed}"
    )
    decision = {"action": "write_goal", "id": "b", "body": "goal: b", "journal": "killed"}
    s.repo.queue({"spawn": push, "stdout": json.dumps(decision)})
    run = s.repo.tick("--push", "--force")
    assert run.code == -signal.SIGKILL, run.out + run.err
    assert not armed.exists()
    s.lines.append("killed")
    s.next_beat_recovers()
    assert show(s.remote, "goals/during.md") == "during\n"
    assert git(s.remote, "show", "HEAD:goals/b.md") == "goal: b\n"
