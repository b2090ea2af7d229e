"""Beat commits against the git setups people really have (DESIGN §9): split and v4 indexes,
an untracked cache, intent-to-add entries, sparse checkouts, a data dir in a sub-folder, a
linked worktree or a submodule, racily clean edits, the user's own uncommitted edits (and
journal lines, staged or not), git hooks and their environment, a shallow clone.

After every beat the index must hold exactly what HEAD holds for the bot's paths (or a
human's next plain `git commit` would silently revert them), and everything of the user's
— staged, unstaged, intent-to-add, uncommitted journal lines — must be left as it was.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import BIN, FAKE_RUNNER, NOOP, Repo, Run, end_workers, fsck, git, make_repo, task
from gitops import users_work_in_progress

# A sensor whose reading moves every beat, so every beat commits a snapshot too.
COUNTING_SENSOR = """#!/usr/bin/env bash
n=$(cat "{counter}" 2>/dev/null || echo 0)
echo $((n + 1)) > "{counter}"
echo "{{\\"signal\\": $n}}"
"""
NEW_SENSOR = '#!/usr/bin/env bash\necho \'{"signal": "steady"}\'\n'


def fake_env(tmp_path: Path) -> dict[str, str]:
    return {"FAKE_RUNNER_DIR": str(tmp_path / "fake"), "LOOOPBOT_TICK_COMMAND": FAKE_RUNNER}


def changed_paths(root: Path, rev: str = "HEAD") -> set[str]:
    return set(git(root, "show", "--name-only", "--format=", rev).split())


def decided(r: Run, action: str) -> None:
    assert r.code == 0, r.err
    doc = r.json()
    assert (doc["outcome"], doc["action"]) == ("decided", action), doc


# --- the setups ---------------------------------------------------------------------------


@dataclass
class Setup:
    """A data repo inside some git setup: `repo` is the data dir, `top` its worktree's root."""

    repo: Repo
    top: Path
    check: Callable[[], None] = lambda: None  # the setup itself survived the beats


def _sensor_commit(repo: Repo, counter: Path) -> None:
    (repo.root / "sensors").mkdir(exist_ok=True)  # git rm of its only file removed it
    repo.sensor("probe", COUNTING_SENSOR.format(counter=counter))
    repo.git("add", "sensors/probe.sh")
    repo.git("commit", "-qm", "human: a sensor")


def _top_level(tmp_path: Path) -> Setup:
    repo = make_repo(tmp_path)
    _sensor_commit(repo, tmp_path / "counter")
    return Setup(repo, repo.root)


def split_index(tmp_path: Path) -> Setup:
    s = _top_level(tmp_path)
    s.repo.git("config", "core.splitIndex", "true")
    s.repo.git("update-index", "--split-index")
    gitdir = s.top / ".git"
    assert list(gitdir.glob("sharedindex.*"))

    def check() -> None:
        assert list(gitdir.glob("sharedindex.*")), "the shared index is gone"
        assert b"link" in (gitdir / "index").read_bytes()[-4096:], "the index is no longer split"

    s.check = check
    return s


def index_v4_untracked_cache(tmp_path: Path) -> Setup:
    s = _top_level(tmp_path)
    s.repo.git("update-index", "--index-version", "4")
    s.repo.git("config", "core.untrackedCache", "true")
    s.repo.git("update-index", "--untracked-cache")
    s.repo.git("status")  # fills the cache

    def check() -> None:
        index = (s.top / ".git/index").read_bytes()
        assert index[:8] == b"DIRC" + (4).to_bytes(4, "big"), index[:8]
        assert b"UNTR" in index, "the untracked cache is gone"
        # and it is not stale: a new file where the bot wrote is seen
        s.repo.write("goals/archive/mine.md", "the human's\n")
        assert "?? goals/archive/mine.md" in s.repo.status_porcelain().splitlines()
        (s.top / "goals/archive/mine.md").unlink()

    s.check = check
    return s


def _bigger_repo(tmp_path: Path) -> tuple[Path, Repo]:
    """A project with src/ and docs/, and a data dir at proj/data inside it."""
    big = tmp_path / "big"
    for rel, text in {"README": "the project\n", "src/app.py": "1\n", "docs/d.md": "d\n"}.items():
        (big / rel).parent.mkdir(parents=True, exist_ok=True)
        (big / rel).write_text(text)
    git(big, "init", "-q")
    git(big, "add", ".")
    git(big, "commit", "-qm", "human: the project")
    r = subprocess.run(
        [str(BIN), "init", str(big / "proj/data")], capture_output=True, text=True, check=False
    )
    assert r.returncode == 0, r.stderr
    git(big, "rm", "-q", "proj/data/sensors/today.sh")  # the date sensor reads the calendar
    git(big, "commit", "-qm", "human: no date sensor")
    repo = Repo(big / "proj/data", tmp_path / "fake", env=fake_env(tmp_path))
    _sensor_commit(repo, tmp_path / "counter")
    return big, repo


def sparse_cone(tmp_path: Path) -> Setup:
    big, repo = _bigger_repo(tmp_path)
    git(big, "config", "index.sparse", "true")  # a sparse index: docs/ is one entry
    git(big, "sparse-checkout", "set", "--cone", "proj/data", "src")
    assert not (big / "docs").exists()
    assert "docs/" in git(big, "ls-files", "--sparse").split()

    def check() -> None:
        assert not (big / "docs").exists()
        assert "docs/" in git(big, "ls-files", "--sparse").split(), "the index was expanded"

    return Setup(repo, big, check)


def sparse_non_cone(tmp_path: Path) -> Setup:
    big, repo = _bigger_repo(tmp_path)
    git(big, "sparse-checkout", "set", "--no-cone", "/*", "!/docs/")
    assert not (big / "docs").exists()

    def check() -> None:
        assert not (big / "docs").exists()
        assert git(big, "ls-files", "-t", "docs/d.md").startswith("S "), "skip-worktree lost"

    return Setup(repo, big, check)


def linked_worktree(tmp_path: Path) -> Setup:
    main = make_repo(tmp_path)
    _sensor_commit(main, tmp_path / "counter")
    side = tmp_path / "side"
    main.git("worktree", "add", "-q", "-b", "side", str(side))
    repo = Repo(side, main.fake, env=dict(main.env))
    main_index = (main.root / ".git/index").read_bytes()
    master = main.head()

    def check() -> None:
        assert (main.root / ".git/index").read_bytes() == main_index, "main's index changed"
        assert main.head() == master
        assert main.status_porcelain() == ""
        assert repo.git("rev-parse", "--git-dir").strip().endswith(".git/worktrees/side")

    return Setup(repo, side, check)


def submodule(tmp_path: Path) -> Setup:
    data = _top_level(tmp_path).repo
    sup = tmp_path / "super"
    sup.mkdir()
    git(sup, "init", "-q")
    git(sup, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(data.root), "data")
    git(sup, "commit", "-qm", "human: the data repo as a submodule")
    repo = Repo(sup / "data", data.fake, env=dict(data.env))
    assert (repo.root / ".git").is_file()
    index = (sup / ".git/index").read_bytes()
    head = git(sup, "rev-parse", "HEAD")

    def check() -> None:
        assert (sup / ".git/index").read_bytes() == index, "the superproject's index changed"
        assert git(sup, "rev-parse", "HEAD") == head
        assert git(sup, "status", "--porcelain", "--ignore-submodules=dirty") == " M data\n"
        assert repo.git("rev-parse", "--absolute-git-dir").strip() == str(sup / ".git/modules/data")

    return Setup(repo, repo.root, check)


SETUPS = [
    split_index,
    index_v4_untracked_cache,
    sparse_cone,
    sparse_non_cone,
    linked_worktree,
    submodule,
]


@pytest.mark.parametrize("make", SETUPS, ids=lambda f: f.__name__)
def test_the_index_follows_every_beat_commit(tmp_path: Path, make: Callable[..., Setup]) -> None:
    s = make(tmp_path)
    repo, top = s.repo, s.top
    # The user's own work in progress, at the top of the worktree: a staged new file, an
    # intent-to-add one, an unstaged edit of a tracked file.
    readme = users_work_in_progress(top)
    staged_entry = git(top, "ls-files", "-s", "staged.txt")
    users = {"A  staged.txt", " A ita.txt", f" M {readme}"}

    def status() -> set[str]:
        return set(git(top, "status", "--porcelain").splitlines())

    assert status() == users
    beats = [
        {"action": "write_goal", "id": "ship", "body": "goal: ship\n", "journal": "j1"},
        {"action": "write_sensor", "name": "fresh", "script": NEW_SENSOR, "journal": "j2"},
        {"action": "archive_goal", "id": "ship", "journal": "j3"},
    ]
    prefix = repo.git("rev-parse", "--show-prefix").strip()
    bot_commits: list[str] = []
    for decision in beats:
        repo.decide(decision)
        decided(repo.tick("--force"), decision["action"])
        bot_commits.append(repo.head())
        # the bot's paths: in HEAD and in the index alike; the user's: untouched
        assert status() == users, decision
        paths = changed_paths(top)
        assert {f"{prefix}journal.md", f"{prefix}.looopbot/state.json"} <= paths
        assert f"{prefix}snapshots/sensor-probe.json" in paths, "the sensor reading moved"
    assert git(top, "show", f"HEAD:{prefix}goals/archive/ship.md") == "goal: ship\n"
    assert git(top, "ls-files", f"{prefix}goals/ship.md") == ""
    assert git(top, "ls-files", "-s", f"{prefix}sensors/fresh.sh").startswith("100755 ")
    assert git(top, "ls-files", "-s", "staged.txt") == staged_entry
    assert "ita.txt" in git(top, "diff", "--name-only").split(), "no longer intent-to-add"
    assert "ita.txt" not in git(top, "diff", "--cached", "--name-only").split()
    fsck(top)
    s.check()
    # The human's next plain commits carry only their own paths: no bot file reverted.
    git(top, "commit", "-qm", "human: the staged file")
    assert changed_paths(top) == {"staged.txt"}
    git(top, "commit", "-qam", "human: everything else")
    assert changed_paths(top) == {readme, "ita.txt"}
    assert git(top, "diff", "--name-only", bot_commits[-1], "HEAD").split() == sorted(
        {"staged.txt", "ita.txt", readme}
    )
    assert git(top, "status", "--porcelain") == ""
    s.check()


def test_an_intent_to_add_entry_on_a_path_the_bot_commits_becomes_that_commit(
    repo: Repo, tmp_path: Path
) -> None:
    """`git add -N` of a file the bot then writes and commits (a sensor's first snapshot):
    the index entry becomes the committed file, not a staged deletion of it."""
    _sensor_commit(repo, tmp_path / "counter")
    snap = repo.root / "snapshots/sensor-probe.json"
    snap.parent.mkdir(exist_ok=True)
    snap.write_text("{}\n")
    repo.git("add", "-N", "snapshots/sensor-probe.json")
    repo.decide(NOOP)
    decided(repo.tick(), "noop")
    assert "snapshots/sensor-probe.json" in changed_paths(repo.root)
    assert repo.status_porcelain() == ""
    assert (
        repo.git("ls-files", "-s", "snapshots/sensor-probe.json").split()[1]
        == repo.git("rev-parse", "HEAD:snapshots/sensor-probe.json").strip()
    )
    repo.write("notes.txt", "the human's\n")
    repo.git("add", "notes.txt")
    repo.git("commit", "-qm", "human: notes")
    assert changed_paths(repo.root) == {"notes.txt"}, "the human's commit deleted the snapshot"


def test_an_edit_in_the_same_tick_as_the_index_write_stays_visible_after_a_beat(
    repo: Repo,
) -> None:
    """An edit within the same timestamp tick as the last index write is "racily clean":
    same size and mtime as its index entry, so git tells it apart only by comparing the
    entry with the index file's own mtime. The beat's index update must keep that, or the
    human's edit vanishes from `git status` and from their next `git commit -a`."""
    repo.git("config", "core.trustctime", "false")  # the edit's ctime cannot be faked
    notes = repo.root / "notes.txt"
    tick = (int(time.time()) - 100) * 10**9
    notes.write_text("aaaa\n")
    os.utime(notes, ns=(tick, tick))
    repo.git("add", "notes.txt")
    repo.git("commit", "-qm", "human: notes")
    os.utime(repo.root / ".git/index", ns=(tick, tick))  # the index was written in that tick
    notes.write_text("bbbb\n")  # and so was this edit: same size, same mtime
    os.utime(notes, ns=(tick, tick))
    look = subprocess.run(
        ["git", "status", "--porcelain"],
        cwd=repo.root,
        env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"},  # look without refreshing the index
        capture_output=True,
        text=True,
        check=True,
    )
    assert look.stdout == " M notes.txt\n"
    repo.decide(NOOP)
    decided(repo.tick(), "noop")
    assert repo.status_porcelain() == " M notes.txt\n", "the human's edit became invisible"
    repo.git("commit", "-qam", "human: notes again")
    assert changed_paths(repo.root) == {"notes.txt"}
    assert repo.git("show", "HEAD:notes.txt") == "bbbb\n"


# --- the user's uncommitted work ------------------------------------------------------------


def last_failure(prompt: str) -> str:
    head = "=== LAST FAILURE ===\n"
    assert head in prompt, prompt
    return prompt.split(head, 1)[1].split("\n=== ", 1)[0]


def test_a_move_never_overwrites_the_users_uncommitted_work(repo: Repo) -> None:
    repo.write("goals/ship.md", "goal: ship\n")
    repo.sensor("probe", NEW_SENSOR)
    repo.git("add", "goals", "sensors")
    repo.git("commit", "-qm", "human: a goal and a sensor")
    repo.decide(NOOP)
    decided(repo.tick(), "noop")
    human_line = "- a human's note, never committed"
    with open(repo.root / "journal.md", "a") as f:
        f.write(human_line + "\n")
    bot_lines_before = repo.git("show", "HEAD:journal.md").splitlines()
    repo.write("staged.txt", "staged by the human\n")
    repo.git("add", "staged.txt")
    staged_entry = repo.git("ls-files", "-s", "staged.txt")

    def staged_goal() -> None:
        repo.write("goals/ship.md", "goal: ship\nthe human's staged words\n")
        repo.git("add", "goals/ship.md")

    def unstaged_playbook() -> None:
        with open(repo.root / "PLAYBOOK.md", "a") as f:
            f.write("the human's unstaged rule\n")

    def untracked_goal() -> None:
        repo.write("goals/new.md", "goal: new, the human's draft\n")

    def intent_to_add_goal() -> None:
        repo.write("goals/ita.md", "goal: ita, the human's\n")
        repo.git("add", "-N", "goals/ita.md")

    def staged_sensor() -> None:
        repo.sensor("probe", NEW_SENSOR.replace("steady", "human"))
        repo.git("add", "sensors/probe.sh")
        # Sensors are not desired state: without a goal edit too, the backoff after the
        # failures before would (rightly) hold this beat back.
        repo.write("goals/new.md", "goal: new, the human's second draft\n")

    def write_goal(gid: str) -> dict[str, object]:
        return {"action": "write_goal", "id": gid, "body": "goal: the bot's\n"}

    write_sensor = {"action": "write_sensor", "name": "probe", "script": NEW_SENSOR}
    cases: list[tuple[Callable[[], None], str, dict[str, object]]] = [
        (staged_goal, "goals/ship.md", write_goal("ship")),
        (unstaged_playbook, "PLAYBOOK.md", {"action": "write_playbook", "body": "# bot\n"}),
        (untracked_goal, "goals/new.md", write_goal("new")),
        (intent_to_add_goal, "goals/ita.md", write_goal("ita")),
        (staged_sensor, "sensors/probe.sh", write_sensor),
    ]
    refused: list[str] = []
    for setup, rel, decision in cases:
        setup()
        data = (repo.root / rel).read_bytes()
        entry = repo.git("ls-files", "-s", rel)
        status = repo.git("status", "--porcelain", "--", rel)
        calls = repo.calls()
        repo.decide(decision)
        r = repo.tick()
        assert repo.calls() == calls + 1, f"{rel}: the beat was held back: {r.out}"
        assert r.code == 1 and r.json()["outcome"] == "failed", (rel, r.out, r.err)
        error = r.json()["error"]
        assert rel in error and "commit or stash" in error, error
        assert (repo.root / rel).read_bytes() == data, rel
        assert repo.git("ls-files", "-s", rel) == entry, rel
        assert repo.git("status", "--porcelain", "--", rel) == status, rel
        assert rel not in changed_paths(repo.root), "the failed beat's commit took the file"
        if refused:  # the decider hears of the refusal before
            assert refused[-1] in last_failure(repo.prompts()[-1])
        refused.append(rel)
    # the intent-to-add entry is still just that
    assert "goals/ita.md" in repo.git("diff", "--name-only").split()
    assert "goals/ita.md" not in repo.git("diff", "--cached", "--name-only").split()
    # The human commits their edits (not the journal, not staged.txt); the bot goes on.
    repo.write("goals/new.md", "goal: new, as committed\n")
    repo.git("add", "goals/new.md", "goals/ita.md")
    repo.git("commit", "-qm", "human: my edits", "--", "goals", "sensors", "PLAYBOOK.md")
    repo.decide({"action": "write_goal", "id": "ship", "body": "goal: bot\n", "journal": "done"})
    decided(repo.tick(), "write_goal")
    assert refused[-1] in last_failure(repo.prompts()[-1])
    assert repo.git("show", "HEAD:goals/ship.md") == "goal: bot\n"
    assert repo.git("ls-files", "-s", "staged.txt") == staged_entry
    assert set(repo.status_porcelain().splitlines()) == {"A  staged.txt", " M journal.md"}
    # The human's journal line: never in a bot commit, still in the file, in its place.
    committed = repo.git("show", "HEAD:journal.md").splitlines()
    assert human_line not in committed
    assert committed[: len(bot_lines_before)] == bot_lines_before
    assert len(committed) > len(bot_lines_before) + len(cases)
    k = len(bot_lines_before)
    assert repo.read("journal.md").splitlines() == [*committed[:k], human_line, *committed[k:]]


def test_journal_lines_the_human_staged_are_committed_with_the_bots_not_over_them(
    repo: Repo,
) -> None:
    """`git add -A` with a note of their own in the journal, then a beat, then `git commit`:
    the human's commit carries their line on top of the bot's, never drops the bot's."""
    human_line = "- a human's note, staged"
    with open(repo.root / "journal.md", "a") as f:
        f.write(human_line + "\n")
    repo.git("add", "journal.md")
    repo.decide({"action": "write_goal", "id": "ship", "body": "goal: ship\n", "journal": "bot"})
    decided(repo.tick(), "write_goal")
    committed = repo.git("show", "HEAD:journal.md")
    assert human_line not in committed and committed.endswith(" bot\n"), committed
    assert repo.status_porcelain() == "M  journal.md\n", "only the human's line is staged"
    repo.git("commit", "-qm", "human: my note")
    assert changed_paths(repo.root) == {"journal.md"}
    assert repo.git("show", "HEAD:journal.md") == repo.read("journal.md")
    *before, bots = committed.splitlines(keepends=True)
    assert repo.read("journal.md") == "".join(before) + human_line + "\n" + bots
    assert repo.status_porcelain() == ""


# --- hooks and their environment ----------------------------------------------------------


def frozen(root: Path) -> dict[str, object]:
    """What a beat redirected by git variables would change in another repo."""
    return {
        "refs": git(root, "for-each-ref"),
        "head": git(root, "rev-parse", "HEAD"),
        "index": (root / ".git/index").read_bytes(),
        "status": git(root, "status", "--porcelain"),
        "worktrees": git(root, "worktree", "list", "--porcelain"),
        "objects": git(root, "count-objects", "-v"),
    }


def wait_for(check: Callable[[], bool], what: str, within: float = 20) -> None:
    end = time.monotonic() + within
    while not check():
        assert time.monotonic() < end, f"never: {what}"
        time.sleep(0.05)


def test_git_variables_set_by_a_hook_redirect_neither_a_beat_nor_a_worker(
    wrepo: Repo, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    git(other, "init", "-q")
    (other / "file").write_text("another repo\n")
    git(other, "add", "file")
    git(other, "commit", "-qm", "other: first")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    hook_index = tmp_path / "hook-index"
    env = {
        "GIT_DIR": str(other / ".git"),
        "GIT_WORK_TREE": str(elsewhere),
        "GIT_INDEX_FILE": str(hook_index),
        "GIT_PREFIX": "sub/",
    }
    before = frozen(other)
    head = wrepo.head()
    wrepo.decide({"action": "write_goal", "id": "ship", "body": "goal: ship\n", "journal": "j"})
    decided(wrepo.tick(env=env), "write_goal")
    assert wrepo.git("rev-parse", "HEAD^").strip() == head
    assert wrepo.git("show", "HEAD:goals/ship.md") == "goal: ship\n"
    assert wrepo.status_porcelain() == ""
    r = wrepo.run("worker", "start", "w1", "-", input=task("w1", report=True, hang=True), env=env)
    assert r.code == 0, r.err
    branch = "looopbot/worker/w1"

    def reported() -> bool:
        out = wrepo.git("log", "-1", "--format=%s", branch, "--", check=False)
        return out.strip() == "report from w1"

    try:
        wait_for(reported, "the worker's report commit on its branch")
        where = (wrepo.root / ".looopbot/worktrees/w1").resolve()
        listed = wrepo.git("worktree", "list", "--porcelain")
        assert f"worktree {where}\n" in listed
        assert git(where, "rev-parse", "--abbrev-ref", "HEAD").strip() == branch
        common = Path(git(where, "rev-parse", "--git-common-dir").strip())
        assert (where / common).resolve() == (wrepo.root / ".git").resolve()
        assert git(where, "status", "--porcelain") == ""
    finally:
        end_workers(wrepo)
    assert wrepo.trailers()["Looopbot-Action"] == "start_worker"
    assert wrepo.status_porcelain() == ""
    assert frozen(other) == before
    assert list(elsewhere.iterdir()) == []
    assert not hook_index.exists()


def test_a_beat_run_from_the_data_repos_own_commit_hooks(repo: Repo, tmp_path: Path) -> None:
    repo.write("notes.txt", "v1\n")
    repo.git("add", "notes.txt")
    repo.git("commit", "-qm", "human: notes")
    logs = {}
    for hook, args in (("pre-commit", "--force --json"), ("post-commit", "--json")):
        logs[hook] = tmp_path / f"{hook}.log"
        script = repo.root / ".git/hooks" / hook
        script.write_text(
            f'#!/bin/sh\n"{BIN}" tick {args} >> "{logs[hook]}" 2>&1\n'
            f'echo "exit $?" >> "{logs[hook]}"\nexit 0\n'
        )
        script.chmod(0o755)
    env = {**os.environ, **repo.env}

    def human(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["git", *args], cwd=repo.root, env=env, capture_output=True, text=True, check=False
        )

    # `git commit -a` holds index.lock while its pre-commit hook runs: that beat decides and
    # writes, cannot commit, and says why; the post-commit beat commits what it wrote.
    repo.decide({"action": "write_goal", "id": "one", "body": "goal: one\n", "journal": "hook 1"})
    repo.write("notes.txt", "v2\n")
    base = repo.head()
    r = human("commit", "-qam", "human: notes v2")
    assert r.returncode == 0, r.stderr
    pre = logs["pre-commit"].read_text()
    assert "index.lock is held by another git process" in pre and "exit 1" in pre, pre
    assert repo.git("rev-parse", "HEAD^^").strip() == base
    assert changed_paths(repo.root, "HEAD^") == {"notes.txt"}
    assert {"goals/one.md", "journal.md"} <= changed_paths(repo.root)
    assert repo.git("show", "HEAD:journal.md").count("hook 1") == 1
    assert repo.status_porcelain() == ""
    # A plain `git commit` has written the index before its pre-commit hook: that beat
    # commits, and the human's commit, made on the HEAD it read first, must not land on top
    # of it blindly. Whether git refuses it or not, nothing is lost.
    repo.decide({"action": "write_goal", "id": "two", "body": "goal: two\n", "journal": "hook 2"})
    repo.write("notes.txt", "v3\n")
    repo.git("add", "notes.txt")
    r = human("commit", "-qm", "human: notes v3")
    if r.returncode != 0:
        assert "cannot lock ref 'HEAD'" in r.stderr, r.stderr
        assert repo.status_porcelain() == "M  notes.txt\n"
        r = human("commit", "--no-verify", "-qm", "human: notes v3")
        assert r.returncode == 0, r.stderr
    assert changed_paths(repo.root) == {"notes.txt"}
    assert repo.git("show", "HEAD:notes.txt") == "v3\n"
    assert "goals/two.md" in changed_paths(repo.root, "HEAD^")
    assert repo.git("show", "HEAD:journal.md").count("hook 2") == 1
    assert repo.status_porcelain() == ""
    assert repo.calls() == 2
    fsck(repo.root)


def test_a_shallow_clone_beats_and_commits(repo: Repo, tmp_path: Path) -> None:
    for i in range(3):
        assert repo.run("goal", "write", f"g{i}", f"goal: {i}").code == 0
    tip = repo.head()
    target = tmp_path / "shallow"
    git(tmp_path, "clone", "-q", "--depth", "1", f"file://{repo.root}", str(target))
    clone = Repo(target, repo.fake, env=dict(repo.env))
    assert (target / ".git/shallow").exists() and clone.commits() == 1
    clone.decide({"action": "write_goal", "id": "deep", "body": "goal: deep\n", "journal": "j"})
    decided(clone.tick(), "write_goal")
    assert clone.run("goal", "write", "more", "goal: more").code == 0
    assert clone.commits() == 3
    assert clone.git("rev-parse", "HEAD~2").strip() == tip
    assert clone.git("show", "HEAD~1:goals/deep.md") == "goal: deep\n"
    assert clone.status_porcelain() == ""
    fsck(target)
    h = clone.run("history", "--json")
    assert h.code == 0, h.err
    assert [b["outcome"] for b in h.json()["beats"]] == ["manual", "decided", "manual"]
