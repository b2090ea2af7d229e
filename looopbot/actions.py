"""The action types of DESIGN §6 and their validation. Pure: parsing never touches a file.

Every decision is checked here before anything runs: an unknown action, a missing or
ill-typed field, an unsafe id or an oversize body fails the beat with a message that says
what was wrong and what is valid.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple

from looopbot.config import ACTIONS
from looopbot.errors import LooopbotError
from looopbot.ids import check_id
from looopbot.text import one_line, quote

BODY_CAP = 64 * 1024
MESSAGE_CAP = 4 * 1024
JOURNAL_CAP = 500
FOLLOW_UP_MIN_S = 5.0
FOLLOW_UP_MAX_S = 300.0
KEYS = ("Enter", "Tab", "Escape", "Up", "Down", "C-c", "C-d")
WORKER_ACTIONS = ("start_worker", "steer_session", "send_key", "restart_session", "kill_worker")


class Noop(NamedTuple):
    reason: str


class RunShell(NamedTuple):
    cmd: str
    reason: str


class WriteGoal(NamedTuple):
    id: str
    body: str


class ArchiveGoal(NamedTuple):
    id: str


class WriteSensor(NamedTuple):
    name: str
    script: str


class WritePlaybook(NamedTuple):
    body: str


class StartWorker(NamedTuple):
    id: str
    prompt: str
    verify: str | None = None
    runner: str | None = None  # a configured runner's name; its worker command runs


class SteerSession(NamedTuple):
    id: str
    input: str


class SendKey(NamedTuple):
    id: str
    keys: tuple[str, ...]


class RestartSession(NamedTuple):
    id: str


class KillWorker(NamedTuple):
    id: str
    reason: str


class SendNotification(NamedTuple):
    message: str
    id: str | None = None


class WriteSchedule(NamedTuple):
    name: str
    note: str
    at: str | None = None
    every: str | int | None = None
    start: str | None = None
    goal: str | None = None


class DeleteSchedule(NamedTuple):
    name: str


Action = (
    Noop
    | RunShell
    | WriteGoal
    | ArchiveGoal
    | WriteSensor
    | WritePlaybook
    | StartWorker
    | SteerSession
    | SendKey
    | RestartSession
    | KillWorker
    | SendNotification
    | WriteSchedule
    | DeleteSchedule
)

# action -> (type, fields). A field is (name, kind, required); kinds: "id", "text" (any
# non-empty string, messages cap), "body" (64 KiB, not blank), "keys", "time" (ISO 8601 with
# a zone), "every" (seconds, or 90s/15m/1h/1d).
_SCHEMA: dict[str, tuple[type, tuple[tuple[str, str, bool], ...]]] = {
    "noop": (Noop, (("reason", "text", True),)),
    "run_shell": (RunShell, (("cmd", "text", True), ("reason", "text", True))),
    "write_goal": (WriteGoal, (("id", "id", True), ("body", "body", True))),
    "archive_goal": (ArchiveGoal, (("id", "id", True),)),
    "write_sensor": (WriteSensor, (("name", "id", True), ("script", "body", True))),
    "write_playbook": (WritePlaybook, (("body", "body", True),)),
    "start_worker": (
        StartWorker,
        (
            ("id", "id", True),
            ("prompt", "body", True),
            ("verify", "text", False),
            ("runner", "id", False),
        ),
    ),
    "steer_session": (SteerSession, (("id", "id", True), ("input", "text", True))),
    "send_key": (SendKey, (("id", "id", True), ("keys", "keys", True))),
    "restart_session": (RestartSession, (("id", "id", True),)),
    "kill_worker": (KillWorker, (("id", "id", True), ("reason", "text", True))),
    "send_notification": (
        SendNotification,
        (("message", "text", True), ("id", "id", False)),
    ),
    "write_schedule": (
        WriteSchedule,
        (
            ("name", "id", True),
            ("at", "time", False),
            ("every", "every", False),
            ("start", "time", False),
            ("note", "text", True),
            ("goal", "id", False),
        ),
    ),
    "delete_schedule": (DeleteSchedule, (("name", "id", True),)),
}

# The one list of action names lives in config (which the skip path loads without this
# module); the schema must cover exactly those, in that order.
ACTION_NAMES = ACTIONS
if tuple(_SCHEMA) != ACTIONS:
    raise RuntimeError("actions._SCHEMA and config.ACTIONS disagree")


class Decision(NamedTuple):
    action: Action
    name: str
    journal: str | None = None
    next_interval_s: float | None = None


class BadDecision(LooopbotError):
    pass


def catalogue() -> list[str]:
    """One line per action: its name and fields, for the prompt and for error messages."""
    lines = []
    for name, (_cls, spec) in _SCHEMA.items():
        parts = [f'"{f}"' if req else f'"{f}"?' for f, _k, req in spec]
        lines.append(f"{name}: {', '.join(parts)}")
    return lines


def parse_decision(obj: Any, allowed: frozenset[str] | None = None) -> Decision:
    """Validate a decision object; raise BadDecision saying what is wrong and what is valid."""
    if not isinstance(obj, dict):
        raise BadDecision(f"the decision must be a JSON object, got {_kind(obj)}")
    name = obj.get("action")
    if not isinstance(name, str):
        raise BadDecision(
            f'the decision has no "action" string (valid actions: {", ".join(ACTION_NAMES)})'
        )
    if name not in _SCHEMA:
        raise BadDecision(f"unknown action {quote(name)} (valid: {', '.join(ACTION_NAMES)})")
    if allowed is not None and name not in allowed:
        raise BadDecision(
            f"action {name!r} is switched off by limits.allowed_actions "
            f"(allowed: {', '.join(a for a in ACTION_NAMES if a in allowed)})"
        )
    cls, spec = _SCHEMA[name]
    values: dict[str, Any] = {}
    for field_name, kind, required in spec:
        if field_name not in obj or obj[field_name] is None:
            if required:
                raise BadDecision(f"{name}: missing field {field_name!r} ({_usage(name)})")
            continue
        values[field_name] = _field(name, field_name, kind, obj[field_name])
    if cls is WriteSchedule:
        _whole_schedule(values)
    journal = obj.get("journal")
    if journal is not None and not isinstance(journal, str):
        raise BadDecision(f'"journal" must be a string, got {_kind(journal)}')
    follow = obj.get("next_interval_s")
    if follow is not None:
        if isinstance(follow, bool) or not isinstance(follow, int | float):
            raise BadDecision(f'"next_interval_s" must be a number of seconds, got {_kind(follow)}')
        if isinstance(follow, float) and math.isnan(follow):  # json accepts NaN; min/max don't
            raise BadDecision('"next_interval_s" must be a number of seconds, got NaN')
        # Clamp before float(): a JSON integer of 400 digits does not fit in a float.
        follow = float(min(max(follow, FOLLOW_UP_MIN_S), FOLLOW_UP_MAX_S))
    return Decision(
        action=cls(**values),
        name=name,
        journal=one_line(journal, JOURNAL_CAP) if journal else None,
        next_interval_s=follow,
    )


def _whole_schedule(values: dict[str, Any]) -> None:
    """write_schedule's fields together: exactly one of at/every, start only with every."""
    from looopbot.schedules.spec import build

    try:
        build(
            values["note"],
            at=values.get("at"),
            every=values.get("every"),
            start=values.get("start"),
            goal=values.get("goal"),
        )
    except ValueError as exc:
        raise BadDecision(f"write_schedule: {exc} ({_usage('write_schedule')})") from None


def _field(action: str, name: str, kind: str, value: Any) -> Any:
    where = f"{action}.{name}"
    if kind == "every":
        from looopbot.schedules.spec import parse_every

        if isinstance(value, bool) or not isinstance(value, int | str):
            raise BadDecision(f"{where} must be seconds or a string like 15m, got {_kind(value)}")
        try:
            parse_every(value)
        except ValueError as exc:
            raise BadDecision(f"{where}: {exc}") from None
        return value
    if kind == "keys":
        keys = value.split() if isinstance(value, str) else value
        if not isinstance(keys, list) or not keys or not all(isinstance(k, str) for k in keys):
            raise BadDecision(f"{where} must be a list of key names ({', '.join(KEYS)})")
        bad = [k for k in keys if k not in KEYS]
        if bad:
            shown = ", ".join(quote(k) for k in bad[:5])
            raise BadDecision(f"{where}: unknown key(s) {shown} (valid: {', '.join(KEYS)})")
        return tuple(keys)
    if not isinstance(value, str):
        raise BadDecision(f"{where} must be a string, got {_kind(value)} ({_usage(action)})")
    try:
        value.encode()
    except UnicodeEncodeError:  # JSON's "\ud800": a lone surrogate no file can hold
        raise BadDecision(f"{where} is not valid Unicode text (a lone surrogate)") from None
    if kind == "id":
        try:
            return check_id(value, where)
        except LooopbotError as exc:
            raise BadDecision(exc.message) from None
    if "\0" in value:
        raise BadDecision(f"{where} contains a NUL byte")
    if kind == "body":
        check_body(value, where)
        return value
    if kind == "time":
        from looopbot.schedules.spec import parse_time

        try:
            parse_time(value)
        except ValueError as exc:
            raise BadDecision(f"{where}: {exc}") from None
        return value.strip()
    if not value.strip():
        raise BadDecision(f"{where} is empty")
    if len(value.encode()) > MESSAGE_CAP:
        raise BadDecision(f"{where} is over {MESSAGE_CAP} bytes")
    return value


def check_body(value: str, where: str) -> None:
    """A body must say something: empty or dash-only text never replaces a file."""
    if not value.strip() or not value.strip().strip("-").strip():
        raise BadDecision(f"{where} is empty — refusing to write an empty file")
    if len(value.encode()) > BODY_CAP:
        raise BadDecision(f"{where} is {len(value.encode())} bytes, over the {BODY_CAP} cap")
    if "\0" in value:
        raise BadDecision(f"{where} contains a NUL byte")


def summary(decision: Decision) -> str:
    """A journal text for a decision that carried none."""
    a = decision.action
    match a:
        case Noop(reason=r):
            return f"noop: {r}"
        case RunShell(cmd=c, reason=r):
            return f"run_shell `{c}`: {r}"
        case WriteGoal(id=i) | ArchiveGoal(id=i):
            return f"{decision.name} {i}"
        case WriteSensor(name=n):
            return f"write_sensor {n}"
        case WritePlaybook():
            return "write_playbook"
        case SendNotification(message=m):
            return f"notify: {m}"
        case KillWorker(id=i, reason=r):
            return f"kill_worker {i}: {r}"
        case WriteSchedule(name=n) | DeleteSchedule(name=n):
            return f"{decision.name} {n}"
        case _:
            return f"{decision.name} {getattr(a, 'id', '')}".strip()


def goal_of(action: Action) -> str | None:
    """The goal an action acts on, for sys-goals (worker actions count for the same id)."""
    if isinstance(action, WriteGoal | ArchiveGoal | StartWorker | SteerSession | SendKey):
        return action.id
    if isinstance(action, RestartSession | KillWorker):
        return action.id
    if isinstance(action, SendNotification):
        return action.id
    if isinstance(action, WriteSchedule):
        return action.goal
    return None


def _usage(action: str) -> str:
    _cls, spec = _SCHEMA[action]
    return "fields: " + ", ".join(f + ("" if req else " (optional)") for f, _k, req in spec)


def _kind(value: Any) -> str:
    return {
        dict: "an object",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        type(None): "null",
    }.get(type(value), type(value).__name__)


def as_fields(action: Action) -> Mapping[str, Any]:
    return {k: v for k, v in action._asdict().items() if v is not None}
