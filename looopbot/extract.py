"""Reading a runner's output: the decision, a runner-reported error, the cost. Pure.

Real runners print JSON events (claude `--output-format json|stream-json`, codex
`exec --json`, gemini `--output-format json`, pi `--mode json`); the decision may be a bare
object, sit inside an event's result text, or be wrapped in ```json fences. The rule is
simple and the same for all: the last JSON object with an "action" string wins, searched in
top-level objects and in the text fields of events — never in what the user (our prompt)
said, which some runners echo back and which holds example decisions.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, NamedTuple

from looopbot.config import CostSpec

_decoder = json.JSONDecoder()
SCAN_CAP = 4 * 1024 * 1024  # only the last 4 MiB of a runner's chatter is searched


def json_objects(text: str) -> Iterator[dict[str, Any]]:
    """Every top-level JSON object embedded in `text`, left to right."""
    i = text.find("{")
    while i != -1:
        try:
            value, end = _decoder.raw_decode(text, i)
        except (ValueError, RecursionError):
            # RecursionError: JSON nested deeper than the interpreter allows is chatter,
            # not a decision, and must fail the beat cleanly rather than crash it.
            i = text.find("{", i + 1)
            continue
        if isinstance(value, dict):
            yield value
        i = text.find("{", end)


def _is_user_echo(obj: dict[str, Any]) -> bool:
    if obj.get("role") == "user" or obj.get("type") == "user":
        return True
    message = obj.get("message")
    return isinstance(message, dict) and message.get("role") == "user"


def _candidates(obj: Any, depth: int = 0) -> Iterator[dict[str, Any]]:
    if depth > 12:
        return
    if isinstance(obj, dict):
        if _is_user_echo(obj):
            return
        if isinstance(obj.get("action"), str):
            yield obj
            return
        for value in obj.values():
            yield from _candidates(value, depth + 1)
    elif isinstance(obj, list):
        for value in obj:
            yield from _candidates(value, depth + 1)
    elif isinstance(obj, str) and '"action"' in obj:
        for inner in json_objects(obj):
            yield from _candidates(inner, depth + 1)


def find_decision(output: str) -> dict[str, Any] | None:
    """The last decision-shaped object in a runner's stdout, or None."""
    found: dict[str, Any] | None = None
    for obj in json_objects(output[-SCAN_CAP:]):
        for cand in _candidates(obj):
            found = cand
    return found


class RunnerErrors(NamedTuple):
    """Errors a runner reported in its JSON, perhaps while exiting 0.

    `fatal` ends the run however it exited: claude's final result with `"is_error": true`
    (e.g. "Not logged in · Please run /login"), codex `turn.failed`, pi's last assistant
    message stopping with "error". `soft` errors (codex's transient "Reconnecting… 1/5",
    gemini's error object) only explain a run that produced no decision.
    """

    fatal: str | None
    soft: str | None


def runner_errors(output: str) -> RunnerErrors:
    fatal: str | None = None
    soft: str | None = None
    last_assistant: dict[str, Any] | None = None
    for obj in json_objects(output[-SCAN_CAP:]):
        kind = obj.get("type")
        if kind == "result":
            # claude's final event: the last one decides (a success clears an earlier error)
            failed = obj.get("is_error") is True
            fatal = (_text(obj.get("result")) or _text(obj.get("subtype"))) if failed else None
        elif kind == "turn.failed":
            fatal = _text(obj.get("error")) or "turn failed"
        elif kind == "error":
            soft = _text(obj.get("message")) or _text(obj.get("error")) or soft
        elif kind is None and isinstance(obj.get("error"), dict | str):
            soft = _text(obj.get("error")) or soft
        elif kind == "message_end":
            message = obj.get("message")
            if isinstance(message, dict) and message.get("role") == "assistant":
                last_assistant = message
    if last_assistant is not None and last_assistant.get("stopReason") == "error":
        fatal = _text(last_assistant.get("errorMessage")) or "the model call failed"
    return RunnerErrors(fatal, soft)


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, dict):
        # opencode nests it: {"name": "APIError", "data": {"message": …, "statusCode": …}}
        return _text(value.get("message")) or _text(value.get("data"))
    return None


def pointer(obj: Any, ptr: str) -> Any:
    """RFC 6901 JSON pointer lookup; None when a step is missing."""
    if ptr in ("", "/"):
        return obj
    for raw in ptr.lstrip("/").split("/"):
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(obj, dict):
            obj = obj.get(part)
        elif isinstance(obj, list) and part.isdigit() and int(part) < len(obj):
            obj = obj[int(part)]
        else:
            return None
        if obj is None:
            return None
    return obj


def read_cost(output: str, spec: CostSpec | None) -> float | None:
    """The run's cost in USD per the runner's cost spec, or None when it cannot be read."""
    if spec is None:
        return None
    hits: list[float] = []
    for obj in json_objects(output[-SCAN_CAP:]):
        if spec.type is not None and obj.get("type") != spec.type:
            continue
        value = pointer(obj, spec.pointer)
        if isinstance(value, int | float) and not isinstance(value, bool):
            hits.append(float(value))
    if not hits:
        return None
    return sum(hits) if spec.mode == "sum" else hits[-1]
