"""`.looopbot/state.json`: the machine state that must survive a fresh clone (DESIGN §5).

It holds absolute times only (never ages or "last seen" stamps) and is serialized
deterministically, so a beat that changed nothing writes identical bytes and makes no commit.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, NamedTuple

from looopbot.fsutil import read_bytes_or_none

VERSION = 1


class State(NamedTuple):
    # The last successful decision: its world, time, action and what it saw.
    decided_hash: str | None = None
    decided_at: float | None = None
    decided_action: str | None = None
    decided_files: dict[str, str] | None = None  # desired-state path -> digest
    decided_signals: dict[str, Any] | None = None  # snapshot name -> wake signal
    follow_up_at: float | None = None
    # Consecutive failed beats; only a successful decision clears them.
    failures: int = 0
    failed_at: float | None = None
    failure: str | None = None
    failed_desired: str | None = None  # desired-state hash when the last failure happened
    decides: tuple[float, ...] = ()  # runner calls in the last hour
    cost_unknown: int = 0  # runs in a row whose cost could not be read
    cost_wiring: str | None = None
    # Defaults are never mutated: every change builds a new State with _replace().
    streaks: dict[str, tuple[str, int]] = {}  # noqa: RUF012  # flapping
    goal_acted: dict[str, float] = {}  # noqa: RUF012
    last_shell: dict[str, Any] | None = None  # shown once in the next prompt

    def to_json(self) -> str:
        data = self._asdict()
        data["decides"] = list(self.decides)
        data["streaks"] = {k: list(v) for k, v in self.streaks.items()}
        return json.dumps({"version": VERSION, **data}, sort_keys=True, indent=1) + "\n"


class StateUnreadable(Exception):
    pass


def parse(raw: bytes) -> State:
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise StateUnreadable(f"not JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("version") != VERSION:
        raise StateUnreadable("not a looopbot state (version 1) object")
    data.pop("version")
    known = set(State._fields)
    data = {k: v for k, v in data.items() if k in known}
    try:
        data["decides"] = tuple(float(t) for t in data.get("decides", ()))
        data["streaks"] = {k: (str(v[0]), int(v[1])) for k, v in data.get("streaks", {}).items()}
        state = State(**data)
    except (TypeError, ValueError, IndexError, AttributeError) as exc:
        raise StateUnreadable(f"bad field: {exc}") from None
    _check_types(state)
    return state


def _check_types(state: State) -> None:
    if not isinstance(state.failures, int) or not isinstance(state.goal_acted, dict):
        raise StateUnreadable("bad field types")
    for name in ("decided_at", "follow_up_at", "failed_at"):
        value = getattr(state, name)
        if value is not None and not isinstance(value, int | float):
            raise StateUnreadable(f"{name} is not a time")


def load(path: Path) -> tuple[State, str | None]:
    """The state, and a message when an unreadable file had to be moved aside.

    An unreadable state must not stop the loop forever: it is kept (renamed beside, for a
    human to inspect) and the loop carries on from a fresh state.
    """
    raw = read_bytes_or_none(path)
    if raw is None:
        return State(), None
    try:
        return parse(raw), None
    except StateUnreadable as exc:
        aside = path.with_name(f"state.json.unreadable-{int(time.time())}")
        path.replace(aside)
        return State(), f"state file was unreadable ({exc}); moved to {aside.name}, starting fresh"
