"""Process identity that survives PID reuse.

A PID alone can be recycled for a stranger after its process dies; (pid, start time) cannot.
On Linux the start time is field 22 of /proc/<pid>/stat (clock ticks since boot); elsewhere
`ps -o lstart=` gives it to the second, which is enough to tell two processes apart.
"""

from __future__ import annotations

import os
import subprocess
from typing import NamedTuple


class Identity(NamedTuple):
    pid: int
    start: str  # opaque: compared, never interpreted


def _linux_start(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = raw.rsplit(b")", 1)[1].split()
    if fields[0] in (b"Z", b"X"):  # a zombie runs nothing: it is not alive
        return None
    return fields[19].decode()  # field 22 overall: starttime


def _ps_start(pid: int) -> str | None:
    try:
        out = subprocess.run(
            ["ps", "-o", "lstart=", "-p", str(pid)], capture_output=True, text=True, check=False
        )
    except OSError:
        return None
    return out.stdout.strip() or None


def start_time(pid: int) -> str | None:
    """The start time of a live process, or None when there is no such live process."""
    if os.path.isdir("/proc/self"):
        return _linux_start(pid)
    return _ps_start(pid)


def of(pid: int) -> Identity | None:
    start = start_time(pid)
    return Identity(pid, start) if start is not None else None


def alive(ident: Identity | None) -> bool:
    """True while the very process named by `ident` runs (a reused PID does not count)."""
    return ident is not None and start_time(ident.pid) == ident.start
