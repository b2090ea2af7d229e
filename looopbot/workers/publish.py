"""A worker's branch on the remote (DESIGN §9, push on): its deliverable is pushed when the
worker exits, and again before prune removes its worktree, so work done on one machine (or
a short-lived Actions runner) outlives it. Never forced: a branch that moved on the remote
is reported, not overwritten."""

from __future__ import annotations

from typing import NamedTuple

from looopbot.config import load
from looopbot.datadir import DataDir
from looopbot.errors import LooopbotError
from looopbot.workers.record import Worker


class Pushed(NamedTuple):
    ok: bool
    message: str  # for the worker's log


def push_branch(dd: DataDir, worker: Worker, *, always: bool = False) -> Pushed | None:
    """Push the worker's branch when push is on (or `always`: a pull request needs it on
    the remote) and it holds commits; what happened (None: nothing to do)."""
    from looopbot import remote
    from looopbot.datadir import find_repo_root
    from looopbot.workers.worktree import commits_ahead

    if dd.repo_root is None:  # the supervisor knows only the data dir
        dd = DataDir(dd.root, find_repo_root(dd.root))
    try:
        config = load(dd)
        if not (config.push or always) or commits_ahead(dd, worker.branch, worker.base_branch) == 0:
            return None
        up = remote.upstream(dd, config)
        remote.push_ref(dd, up.remote, f"refs/heads/{worker.branch}")
    except LooopbotError as exc:
        return Pushed(False, f"the branch {worker.branch} was not pushed: {exc.message}")
    return Pushed(True, f"pushed {worker.branch} to {up.remote}")
