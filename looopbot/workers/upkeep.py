"""Fleet upkeep at every beat: notice lost workers, prune finished ones after worker_ttl.

Each worker is pruned on its own: one whose worktree or branch cannot go is reported and
kept, record and all, so the next prune tries it again, and the others still go. A beat
hears of a given failure once (the last one reported is kept in the worker's folder as
`prune-failed`): a prune stuck for days must not write the same line into every beat.
"""

from __future__ import annotations

import contextlib
import shutil
from typing import NamedTuple

from looopbot.config import Config
from looopbot.datadir import DataDir
from looopbot.errors import LooopbotError
from looopbot.fsutil import read_bytes_or_none, write_atomic
from looopbot.workers import orphans, record
from looopbot.workers.fleet import census, fleet_lock
from looopbot.workers.record import Worker

REPORTED = "prune-failed"  # in the worker's folder: the failure a beat last reported


class Pruned(NamedTuple):
    id: str
    branch: str
    kept_branch: bool  # it holds commits the base branch lacks


class PruneFailed(NamedTuple):
    id: str
    error: str  # git's words or the OS error
    started_at: float  # which run of this id (an id may be started again meanwhile)

    @property
    def message(self) -> str:
        return f"prune of worker {self.id} failed: {self.error}"


def housekeeping(dd: DataDir, config: Config, now: float) -> list[str]:
    """Notice lost workers (ending their orphaned groups) and prune aged finished ones.

    Returns the problems a beat should report, each failed prune once: a broken worktree
    or branch must not break the beat, and it is tried again at the next one.
    """
    with fleet_lock(dd):
        for worker in census(dd).workers:
            if worker.state == "lost":
                orphans.mark_lost(dd, worker.id, now)
        return [
            failed.message
            for failed in prune(dd, config, now, locked=True)
            if isinstance(failed, PruneFailed) and _first_report(dd, failed)
        ]


def prune(
    dd: DataDir, config: Config, now: float, *, everything: bool = False, locked: bool = False
) -> list[Pruned | PruneFailed]:
    """Remove finished workers older than limits.worker_ttl (all finished: `everything`):
    the worktree and the worker's files go; the branch stays only if it holds work.
    One outcome per worker that was due, in id order."""
    if not locked:
        with fleet_lock(dd):
            return prune(dd, config, now, everything=everything, locked=True)
    done: list[Pruned | PruneFailed] = []
    ttl = config.limits.worker_ttl
    for worker in census(dd).workers:
        if worker.live:
            continue
        try:
            if worker.state == "lost":
                orphans.mark_lost(dd, worker.id, now)  # its orphans go before its worktree
            ended = worker.ended_at if worker.ended_at is not None else worker.started_at
            if everything or now - ended >= ttl:
                done.append(_prune_one(dd, worker))
        except (LooopbotError, OSError) as exc:
            done.append(PruneFailed(worker.id, str(exc), worker.started_at))
    return done


def _prune_one(dd: DataDir, worker: Worker) -> Pruned:
    """Worktree, then branch, then the worker's folder: the folder (its record) goes last,
    so a worker whose worktree or branch stays is still listed, and retried."""
    from looopbot.workers import worktree
    from looopbot.workers.publish import push_branch

    # Its work goes to the remote again first (a failure leaves the branch here, as ever).
    push_branch(dd, worker)
    worktree.remove(dd, worker.id)
    where = record.paths(dd, worker.id).worktree
    if where.exists():
        raise LooopbotError(f"its worktree {where} could not be removed")
    deleted = worktree.delete_branch_if_empty(dd, worker.branch, worker.base_branch)
    shutil.rmtree(record.paths(dd, worker.id).dir)
    return Pruned(worker.id, worker.branch, not deleted)


def _first_report(dd: DataDir, failed: PruneFailed) -> bool:
    """True unless this very failure was reported before (then the beat stays quiet)."""
    path = record.paths(dd, failed.id).dir / REPORTED
    said = f"{failed.started_at!r} {failed.message}".encode()
    if read_bytes_or_none(path) == said:
        return False
    with contextlib.suppress(OSError):  # then reported again next time: better than never
        write_atomic(path, said, durable=False)
    return True
