"""Ids from outside (DESIGN §6): one gate, `ids.check_id`, that refuses unsafe shapes and
secrets, and messages that quote bad input redacted BEFORE they shorten it."""

from __future__ import annotations

import pytest

from looopbot import ids
from looopbot.actions import BadDecision, parse_decision
from looopbot.errors import LooopbotError
from looopbot.journal import format_line
from looopbot.text import one_line, quote

SECRET = "hunter2hunter2xyz"
# 60 characters, no repeats of any 8-character window: any piece of it in a message shows.
LONG = "Xk7pQ2mV9rT4wL6nB8cF3hJ5dG1sA0zYe4uR7iO2aS5dF8gH1jK3lZ6xC9vB0"[:60]
ENV = {"MY_API_TOKEN": SECRET, "DEPLOY_PASSWORD": LONG}
GHP = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"


def pieces(secret: str, n: int = 8) -> list[str]:
    """Every n-character window of the secret: a message holding any of them leaks it."""
    return [secret[i : i + n] for i in range(len(secret) - n + 1)]


def assert_hidden(text: str, *secrets: str) -> None:
    for secret in secrets:
        leaked = [p for p in pieces(secret) if p in text]
        assert not leaked, (text, leaked)


@pytest.mark.parametrize(
    "value",
    [
        SECRET,  # a valid id that IS the secret
        f"goal-{SECRET}",  # one that contains it
        f"{SECRET}.v2",
        LONG,  # 60 characters: a valid id too
        f"../{LONG}",  # invalid AND secret: the old 40-character cut showed most of it
        f"{LONG} with spaces",
        f"x/{LONG}/y" * 3,
    ],
)
def test_an_id_holding_a_secret_is_refused_without_naming_it(value: str) -> None:
    with pytest.raises(LooopbotError) as exc:
        ids.check_id(value, "goal id", ENV)
    assert exc.value.message.startswith("goal id ")
    assert "secret" in exc.value.message
    assert_hidden(exc.value.message, SECRET, LONG)


def test_a_token_shape_is_refused_without_any_env() -> None:
    for value in (GHP, f"key-{GHP}", "AKIA" + "IOSFODNN7EXAMPLE"):
        with pytest.raises(LooopbotError, match="contains a secret") as exc:
            ids.check_id(value, "claim name", {})
        assert_hidden(exc.value.message, GHP[4:])


def test_short_or_unrelated_values_are_ordinary_ids() -> None:
    # NO_TOKEN=1 must not make every "1" a secret (redaction's own length rule)
    assert ids.check_id("w1", "worker id", {"NO_TOKEN": "1", "HOME": "/home/x"}) == "w1"
    assert ids.check_id("hunter2", "goal id", ENV) == "hunter2"


def test_an_unsafe_id_is_still_refused_for_its_shape() -> None:
    with pytest.raises(LooopbotError, match="is not a valid id") as exc:
        ids.check_id("../x", "goal id", ENV)
    assert "'../x'" in exc.value.message


def test_describe_bad_id_redacts_before_it_cuts() -> None:
    # The secret straddles the 40-character cut: cut first, and 20 of its characters stay,
    # where a later redaction can no longer recognise them.
    value = "/" + "a" * 20 + LONG
    shown = ids.describe_bad_id(value, ENV)
    assert_hidden(shown, LONG)
    assert "[redacted]" in shown and "is not a valid id" in shown


def test_check_branch_id_refuses_a_secret_before_anything_else() -> None:
    with pytest.raises(LooopbotError) as exc:
        ids.check_branch_id(GHP + ".lock", "worker id")
    assert "contains a secret" in exc.value.message and GHP not in exc.value.message


def test_parse_decision_refuses_a_secret_in_every_id_field(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MY_API_TOKEN", SECRET)
    decisions = [
        {"action": "write_goal", "id": SECRET, "body": "goal: x"},
        {"action": "archive_goal", "id": f"old-{SECRET}"},
        {"action": "write_sensor", "name": SECRET, "script": "echo {}"},
        {"action": "start_worker", "id": SECRET, "prompt": "go"},
        {"action": "send_notification", "message": "hi", "id": SECRET},
    ]
    for d in decisions:
        with pytest.raises(BadDecision, match="contains a secret") as exc:
            parse_decision(d)
        assert SECRET not in exc.value.message


def test_one_line_redacts_before_it_cuts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEPLOY_PASSWORD", LONG)
    text = "x" * 480 + LONG  # the cap at 500 falls inside the secret
    out = one_line(text, 500)
    assert_hidden(out, LONG)
    assert out.endswith("[redacted]") and len(out) <= 500
    line = format_line("deploy:\n" + "y" * 470 + LONG, 0.0)
    assert_hidden(line, LONG)
    # the decider's journal text goes through the same cut
    d = parse_decision({"action": "noop", "reason": "r", "journal": "z" * 490 + LONG})
    assert d.journal is not None
    assert_hidden(d.journal, LONG)


def test_quote_redacts_then_cuts_and_quotes() -> None:
    assert quote("abc", env={}) == "'abc'"
    assert quote("a" * 50, env={}) == repr("a" * 40) + "…"
    assert quote(3) == "3"
    out = quote("ab" + LONG, env=ENV)
    assert out == "'ab[redacted]'"
