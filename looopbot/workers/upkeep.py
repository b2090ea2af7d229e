"""Fleet upkeep at every beat: notice lost workers, prune finished ones after worker_ttl."""

from __future__ import annotations

import contextlib
import shutil
from typing import NamedTuple

from looopbot.config import Config
from looopbot.datadir import DataDir
from looopbot.errors import LooopbotError
from looopbot.workers import orphans, record
from looopbot.workers.fleet import census, fleet_lock


def housekeeping(dd: DataDir, config: Config, now: float) -> None:
    """Notice lost workers (ending their orphaned groups) and prune aged finished ones."""
    with fleet_lock(dd):
        for worker in census(dd).workers:
            if worker.state == "lost":
                orphans.mark_lost(dd, worker.id, now)
        # A broken worktree or branch must not break the beat: it is tried again next time.
        with contextlib.suppress(LooopbotError, OSError):
            prune(dd, config, now, locked=True)


class Pruned(NamedTuple):
    id: str
    branch: str
    kept_branch: bool  # it holds commits the base branch lacks


def prune(
    dd: DataDir, config: Config, now: float, *, everything: bool = False, locked: bool = False
) -> list[Pruned]:
    """Remove finished workers older than limits.worker_ttl (all finished: `everything`):
    the worktree and the worker's files go; the branch stays only if it holds work."""
    if not locked:
        with fleet_lock(dd):
            return prune(dd, config, now, everything=everything, locked=True)
    from looopbot.workers import worktree

    done = []
    ttl = config.limits.worker_ttl
    for worker in census(dd).workers:
        if worker.live:
            continue
        if worker.state == "lost":
            orphans.mark_lost(dd, worker.id, now)  # its orphans go before its worktree does
        ended = worker.ended_at if worker.ended_at is not None else worker.started_at
        if not everything and now - ended < ttl:
            continue
        worktree.remove(dd, worker.id)
        deleted = worktree.delete_branch_if_empty(dd, worker.branch, worker.base_branch)
        shutil.rmtree(record.paths(dd, worker.id).dir, ignore_errors=True)
        done.append(Pruned(worker.id, worker.branch, not deleted))
    return done
