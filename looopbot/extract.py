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
from typing import Any

from looopbot.config import CostSpec

_decoder = json.JSONDecoder()
SCAN_CAP = 4 * 1024 * 1024  # only the last 4 MiB of a runner's chatter is searched


def json_objects(text: str) -> Iterator[dict[str, Any]]:
    """Every top-level JSON object embedded in `text`, left to right."""
    i = text.find("{")
    while i != -1:
        try:
            value, end = _decoder.raw_decode(text, i)
        except ValueError:
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


def runner_error(output: str) -> str | None:
    """An error the runner reported in its JSON while perhaps exiting 0.

    claude: `{"type":"result","is_error":true,"result":"Not logged in · Please run /login"}`;
    codex: `{"type":"error","message":…}` / `{"type":"turn.failed","error":{"message":…}}`;
    gemini: `{"error":{"message":…}}`; pi: an assistant `message_end` whose stopReason is
    "error" with an errorMessage.
    """
    error: str | None = None
    for obj in json_objects(output[-SCAN_CAP:]):
        kind = obj.get("type")
        if kind == "result" and obj.get("is_error") is True:
            error = _text(obj.get("result")) or _text(obj.get("subtype")) or "error result"
        elif kind == "error":
            error = _text(obj.get("message")) or _text(obj.get("error")) or "error event"
        elif kind == "turn.failed":
            error = _text(obj.get("error")) or "turn failed"
        elif kind is None and isinstance(obj.get("error"), dict | str):
            error = _text(obj.get("error")) or "error"
        elif kind in ("message_end", "agent_end", "turn_end"):
            message = obj.get("message")
            if isinstance(message, dict) and message.get("stopReason") == "error":
                error = _text(message.get("errorMessage")) or "the model call failed"
    return error


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, dict):
        return _text(value.get("message"))
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
