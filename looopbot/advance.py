"""Moving the checked-out branch forward to a given commit (a fast-forward to the remote, or
onto replayed bot commits) the way `git merge --ff-only` would — HEAD, index and working
tree together — with the user's uncommitted edits kept exactly, and kill-proof.

1. take `index.lock` (looopbot.gitindex), so no human commit can be built meanwhile;
2. write the intent (`.looopbot/advance.json`: ref, old, new);
3. `git read-tree -m -u OLD NEW` on a copy of the index: git's own two-way merge, which
   updates only the paths that differ, keeps every local change to other paths, honours
   sparse checkouts, and refuses — before writing anything — when a local edit would be
   overwritten;
4. move HEAD by compare-and-swap (`git update-ref HEAD NEW OLD`);
5. put the copy in place as the index; drop the intent.

Killed between 3 and 4, the working tree holds some of NEW while HEAD and the index are
OLD: the next run puts those files back as OLD had them (only files still exactly as NEW
has them: anything else is the user's). Killed between 4 and 5, HEAD is NEW and the index
OLD: the next run moves the entries of the changed paths that still match OLD.
"""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path
from typing import Any

from looopbot import gitcli, gitindex
from looopbot.datadir import DataDir
from looopbot.errors import LooopbotError
from looopbot.fsutil import write_atomic
from looopbot.gitstate import git_dir

INTENT = "advance.json"


class Blocked(LooopbotError):
    """The move would overwrite the user's uncommitted edits (nothing was changed)."""


class Moved(LooopbotError):
    """HEAD moved meanwhile (nothing was changed): decide again from the new HEAD."""


def _intent(dd: DataDir) -> Path:
    return dd.meta / INTENT


def advance(dd: DataDir, old: str, new: str, why: str, committer: tuple[str, str]) -> None:
    """Move HEAD (its branch), the index and the working tree from `old` to `new`."""
    assert dd.repo_root is not None
    root = dd.repo_root
    gitdir = git_dir(root)
    with gitindex.locked(gitdir):
        _recover(dd, root, gitdir)
        head = gitcli.out(root, "rev-parse", "HEAD").strip()
        if head != old:
            raise Moved("HEAD moved while bringing in the remote branch")
        write_atomic(_intent(dd), json.dumps({"old": old, "new": new}))
        tmp = gitindex.copy(gitdir)
        env = {"GIT_INDEX_FILE": str(tmp)}
        try:
            # Entries the bot's own commits put in the index carry no stat data yet; git
            # would take their files for edited ones. A refresh compares contents first.
            gitcli.run(root, "update-index", "-q", "--refresh", env=env, check=False)
            merged = gitcli.run(root, "read-tree", "-m", "-u", old, new, env=env, check=False)
            if not merged.ok:
                raise Blocked(_blocked(merged.stderr.decode("utf-8", errors="replace")))
            ident = {"GIT_COMMITTER_NAME": committer[0], "GIT_COMMITTER_EMAIL": committer[1]}
            moved = gitcli.run(
                root, "update-ref", "-m", why, "HEAD", new, old, env=ident, check=False
            )
            if not moved.ok:
                # Undo the working tree: it must match HEAD and the index again.
                gitcli.run(root, "read-tree", "-m", "-u", new, old, env=env, check=False)
                raise Moved("HEAD moved while bringing in the remote branch")
            gitindex.install(gitdir, tmp)
        finally:
            gitindex.discard(tmp)
            with contextlib.suppress(FileNotFoundError):
                _intent(dd).unlink()


def recover(dd: DataDir) -> None:
    """Settle a move a killed run left half-done (call before anything reads the index)."""
    if dd.repo_root is None or not _intent(dd).exists():
        return
    gitdir = git_dir(dd.repo_root)
    with gitindex.locked(gitdir):
        _recover(dd, dd.repo_root, gitdir)


def _recover(dd: DataDir, root: Path, gitdir: Path) -> None:
    intent = _read(dd)
    if intent is None:
        return
    old, new = intent
    head = gitcli.out(root, "rev-parse", "HEAD").strip()
    paths = [
        p
        for p in gitcli.out(root, "diff", "--no-renames", "--name-only", "-z", old, new).split("\0")
        if p
    ]
    if head == old and paths:
        _put_back(root, old, new, paths)
    elif head == new and paths:
        moves = [gitindex.Move(p, _entry(root, old, p), _entry(root, new, p)) for p in paths]
        gitindex.update(root, gitdir, moves)
    with contextlib.suppress(FileNotFoundError):
        _intent(dd).unlink()


def _put_back(root: Path, old: str, new: str, paths: list[str]) -> None:
    """Working files the killed move already wrote as NEW has them go back to OLD's."""
    for path in paths:
        full = root / path
        theirs = _entry(root, new, path)
        if full.is_symlink() or (full.exists() and not full.is_file()):
            continue
        if full.exists():
            made = gitcli.out(root, "hash-object", f"--path={path}", "--", path).strip()
            if theirs is None or made != theirs.sha:
                continue  # not what the move wrote: the user's, or OLD's already
        elif theirs is not None:
            continue  # NEW has it, the file is gone: that is not the move's doing
        if _entry(root, old, path) is None:
            full.unlink(missing_ok=True)
        else:
            gitcli.run(root, "checkout-index", "-f", "--", path)


def _entry(root: Path, commit: str, path: str) -> gitindex.Entry | None:
    found = gitcli.run(root, "ls-tree", "-z", commit, "--", path, check=False)
    raw = found.stdout.decode("utf-8", errors="replace").rstrip("\0")
    if not found.ok or not raw:
        return None
    meta, _, _name = raw.partition("\t")
    mode, kind, sha = meta.split(" ")
    return gitindex.Entry(int(mode, 8), sha) if kind == "blob" else None


def _read(dd: DataDir) -> tuple[str, str] | None:
    try:
        data: Any = json.loads(_intent(dd).read_bytes())
        old, new = str(data["old"]), str(data["new"])
    except (OSError, ValueError, KeyError, TypeError):
        with contextlib.suppress(OSError):
            _intent(dd).unlink()
        return None
    hexdigits = set("0123456789abcdef")
    if not all(len(s) == 40 and set(s) <= hexdigits for s in (old, new)):
        with contextlib.suppress(OSError):  # not ours: nothing of it reaches a git command
            _intent(dd).unlink()
        return None
    return old, new


def _blocked(said: str) -> str:
    """The files git named in its refusal, in a message that says what to do."""
    files = []
    for raw in said.splitlines():
        line = raw.strip()
        # "error: Entry 'x' not uptodate…", "error: Untracked working tree file 'x' would be
        # overwritten…", or a list of names under "error: Your local changes…".
        quoted = re.search(r"'([^']+)'", line) if line.startswith("error:") else None
        if quoted:
            files.append(quoted.group(1))
        elif line and not line.startswith(("error:", "fatal:", "Please", "Aborting", "hint:")):
            files.append(line)
    named = ", ".join(files[:10]) or "some files"
    return (
        f"your uncommitted edits to {named} would be overwritten by the remote's changes — "
        "commit or stash them; the beat goes on without the remote's changes"
    )


__all__ = ["Blocked", "Moved", "advance", "recover"]
