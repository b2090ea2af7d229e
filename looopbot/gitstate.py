"""Whether the repo can take a commit right now: cheap file checks, no git library, so every
beat (even one that will skip) can refuse early on a repo mid-merge, mid-rebase or detached."""

from __future__ import annotations

from pathlib import Path

from looopbot.datadir import DataDir
from looopbot.errors import LooopbotError


def git_dir(repo_root: Path) -> Path:
    dotgit = repo_root / ".git"
    if dotgit.is_file():  # a worktree or submodule: "gitdir: <path>"
        text = dotgit.read_text().strip()
        if text.startswith("gitdir:"):
            target = Path(text.split(":", 1)[1].strip())
            return target if target.is_absolute() else (repo_root / target).resolve()
    return dotgit


def blocker(repo_root: Path) -> str | None:
    """Why no commit can be made now (mid-merge, mid-rebase, detached HEAD), or None.

    Cheap: a few stat calls and one small read, so every beat can check before it starts.
    """
    gitdir = git_dir(repo_root)
    if (gitdir / "rebase-merge").exists() or (gitdir / "rebase-apply").exists():
        return "a rebase is in progress — finish it (git rebase --continue) or abort it first"
    for name, what in (
        ("MERGE_HEAD", "a merge"),
        ("CHERRY_PICK_HEAD", "a cherry-pick"),
        ("REVERT_HEAD", "a revert"),
    ):
        if (gitdir / name).exists():
            return f"{what} is in progress — finish or abort it first"
    try:
        head = (gitdir / "HEAD").read_text().strip()
    except OSError:
        return f"{repo_root} is not a readable git repository"
    if not head.startswith("ref: "):
        return "HEAD is detached — check out a branch (git switch <branch>) first"
    return None


def check_committable(dd: DataDir) -> None:
    if dd.repo_root is None:
        raise LooopbotError(f"{dd.root} is not inside a git repository — run 'git init' there")
    why = blocker(dd.repo_root)
    if why is not None:
        raise LooopbotError(f"cannot record a beat: {why}")
