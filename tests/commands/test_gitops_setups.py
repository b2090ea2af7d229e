"""Pull and push in the git setups people really have (issue 7's adversarial pass): split and
v4 indexes with an untracked cache, sparse checkouts (cone with a sparse index, and not), a
linked worktree or a submodule as the data repo, and git variables set as inside a hook.

A human pushes to the remote, first onto a clean branch (the beat fast-forwards), then while
an unpushed bot commit waits (the beat replays it and moves the branch): after each, the
user's staged, intent-to-add and unstaged work is as it was, the setup itself survived, and
the human's next plain commit carries only their own paths.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import NOOP, git
from gitops import bare, fsck, human, human_push, published, show, users_work_in_progress
from test_git_setups import SETUPS, Setup


def publish(s: Setup, tmp_path: Path) -> Path:
    """A bare remote for the setup's repo, as its branch's upstream."""
    remote = bare(tmp_path)
    branch = git(s.top, "branch", "--show-current").strip()
    git(s.top, "remote", "remove", "origin", check=False)  # a submodule's: its own source
    git(s.top, "remote", "add", "origin", str(remote))
    git(s.top, "push", "-q", "-u", "origin", branch)
    git(remote, "symbolic-ref", "HEAD", f"refs/heads/{branch}")
    return remote


@pytest.mark.parametrize("make", SETUPS, ids=lambda f: f.__name__)
def test_pull_and_push_keep_the_setup_and_the_users_work(
    tmp_path: Path, make: Callable[..., Setup]
) -> None:
    s = make(tmp_path)
    repo, top = s.repo, s.top
    remote = publish(s, tmp_path)
    prefix = repo.git("rev-parse", "--show-prefix").strip()
    users_work_in_progress(top)
    users = set(git(top, "status", "--porcelain").splitlines())

    def status() -> set[str]:
        return set(git(top, "status", "--porcelain").splitlines())

    h = human(tmp_path, remote)
    outside = {"docs/d.md": "the docs, changed\n"} if (h / "docs").exists() else {}
    human_push(
        h,
        {f"{prefix}goals/h1.md": "goal: h1\n", f"{prefix}goals/archive/old.md": "old\n", **outside},
        "human: a goal",
    )
    repo.decide({**NOOP, "journal": "b1"})
    run = repo.tick("--push", "--force")
    assert run.code == 0, run.out + run.err
    assert run.json()["push"]["pulled"] == "fast-forward"
    assert status() == users
    assert repo.read("goals/h1.md") == "goal: h1\n"

    repo.decide({"action": "write_goal", "id": "b", "body": "goal: b", "journal": "b2"})
    assert repo.tick("--force").code == 0  # not pushed yet
    line = "- 2026-01-01 00:00 the human's line\n"
    human_push(
        h,
        {f"{prefix}goals/h2.md": "goal: h2\n", f"{prefix}journal.md": line},
        "human: 2",
        append=True,
    )
    repo.decide({**NOOP, "journal": "b3"})
    run = repo.tick("--push", "--force")
    assert run.code == 0, run.out + run.err
    assert run.json()["push"]["pulled"] == "rebased 1"
    assert status() == users
    assert git(top, "rev-parse", "HEAD").strip() == git(remote, "rev-parse", "HEAD").strip()
    journal = show(remote, f"{prefix}journal.md")
    assert all(journal.count(f" {t}\n") == 1 for t in ("b1", "b2", "b3", "the human's line"))
    # Last: a setup's check may leave git's untracked cache a moment behind (it makes and
    # removes a file within one timestamp tick), which `git status` above would show.
    s.check()
    fsck(top)
    git(top, "commit", "-qm", "human: the staged file")
    assert git(top, "show", "--name-only", "--format=", "HEAD").split() == ["staged.txt"]


def test_git_variables_set_by_a_hook_redirect_no_pull_push_or_claim(tmp_path: Path) -> None:
    repo, remote = published(tmp_path)
    other = tmp_path / "other"
    git(tmp_path, "init", "-q", str(other))
    (other / "file").write_text("another repo\n")
    git(other, "add", "file")
    git(other, "commit", "-qm", "other: first")
    hook_index = tmp_path / "hook-index"
    env = {
        "GIT_DIR": str(other / ".git"),
        "GIT_WORK_TREE": str(tmp_path),
        "GIT_INDEX_FILE": str(hook_index),
    }
    h = human(tmp_path, remote)
    repo.decide({"action": "write_goal", "id": "b", "body": "goal: b", "journal": "b"})
    assert repo.tick("--force").code == 0
    human_push(h, {"goals/h.md": "goal: h\n"}, "human: h")
    repo.decide(NOOP)
    run = repo.tick("--push", "--force", env=env)
    assert run.code == 0, run.err
    assert run.json()["push"]["pulled"] == "rebased 1"
    assert repo.status_porcelain() == ""
    assert git(remote, "rev-parse", "HEAD").strip() == repo.head()
    claimed = repo.run("claim", "db", env={**env, "LOOOPBOT_PUSH": "1"})
    assert claimed.code == 0, claimed.err
    assert git(remote, "rev-parse", "--verify", "refs/heads/looopbot/claim/db")
    assert not hook_index.exists()
    assert git(other, "log", "--format=%s") == "other: first\n"
