"""Workers whose supervisor died: ending their orphaned process groups and recording it.

Used by the fleet (a start over a lost worker, a stop) and by upkeep (housekeeping).
"""

from __future__ import annotations

import contextlib
import time

from looopbot import proc
from looopbot.datadir import DataDir
from looopbot.workers import identity, record

KILL_GRACE_S = 2.0  # SIGTERM to an orphaned group, then SIGKILL
_POLL_S = 0.02


def end_orphan(ident: identity.Identity) -> None:
    """SIGTERM, then SIGKILL, to a process group whose supervisor died.

    The group id is the worker's pid. The kernel never hands out a pid that is still some
    group's id, so the group is the worker's unless the pid now names a *different* live
    process (its start time differs): then the group is gone and it is left alone.
    """

    def ours() -> bool:
        now_start = identity.start_time(ident.pid)
        return now_start is None or now_start == ident.start

    def gone(timeout: float) -> bool:
        # Not our child: no pidfd to wait on, so look, then sleep a little.
        if not identity.alive(ident):
            return True
        time.sleep(min(timeout, _POLL_S))
        return not identity.alive(ident)

    proc.end_group(ident.pid, gone, KILL_GRACE_S, ours=ours)


def recorded_live(dd: DataDir, wid: str) -> bool:
    with contextlib.suppress(record.Unreadable):
        worker = record.read(dd, wid)
        return worker is not None and worker.live
    return False


def mark_lost(
    dd: DataDir, wid: str, now: float, *, force: bool = False, state: str = "lost"
) -> None:
    """Record `lost` (or `state`) for a live record whose supervisor is dead, ending the
    worker's orphaned group.

    The record is re-read after the supervisor was seen dead: a supervisor writes its final
    record before it exits, so one that finished meanwhile is never overwritten.
    """
    try:
        worker = record.read(dd, wid)
    except record.Unreadable:
        return
    if worker is None or not worker.live:
        return
    if identity.alive(worker.supervisor) and not force:
        return
    if worker.process is not None:
        end_orphan(worker.process)
    record.write(dd, worker._replace(state=state, ended_at=worker.ended_at or now))
