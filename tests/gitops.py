"""Shared pieces for the GitOps tests: a bare repo playing GitHub, clones of it wired to the
scripted runner, and a human's clone that pushes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import FAKE_RUNNER, Repo, git, make_repo
from conftest import fsck as fsck  # the one fsck check, for the GitOps tests too

REFUSED_URL = "http://127.0.0.1:9/nowhere.git"  # port 9 (discard): connection refused, offline


def bare(tmp_path: Path, name: str = "remote.git") -> Path:
    path = tmp_path / name
    subprocess.run(["git", "init", "-q", "--bare", str(path)], check=True)
    return path


def published(tmp_path: Path) -> tuple[Repo, Path]:
    """A data repo made by `looopbot init`, pushed to a new bare remote as its upstream."""
    repo = make_repo(tmp_path)
    remote = bare(tmp_path)
    repo.git("remote", "add", "origin", str(remote))
    repo.git("push", "-q", "-u", "origin", "HEAD")
    return repo, remote


def clone(tmp_path: Path, remote: Path, name: str, *, depth: int | None = None) -> Repo:
    """Another data repo cloned from `remote` (shallow with `depth`, as Actions makes one),
    wired to its own scripted runner."""
    root = tmp_path / name
    args = ["git", "clone", "-q"]
    if depth is not None:
        args += ["--depth", str(depth)]
    # file:// so --depth is honoured for a local remote.
    subprocess.run([*args, f"file://{remote}", str(root)], check=True)
    fake = tmp_path / f"fake-{name}"
    return Repo(
        root, fake, env={"FAKE_RUNNER_DIR": str(fake), "LOOOPBOT_TICK_COMMAND": FAKE_RUNNER}
    )


def human(tmp_path: Path, remote: Path, name: str = "human") -> Path:
    root = tmp_path / name
    subprocess.run(["git", "clone", "-q", str(remote), str(root)], check=True)
    return root


def human_push(root: Path, files: dict[str, str], message: str, *, append: bool = False) -> str:
    """A human's commit of `files` (appended to, with `append`), pulled first and pushed."""
    git(root, "pull", "-q", "--rebase")
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if append:
            with open(path, "a") as f:
                f.write(text)
        else:
            path.write_text(text)
    git(root, "add", "-A")
    git(root, "commit", "-qm", message)
    git(root, "push", "-q")
    return git(root, "rev-parse", "HEAD").strip()


def remote_log(remote: Path, fmt: str = "%H") -> list[str]:
    return git(remote, "log", f"--format={fmt}", "HEAD").splitlines()


def show(remote: Path, rel: str) -> str:
    return git(remote, "show", f"HEAD:{rel}")


def not_mid_rebase(root: Path) -> None:
    gitdir = Path(git(root, "rev-parse", "--absolute-git-dir").strip())
    assert not (gitdir / "rebase-merge").exists() and not (gitdir / "rebase-apply").exists()


PUSHER = f"{sys.executable} -c"


def users_work_in_progress(top: Path) -> str:
    """A user's work in progress at the top of a worktree — a staged new file, an
    intent-to-add one, an unstaged edit of a tracked file — that every beat must leave
    exactly as it is; the edited file's name."""
    (top / "staged.txt").write_text("staged by the human\n")
    (top / "ita.txt").write_text("meant to be added\n")
    git(top, "add", "staged.txt")
    git(top, "add", "-N", "ita.txt")
    readme = "README" if (top / "README").exists() else "PLAYBOOK.md"
    with open(top / readme, "a") as f:
        f.write("an unstaged edit\n")
    return readme


def users_notes(repo: Repo, staged: str, unstaged: str) -> None:
    """Committed notes of the user's under user/, then one edit staged and one not."""
    repo.write("user/staged.txt", "first\n")
    repo.write("user/unstaged.txt", "first\n")
    repo.git("add", "user")
    repo.git("commit", "-qm", "human: notes")
    repo.write("user/staged.txt", f"first\n{staged}\n")
    repo.git("add", "user/staged.txt")
    repo.write("user/unstaged.txt", f"first\n{unstaged}\n")
