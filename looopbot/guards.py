"""Whether a beat calls the runner: wake reasons and guards (DESIGN §4, §5). Pure functions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from looopbot.config import Limits
from looopbot.ledger import Mangled
from looopbot.state import State
from looopbot.world import signal_digest

HOUR = 3600.0
BACKOFF_BASE_S = 60.0
BACKOFF_CAP_S = 300.0
COST_BLIND_RUNS = 3


class Wake(NamedTuple):
    decide: bool
    reason: (
        str  # "first beat", "world changed", "forced", "follow-up due", "noop aged", "unchanged"
    )


def wake(state: State, world: str, now: float, *, force: bool, noop_ttl: float) -> Wake:
    if force:
        return Wake(True, "forced")
    if state.decided_hash is None:
        return Wake(True, "first beat")
    if state.decided_hash != world:
        return Wake(True, "world changed")
    if state.follow_up_at is not None and now >= state.follow_up_at:
        return Wake(True, "follow-up due")
    if (
        state.decided_action == "noop"
        and state.decided_at is not None
        and now - state.decided_at >= noop_ttl
    ):
        return Wake(True, "noop aged")
    return Wake(False, "unchanged")


def backoff_wait(failures: int) -> float:
    """min(60·2^(n-1), 300) seconds after the n-th consecutive failure."""
    if failures <= 0:
        return 0.0
    return float(min(BACKOFF_BASE_S * 2 ** min(failures - 1, 16), BACKOFF_CAP_S))


class Hold(NamedTuple):
    outcome: str  # backoff | capped | budget | paused (the GitHub dashboard's box)
    message: str


def hold(
    state: State,
    limits: Limits,
    now: float,
    *,
    desired: str,
    spent_today: float | Mangled | None,
    wiring: str,
) -> Hold | None:
    """The guard that holds this beat back, if any.

    `spent_today` is None without a budget, and the Mangled error when the ledger could not
    be read: then today's spend is unknown and the budget fails closed.
    """
    if state.failures > 0 and state.failed_at is not None:
        until = state.failed_at + backoff_wait(state.failures)
        # A human editing PLAYBOOK.md or a goal is new information: retry now.
        if now < until and state.failed_desired == desired:
            return Hold(
                "backoff",
                f"backing off after {state.failures} failed beat(s): next try in "
                f"{int(until - now) + 1}s (last failure: {state.failure})",
            )
    recent = [t for t in state.decides if now - t < HOUR]
    if len(recent) >= limits.max_decides_per_hour:
        return Hold(
            "capped",
            f"{len(recent)} runner calls in the last hour reach limits.max_decides_per_hour "
            f"({limits.max_decides_per_hour})",
        )
    if limits.max_daily_usd is not None:
        if state.cost_unknown >= COST_BLIND_RUNS and state.cost_wiring == wiring:
            return Hold(
                "budget",
                f"the runner's cost could not be read for {state.cost_unknown} runs in a row "
                "while limits.max_daily_usd is set — failing closed until the runner's "
                "tick command or cost: spec changes",
            )
        if isinstance(spent_today, Mangled):
            return Hold(
                "budget",
                "today's spend cannot be known, so limits.max_daily_usd holds every runner "
                f"call: {spent_today.message}",
            )
        if spent_today is not None and spent_today >= limits.max_daily_usd:
            return Hold(
                "budget",
                f"today's spend ${spent_today:.4f} reached limits.max_daily_usd "
                f"(${limits.max_daily_usd:.2f})",
            )
    return None


def update_streaks(
    old: Mapping[str, tuple[str, int]], signals: Mapping[str, Any]
) -> dict[str, tuple[str, int]]:
    """Per snapshot: its signal's digest and how many beats in a row it changed."""
    out: dict[str, tuple[str, int]] = {}
    for name, sig in sorted(signals.items()):
        d = signal_digest(sig)
        prev = old.get(name)
        if prev is None:
            out[name] = (d, 0)
        else:
            out[name] = (d, prev[1] + 1 if prev[0] != d else 0)
    return out


def flapping(streaks: Mapping[str, tuple[str, int]], flap_streak: int) -> list[str]:
    return sorted(n for n, (_d, s) in streaks.items() if flap_streak > 0 and s >= flap_streak)
