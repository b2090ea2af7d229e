"""What a beat with push on asks of git, counted from git's own trace (never timed; the
times are bench/push.py's): the common unchanged beat costs one fetch and walks no
history, and a shallow clone, as an Actions checkout is, is never deepened by a pull or a
push the remote rejected."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from conftest import NOOP
from gitops import clone, human, human_push, published, remote_log


def _commands(trace: Path) -> list[list[str]]:
    """The arguments of every git command looopbot ran, from a GIT_TRACE2_EVENT file. A
    command git started itself (fetch's upload-pack) has a parent in its sid: left out."""
    commands = []
    for line in trace.read_text().splitlines():
        event = json.loads(line)
        if event.get("event") == "start" and "/" not in event["sid"]:
            commands.append([a for a in event["argv"][1:] if a != "--literal-pathspecs"])
    return commands


def test_an_unchanged_beat_with_push_on_costs_one_fetch(tmp_path: Path) -> None:
    repo, _remote = published(tmp_path)
    repo.decide(NOOP)
    assert repo.tick("--push").code == 0  # decides and pushes
    trace = tmp_path / "trace.json"
    run = repo.tick("--push", env={"GIT_TRACE2_EVENT": str(trace)})
    assert run.code == 0, run.err
    assert run.json()["outcome"] == "unchanged"
    assert run.json()["push"]["result"] == "up to date"
    names = [argv[0] for argv in _commands(trace)]
    assert names.count("fetch") == 1, names
    assert not {"push", "ls-remote", "pull"} & set(names), names
    # Nothing to pull, nothing to push is two ids compared: nothing walks the history.
    assert not {"rev-list", "log", "merge-base"} & set(names), names


def test_a_shallow_clone_is_not_deepened_by_a_pull_or_a_rejected_push(tmp_path: Path) -> None:
    repo, remote = published(tmp_path)
    for i in range(4):
        repo.decide({"action": "write_goal", "id": f"g{i}", "body": f"goal: number {i}"})
        assert repo.tick("--push", "--force").code == 0
    ci = clone(tmp_path, remote, "runner", depth=1)
    h = human(tmp_path, remote)
    # A human's goal lands before the beat (a fast-forward), another while it decides (its
    # push is rejected: fetch, replay, push again). Their git commands are not traced.
    human_push(h, {"goals/g0.md": "goal: the human's\n"}, "human: g0")
    script = (
        f"unset GIT_TRACE2_EVENT; cd {shlex.quote(str(h))} && git pull -q --ff-only"
        " && echo more >> goals/g1.md && git commit -qam 'human: more' && git push -q"
    )
    ci.queue({"spawn": script, "stdout": json.dumps(NOOP)})
    trace = tmp_path / "trace.json"
    run = ci.tick("--push", "--force", env={"GIT_TRACE2_EVENT": str(trace)})
    assert run.code == 0, run.err
    push = run.json()["push"]
    assert push["pulled"] == "fast-forward" and push["result"] == "pushed", push
    assert remote_log(remote)[0] == ci.head()
    commands = _commands(trace)
    assert [argv[0] for argv in commands].count("push") == 2  # rejected once, then taken
    deepened = [a for a in commands if a[0] == "fetch" and any("deepen" in w for w in a)]
    assert not deepened and not [a for a in commands if "--unshallow" in a]
    assert ci.git("rev-parse", "--is-shallow-repository").strip() == "true"
    # The runner holds the commits since the checkout, not the remote's history.
    assert ci.commits() < len(remote_log(remote))
