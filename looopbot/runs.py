"""Run folders, `.looopbot/runs/<run-id>/`: their ids, and keeping only the newest.

A run folder holds what one decision left (prompt.md, output.log, decision.json). Only the
newest `limits.runs_keep` are kept. "Newest" is the folder's own age, its mtime, not its
name: names made before ids had sub-second time (`20261122T004525Z-<random>`) sort at
random within a second, and a beat killed mid-run leaves a folder that counts like any
other. The name only breaks ties between equal mtimes (a coarse filesystem clock), which
the sub-second ids of `new_run_id` put in order of their start.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable

from looopbot.datadir import DataDir
from looopbot.fsutil import read_bytes_or_none, write_atomic

RUNNER_NOTE = "runner.json"  # local scratch: the runner of the beat in progress


def new_run_id(now: float) -> str:
    """`20261122T004525.123456Z-a1b2c3`: UTC to the microsecond, then 3 random bytes.

    Ids of beats started within one second still sort by their start; the random part keeps
    two processes started in the same microsecond (a beat and a hand-made commit) apart.
    """
    seconds, micros = divmod(int(now * 1_000_000), 1_000_000)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(seconds))
    return f"{stamp}.{micros:06d}Z-{os.urandom(3).hex()}"


def prune(dd: DataDir, keep: int, current: str) -> None:
    """Keep the newest `keep` run folders, the `current` run's always among them (even at
    `keep` 0); remove the older ones. Entries that are not folders are not runs: left be."""
    try:
        entries = list(os.scandir(dd.runs))
    except (FileNotFoundError, NotADirectoryError):
        return
    aged: list[tuple[int, str]] = []
    places = keep
    for entry in entries:
        try:
            if not entry.is_dir(follow_symlinks=False):
                continue
            if entry.name == current:
                # Kept whatever its mtime says (a clock stepped back): it is in use.
                places -= 1
                continue
            aged.append((entry.stat(follow_symlinks=False).st_mtime_ns, entry.name))
        except FileNotFoundError:
            continue  # removed meanwhile
    import shutil  # only when there are runs to prune: not on an unchanged beat

    aged.sort()
    for _, name in aged[: max(0, len(aged) - max(0, places))]:
        # Scratch: a folder that cannot go now is simply tried again after the next run.
        shutil.rmtree(dd.runs / name, ignore_errors=True)


def note_runner(dd: DataDir, run_id: str) -> Callable[[int], None]:
    """What proc calls as the runner starts: its identity, for `end_orphaned_runner`."""

    def note(pid: int) -> None:
        from looopbot.workers.identity import of

        me = of(pid)
        doc = {"pid": pid, "start": me.start if me else None, "run": run_id}
        write_atomic(dd.scratch(RUNNER_NOTE), json.dumps(doc), durable=False)

    return note


def end_orphaned_runner(dd: DataDir) -> str | None:
    """End the process group of a runner whose beat was killed; what was done, or None.

    Its group id is its pid (it runs in its own session); the start time recorded with it
    tells a reused pid from the runner itself."""
    raw = read_bytes_or_none(dd.scratch(RUNNER_NOTE))
    if raw is None:
        return None
    dd.scratch(RUNNER_NOTE).unlink(missing_ok=True)
    from looopbot.workers.identity import Identity, alive

    try:
        doc = json.loads(raw)
        who = Identity(int(doc["pid"]), str(doc["start"]))
        run = str(doc.get("run"))
    except (ValueError, KeyError, TypeError):
        return None
    if not alive(who):
        return None
    from looopbot import proc

    proc.kill_group(who.pid)
    return f"ended the runner of an interrupted beat (run {run}, pid {who.pid})"
