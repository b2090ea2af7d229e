"""Decisions, errors and costs read from what the real runner CLIs print (recorded)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from looopbot.config import CostSpec
from looopbot.extract import find_decision, read_cost, runner_errors
from looopbot.presets import PRESETS, RETRY_MATCH

FIX = Path(__file__).parent / "fixtures" / "runners"
NOOP_HI = {"action": "noop", "reason": "hi"}


def read(name: str) -> str:
    return (FIX / name).read_text()


def preset_cost(runner: str) -> CostSpec | None:
    spec = PRESETS[runner]["cost"]
    return CostSpec(spec["pointer"], spec["mode"], spec.get("type")) if spec else None


@pytest.mark.parametrize(
    "name",
    [
        "claude-json-ok.stdout",
        "claude-stream-ok.stdout",
        "codex-json-ok.stdout",
        "gemini-json-ok.stdout",
        "pi-json-ok.stdout",
        "opencode-json-ok.stdout",
    ],
)
def test_a_decision_is_found_in_every_real_runners_success_output(name: str) -> None:
    out = read(name)
    assert find_decision(out) == NOOP_HI
    assert runner_errors(out).fatal is None


@pytest.mark.parametrize(
    "name",
    [
        "claude-2.1.197-nologin.stdout",
        "claude-2.1.330-nologin.stdout",
        "claude-2.1.197-nologin-stream.stdout",
    ],
)
def test_claude_not_logged_in_is_a_fatal_error_naming_its_message(name: str) -> None:
    errors = runner_errors(read(name))
    assert errors.fatal == "Not logged in · Please run /login"
    assert find_decision(read(name)) is None


def test_codex_401_is_fatal_and_its_transient_reconnects_alone_are_not() -> None:
    out = read("codex-json-401.stdout")
    assert "401 Unauthorized" in (runner_errors(out).fatal or "")
    reconnect_only = "\n".join(line for line in out.splitlines() if "turn.failed" not in line)
    errors = runner_errors(reconnect_only)
    assert errors.fatal is None
    assert "401 Unauthorized" in (errors.soft or "")
    # a transient error followed by a real answer is a success
    ok = reconnect_only + "\n" + read("codex-json-ok.stdout")
    assert find_decision(ok) == NOOP_HI and runner_errors(ok).fatal is None


def test_pi_api_error_exits_zero_but_is_fatal() -> None:
    errors = runner_errors(read("pi-json-401.stdout"))
    assert errors.fatal is not None and "invalid x-api-key" in errors.fatal


def test_gemini_error_on_stderr_is_reported() -> None:
    errors = runner_errors(read("gemini-nologin.stderr"))
    assert errors.soft is not None and "Please set an Auth method" in errors.soft


def test_preset_costs_read_the_real_shapes() -> None:
    assert read_cost(read("claude-json-ok.stdout"), preset_cost("claude")) == pytest.approx(0.0055)
    pi = read_cost(read("pi-json-ok.stdout"), preset_cost("pi"))
    assert pi is not None and pi > 0
    # the user's echoed message_end has no usage and must not count twice
    assert read_cost(read("pi-json-ok.stdout") * 1, preset_cost("pi")) == pi
    assert preset_cost("codex") is None and preset_cost("gemini") is None
    oc = read_cost(read("opencode-json-ok.stdout"), preset_cost("opencode"))
    assert oc == pytest.approx(0.0033)  # 1000 in x $3/M + 20 out x $15/M, as priced


@pytest.mark.parametrize(
    ("name", "transient"),
    [
        ("opencode-json-429.stdout", True),
        ("opencode-json-529.stdout", True),
        ("opencode-json-401.stdout", False),
        ("opencode-json-ok.stdout", False),
        ("claude-2.1.197-nologin.stdout", False),
        ("codex-json-401.stdout", False),
        ("pi-json-401.stdout", False),
    ],
)
def test_each_presets_retry_match_knows_its_transient_errors(name: str, transient: bool) -> None:
    runner = name.split("-")[0]
    out = read(name)
    assert bool(re.search(PRESETS[runner].get("retry_match", RETRY_MATCH), out)) is transient
    # and the default, for a runner of one's own, agrees on these real outputs
    assert bool(re.search(RETRY_MATCH, out)) is transient


def test_opencodes_error_event_names_the_providers_message() -> None:
    assert runner_errors(read("opencode-json-401.stdout")).soft == "invalid x-api-key"
    assert runner_errors(read("opencode-json-529.stdout")).soft == "Overloaded"


def test_the_prompt_echo_never_counts_as_a_decision() -> None:
    # pi echoes the user's message (our prompt, which holds an example decision)
    echo = (
        '{"type":"message_end","message":{"role":"user","content":[{"type":"text",'
        '"text":"answer like {\\"action\\": \\"run_shell\\", \\"cmd\\": \\"x\\"}"}]}}\n'
    )
    assert find_decision(echo) is None
    assert find_decision(echo + read("pi-json-ok.stdout")) == NOOP_HI
