"""Wake reasons and guards (DESIGN §4, §5): pure functions over the state."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from looopbot import config, guards
from looopbot.guards import backoff_wait, flapping, hold, update_streaks, wake
from looopbot.ledger import Mangled
from looopbot.state import State

NOW = 1_700_000_000.0
TTL = 21600.0


def limits(**kw: Any) -> config.Limits:
    """Limits as looopbot.yaml would give them (the defaults, plus `kw`)."""
    return config._build({"limits": kw}, {}).limits


LIMITS = limits()
BUDGET = limits(max_daily_usd=1.0)
DESIRED = "desired-hash-1"
WIRING = "wiring-1"


def decided(**kw: Any) -> State:
    """A state whose last decision saw world "w" at NOW - 10."""
    base: dict[str, Any] = {
        "decided_hash": "w",
        "decided_at": NOW - 10,
        "decided_action": "write_goal",
    }
    return State(**{**base, **kw})


def held(state: State, limits: config.Limits = LIMITS, **kw: Any) -> guards.Hold | None:
    args: dict[str, Any] = {"desired": DESIRED, "spent_today": None, "wiring": WIRING}
    args.update(kw)
    now = args.pop("now", NOW)
    return hold(state, limits, now, **args)


# --- wake reasons ----------------------------------------------------------------------------


def test_first_beat_decides() -> None:
    w = wake(State(), "w", NOW, force=False, noop_ttl=TTL)
    assert w == guards.Wake(True, "first beat")


def test_unchanged_world_does_not_decide() -> None:
    assert wake(decided(), "w", NOW, force=False, noop_ttl=TTL) == guards.Wake(False, "unchanged")


def test_changed_world_decides() -> None:
    assert wake(decided(), "w2", NOW, force=False, noop_ttl=TTL) == guards.Wake(
        True, "world changed"
    )


def test_forced_decides_even_when_unchanged() -> None:
    assert wake(decided(), "w", NOW, force=True, noop_ttl=TTL) == guards.Wake(True, "forced")
    assert wake(State(), "w", NOW, force=True, noop_ttl=TTL).reason == "forced"


def test_follow_up_decides_once_due_and_not_before() -> None:
    s = decided(follow_up_at=NOW + 30)
    assert wake(s, "w", NOW, force=False, noop_ttl=TTL) == guards.Wake(False, "unchanged")
    assert wake(s, "w", NOW + 29.9, force=False, noop_ttl=TTL).decide is False
    assert wake(s, "w", NOW + 30, force=False, noop_ttl=TTL) == guards.Wake(True, "follow-up due")
    assert wake(s, "w", NOW + 3000, force=False, noop_ttl=TTL).reason == "follow-up due"


def test_noop_ages_past_noop_ttl() -> None:
    s = decided(decided_action="noop", decided_at=NOW - TTL + 1)
    assert wake(s, "w", NOW, force=False, noop_ttl=TTL).decide is False
    s = decided(decided_action="noop", decided_at=NOW - TTL)
    assert wake(s, "w", NOW, force=False, noop_ttl=TTL) == guards.Wake(True, "noop aged")
    # the ttl is a parameter, not a constant
    s = decided(decided_action="noop", decided_at=NOW - 61)
    assert wake(s, "w", NOW, force=False, noop_ttl=60).reason == "noop aged"


@pytest.mark.parametrize(
    "action", ["write_goal", "run_shell", "send_notification", "archive_goal", None]
)
def test_non_noop_decisions_never_age(action: str | None) -> None:
    s = decided(decided_action=action, decided_at=NOW - 365 * 86400)
    assert wake(s, "w", NOW, force=False, noop_ttl=TTL) == guards.Wake(False, "unchanged")


@given(
    st.floats(min_value=0, max_value=1e7),
    st.sampled_from(["noop", "write_goal", "run_shell"]),
    st.none() | st.floats(min_value=-1e6, max_value=1e6),
)
def test_an_unchanged_world_wakes_only_for_a_reason(
    age: float, action: str, follow_in: float | None
) -> None:
    s = decided(
        decided_action=action,
        decided_at=NOW - age,
        follow_up_at=None if follow_in is None else NOW + follow_in,
    )
    w = wake(s, "w", NOW, force=False, noop_ttl=TTL)
    follow_due = s.follow_up_at is not None and s.follow_up_at <= NOW
    noop_aged = action == "noop" and s.decided_at is not None and NOW - s.decided_at >= TTL
    assert w.decide == (follow_due or noop_aged)


# --- backoff ---------------------------------------------------------------------------------


def test_backoff_wait_values() -> None:
    assert [backoff_wait(n) for n in range(7)] == [0, 60, 120, 240, 300, 300, 300]


@given(st.integers(min_value=1, max_value=10_000))
def test_backoff_wait_is_min_60_2n_300(n: int) -> None:
    assert backoff_wait(n) == min(60 * 2 ** (n - 1), 300)


@given(st.integers(max_value=0))
def test_no_failures_no_wait(n: int) -> None:
    assert backoff_wait(n) == 0


def failed(n: int, at: float = NOW, desired: str = DESIRED) -> State:
    return decided(failures=n, failed_at=at, failure="runner 'x' exited 1", failed_desired=desired)


@given(st.integers(min_value=1, max_value=50), st.floats(min_value=0, max_value=1000))
def test_backoff_holds_within_the_wait_and_passes_after(n: int, since: float) -> None:
    h = held(failed(n, at=NOW - since))
    if since < backoff_wait(n):
        assert h is not None and h.outcome == "backoff"
        assert f"after {n} failed beat" in h.message
        assert "runner 'x' exited 1" in h.message
    else:
        assert h is None


def test_backoff_boundaries() -> None:
    assert held(failed(1, at=NOW - 59.9)) is not None
    assert held(failed(1, at=NOW - 60)) is None
    assert held(failed(3, at=NOW - 239)) is not None
    assert held(failed(3, at=NOW - 240)) is None
    assert held(failed(9, at=NOW - 299)) is not None
    assert held(failed(9, at=NOW - 300)) is None


def test_a_desired_state_change_cuts_the_wait() -> None:
    s = failed(5, at=NOW - 1)
    assert held(s) is not None
    assert held(s, desired="someone-edited-a-goal") is None


def test_no_failures_no_backoff() -> None:
    assert held(decided()) is None
    # a failure count without a time (e.g. a hand-edited state) does not hold forever
    assert held(decided(failures=2, failed_at=None)) is None


# --- decides per hour ------------------------------------------------------------------------


def test_decides_per_hour_cap() -> None:
    capped = limits(max_decides_per_hour=3)
    two = decided(decides=(NOW - 100, NOW - 50))
    assert held(two, capped) is None
    three = decided(decides=(NOW - 3599, NOW - 100, NOW - 50))
    h = held(three, capped)
    assert h is not None and h.outcome == "capped"
    assert "limits.max_decides_per_hour (3)" in h.message
    # the window rolls: a call exactly an hour ago no longer counts
    rolled = decided(decides=(NOW - 3600, NOW - 100, NOW - 50))
    assert held(rolled, capped) is None


@given(
    st.lists(st.floats(min_value=0, max_value=3 * 3600), max_size=12),
    st.integers(min_value=1, max_value=8),
)
def test_decides_per_hour_is_a_rolling_window(ages: list[float], cap: int) -> None:
    s = decided(decides=tuple(NOW - a for a in ages))
    in_window = sum(1 for a in ages if a < 3600)
    h = held(s, limits(max_decides_per_hour=cap))
    assert (h is not None and h.outcome == "capped") == (in_window >= cap)


def test_default_cap_is_120() -> None:
    assert LIMITS.max_decides_per_hour == 120
    assert held(decided(decides=tuple(NOW - i for i in range(119)))) is None
    assert held(decided(decides=tuple(NOW - i for i in range(120)))) is not None


# --- budget ----------------------------------------------------------------------------------


def test_budget_reached_holds() -> None:
    h = held(decided(), BUDGET, spent_today=1.0)
    assert h is not None and h.outcome == "budget"
    assert "max_daily_usd" in h.message
    assert held(decided(), BUDGET, spent_today=0.99) is None
    assert held(decided(), BUDGET, spent_today=0.0) is None


def test_no_budget_no_budget_guard() -> None:
    assert LIMITS.max_daily_usd is None
    assert held(decided(), LIMITS, spent_today=1e9) is None
    assert held(decided(cost_unknown=99, cost_wiring=WIRING), LIMITS) is None


def test_fail_closed_after_three_unreadable_costs_with_the_same_wiring() -> None:
    assert held(decided(cost_unknown=2, cost_wiring=WIRING), BUDGET, spent_today=0.0) is None
    s = decided(cost_unknown=3, cost_wiring=WIRING)
    h = held(s, BUDGET, spent_today=0.0)
    assert h is not None and h.outcome == "budget"
    assert "could not be read for 3 runs" in h.message
    assert held(decided(cost_unknown=7, cost_wiring=WIRING), BUDGET, spent_today=0.0) is not None


def test_fail_closed_is_lifted_when_the_wiring_changes() -> None:
    s = decided(cost_unknown=3, cost_wiring=WIRING)
    assert held(s, BUDGET, spent_today=0.0, wiring="rewired") is None


def test_a_mangled_ledger_fails_the_budget_closed() -> None:
    mangled = Mangled(Path("/data/.looopbot/cost.jsonl"), 7, "not JSON")
    h = held(decided(), BUDGET, spent_today=mangled)
    assert h is not None and h.outcome == "budget"
    assert h.message.startswith("today's spend cannot be known")
    assert h.message.endswith(": " + mangled.message)
    assert ".looopbot/cost.jsonl:7" in h.message and "fix or remove" in h.message
    # without a budget there is nothing to hold (held_by does not even read the ledger)
    assert held(decided(), LIMITS, spent_today=mangled) is None
    # a backoff still comes first: it says what to fix first
    s = decided(failures=1, failed_at=NOW - 1, failed_desired=DESIRED)
    backoff = held(s, BUDGET, spent_today=mangled)
    assert backoff is not None and backoff.outcome == "backoff"


def test_runner_wiring_fingerprint_follows_tick_command_and_cost_spec() -> None:
    def wiring(tick: str, cost: dict[str, str] | None = None) -> str:
        plain = {"runner": "mine", "runners": {"mine": {"tick": tick, "cost": cost}}}
        return config._build(plain, {}).runner.wiring

    r, same, other_tick = wiring("a"), wiring("a"), wiring("b")
    costed = wiring("a", {"pointer": "/total_cost_usd", "type": "result"})
    other_cost = wiring("a", {"pointer": "/total_cost_usd", "type": "result", "mode": "sum"})
    assert r == same
    assert len({r, other_tick, costed, other_cost}) == 4
    # LOOOPBOT_TICK_COMMAND is wiring too
    env = {"LOOOPBOT_TICK_COMMAND": "b"}
    assert config._build({}, env).runner.wiring != config._build({}, {}).runner.wiring


def test_backoff_is_checked_before_the_cap_and_budget() -> None:
    s = decided(
        failures=1,
        failed_at=NOW - 1,
        failed_desired=DESIRED,
        decides=tuple(NOW - i for i in range(200)),
        cost_unknown=5,
        cost_wiring=WIRING,
    )
    h = held(s, BUDGET, spent_today=5.0)
    assert h is not None and h.outcome == "backoff"


# --- flapping --------------------------------------------------------------------------------


def run_streaks(beats: list[dict[str, Any]]) -> dict[str, tuple[str, int]]:
    streaks: dict[str, tuple[str, int]] = {}
    for signals in beats:
        streaks = update_streaks(streaks, signals)
    return streaks


def test_a_new_sensor_starts_with_no_streak() -> None:
    s = update_streaks({}, {"a": 1})
    assert s["a"][1] == 0


def test_five_changes_in_a_row_is_flapping() -> None:
    beats = [{"clock": i} for i in range(5)]  # first reading + 4 changes
    assert flapping(run_streaks(beats), 5) == []
    beats.append({"clock": 99})  # the 5th change in a row
    assert flapping(run_streaks(beats), 5) == ["clock"]


def test_one_steady_beat_resets_the_streak() -> None:
    beats = [{"clock": i} for i in range(8)] + [{"clock": 7}]
    streaks = run_streaks(beats)
    assert streaks["clock"][1] == 0
    assert flapping(streaks, 5) == []


def test_flapping_lists_only_the_flapping_sensors_sorted() -> None:
    beats = [{"z": i, "a": i, "steady": "ok", "slow": i // 3} for i in range(7)]
    assert flapping(run_streaks(beats), 5) == ["a", "z"]


def test_flap_streak_zero_switches_it_off() -> None:
    beats = [{"clock": i} for i in range(20)]
    assert flapping(run_streaks(beats), 0) == []
    assert flapping(run_streaks(beats), 19) == ["clock"]
    assert flapping(run_streaks(beats), 20) == []


def test_a_gone_sensor_leaves_the_streaks() -> None:
    streaks = run_streaks([{"a": i, "b": i} for i in range(7)])
    streaks = update_streaks(streaks, {"a": 99})
    assert set(streaks) == {"a"}
    assert flapping(streaks, 5) == ["a"]


def test_streaks_compare_canonical_signals() -> None:
    streaks = run_streaks([{"a": {"x": 1, "y": 2}}, {"a": {"y": 2, "x": 1}}])
    assert streaks["a"][1] == 0


@given(st.lists(st.integers(min_value=0, max_value=2), min_size=1, max_size=30))
def test_streak_counts_trailing_consecutive_changes(readings: list[int]) -> None:
    streaks = run_streaks([{"s": r} for r in readings])
    expected = 0
    for prev, cur in itertools.pairwise(readings):
        expected = expected + 1 if cur != prev else 0
    assert streaks["s"][1] == expected
    assert (flapping(streaks, 5) == ["s"]) == (expected >= 5)
