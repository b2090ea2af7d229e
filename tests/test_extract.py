"""Reading a runner's output (DESIGN §6): the decision, a reported error, the cost. Pure.

The event shapes below are what the real CLIs print in their non-interactive JSON modes.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from looopbot.config import CostSpec
from looopbot.extract import find_decision, json_objects, pointer, read_cost, runner_errors

NOOP = {"action": "noop", "reason": "nothing to do"}
GOAL = {"action": "write_goal", "id": "ship", "body": "goal: ship\n"}
CLAUDE_COST = CostSpec("/total_cost_usd", "total", "result")
PI_COST = CostSpec("/message/usage/cost/total", "sum", "message_end")


def lines(*events: Any) -> str:
    return "".join(json.dumps(e) + "\n" for e in events)


def fenced(obj: Any, lang: str = "json") -> str:
    return f"Here is my move.\n\n```{lang}\n{json.dumps(obj, indent=2)}\n```\n"


# --- find_decision -----------------------------------------------------------------------------


def test_bare_object() -> None:
    assert find_decision(json.dumps(NOOP)) == NOOP
    assert find_decision("thinking...\n" + json.dumps(GOAL) + "\ndone\n") == GOAL


def test_the_last_decision_wins() -> None:
    out = f"draft: {json.dumps(NOOP)}\nfinal: {json.dumps(GOAL)}\n"
    assert find_decision(out) == GOAL


def test_objects_without_an_action_string_are_not_decisions() -> None:
    out = lines(GOAL, {"action": 3}, {"note": "no action"}, {"action": None})
    assert find_decision(out) == GOAL
    assert find_decision('{"action": ["noop"]}') is None
    assert find_decision("no json here") is None
    assert find_decision("") is None


def test_nested_braces_and_strings_inside_a_decision() -> None:
    d = {"action": "run_shell", "cmd": "echo '{}' | jq '{a: 1}'", "reason": "x } {"}
    assert find_decision("prefix { not json\n" + json.dumps(d)) == d


def test_fenced_json() -> None:
    assert find_decision(fenced(GOAL)) == GOAL
    assert find_decision(fenced(GOAL, lang="")) == GOAL
    assert find_decision(fenced(NOOP) + "\nOr rather:\n" + fenced(GOAL)) == GOAL


def claude_json(result_text: str, **extra: Any) -> dict[str, Any]:
    """`claude -p --output-format json`."""
    return {
        "type": "result",
        "subtype": "success",
        "is_error": False,
        "duration_ms": 4012,
        "num_turns": 1,
        "result": result_text,
        "session_id": "0b7e3c2e-1d2f-4f7a-9a53-1d7bb1c0c001",
        "total_cost_usd": 0.0421,
        "usage": {"input_tokens": 1200, "output_tokens": 80},
        **extra,
    }


def test_inside_claude_json_result_text() -> None:
    out = json.dumps(claude_json(fenced(GOAL)))
    assert find_decision(out) == GOAL
    out = json.dumps(claude_json("I will wait. " + json.dumps(NOOP)))
    assert find_decision(out) == NOOP


def test_inside_claude_stream_json_events() -> None:
    prompt_echo = "Answer like this:\n" + json.dumps({"action": "noop", "reason": "example"})
    out = lines(
        {"type": "system", "subtype": "init", "session_id": "s", "tools": [], "model": "m"},
        {
            "type": "user",
            "message": {"role": "user", "content": [{"type": "text", "text": prompt_echo}]},
        },
        {
            "type": "assistant",
            "message": {
                "id": "msg_1",
                "role": "assistant",
                "content": [{"type": "text", "text": fenced(GOAL)}],
            },
        },
        claude_json(fenced(GOAL)),
    )
    assert find_decision(out) == GOAL


def test_claude_stream_json_assistant_only() -> None:
    out = lines(
        {
            "type": "assistant",
            "message": {"role": "assistant", "content": [{"type": "text", "text": fenced(NOOP)}]},
        }
    )
    assert find_decision(out) == NOOP


def codex_events(text: str) -> str:
    """`codex exec --json`."""
    return lines(
        {"type": "thread.started", "thread_id": "0199a213-81c0-7800-8aa1-bbab2a035a53"},
        {"type": "turn.started"},
        {"type": "item.completed", "item": {"id": "item_0", "type": "reasoning", "text": "Hmm."}},
        {"type": "item.completed", "item": {"id": "item_1", "type": "agent_message", "text": text}},
        {
            "type": "turn.completed",
            "usage": {"input_tokens": 2400, "cached_input_tokens": 0, "output_tokens": 60},
        },
    )


def test_inside_codex_exec_json_events() -> None:
    assert find_decision(codex_events(json.dumps(GOAL))) == GOAL
    assert find_decision(codex_events(fenced(NOOP))) == NOOP


def test_inside_gemini_json_response() -> None:
    out = json.dumps(
        {
            "response": fenced(GOAL),
            "stats": {"models": {"gemini-2.5-pro": {"tokens": {"total": 1234}}}},
        },
        indent=2,
    )
    assert find_decision(out) == GOAL


def pi_message_end(role: str, text: str, cost: float | None = None) -> dict[str, Any]:
    """`pi --mode json`: a message_end event."""
    message: dict[str, Any] = {"role": role, "content": [{"type": "text", "text": text}]}
    if cost is not None:
        message.update(
            usage={
                "input": 900,
                "output": 40,
                "cost": {"input": 0.0, "output": 0.0, "total": cost},
            },
            stopReason="stop",
        )
    return {"type": "message_end", "message": message}


def test_inside_pi_message_end_events() -> None:
    prompt_echo = 'For example: {"action": "noop", "reason": "example in the prompt"}'
    out = lines(
        {"type": "agent_start"},
        pi_message_end("user", prompt_echo),
        pi_message_end("assistant", fenced(GOAL), cost=0.002),
        {"type": "agent_end"},
    )
    assert find_decision(out) == GOAL


def test_never_from_an_echoed_user_message() -> None:
    example = json.dumps({"action": "noop", "reason": "example in the prompt"})
    # claude stream-json echoing our prompt, with no answer after it
    assert (
        find_decision(
            lines({"type": "user", "message": {"role": "user", "content": [{"text": example}]}})
        )
        is None
    )
    # pi echoing the user message
    assert find_decision(lines(pi_message_end("user", example))) is None
    # a bare role:user object (other runners)
    assert find_decision(json.dumps({"role": "user", "content": example})) is None
    # the echo comes after the answer: the answer still wins
    out = lines(
        pi_message_end("assistant", json.dumps(GOAL), cost=0.001),
        pi_message_end("user", example),
    )
    assert find_decision(out) == GOAL


@settings(max_examples=300)
@given(st.text())
def test_find_decision_never_raises(text: str) -> None:
    found = find_decision(text)
    assert found is None or isinstance(found.get("action"), str)
    for obj in json_objects(text):
        assert isinstance(obj, dict)


def test_json_nested_deeper_than_python_allows_is_chatter_not_a_crash() -> None:
    deep_objects = '{"a":' * 2000 + "1" + "}" * 2000
    deep_arrays = '{"a":' + "[" * 2000 + "]" * 2000 + "}"
    for chatter in (deep_objects, deep_arrays, '{"a":' * 2000):
        out = chatter + "\n" + json.dumps(NOOP)
        assert find_decision(out) == NOOP
        assert runner_errors(out) == (None, None)
        assert read_cost(out, CLAUDE_COST) is None


json_leaf = st.none() | st.booleans() | st.integers() | st.text(max_size=10)
json_tree = st.recursive(
    json_leaf,
    lambda kids: (
        st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=6), kids, max_size=3)
    ),
    max_leaves=15,
)


@settings(max_examples=200)
@given(st.lists(json_tree | st.text(max_size=20), max_size=5), st.text(max_size=20))
def test_an_appended_decision_is_always_found(noise: list[Any], reason: str) -> None:
    d = {"action": "noop", "reason": reason}
    chatter = "\n".join(n if isinstance(n, str) else json.dumps(n) for n in noise)
    # an unterminated string or brace in the chatter must not swallow the decision
    assert find_decision(chatter + "\n" + json.dumps(d)) == d


@given(st.lists(st.dictionaries(st.text(max_size=5), json_leaf, max_size=3), max_size=5))
def test_json_objects_finds_every_top_level_object(objs: list[dict[str, Any]]) -> None:
    text = " junk ".join(json.dumps(o) for o in objs)
    assert list(json_objects(text)) == objs


# --- runner_errors -----------------------------------------------------------------------------
# fatal: the run failed however it exited. soft: only explains a run that left no decision.


def test_claude_not_logged_in_is_fatal() -> None:
    out = json.dumps(
        {
            "type": "result",
            "subtype": "success",
            "is_error": True,
            "duration_ms": 51,
            "num_turns": 1,
            "result": "Not logged in · Please run /login",
            "session_id": "a",
            "total_cost_usd": 0,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
    )
    assert runner_errors(out).fatal == "Not logged in · Please run /login"
    assert find_decision(out) is None


def test_claude_success_is_no_error() -> None:
    assert runner_errors(json.dumps(claude_json(fenced(GOAL)))) == (None, None)


def test_claude_error_result_without_text_is_still_fatal() -> None:
    out = json.dumps({"type": "result", "subtype": "error_max_turns", "is_error": True})
    assert runner_errors(out).fatal == "error_max_turns"


def test_codex_turn_failed_is_fatal() -> None:
    out = lines(
        {"type": "thread.started", "thread_id": "t"},
        {"type": "turn.started"},
        {"type": "error", "message": "unexpected status 401 Unauthorized"},
        {"type": "turn.failed", "error": {"message": "unexpected status 401 Unauthorized"}},
    )
    assert runner_errors(out).fatal == "unexpected status 401 Unauthorized"


def test_codex_error_event_alone_is_soft() -> None:
    errs = runner_errors(lines({"type": "error", "message": "stream disconnected"}))
    assert errs.fatal is None
    assert errs.soft == "stream disconnected"


def test_codex_success_is_no_error() -> None:
    assert runner_errors(codex_events(json.dumps(GOAL))).fatal is None


def test_codex_retry_notice_then_success_is_not_fatal() -> None:
    """codex prints {"type":"error","message":"Reconnecting... 1/5"} while it retries a dropped
    stream; when the turn then completes, the run succeeded."""
    out = lines(
        {"type": "thread.started", "thread_id": "t"},
        {"type": "turn.started"},
        {"type": "error", "message": "Reconnecting... 1/5 (stream disconnected before completion)"},
    ) + codex_events(json.dumps(GOAL))
    assert runner_errors(out).fatal is None
    assert find_decision(out) == GOAL


def test_gemini_error_object_is_reported() -> None:
    out = json.dumps(
        {
            "session_id": "s",
            "error": {
                "type": "FatalAuthenticationError",
                "message": "Please set an Auth method in your settings.json",
                "code": 41,
            },
        },
        indent=2,
    )
    errs = runner_errors(out)
    assert "Please set an Auth method in your settings.json" in (errs.fatal, errs.soft)
    assert find_decision(out) is None


def test_gemini_success_is_no_error() -> None:
    assert runner_errors(json.dumps({"response": fenced(GOAL), "stats": {}})) == (None, None)


def test_pi_model_error_is_fatal() -> None:
    event = {
        "type": "message_end",
        "message": {
            "role": "assistant",
            "content": [],
            "stopReason": "error",
            "errorMessage": "401 invalid x-api-key",
        },
    }
    assert runner_errors(lines(event)).fatal == "401 invalid x-api-key"
    # a later successful assistant message means the run recovered
    ok = pi_message_end("assistant", json.dumps(NOOP), cost=0.001)
    assert runner_errors(lines(event, ok)).fatal is None


def test_plain_text_output_is_no_error() -> None:
    assert runner_errors("all good\n" + json.dumps(NOOP)) == (None, None)
    assert runner_errors("") == (None, None)


@given(st.text())
def test_runner_errors_never_raises(text: str) -> None:
    for err in runner_errors(text):
        assert err is None or (isinstance(err, str) and err)


# --- read_cost ---------------------------------------------------------------------------------


def test_claude_total_cost_usd() -> None:
    assert read_cost(json.dumps(claude_json("x")), CLAUDE_COST) == 0.0421
    stream = lines(
        {"type": "system", "subtype": "init"},
        {"type": "assistant", "message": {"role": "assistant", "content": []}},
        claude_json(json.dumps(NOOP), total_cost_usd=0.5),
    )
    assert read_cost(stream, CLAUDE_COST) == 0.5


def test_pi_message_end_costs_are_summed() -> None:
    out = lines(
        {"type": "agent_start"},
        pi_message_end("user", "prompt"),
        pi_message_end("assistant", "thinking", cost=0.25),
        {"type": "turn_end", "message": {"usage": {"cost": {"total": 100.0}}}},
        pi_message_end("assistant", json.dumps(NOOP), cost=0.5),
        {"type": "agent_end"},
    )
    assert read_cost(out, PI_COST) == 0.75


def test_custom_pointer_spec() -> None:
    out = lines({"meta": {"billing": {"usd": 0.1}}}, {"meta": {"billing": {"usd": 0.2}}})
    assert read_cost(out, CostSpec("/meta/billing/usd", "total")) == 0.2
    assert read_cost(out, CostSpec("/meta/billing/usd", "sum")) == 0.1 + 0.2
    typed = lines({"type": "a", "usd": 1}, {"type": "b", "usd": 2}, {"usd": 4})
    assert read_cost(typed, CostSpec("/usd", "sum", "b")) == 2.0
    assert read_cost(typed, CostSpec("/usd", "sum")) == 7.0
    arrays = json.dumps({"runs": [{"usd": 0.3}, {"usd": 0.4}]})
    assert read_cost(arrays, CostSpec("/runs/1/usd", "total")) == 0.4


def test_unreadable_cost_is_none() -> None:
    assert read_cost(json.dumps(claude_json("x")), None) is None
    assert read_cost("plain text, no json", CLAUDE_COST) is None
    assert read_cost(json.dumps({"type": "result", "total_cost_usd": "0.1"}), CLAUDE_COST) is None
    assert read_cost(json.dumps({"type": "result", "total_cost_usd": True}), CLAUDE_COST) is None
    assert read_cost(json.dumps({"type": "result"}), CLAUDE_COST) is None
    assert read_cost(json.dumps({"type": "other", "total_cost_usd": 1}), CLAUDE_COST) is None
    assert read_cost(codex_events(json.dumps(NOOP)), PI_COST) is None


def test_zero_cost_is_readable() -> None:
    assert read_cost(json.dumps(claude_json("x", total_cost_usd=0)), CLAUDE_COST) == 0.0


def test_json_pointer_escaping() -> None:
    doc = {"a/b": {"m~n": 1, "~1": 2}, "": {"x": 3}, "list": [10, 20]}
    assert pointer(doc, "/a~1b/m~0n") == 1
    # ~01 is "~1" (unescape ~1 first would wrongly make it "/")
    assert pointer(doc, "/a~1b/~01") == 2
    assert pointer(doc, "/list/1") == 20
    assert pointer(doc, "/list/2") is None
    assert pointer(doc, "/list/-1") is None
    assert pointer(doc, "/missing/x") is None
    assert pointer(doc, "") is doc


@given(st.dictionaries(st.text(max_size=6), st.integers(), min_size=1, max_size=4))
def test_json_pointer_round_trips_any_key(doc: dict[str, int]) -> None:
    for key, value in doc.items():
        escaped = key.replace("~", "~0").replace("/", "~1")
        if escaped == "":
            continue  # "/" alone is the key "" per RFC 6901, which cost specs never need
        assert pointer(doc, "/" + escaped) == value
