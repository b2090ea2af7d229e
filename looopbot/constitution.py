"""CONSTITUTION.md: the rules the loop cannot rewrite (issue 9).

It is read from the commit HEAD points at, never from the working tree: a shell move, a
sensor script the decider wrote, or a worker that edits the file on disk changes nothing
the loop sees — only a commit does, and looopbot never commits it (it is not on the
allow-list in changes.py). A human's uncommitted edit waits for their commit: that is what
"only a human commit changes it" means.

Not cached: reading HEAD's blob costs under a millisecond, and a cache in local scratch
is a file a shell move could forge.
"""

from __future__ import annotations

from looopbot.datadir import DataDir
from looopbot.fsutil import write_atomic

NAME = "CONSTITUTION.md"


def read(dd: DataDir) -> bytes | None:
    """The committed CONSTITUTION.md at the data dir's top, or None when HEAD has none."""
    if dd.repo_root is None:
        return None
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
