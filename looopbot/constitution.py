"""CONSTITUTION.md: the rules the loop cannot rewrite (issue 9).

It is read from the commit HEAD points at, never from the working tree: a shell move, a
sensor script the decider wrote, or a worker that edits the file on disk changes nothing
the loop sees — only a commit does, and looopbot never commits it (it is not on the
allow-list in changes.py). A human's uncommitted edit waits for their commit: that is what
"only a human commit changes it" means.

Reading HEAD's tree means importing dulwich (≈ 25 ms), which the skip path never does. So
what HEAD held is cached in local scratch under HEAD's commit id, read from the ref files as
git writes them (a loose ref, else packed-refs); the bot's own commit, which can never
change the file, carries the entry over to the commit it makes.
"""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path

from looopbot.datadir import DataDir
from looopbot.fsutil import write_atomic

NAME = "CONSTITUTION.md"
CACHE = "constitution.json"
_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


def read(dd: DataDir) -> bytes | None:
    """The committed CONSTITUTION.md at the data dir's top, or None when HEAD has none."""
    if dd.repo_root is None:
        return None
    head = head_id(dd.repo_root)
    cache = dd.scratch(CACHE)
    if head is not None:
        hit, data = _cached(cache, head, dd.prefix)
        if hit:
            return data
    data = _at_head(dd)
    if head is not None:
        _save(cache, head, dd.prefix, data)
    return data


def carry(dd: DataDir, old: bytes | None, new: bytes) -> None:
    """The bot committed `new` on `old`: its commit never touches this file (it is not on
    the allow-list), so what `old` held, `new` holds."""
    if old is None:
        return
    cache = dd.scratch(CACHE)
    hit, data = _cached(cache, old.decode(), dd.prefix)
    if hit:
        _save(cache, new.decode(), dd.prefix, data)


def _at_head(dd: DataDir) -> bytes | None:
    from dulwich.errors import NotGitRepository

    from looopbot import gitstore

    try:
        repo = gitstore._open(dd)
    except NotGitRepository:
        return None
    with repo:
        head = gitstore.head_id(repo)
        if head is None:
            return None
        return gitstore.file_at(repo, head, (dd.prefix + NAME).encode())


def head_id(repo_root: Path) -> str | None:
    """HEAD's commit id from the ref files, without a git library; None when it cannot be
    told that way (an unborn branch, a reftable repo, a ref that points at a ref)."""
    from looopbot.gitstate import git_dir

    gitdir = git_dir(repo_root)
    try:
        common = (gitdir / (gitdir / "commondir").read_text().strip()).resolve()
    except OSError:
        common = gitdir  # not a linked worktree
    try:
        head = (gitdir / "HEAD").read_text().strip()
    except OSError:
        return None
    if not head.startswith("ref: "):
        return head if _SHA.fullmatch(head) else None
    ref = head[5:]
    try:
        loose = (common / ref).read_text().strip()
    except OSError:
        loose = None
    if loose is not None:
        return loose if _SHA.fullmatch(loose) else None
    try:
        packed = (common / "packed-refs").read_text()
    except OSError:
        return None
    for line in packed.splitlines():
        sha, _, name = line.partition(" ")
        if name == ref and _SHA.fullmatch(sha):
            return sha
    return None


def _cached(path: Path, head: str, prefix: str) -> tuple[bool, bytes | None]:
    """(found, bytes) from the cache for `head`; bytes None means HEAD has no file."""
    try:
        record = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return False, None
    if not isinstance(record, dict) or [record.get("head"), record.get("prefix")] != [
        head,
        prefix,
    ]:
        return False, None
    data = record.get("data")
    if data is None:
        return True, None
    if not isinstance(data, str):
        return False, None
    try:
        return True, data.encode("latin-1")
    except UnicodeEncodeError:
        return False, None


def _save(path: Path, head: str, prefix: str, data: bytes | None) -> None:
    # Bytes as latin-1 text: lossless, and no base64 import on the skip path.
    text = None if data is None else data.decode("latin-1")
    record = {"head": head, "prefix": prefix, "data": text}
    with contextlib.suppress(OSError):  # only an accelerator
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps(record), durable=False)


def on_disk(dd: DataDir) -> bytes | None:
    """The working tree's file (None when absent or not a regular file)."""
    from looopbot.desired import read_file

    return read_file(str(dd.path(NAME)))


def restore(dd: DataDir, data: bytes | None) -> bool:
    """Put the working tree's file back to `data` (None: it did not exist). False when a
    directory stands in its place: deleting a tree a move made could delete more than it,
    so that is left for a human."""
    path = dd.path(NAME)
    if path.is_symlink():
        path.unlink()
    elif path.is_dir():
        return False
    if data is None:
        path.unlink(missing_ok=True)
    else:
        write_atomic(path, data)
    return True


def mentions(text: str) -> bool:
    """Whether a command names the file. Such a move is refused before it runs; the check
    after the move (`on_disk` unchanged) is the guard quoting cannot talk around."""
    return NAME.lower() in text.lower()
