"""SENSE: run the user's sensors in parallel and build the system snapshots (DESIGN §3).

A misbehaving sensor never breaks the beat: its snapshot becomes an error object whose
`signal` is stable (exit code, "too-large", "invalid-json"), so a steady break wakes the loop
once, not every beat; the varying part (stderr, bytes) goes to `detail`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal as _signal
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from looopbot import proc
from looopbot.config import Limits
from looopbot.datadir import DataDir
from looopbot.fsutil import read_bytes_or_none, write_atomic
from looopbot.ids import is_valid_id
from looopbot.redact import MARGIN, head, redact_value, redactor, tail

_INTERVAL_RE = re.compile(rb"#\s*looopbot:interval=(\d+(?:\.\d+)?)")
TAIL = 1024
SENSED = "sensed.json"  # local scratch: when each sensor last ran, and which script


class Sensor(NamedTuple):
    name: str  # the snapshot name: "sensor-<script name>"
    path: Path
    script: bytes

    @property
    def sha(self) -> str:
        return hashlib.sha256(self.script).hexdigest()[:16]

    @property
    def interval(self) -> float | None:
        for line in self.script.splitlines()[:20]:
            m = _INTERVAL_RE.search(line)
            if m:
                return float(m.group(1))
        return None

    def argv(self) -> list[str]:
        # An executable script runs directly (its shebang counts); one without the run bit
        # (as a pull request often adds one) or without a shebang runs with bash.
        if os.access(self.path, os.X_OK) and self.script.startswith(b"#!"):
            return [str(self.path)]
        return ["bash", str(self.path)]


def discover(dd: DataDir) -> list[Sensor]:
    found = []
    try:
        entries = sorted(os.scandir(dd.sensors), key=lambda e: e.name)
    except FileNotFoundError:
        return []
    for entry in entries:
        stem = entry.name[:-3]
        if entry.name.endswith(".sh") and is_valid_id(stem) and entry.is_file():
            found.append(Sensor(f"sensor-{stem}", Path(entry.path), Path(entry.path).read_bytes()))
    return found


def error_snapshot(
    result: proc.Result, limits: Limits, scrub: Callable[[str], str] = str
) -> dict[str, Any] | None:
    """The stable error object for a failed run, or None when the run succeeded."""
    if result.too_large:
        return {
            "signal": {"error": "too-large", "cap": limits.sensor_max_bytes},
            "detail": {"bytes": result.stdout_bytes},
        }
    stderr = tail(result.stderr, TAIL, scrub)
    if result.spawn_error is not None:
        return {
            "signal": {"error": True, "exit_code": 126},
            "detail": {"message": f"could not start: {result.spawn_error}", "stderr": ""},
        }
    if result.timed_out:
        return {
            "signal": {"error": True, "exit_code": 124},
            "detail": {
                "message": f"timed out after {limits.sensor_timeout:g}s (limits.sensor_timeout)",
                "stderr": stderr,
            },
        }
    code = result.exit_code or 0
    if code != 0:
        if code < 0:  # killed by a signal: report it the way a shell would
            name = _signal.Signals(-code).name if -code in _signal.valid_signals() else "signal"
            message, code = f"killed by {name}", 128 - code
        else:
            message = f"exited with code {code}"
        return {
            "signal": {"error": True, "exit_code": code},
            "detail": {"message": message, "stderr": stderr},
        }
    return None


def parse_output(result: proc.Result, limits: Limits, scrub: Callable[[str], str] = str) -> Any:
    failed = error_snapshot(result, limits, scrub)
    if failed is not None:
        return failed
    try:
        return json.loads(result.stdout.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return {
            "signal": {"error": "invalid-json"},
            "detail": {"stdout": head(result.stdout, TAIL, scrub)},
        }


def run_sensors(
    dd: DataDir, sensors: list[Sensor], limits: Limits, now: float, *, honour_interval: bool = True
) -> dict[str, Any]:
    """Run (or, within their interval, reuse) the sensors; snapshot name -> value."""
    sensed = _load_sensed(dd)
    values: dict[str, Any] = {}
    due: list[Sensor] = []
    for s in sensors:
        prev = sensed.get(s.name)
        interval = s.interval
        fresh = (
            honour_interval
            and interval
            and prev
            and prev.get("sha") == s.sha
            and now - float(prev.get("at", 0)) < interval
        )
        if fresh:
            old = read_bytes_or_none(dd.snapshots / f"{s.name}.json")
            if old is not None:
                try:
                    values[s.name] = json.loads(old)
                    continue
                except ValueError:
                    pass
        due.append(s)
    env = proc.child_env({"LOOOPBOT_DATA_DIR": str(dd.root)})
    specs = [
        proc.Spec(
            argv=s.argv(),
            cwd=dd.root,
            env=env,
            timeout=limits.sensor_timeout,
            stdout_limit=limits.sensor_max_bytes,
            stderr_tail=TAIL + MARGIN,  # redacted before it is cut to TAIL
        )
        for s in due
    ]
    scrub = redactor()
    for s, result in zip(due, proc.run_many(specs, limits.sensor_concurrency), strict=True):
        values[s.name] = redact_value(parse_output(result, limits, scrub), scrub)
        sensed[s.name] = {"at": now, "sha": s.sha}
    # Only sensors with an interval need to remember when they last ran.
    if honour_interval and any(s.interval for s in due):
        paced = {s.name for s in sensors if s.interval}
        kept = {k: v for k, v in sensed.items() if k in paced}
        write_atomic(dd.scratch(SENSED), json.dumps(kept), durable=False)
    return values


def _load_sensed(dd: DataDir) -> dict[str, dict[str, Any]]:
    raw = read_bytes_or_none(dd.scratch(SENSED))
    if raw is None:
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def goals_snapshot(goal_acted: Mapping[str, float], goal_ids: list[str]) -> dict[str, Any]:
    """sys-goals: signal {} (never wakes), detail = when the loop last acted on each goal.

    Absolute times only, so an idle loop writes identical bytes and commits nothing.
    """
    return {
        "signal": {},
        "detail": {"last_acted": {g: goal_acted.get(g) for g in sorted(goal_ids)}},
    }


def system_snapshots(
    dd: DataDir,
    goal_acted: Mapping[str, float],
    goal_ids: list[str],
    *,
    now: float,
    stuck_after: float,
) -> dict[str, Any]:
    """sys-goals, sys-workers, sys-claims, sys-schedules: computed in-process, never failing.
    `stuck_after` is limits.worker_stuck_after, for the workers' health."""
    from looopbot.schedules import store as schedules
    from looopbot.workers import system

    return {
        "sys-goals": goals_snapshot(goal_acted, goal_ids),
        **system.snapshots(dd, stuck_after=stuck_after),
        schedules.NAME: schedules.snapshot(dd, now),
    }


def snapshot_bytes(value: Any) -> bytes:
    """How a snapshot is stored: pretty, sorted JSON, so `git diff` reads well."""
    return (json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def snapshot_names(dd: DataDir) -> list[str]:
    """The names of the snapshot files on disk."""
    try:
        names = os.listdir(dd.snapshots)
    except FileNotFoundError:
        return []
    return sorted(n[:-5] for n in names if n.endswith(".json") and not n.startswith("."))
