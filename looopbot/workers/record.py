"""A worker's files and its state record (DESIGN §8).

Everything about worker <id> lives in local scratch under `.looopbot/workers/<id>/`:

    state.json   this record, written atomically by whoever changes it
    brief.md     the worker contract + the prompt (the runner's {prompt_file})
    output.log   everything the worker printed
    inbox/       control messages for the supervisor, one JSON file each (steer text,
                 keys, restart, stop), taken in name order
    flag         a question the worker raised with `looopbot flag` (absent: none)

The worktree is `.looopbot/worktrees/<id>/`, on branch `looopbot/worker/<id>`.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, NamedTuple

from looopbot.datadir import DataDir
from looopbot.fsutil import read_bytes_or_none, write_atomic
from looopbot.workers.identity import Identity, alive

LIVE = ("starting", "running")
STATES = (*LIVE, "exited", "killed", "lost")
BRANCH_PREFIX = "looopbot/worker/"


class Paths(NamedTuple):
    dir: Path
    state: Path
    brief: Path
    log: Path
    inbox: Path
    flag: Path
    worktree: Path


def paths(dd: DataDir, wid: str) -> Paths:
    """Paths for worker `wid`; the caller has validated the id (ids.is_valid_id)."""
    d = dd.meta / "workers" / wid
    return Paths(
        d,
        d / "state.json",
        d / "brief.md",
        d / "output.log",
        d / "inbox",
        d / "flag",
        dd.meta / "worktrees" / wid,
    )


def branch(wid: str) -> str:
    return BRANCH_PREFIX + wid


class Worker(NamedTuple):
    id: str
    state: str  # one of STATES
    command: str
    branch: str
    base: str  # the commit the branch started from
    base_branch: str  # the data repo's branch when the worker started
    started_at: float
    exit_code: int | None = None
    ended_at: float | None = None
    supervisor: Identity | None = None
    process: Identity | None = None  # the worker command's process (its group leader)
    verify: str | None = None
    verdict: str | None = None  # "pass" | "fail" once judged
    restarts: int = 0

    @property
    def live(self) -> bool:
        return self.state in LIVE

    def to_json(self) -> str:
        data: dict[str, Any] = self._asdict()
        for key in ("supervisor", "process"):
            ident = data[key]
            data[key] = None if ident is None else {"pid": ident.pid, "start": ident.start}
        return json.dumps(data, sort_keys=True, indent=1) + "\n"


class Unreadable(Exception):
    """A worker's state file exists but cannot be read: callers fail closed."""


def _ident(value: Any) -> Identity | None:
    if value is None:
        return None
    return Identity(int(value["pid"]), str(value["start"]))


def parse(raw: bytes) -> Worker:
    try:
        data = json.loads(raw)
        data["supervisor"] = _ident(data.get("supervisor"))
        data["process"] = _ident(data.get("process"))
        known = set(Worker._fields)
        worker = Worker(**{k: v for k, v in data.items() if k in known})
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise Unreadable(str(exc)) from None
    if worker.state not in STATES:
        raise Unreadable(f"unknown state {worker.state!r}")
    for key, kinds in _TYPES.items():  # a mistyped field must not crash a beat later
        if not isinstance(getattr(worker, key), kinds):
            raise Unreadable(f"{key} is {getattr(worker, key)!r}")
    return worker


_TYPES: dict[str, tuple[type, ...]] = {
    **dict.fromkeys(("id", "state", "command", "branch", "base", "base_branch"), (str,)),
    "started_at": (int, float),
    "ended_at": (int, float, type(None)),
    "exit_code": (int, type(None)),
    "verify": (str, type(None)),
    "verdict": (str, type(None)),
    "restarts": (int,),
}


def read(dd: DataDir, wid: str) -> Worker | None:
    """The worker's record as written (None when there is none); raises Unreadable."""
    raw = read_bytes_or_none(paths(dd, wid).state)
    if raw is None:
        return None
    worker = parse(raw)
    # Its id and branch build paths and refs (prune removes them): they must be this id's.
    if worker.id != wid or worker.branch != branch(wid):
        raise Unreadable(f"it names worker {worker.id!r} on {worker.branch!r}")
    return worker


def write(dd: DataDir, worker: Worker) -> None:
    write_atomic(paths(dd, worker.id).state, worker.to_json())


def effective(worker: Worker) -> Worker:
    """The record as the world sees it: a live state whose supervisor is gone is `lost`.

    The supervisor's identity (pid + start time) is checked, so a PID the kernel handed to
    another process never keeps a dead worker "running".
    """
    if worker.live and not alive(worker.supervisor):
        return worker._replace(state="lost", ended_at=worker.ended_at or time.time())
    return worker


def ids(dd: DataDir) -> list[str]:
    try:
        names = os.listdir(dd.meta / "workers")
    except FileNotFoundError:
        return []
    return sorted(n for n in names if (dd.meta / "workers" / n / "state.json").exists())


def flag(dd: DataDir, wid: str) -> str | None:
    raw = read_bytes_or_none(paths(dd, wid).flag)
    return None if raw is None else raw.decode("utf-8", errors="replace").strip() or None
