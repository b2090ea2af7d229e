"""One beat at a time per data dir (DESIGN §1): an OS file lock the kernel releases when the
process dies, so a kill -9 never leaves a stale lock. The lock file is never unlinked —
unlinking would let two processes hold locks on two different inodes."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager

from looopbot.datadir import DataDir
from looopbot.errors import LockHeld


@contextmanager
def beat_lock(dd: DataDir) -> Iterator[None]:
    dd.meta.mkdir(parents=True, exist_ok=True)
    fd = os.open(dd.lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockHeld() from None
        yield
    finally:
        os.close(fd)  # closing releases the lock
