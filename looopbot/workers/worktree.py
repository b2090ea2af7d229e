"""A worker's branch and worktree (DESIGN §8), through GitPython.

Worktrees are porcelain: `git worktree add` must honour the user's git setup (hooks,
sparse checkout, filters), so this is the git CLI (looopbot.gitcli), not dulwich; GitPython
reads the repo's HEAD and branch. Callers
have validated the worker id (ids.is_valid_id) before any ref or path is built from it.
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from looopbot.datadir import DataDir
from looopbot.errors import LooopbotError
from looopbot.workers.record import branch as branch_of
from looopbot.workers.record import paths

if TYPE_CHECKING:
    from git import Repo


def _repo(dd: DataDir) -> Repo:
    import git

    if dd.repo_root is None:
        raise LooopbotError(f"{dd.root} is not inside a git repository — workers need one")
    return git.Repo(dd.repo_root)


def _git(repo: Repo, *args: str) -> str:
    """One git command in the repo (looopbot.gitcli: the one git environment, a timeout);
    a refusal becomes a LooopbotError carrying git's own words."""
    from looopbot import gitcli

    return gitcli.out(Path(repo.working_dir), *args)


def _registered(repo: Repo) -> set[Path]:
    """The worktrees git knows about (some may be gone from disk)."""
    out = _git(repo, "worktree", "list", "--porcelain")
    return {
        Path(line[len("worktree ") :]).resolve()
        for line in out.splitlines()
        if line.startswith("worktree ")
    }


def _branch_exists(repo: Repo, name: str) -> bool:
    from looopbot import gitcli

    found = gitcli.run(
        Path(repo.working_dir),
        "rev-parse",
        "--verify",
        "--quiet",
        f"refs/heads/{name}",
        check=False,
    )
    return found.ok


def ensure(dd: DataDir, wid: str) -> tuple[str, str, str]:
    """The worker's branch and worktree, made or reused; returns (branch, base_sha, base_branch).

    A new branch starts at the data repo's HEAD; an existing one is reused with its commits
    (a worker restarted under the same id continues its own work), and its base is where it
    forked from HEAD's branch.
    """
    repo = _repo(dd)
    if repo.head.is_detached:
        raise LooopbotError(
            "the data repo is on a detached HEAD — check out a branch before starting a worker"
        )
    if not repo.head.is_valid():
        raise LooopbotError("the data repo has no commit yet — commit something first")
    base_branch = repo.active_branch.name
    head = repo.head.commit.hexsha
    name = branch_of(wid)
    where = paths(dd, wid).worktree.resolve()
    existed = _branch_exists(repo, name)
    registered = _registered(repo)
    if where in registered and (where / ".git").exists():
        pass  # still there from an earlier run of this id: reuse it as it is
    else:
        # A registration whose folder was deleted by hand blocks `worktree add` for that
        # path (and for the branch): forget it first.
        _git(repo, "worktree", "prune")
        if where.exists():
            with contextlib.suppress(OSError):
                where.rmdir()  # an empty leftover folder is harmless
            if where.exists():
                raise LooopbotError(
                    f"{where} exists but is not a worktree of this repo — move it away "
                    "and start the worker again"
                )
        where.parent.mkdir(parents=True, exist_ok=True)
        if existed:
            _git(repo, "worktree", "add", str(where), name)
        else:
            _git(repo, "worktree", "add", "-b", name, str(where), head)
    base = head
    if existed:
        with contextlib.suppress(LooopbotError):  # unrelated histories: count from HEAD
            base = _git(repo, "merge-base", name, head).strip() or head
    return name, base, base_branch


def remove(dd: DataDir, wid: str) -> None:
    """Remove the worktree (uncommitted files in it go with it; the branch stays)."""
    repo = _repo(dd)
    where = paths(dd, wid).worktree.resolve()
    if where in _registered(repo):
        with contextlib.suppress(LooopbotError):
            _git(repo, "worktree", "remove", "--force", "--force", str(where))
    if where.exists():
        shutil.rmtree(where, ignore_errors=True)
    _git(repo, "worktree", "prune")


def commits_ahead(dd: DataDir, branch: str, base_branch: str) -> int:
    """Commits on `branch` that `base_branch` lacks (against HEAD if the base is gone)."""
    repo = _repo(dd)
    if not _branch_exists(repo, branch):
        return 0
    base = f"refs/heads/{base_branch}" if _branch_exists(repo, base_branch) else "HEAD"
    return int(_git(repo, "rev-list", "--count", f"{base}..refs/heads/{branch}").strip() or 0)


def delete_branch_if_empty(dd: DataDir, branch: str, base_branch: str) -> bool:
    """Delete the branch when it holds nothing the base lacks; True when it was deleted.

    A branch with commits of its own is the worker's deliverable and is never deleted here.
    """
    if commits_ahead(dd, branch, base_branch) > 0:
        return False
    repo = _repo(dd)
    if not _branch_exists(repo, branch):
        return False
    _git(repo, "branch", "-D", branch)
    return True
