"""The beat and git (DESIGN §9): refusing a repo mid-merge/rebase or detached, fresh clones,
no empty commits, human commits kept, a data dir inside a bigger repo, trailers."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import BIN, FAKE_RUNNER, NOOP, Repo, git


def human_commit(repo: Repo, rel: str, text: str, msg: str = "human: edit") -> str:
    repo.write(rel, text)
    repo.git("add", rel)
    repo.git("commit", "-qm", msg)
    return repo.head()


def tree_bytes(root: Path) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != ".git"]
        for name in filenames:
            p = Path(dirpath) / name
            out[str(p.relative_to(root))] = p.read_bytes()
    return out


# --- a repo that cannot take a commit ----------------------------------------------------


def mid_merge(repo: Repo) -> None:
    human_commit(repo, "notes.txt", "base\n")
    repo.git("checkout", "-qb", "other")
    human_commit(repo, "notes.txt", "theirs\n")
    repo.git("checkout", "-q", "-")
    human_commit(repo, "notes.txt", "ours\n")
    r = subprocess.run(["git", "merge", "other"], cwd=repo.root, capture_output=True, check=False)
    assert r.returncode != 0
    assert (repo.root / ".git/MERGE_HEAD").exists()


def mid_rebase(repo: Repo) -> None:
    human_commit(repo, "notes.txt", "base\n")
    base = repo.git("branch", "--show-current").strip()
    repo.git("checkout", "-qb", "feature")
    human_commit(repo, "notes.txt", "feature\n")
    repo.git("checkout", "-q", base)
    human_commit(repo, "notes.txt", "main\n")
    repo.git("checkout", "-q", "feature")
    r = subprocess.run(
        ["git", "rebase", "--merge", base], cwd=repo.root, capture_output=True, check=False
    )
    assert r.returncode != 0
    assert (repo.root / ".git/rebase-merge").is_dir()


def detached(repo: Repo) -> None:
    human_commit(repo, "notes.txt", "base\n")
    repo.git("checkout", "-q", "--detach")


@pytest.mark.parametrize(
    ("setup", "word"),
    [(mid_merge, "merge"), (mid_rebase, "rebase"), (detached, "detached")],
)
def test_a_repo_that_cannot_take_a_commit_gets_none(
    repo: Repo, setup: Callable[[Repo], None], word: str
) -> None:
    setup(repo)
    repo.decide(NOOP)
    head, status = repo.head(), repo.status_porcelain()
    files = tree_bytes(repo.root)
    refs = repo.git("for-each-ref")
    for args in (("tick",), ("tick", "--json"), ("goal", "write", "ship", "goal: ship")):
        r = repo.run(*args)
        assert r.code == 1, (args, r.out, r.err)
        lines = r.err.strip().splitlines()
        assert len(lines) == 1, r.err
        assert lines[0].startswith("looopbot: ") and word in lines[0]
        assert "first" in lines[0] or "finish" in lines[0], lines[0]
        assert "Traceback" not in r.out + r.err
    assert repo.calls() == 0
    assert repo.head() == head
    assert repo.git("for-each-ref") == refs
    assert repo.status_porcelain() == status
    after = {k: v for k, v in tree_bytes(repo.root).items() if not k.startswith(".looopbot/")}
    assert after == {k: v for k, v in files.items() if not k.startswith(".looopbot/")}
    assert not (repo.root / "snapshots").exists()


def test_after_the_merge_is_finished_the_beat_goes_on(repo: Repo) -> None:
    mid_merge(repo)
    assert repo.tick().code == 1
    repo.write("notes.txt", "resolved\n")
    repo.git("commit", "-qam", "human: merged")
    merge = repo.head()
    repo.decide(NOOP)
    r = repo.tick()
    assert r.code == 0, r.err
    assert repo.git("rev-parse", "HEAD^").strip() == merge
    assert repo.read("notes.txt") == "resolved\n"
    assert repo.status_porcelain() == ""


# --- a fresh clone ------------------------------------------------------------------------


def clone_of(repo: Repo, tmp_path: Path) -> Repo:
    target = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo.root), str(target))
    return Repo(target, repo.fake, env=dict(repo.env))


def test_a_fresh_clone_continues_where_the_last_beat_stopped(repo: Repo, tmp_path: Path) -> None:
    repo.sensor("steady", '#!/usr/bin/env bash\necho \'{"signal": {"build": "green"}}\'\n')
    repo.git("add", "sensors")
    repo.git("commit", "-qm", "human: a sensor")
    repo.decide({**NOOP, "journal": "looked around"})
    assert repo.tick().json()["outcome"] == "decided"
    assert repo.tick().json()["outcome"] == "unchanged"
    clone = clone_of(repo, tmp_path)
    assert not (clone.root / ".looopbot/runs").exists(), "scratch is not in the clone"
    head = clone.head()
    r = clone.tick()
    assert r.code == 0, r.err
    assert r.json()["outcome"] == "unchanged"
    assert r.json()["commit"] is None
    assert repo.calls() == 1, "no runner call in the clone"
    assert clone.head() == head
    assert clone.status_porcelain() == ""


def test_a_failed_beats_backoff_carries_over_to_a_clone(repo: Repo, tmp_path: Path) -> None:
    repo.queue({"stdout": "I am not sure what to do"})
    r = repo.tick()
    assert r.code == 1 and r.json()["outcome"] == "failed"
    assert repo.state()["failures"] == 1
    clone = clone_of(repo, tmp_path)
    r = clone.tick()
    assert r.code == 0, r.err
    assert r.json()["outcome"] == "backoff"
    assert repo.calls() == 1, "backoff: no runner call in the clone"
    assert clone.status_porcelain() == ""


# --- commits ------------------------------------------------------------------------------


def test_never_an_empty_commit(repo: Repo) -> None:
    repo.sensor("steady", '#!/usr/bin/env bash\necho \'{"signal": 1, "detail": {"x": 2}}\'\n')
    repo.git("add", "sensors")
    repo.git("commit", "-qm", "human: a sensor")
    repo.decide(NOOP)
    assert repo.tick().json()["outcome"] == "decided"
    n, head = repo.commits(), repo.head()
    for _ in range(5):
        r = repo.tick()
        assert r.code == 0, r.err
        assert r.json()["outcome"] == "unchanged" and r.json()["commit"] is None
    assert repo.commits() == n
    assert repo.head() == head
    assert repo.calls() == 1
    # and no commit in history has an empty diff against its parent
    for sha in repo.git("rev-list", "HEAD", "--no-merges", "--max-parents=1").split():
        assert repo.git(
            "diff-tree", "--root", "--no-commit-id", "--name-only", "-r", sha
        ).strip(), sha


def test_a_human_commit_between_beats_is_kept(repo: Repo) -> None:
    repo.decide(NOOP)
    repo.tick()
    human = human_commit(repo, "goals/ship.md", "goal: ship it\n", "human: a new goal")
    repo.decide({"action": "write_goal", "id": "docs", "body": "goal: docs\n", "journal": "j"})
    r = repo.tick()
    assert r.code == 0 and r.json()["outcome"] == "decided", r.err
    assert repo.git("rev-parse", "HEAD^").strip() == human
    assert human in repo.git("log", "--format=%H").split()
    assert repo.git("show", "HEAD:goals/ship.md") == "goal: ship it\n"
    assert repo.status_porcelain() == ""


def test_a_human_commit_during_a_beat_is_kept(repo: Repo) -> None:
    repo.queue({"stdout": json.dumps({**NOOP, "journal": "slow"}), "sleep": 1.5})
    beat = subprocess.Popen(
        [str(BIN), "-C", str(repo.root), "tick", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **repo.env},
    )
    try:
        q = repo.fake / "queue"
        end = 200
        while (repo.calls() < 1 or any(q.glob("*.json"))) and end:
            subprocess.run(["sleep", "0.05"], check=True)
            end -= 1
        assert end, "the runner never started"
        human = human_commit(repo, "notes.txt", "written while the bot was deciding\n")
        assert beat.poll() is None, "the human commit landed while the beat was running"
        out, err = beat.communicate(timeout=30)
    finally:
        if beat.poll() is None:
            beat.kill()
            beat.wait()
    assert beat.returncode == 0, err
    assert json.loads(out)["commit"] == repo.head()
    assert repo.git("rev-parse", "HEAD^").strip() == human
    assert repo.git("show", "HEAD:notes.txt") == "written while the bot was deciding\n"
    assert repo.status_porcelain() == ""


def test_archiving_a_goal_that_was_never_committed(repo: Repo) -> None:
    repo.write("goals/draft.md", "goal: a draft the human never committed\n")
    repo.decide({"action": "archive_goal", "id": "draft", "journal": "not now"})
    r = repo.tick()
    assert r.code == 0, r.err
    assert r.json()["outcome"] == "decided"
    assert repo.git("show", "HEAD:goals/archive/draft.md").startswith("goal: a draft")
    assert repo.git("ls-tree", "--name-only", "HEAD", "goals/draft.md") == ""
    assert repo.status_porcelain() == ""


def test_a_data_dir_inside_a_bigger_repo(tmp_path: Path) -> None:
    big = tmp_path / "big"
    (big / "src").mkdir(parents=True)
    git(big, "init", "-q")
    (big / "README").write_text("the big project\n")
    (big / "src/app.py").write_text("print('hi')\n")
    git(big, "add", ".")
    git(big, "commit", "-qm", "human: the project")
    before = {p: git(big, "rev-parse", f"HEAD:{p}") for p in ("README", "src/app.py")}
    first = git(big, "rev-parse", "HEAD").strip()
    r = subprocess.run(
        [str(BIN), "init", str(big / "sub")], capture_output=True, text=True, check=False
    )
    assert r.returncode == 0, r.stderr
    assert git(big, "rev-parse", "HEAD^").strip() == first
    init_paths = git(big, "show", "--name-only", "--format=", "HEAD").split()
    assert init_paths and all(p.startswith("sub/") for p in init_paths), init_paths
    git(big, "rm", "-q", "sub/sensors/today.sh")  # the date sensor depends on the calendar
    git(big, "commit", "-qm", "human: no date sensor")
    (big / "README").write_text("the big project\nan unstaged edit\n")
    fake = tmp_path / "fake"
    repo = Repo(
        big / "sub", fake, env={"FAKE_RUNNER_DIR": str(fake), "LOOOPBOT_TICK_COMMAND": FAKE_RUNNER}
    )
    repo.decide({"action": "write_goal", "id": "ship", "body": "goal: ship\n", "journal": "j"})
    res = repo.tick()
    assert res.code == 0, res.err
    assert res.json()["outcome"] == "decided"
    paths = git(big, "show", "--name-only", "--format=", "HEAD").split()
    assert "sub/goals/ship.md" in paths and "sub/journal.md" in paths
    assert all(p.startswith("sub/") for p in paths), paths
    assert {p: git(big, "rev-parse", f"HEAD:{p}") for p in ("README", "src/app.py")} == before
    assert (big / "README").read_text() == "the big project\nan unstaged edit\n"
    assert git(big, "status", "--porcelain") == " M README\n"
    # the data dir is also found from inside it, and history reads the sub-folder's beats
    h = subprocess.run(
        [str(BIN), "history", "--json"], cwd=big / "sub" / "goals", capture_output=True, text=True
    )
    assert h.returncode == 0, h.stderr
    assert [b["outcome"] for b in json.loads(h.stdout)["beats"]][:2] == ["decided", "init"]


def test_outcomes_read_from_git_log_trailers(repo: Repo) -> None:
    repo.decide(NOOP)
    assert repo.tick().json()["outcome"] == "decided"
    assert repo.run("goal", "write", "ship", "goal: ship").code == 0
    repo.queue({"stdout": "no decision"})
    assert repo.tick().json()["outcome"] == "failed"
    repo.write("goals/more.md", "goal: more\n")  # PLAYBOOK/goal edits cut the wait short
    repo.decide({**NOOP, "journal": "second look"})
    assert repo.tick().json()["outcome"] == "decided"
    out = repo.git("log", "--format=%(trailers:key=Looopbot-Outcome,valueonly)")
    outcomes = [line for line in out.splitlines() if line.strip()]
    assert outcomes == ["decided", "failed", "manual", "decided", "init"]
    actions = repo.git("log", "--format=%(trailers:key=Looopbot-Action,valueonly)")
    assert [a for a in actions.splitlines() if a.strip()] == ["noop", "write_goal", "noop"]
    worlds = repo.git("log", "-1", "--format=%(trailers:key=Looopbot-World,valueonly)").strip()
    assert len(worlds) == 64 and worlds == repo.state()["decided_hash"]
