"""Decision validation (DESIGN §6): every action, every refusal. `parse_decision` is pure."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from looopbot import actions as a
from looopbot.actions import ACTION_NAMES, BadDecision, parse_decision
from looopbot.errors import LooopbotError

VALID: dict[str, tuple[dict[str, Any], Any]] = {
    "noop": ({"reason": "waiting"}, a.Noop("waiting")),
    "run_shell": ({"cmd": "make test", "reason": "check"}, a.RunShell("make test", "check")),
    "write_goal": (
        {"id": "ship-v2", "body": "goal: ship\n"},
        a.WriteGoal("ship-v2", "goal: ship\n"),
    ),
    "archive_goal": ({"id": "old.goal_1"}, a.ArchiveGoal("old.goal_1")),
    "write_sensor": ({"name": "ci", "script": "echo {}"}, a.WriteSensor("ci", "echo {}")),
    "write_playbook": ({"body": "# Playbook\n"}, a.WritePlaybook("# Playbook\n")),
    "start_worker": (
        {"id": "w1", "prompt": "fix the bug", "verify": "make test", "runner": "codex"},
        a.StartWorker("w1", "fix the bug", "make test", "codex"),
    ),
    "steer_session": ({"id": "w1", "input": "yes"}, a.SteerSession("w1", "yes")),
    "send_key": ({"id": "w1", "keys": ["C-c", "Enter"]}, a.SendKey("w1", ("C-c", "Enter"))),
    "restart_session": ({"id": "w1"}, a.RestartSession("w1")),
    "kill_worker": (
        {"id": "w1", "reason": "silent for an hour"},
        a.KillWorker("w1", "silent for an hour"),
    ),
    "send_notification": (
        {"message": "please review", "id": "ship-v2"},
        a.SendNotification("please review", "ship-v2"),
    ),
    "write_schedule": (
        {
            "name": "deploy-check",
            "at": "2026-12-07T09:00:00+01:00",
            "note": "re-check",
            "goal": "g",
        },
        a.WriteSchedule("deploy-check", "re-check", at="2026-12-07T09:00:00+01:00", goal="g"),
    ),
    "delete_schedule": ({"name": "deploy-check"}, a.DeleteSchedule("deploy-check")),
}
# (action, field) for every field that holds an id or a name
ID_FIELDS = [
    ("write_goal", "id"),
    ("archive_goal", "id"),
    ("write_sensor", "name"),
    ("start_worker", "id"),
    ("steer_session", "id"),
    ("send_key", "id"),
    ("restart_session", "id"),
    ("kill_worker", "id"),
    ("send_notification", "id"),
    ("start_worker", "runner"),
    ("write_schedule", "name"),
    ("write_schedule", "goal"),
    ("delete_schedule", "name"),
]
BODY_FIELDS = [
    ("write_goal", "body"),
    ("write_sensor", "script"),
    ("write_playbook", "body"),
    ("start_worker", "prompt"),
]
TEXT_FIELDS = [
    ("noop", "reason"),
    ("run_shell", "cmd"),
    ("run_shell", "reason"),
    ("steer_session", "input"),
    ("send_notification", "message"),
    ("start_worker", "verify"),
    ("kill_worker", "reason"),
    ("write_schedule", "note"),
]
UNSAFE_IDS = [
    "../x",
    "..",
    "/abs",
    ".hidden",
    "a/b",
    "a\\b",
    "a b",
    " a",
    "a\x00b",
    "a\nb",
    "a\n",
    "a\tb",
    "a\x1bb",
    "a\x7f",
    "x" * 65,
    "x" * 200,
    "",
    "-lead",
    "_lead",
    "a..b",
    "é",
    "a:b",
    "a*",
]


def decision(action: str, **override: Any) -> dict[str, Any]:
    fields, _ = VALID[action]
    obj = {"action": action, **fields, **override}
    return {k: v for k, v in obj.items() if v is not _DROP}


_DROP = object()


def refused(obj: Any, allowed: frozenset[str] | None = None) -> str:
    with pytest.raises(BadDecision) as exc:
        parse_decision(obj, allowed)
    assert isinstance(exc.value, LooopbotError)
    return exc.value.message


# --- valid decisions ---------------------------------------------------------------------------


def test_the_examples_cover_every_action() -> None:
    assert set(VALID) == set(ACTION_NAMES)


@pytest.mark.parametrize("action", ACTION_NAMES)
def test_valid_decision_for_every_action(action: str) -> None:
    d = parse_decision(decision(action))
    assert d.name == action
    assert d.action == VALID[action][1]
    assert d.journal is None and d.next_interval_s is None


@pytest.mark.parametrize("action", ACTION_NAMES)
def test_valid_decisions_survive_a_json_round_trip(action: str) -> None:
    assert parse_decision(json.loads(json.dumps(decision(action)))).action == VALID[action][1]


def test_optional_fields_may_be_absent_or_null() -> None:
    assert parse_decision(
        decision("start_worker", verify=_DROP, runner=None)
    ).action == a.StartWorker("w1", "fix the bug", None, None)
    assert parse_decision(decision("send_notification", id=None)).action == a.SendNotification(
        "please review", None
    )


def test_unknown_extra_keys_are_ignored() -> None:
    d = parse_decision(decision("noop", confidence=0.9, thoughts=["a"], extra={"x": 1}))
    assert d.action == a.Noop("waiting")


def test_ids_at_the_limits_are_valid() -> None:
    for good in ["a", "A", "0", "x" * 64, "a.b", "a_b-c.d", "v1.2.3", "Z9"]:
        assert parse_decision(decision("write_goal", id=good)).action.id == good  # type: ignore[union-attr]


# --- malformed decisions -----------------------------------------------------------------------


@pytest.mark.parametrize("obj", [[], ["noop"], "noop", 3, None, True, 1.5])
def test_a_non_object_decision_is_refused(obj: Any) -> None:
    msg = refused(obj)
    assert "must be a JSON object" in msg


def test_missing_action_names_the_valid_actions() -> None:
    for obj in ({}, {"reason": "x"}, {"action": None}, {"action": 3}, {"action": ["noop"]}):
        msg = refused(obj)
        assert '"action"' in msg
        assert all(name in msg for name in ACTION_NAMES)


def test_unknown_action_names_it_and_the_valid_ones() -> None:
    msg = refused({"action": "delete_everything", "reason": "x"})
    assert "'delete_everything'" in msg
    assert all(name in msg for name in ACTION_NAMES)
    # case matters
    assert "'Noop'" in refused({"action": "Noop", "reason": "x"})


REQUIRED = [
    (action, f)
    for action, (fields, _) in VALID.items()
    for f in fields
    if (action, f)
    not in {
        ("start_worker", "verify"),
        ("start_worker", "runner"),
        ("send_notification", "id"),
        ("write_schedule", "at"),  # at or every: test_schedules checks the pair
        ("write_schedule", "goal"),
    }
]


@pytest.mark.parametrize(("action", "field"), REQUIRED)
def test_a_missing_field_is_named_with_the_usage(action: str, field: str) -> None:
    for missing in (_DROP, None):
        msg = refused(decision(action, **{field: missing}))
        assert f"missing field '{field}'" in msg
        assert msg.startswith(action)
        assert "fields: " in msg
        for other in VALID[action][0]:
            assert other in msg


@pytest.mark.parametrize(
    ("action", "field"), [(ac, f) for ac, (fields, _) in VALID.items() for f in fields]
)
@pytest.mark.parametrize("bad", [3, 1.5, True, ["x"], {"x": 1}])
def test_a_wrongly_typed_field_is_named(action: str, field: str, bad: Any) -> None:
    if field == "keys" and isinstance(bad, list):
        bad = [3]
    msg = refused(decision(action, **{field: bad}))
    assert f"{action}.{field}" in msg
    if field != "keys":
        assert "must be a string" in msg


def test_journal_must_be_a_string() -> None:
    assert '"journal" must be a string' in refused(decision("noop", journal=["a"]))
    assert '"journal" must be a string' in refused(decision("noop", journal=5))


# --- unsafe ids --------------------------------------------------------------------------------


@pytest.mark.parametrize(("action", "field"), ID_FIELDS)
@pytest.mark.parametrize("bad", UNSAFE_IDS, ids=repr)
def test_unsafe_ids_are_refused_for_every_id_bearing_action(
    action: str, field: str, bad: str
) -> None:
    msg = refused(decision(action, **{field: bad}))
    assert f"{action}.{field}" in msg
    assert "is not a valid id" in msg
    assert "1-64 characters" in msg
    # the message stays one readable line even for a hostile id
    assert "\n" not in msg and "\x00" not in msg and len(msg) < 400


@given(st.text(max_size=80))
def test_any_accepted_id_is_a_safe_file_name(text: str) -> None:
    try:
        d = parse_decision({"action": "write_goal", "id": text, "body": "goal: x"})
    except BadDecision:
        return
    gid = d.action.id  # type: ignore[union-attr]
    assert 1 <= len(gid) <= 64
    assert "/" not in gid and "\\" not in gid and ".." not in gid
    assert not gid.startswith((".", "-"))
    assert gid.isascii() and gid.isprintable() and " " not in gid


# --- bodies and messages -----------------------------------------------------------------------


@pytest.mark.parametrize(("action", "field"), BODY_FIELDS)
@pytest.mark.parametrize("empty", ["", " ", "\n\n\t", "-", "---", " --- \n", "-----\n---\n"])
def test_empty_or_dash_only_bodies_are_refused(action: str, field: str, empty: str) -> None:
    msg = refused(decision(action, **{field: empty}))
    assert f"{action}.{field}" in msg
    assert "empty" in msg


@pytest.mark.parametrize(("action", "field"), BODY_FIELDS)
def test_bodies_over_64_kib_are_refused(action: str, field: str) -> None:
    at_cap = "x" * (64 * 1024)
    assert parse_decision(decision(action, **{field: at_cap}))
    msg = refused(decision(action, **{field: at_cap + "x"}))
    assert f"{action}.{field}" in msg and "65537 bytes" in msg and "65536" in msg
    # the cap counts bytes, not characters
    assert "65538 bytes" in refused(decision(action, **{field: "é" * (32 * 1024 + 1)}))


@pytest.mark.parametrize(("action", "field"), BODY_FIELDS)
def test_bodies_with_nul_are_refused(action: str, field: str) -> None:
    assert "NUL" in refused(decision(action, **{field: "goal: a\x00b"}))


def test_a_body_with_dashes_and_text_is_fine() -> None:
    body = "---\ntitle: x\n---\ngoal: a real goal\n"
    assert parse_decision(decision("write_goal", body=body)).action.body == body  # type: ignore[union-attr]


@pytest.mark.parametrize(("action", "field"), TEXT_FIELDS)
def test_messages_over_4_kib_are_refused(action: str, field: str) -> None:
    assert parse_decision(decision(action, **{field: "m" * 4096}))
    msg = refused(decision(action, **{field: "m" * 4097}))
    assert f"{action}.{field}" in msg and "4096" in msg
    assert "4096" in refused(decision(action, **{field: "é" * 2049}))


@pytest.mark.parametrize(("action", "field"), TEXT_FIELDS)
def test_empty_messages_are_refused(action: str, field: str) -> None:
    for empty in ("", "   ", "\n"):
        assert "empty" in refused(decision(action, **{field: empty}))


# --- journal and follow-up ---------------------------------------------------------------------


def test_journal_is_collapsed_to_one_line() -> None:
    d = parse_decision(decision("noop", journal="line one\n\n  line\ttwo\r\nthree  "))
    assert d.journal == "line one line two three"


def test_journal_is_capped_at_500() -> None:
    d = parse_decision(decision("noop", journal="word " * 300))
    assert d.journal is not None
    assert len(d.journal) == 500 and d.journal.endswith("…")


@given(st.text(max_size=1200))
def test_any_journal_becomes_one_line_of_at_most_500(text: str) -> None:
    d = parse_decision(decision("noop", journal=text))
    if d.journal is not None:
        assert len(d.journal) <= 500
        assert len(d.journal.splitlines()) <= 1
        assert d.journal == d.journal.strip()


@pytest.mark.parametrize(
    ("given_s", "expected"),
    [
        (1, 5.0),
        (0, 5.0),
        (-30, 5.0),
        (4.5, 5.0),
        (5, 5.0),
        (30, 30.0),
        (299.5, 299.5),
        (300, 300.0),
        (301, 300.0),
        (86400, 300.0),
        (1e300, 300.0),
    ],
)
def test_next_interval_is_clamped_5_to_300(given_s: float, expected: float) -> None:
    assert parse_decision(decision("noop", next_interval_s=given_s)).next_interval_s == expected


@pytest.mark.parametrize("bad", ["30", True, False, [30], {"s": 30}])
def test_next_interval_must_be_a_number(bad: Any) -> None:
    assert '"next_interval_s" must be a number' in refused(decision("noop", next_interval_s=bad))


@given(
    st.floats(allow_nan=True, allow_infinity=True)
    | st.integers()
    | st.integers().map(lambda i: i * 10**400)
)
def test_any_numeric_follow_up_is_clamped_or_refused(value: float) -> None:
    """JSON from a runner may hold NaN or Infinity (Python's json accepts them)."""
    try:
        d = parse_decision(decision("noop", next_interval_s=value))
    except BadDecision:
        assert isinstance(value, float) and math.isnan(value)
        return
    assert d.next_interval_s is not None
    assert 5.0 <= d.next_interval_s <= 300.0


def test_huge_integer_follow_up_from_json_is_clamped() -> None:
    obj = json.loads('{"action": "noop", "reason": "r", "next_interval_s": 1' + "0" * 400 + "}")
    assert parse_decision(obj).next_interval_s == 300.0
    obj["next_interval_s"] = -(10**400)
    assert parse_decision(obj).next_interval_s == 5.0


def test_nan_follow_up_from_json_is_refused() -> None:
    obj = json.loads('{"action": "noop", "reason": "r", "next_interval_s": NaN}')
    assert "next_interval_s" in refused(obj)


# --- allowed_actions ---------------------------------------------------------------------------


def test_a_switched_off_action_is_refused_naming_the_allowed_ones() -> None:
    allowed = frozenset({"noop", "write_goal"})
    msg = refused(decision("run_shell"), allowed)
    assert "'run_shell'" in msg and "limits.allowed_actions" in msg
    assert "allowed: noop, write_goal" in msg
    assert parse_decision(decision("noop"), allowed).name == "noop"


def test_allowed_actions_is_checked_before_the_fields() -> None:
    msg = refused({"action": "run_shell"}, frozenset({"noop"}))
    assert "limits.allowed_actions" in msg


def test_an_unknown_action_is_unknown_even_when_nothing_is_allowed() -> None:
    assert "unknown action" in refused({"action": "nope"}, frozenset())


# --- send_key ----------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["Enter", "Tab", "Escape", "Up", "Down", "C-c", "C-d"])
def test_every_named_key(key: str) -> None:
    assert parse_decision(decision("send_key", keys=[key])).action == a.SendKey("w1", (key,))


def test_keys_as_a_space_separated_string() -> None:
    d = parse_decision(decision("send_key", keys="Escape Up Enter"))
    assert d.action == a.SendKey("w1", ("Escape", "Up", "Enter"))


@pytest.mark.parametrize(
    "bad", [["F1"], ["enter"], ["Enter", "C-z"], "Ctrl-C", ["rm -rf /"], [], "", "  "]
)
def test_unknown_or_no_keys_are_refused_listing_the_valid_ones(bad: Any) -> None:
    msg = refused(decision("send_key", keys=bad))
    assert "send_key.keys" in msg
    for key in ("Enter", "Tab", "Escape", "Up", "Down", "C-c", "C-d"):
        assert key in msg


def test_catalogue_lists_each_action_with_required_and_optional_fields() -> None:
    lines = a.catalogue()
    assert [line.split(":")[0] for line in lines] == list(ACTION_NAMES)
    assert 'start_worker: "id", "prompt", "verify"?, "runner"?' in lines
    assert 'kill_worker: "id", "reason"' in lines
    assert 'noop: "reason"' in lines
