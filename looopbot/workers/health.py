"""A live worker's health (issue 9): busy, waiting, stuck — and dead for one whose
process is gone without a final record.

Health is a state, never an age: it joins the `sys-workers` signal, so the loop wakes once
when a worker turns stuck (or back to busy), not on every beat while it stays so. Output
is judged by the mtime of the worker's output.log, which everything it prints goes to.
"""

from __future__ import annotations

import os

from looopbot.workers.record import Paths, Worker

BUSY = "busy"  # printed something within limits.worker_stuck_after
WAITING = "waiting"  # flagged a question: waiting for a human, not stuck
STUCK = "stuck"  # silent for longer, and no question raised
DEAD = "dead"  # its process is gone without a final record (state lost)


def last_output(p: Paths, worker: Worker) -> float:
    """When the worker last printed (its start, before it printed anything)."""
    try:
        printed = os.stat(p.log).st_mtime
    except OSError:
        printed = 0.0
    return max(printed, worker.started_at or 0.0)


def of(worker: Worker, p: Paths, *, flagged: bool, now: float, stuck_after: float) -> str | None:
    """The worker's health; None for a worker that ended on the record (exited, killed)."""
    if worker.state == "lost":
        return DEAD
    if not worker.live:
        return None
    if flagged:
        return WAITING
    return BUSY if now - last_output(p, worker) <= stuck_after else STUCK
