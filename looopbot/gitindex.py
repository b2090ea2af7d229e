"""Keeping the user's index in step with beat commits, and finishing a commit a kill -9
interrupted.

A beat commit moves HEAD without git's porcelain, so the index entries of the paths it
committed must move too, or `git status` would show every bot commit reversed as a staged
change. Two windows need care when a beat is killed with -9:

- inside the ref update, dulwich may leave `refs/heads/<branch>.lock` behind (git would then
  refuse every commit until a human deleted it);
- between the ref update and the index refresh, the index still holds the old blobs.

So before moving the ref, the beat writes a small intent (local scratch). Every commit runs
under the beat lock, so an intent found at the start of a commit was left by a process that
is gone; the next commit finishes its work: it removes that process's stale ref lock (only
one that holds the sha it meant to write, or nothing, and is not fresh) and refreshes the
index against the trees it names. The index lock itself is never removed: a human's
`git commit` holds it while their editor is open.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from looopbot.datadir import DataDir
from looopbot.fsutil import read_bytes_or_none, write_atomic

if TYPE_CHECKING:
    from dulwich.objects import ObjectID
    from dulwich.refs import Ref
    from dulwich.repo import Repo

INTENT = "commit-intent.json"
STALE_LOCK_S = 2.0  # a ref lock is held for microseconds; one this old was abandoned


def lookup(repo: Repo, tree: ObjectID | None, path: bytes) -> tuple[int, ObjectID] | None:
    """(mode, sha) of `path` in `tree`, or None."""
    from dulwich.errors import NotTreeError
    from dulwich.object_store import tree_lookup_path

    if tree is None:
        return None
    try:
        return tree_lookup_path(repo.object_store.__getitem__, tree, path)
    except (KeyError, NotTreeError):
        return None


def refresh(
    repo: Repo,
    repo_root: Path,
    old_tree: ObjectID | None,
    new_tree: ObjectID,
    paths: Iterable[bytes],
) -> bool:
    """Move the index entries of `paths` from `old_tree` to `new_tree`; False if the index
    is locked right now (the caller keeps its intent and tries again next beat).

    Only entries that matched the old tree move: a path the user had staged keeps its
    staged content. An entry gets the working file's stat only when the file holds exactly
    the committed blob; otherwise a zero stat makes git re-read the file.
    """
    from dulwich.file import FileLocked
    from dulwich.index import index_entry_from_stat
    from dulwich.objects import Blob

    try:
        index = repo.open_index()
    except FileNotFoundError:
        return True
    changed = False
    for path in paths:
        old = lookup(repo, old_tree, path)
        new = lookup(repo, new_tree, path)
        try:
            # A conflicted entry (mid-merge) has no single sha: it is the user's to resolve.
            entry_sha: bytes | None = getattr(index[path], "sha", b"conflict")
        except KeyError:
            entry_sha = None
        if entry_sha != (old[1] if old else None) or old == new:
            continue
        if new is None:
            if entry_sha is not None:
                del index[path]
                changed = True
            continue
        mode, sha = new
        full = repo_root / os.fsdecode(path)
        try:
            st = os.lstat(full)
            same = stat.S_ISREG(st.st_mode) and Blob.from_string(full.read_bytes()).id == sha
        except OSError:
            same = False
        if not same:
            st = os.stat_result((mode, 0, 0, 0, 0, 0, 0, 0, 0, 0))
        index[path] = index_entry_from_stat(st, sha, mode)
        changed = True
    if changed:
        try:
            index.write()
        except FileLocked:
            return False
    return True


def write_intent(
    dd: DataDir,
    *,
    ref: Ref,
    old: ObjectID | None,
    new: ObjectID,
    old_tree: ObjectID | None,
    new_tree: ObjectID,
    paths: Iterable[bytes],
) -> None:
    intent = {
        "pid": os.getpid(),
        "ref": ref.decode(),
        "old": old.decode() if old else None,
        "new": new.decode(),
        "old_tree": old_tree.decode() if old_tree else None,
        "new_tree": new_tree.decode(),
        "paths": [os.fsdecode(p) for p in paths],
    }
    write_atomic(dd.scratch(INTENT), json.dumps(intent))


def clear_intent(dd: DataDir) -> None:
    with contextlib.suppress(FileNotFoundError):
        dd.scratch(INTENT).unlink()


def recover(dd: DataDir, repo: Repo) -> None:
    """Finish what a killed beat's commit left undone (call under the beat lock)."""
    from dulwich.objects import ObjectID
    from dulwich.refs import Ref

    raw = read_bytes_or_none(dd.scratch(INTENT))
    if raw is None:
        return
    try:
        intent = json.loads(raw)
        ref = Ref(intent["ref"].encode())
        new = ObjectID(intent["new"].encode())
        old_tree = ObjectID(intent["old_tree"].encode()) if intent["old_tree"] else None
        new_tree = ObjectID(intent["new_tree"].encode())
        paths = [os.fsencode(p) for p in intent["paths"]]
    except (ValueError, KeyError, TypeError, AttributeError):
        clear_intent(dd)  # unreadable: nothing to finish
        return
    lock = Path(os.fsdecode(repo.refs.refpath(ref)) + ".lock")  # type: ignore[attr-defined]
    with contextlib.suppress(OSError):
        held = lock.read_bytes().strip()
        # Holding the sha we meant to write, it is ours; empty, it may be anyone's for an
        # instant, so only an old one goes.
        if held == new or (held == b"" and time.time() - lock.stat().st_mtime > STALE_LOCK_S):
            lock.unlink()
    if repo.refs.follow(ref)[1] == new:
        assert dd.repo_root is not None
        if not refresh(repo, dd.repo_root, old_tree, new_tree, paths):
            return  # the index is locked by someone: try again next beat
    clear_intent(dd)
