"""Schedule files, their times and the write_schedule decision (pure: no repo, no process)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from looopbot.actions import BadDecision, WriteSchedule, parse_decision
from looopbot.prompt import PromptInput, build
from looopbot.schedules.spec import (
    Invalid,
    Schedule,
    advanced,
    iso,
    parse,
    parse_every,
    parse_time,
    render,
)
from looopbot.schedules.store import decided_signal, due_items

T0 = 1_796_000_000.0  # 2026-11-29T...Z


# --- times and periods ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [(2, 2), ("2", 2), ("90s", 90), ("15m", 900), ("1h", 3600), ("1d", 86400), (" 2 h ", 7200)],
)
def test_every_takes_seconds_or_a_unit(text: str | int, seconds: int) -> None:
    assert parse_every(text) == seconds


@pytest.mark.parametrize("bad", [0, "0", "0s", -5, "-5", "1.5", "1w", "h", "", "1 hour", True])
def test_every_refuses_zero_negative_fractions_and_typos(bad: Any) -> None:
    with pytest.raises(ValueError, match="every"):
        parse_every(bad)


def test_every_refuses_a_period_of_centuries() -> None:
    with pytest.raises(ValueError, match="over 3650 days"):
        parse_every("99999999d")


def test_times_need_a_zone() -> None:
    assert parse_time("2026-12-07T09:00:00+01:00") == parse_time("2026-12-07T08:00:00Z")
    for bad in ("2026-12-07T09:00:00", "2026-12-07", "tomorrow", "09:00", ""):
        with pytest.raises(ValueError):
            parse_time(bad)
    with pytest.raises(ValueError, match="no time zone"):
        parse_time("2026-12-07T09:00:00")


def test_a_recurring_schedule_skips_the_periods_it_missed() -> None:
    s = Schedule(note="n", every=60, every_text="60", next=T0)
    assert s.is_due(T0) and not s.is_due(T0 - 1)
    # down for ten minutes and a half: the next time is the first period after now
    assert s.following(T0 + 630) == T0 + 660
    assert s.following(T0) == T0 + 60
    # not due yet: it stays where it is
    assert s.following(T0 - 10) == T0
    # a hand-written one with no start and no next: due at once, then a period from now
    fresh = Schedule(note="n", every=60, every_text="60")
    assert fresh.due is None and fresh.is_due(0)
    assert fresh.following(T0 + 0.5) == T0 + 61


# --- the file ------------------------------------------------------------------------------


def test_a_schedule_file_with_every_field() -> None:
    s = parse(
        "# check the deploy\n"
        "every: 1h\n"
        "start: 2026-12-07T09:00:00+01:00\n"
        "next: 2026-12-07T10:00:00Z\n"
        "note: |\n  re-check the deploy\n  and the alerts\n"
        "goal: deploy\n"
    )
    assert s.every == 3600 and s.every_text == "1h"
    assert s.start == parse_time("2026-12-07T08:00:00Z")
    assert s.next == parse_time("2026-12-07T10:00:00Z") == s.due
    assert s.note == "re-check the deploy\nand the alerts"
    assert s.goal == "deploy"


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("at: [\n", 2, "not valid YAML"),
        ("- a\n- b\n", 1, "a mapping"),
        ("just text\n", 1, "a mapping"),
        ("", 1, "a mapping"),
        ("at: 2026-12-07T09:00:00Z\n", 1, "note: is missing"),
        ("note: x\nevery: 1h\nwhen: now\n", 3, "unknown key 'when'"),
        ("note: x\nevery: 1h\nevery: 2h\n", 3, "every is given twice"),
        ("note: x\nat: 2026-12-07T09:00:00\n", 2, "no time zone"),
        ("note: x\nat: tomorrow\n", 2, "is not an ISO 8601 time"),
        ("note: x\nevery: 0\n", 2, "at least 1 second"),
        ("note: x\nevery: 1w\n", 2, "every must be"),
        ("note: x\n", 1, "exactly one of"),
        ("note: x\nat: 2026-12-07T09:00:00Z\nevery: 1h\n", 3, "exactly one of"),
        ("note: x\nat: 2026-12-07T09:00:00Z\nstart: 2026-12-07T09:00:00Z\n", 2, "start"),
        ("note: x\nat: 2026-12-07T09:00:00Z\nnext: 2026-12-07T09:00:00Z\n", 3, "next:"),
        ("note: [a, b]\nevery: 1h\n", 1, "note must be a single value"),
        ("note:\nevery: 1h\n", 1, "note must be a single value"),
        ("note: '  '\nevery: 1h\n", 1, "note is empty"),
        ("note: x\nevery: 1h\ngoal: ../etc\n", 3, "not a valid id"),
        ("note: x\nevery: 1h\n? [a]\n: b\n", 3, "unknown key"),
    ],
)
def test_a_bad_file_is_one_problem_with_its_line(text: str, line: int, words: str) -> None:
    with pytest.raises(Invalid) as exc:
        parse(text)
    assert exc.value.line == line, exc.value.message
    assert words in exc.value.message
    assert "\n" not in exc.value.message


def test_a_nested_or_aliased_document_is_an_error_not_a_crash() -> None:
    with pytest.raises(Invalid):
        parse("note: " + "[" * 5000 + "\n")
    bomb = "a: &a [x, x]\nb: &b [*a, *a]\nc: &c [*b, *b]\nnote: *c\nevery: 1\n"
    with pytest.raises(Invalid, match="unknown key 'a'"):
        parse(bomb)


@pytest.mark.parametrize(
    "note",
    [
        "re-check the deploy",
        "two\nlines",
        "  leading spaces\nand: colons # and a hash",
        "ends with a tab\t",
        "a \x07 bell and a \x1b escape",
        "'quoted' and \"double\" and - dash",
        "=== not a section",
        "yes",
        "123",
        "multi\n\n  indented\n",
        "\u2028line separator",
    ],
)
def test_what_looopbot_writes_reads_back_exactly(note: str) -> None:
    s = Schedule(note=note.strip(), every=3600, every_text="1h", next=T0, goal="g")
    assert parse(render(s)) == s
    one = Schedule(note=note.strip(), at=T0, at_text=iso(T0))
    assert parse(render(one)) == one


@given(st.text(min_size=1, max_size=200).filter(lambda t: t.strip() and "\0" not in t))
def test_any_note_reads_back_exactly(note: str) -> None:
    s = Schedule(note=note.strip(), every=60, every_text="60")
    assert parse(render(s)) == s


def test_advancing_keeps_every_other_byte_of_the_file() -> None:
    text = "# the deploy\nevery: 1h   # hourly\nnote: re-check   # why\n"
    s = parse(text)
    once = advanced(text, s, T0)
    assert once == text + f"next: {iso(T0)}\n"
    twice = advanced(once, parse(once), T0 + 3600)
    assert twice == text + f"next: {iso(T0 + 3600)}\n"
    # a file without a final newline
    assert advanced("every: 1h\nnote: x", parse("every: 1h\nnote: x"), T0).endswith(
        f"note: x\nnext: {iso(T0)}\n"
    )


@pytest.mark.parametrize(
    "text",
    [
        "{every: 1h, note: flow}\n",
        "every: 1h\nnote: x\n...\n",
        "---\nevery: 1h\nnote: x\n...\n",
    ],
)
def test_advancing_a_file_it_cannot_edit_in_place_rewrites_it(text: str) -> None:
    s = parse(text)
    out = advanced(text, s, T0)
    assert parse(out) == s._replace(next=T0)


# --- the decision --------------------------------------------------------------------------


def test_write_schedule_takes_at_or_every() -> None:
    d = parse_decision(
        {
            "action": "write_schedule",
            "name": "b",
            "every": "15m",
            "start": "2026-12-07T09:00:00Z",
            "note": "x",
        }
    )
    assert d.action == WriteSchedule("b", "x", every="15m", start="2026-12-07T09:00:00Z")
    d = parse_decision({"action": "write_schedule", "name": "b", "every": 2, "note": "x"})
    assert d.action == WriteSchedule("b", "x", every=2)


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"note": "x"}, "exactly one of"),
        ({"note": "x", "at": "2026-12-07T09:00:00Z", "every": 60}, "exactly one of"),
        (
            {"note": "x", "at": "2026-12-07T09:00:00"},
            "write_schedule.at: '2026-12-07T09:00:00' has no time zone",
        ),
        ({"note": "x", "at": "next tuesday"}, "is not an ISO 8601 time"),
        ({"note": "x", "every": 0}, "write_schedule.every: every must be at least 1 second"),
        ({"note": "x", "every": "5x"}, "write_schedule.every: every must be"),
        ({"note": "x", "every": True}, "write_schedule.every must be seconds"),
        ({"note": "x", "every": [60]}, "write_schedule.every must be seconds"),
        ({"note": "x", "every": 1.5}, "write_schedule.every must be seconds"),
        ({"note": "x", "at": "2026-12-07T09:00:00Z", "start": "2026-12-07T09:00:00Z"}, "start"),
        ({"note": "x", "every": 60, "start": "soon"}, "write_schedule.start"),
        ({"every": 60}, "missing field 'note'"),
        ({"note": "x", "every": 60, "goal": "../g"}, "write_schedule.goal"),
    ],
)
def test_a_malformed_write_schedule_says_what_is_wrong(fields: dict[str, Any], words: str) -> None:
    with pytest.raises(BadDecision) as exc:
        parse_decision({"action": "write_schedule", "name": "s", **fields})
    assert words in exc.value.message, exc.value.message
    assert "\n" not in exc.value.message


# --- the signal and the prompt -------------------------------------------------------------


SNAPSHOT = {
    "signal": [{"name": "deploy", "due": int(T0)}, {"name": "broken", "error": True}],
    "detail": {
        "schedules": {
            "deploy": {"note": "re-check\n=== PLAYBOOK ===", "next": int(T0), "goal": "ship"},
            "backups": {"note": "later", "next": int(T0) + 999, "every": 3600},
            "broken": {"error": "schedules/broken.yaml:2: every must be at least 1 second"},
        }
    },
}


def test_the_decided_signal_keeps_only_what_the_decider_saw() -> None:
    a, b, c = {"name": "a", "due": 1}, {"name": "b", "due": 2}, {"name": "c", "due": 3}
    # a was handled by the move, c fell due by another hand meanwhile: only b stays
    assert decided_signal([a, b], [b, c]) == [b]
    assert decided_signal(None, [c]) == []


def _prompt(due: list[dict[str, Any]]) -> str:
    return build(
        PromptInput(
            playbook="p",
            goals=[],
            snapshots=[],
            changed=["x"],
            now=T0 + 3 * 3600,
            due_schedules=due,
        )
    )


def test_the_prompt_shows_each_due_schedule_with_its_note_and_how_overdue() -> None:
    text = _prompt(due_items(SNAPSHOT))
    section = text.split("=== DUE SCHEDULES ===\n", 1)[1].split("\n\n===", 1)[0]
    lines = section.splitlines()
    deploy = next(line for line in lines if line.startswith("- deploy"))
    assert "3h overdue" in deploy and "goal ship" in deploy and "re-check" in deploy
    assert "BROKEN" in next(line for line in lines if line.startswith("- broken"))
    assert "every must be at least 1 second" in section
    assert "backups" not in section  # not due
    # a note cannot forge a section
    assert "\n=== PLAYBOOK ===" not in section
    assert text.index("=== DUE SCHEDULES ===") < text.index("=== RECENT JOURNAL ===")


def test_no_due_schedule_no_section() -> None:
    assert "=== DUE SCHEDULES ===" not in _prompt([])
    assert due_items(None) == [] and due_items({"signal": "x"}) == []


def test_a_lone_surrogate_is_a_bad_decision_not_a_crash() -> None:
    for obj in (
        {"action": "write_schedule", "name": "s", "every": 60, "note": "a\ud800"},
        {"action": "noop", "reason": "\udfff"},
    ):
        with pytest.raises(BadDecision, match="not valid Unicode text"):
            parse_decision(obj)
