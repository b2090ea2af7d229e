"""One schedule file, `schedules/<name>.yaml` (DESIGN §2): parsed, rendered, advanced. Pure.

    at: 2026-12-07T09:00:00+01:00      # once, at an absolute time (ISO 8601 with a zone)
    every: 1h                          # or: every N seconds (or 90s, 15m, 1h, 1d) …
    start: 2026-12-07T09:00:00Z        #     … first due at start (optional)
    next: 2026-12-07T10:00:00Z         #     kept by looopbot: the next due time
    note: re-check the deploy          # what to check then
    goal: deploy                       # optional: the goal it is about

The YAML is composed, not constructed (ruamel.yaml): every value is read from its own
text, so `at:` keeps the zone it was written with (the constructor would turn it into a
datetime that may have lost it) and every problem has its line. Times are kept absolute
(unix seconds), so a quiet loop writes the same bytes and commits nothing.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Any, NamedTuple

from looopbot.text import quote

FILE_CAP = 16 * 1024
NOTE_CAP = 4 * 1024
EVERY_MAX_S = 3650 * 86400  # ten years: beyond that it is a typo, not a schedule
KEYS = ("at", "every", "start", "next", "note", "goal")
_EVERY = re.compile(r"([0-9]{1,12})\s*([smhd]?)")
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
EVERY_RULE = "whole seconds, or a number with s, m, h or d (90s, 15m, 1h, 1d)"
TIME_RULE = "an ISO 8601 time with a zone, e.g. 2026-12-07T09:00:00+01:00 or …Z"


class Invalid(ValueError):
    """A schedule that cannot be used: its line (1-based) and what is wrong."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


class Schedule(NamedTuple):
    """A valid schedule. The raw texts are kept so a rewrite says what the author said."""

    note: str
    at: float | None = None
    at_text: str | None = None
    every: int | None = None
    every_text: str | None = None
    start: float | None = None
    start_text: str | None = None
    next: float | None = None
    goal: str | None = None

    @property
    def due(self) -> float | None:
        """When it is (or was) due; None for a recurring one with no start and no next
        yet (a hand-written file): due at once, then every period."""
        if self.at is not None:
            return self.at
        return self.next if self.next is not None else self.start

    def is_due(self, now: float) -> bool:
        due = self.due
        return due is None or due <= now

    def following(self, now: float) -> float:
        """A recurring schedule's next due time after `now`: periods missed while the loop
        was down are skipped, not caught up one wake at a time."""
        assert self.every is not None
        base = self.due
        if base is None:
            return float(math.ceil(now) + self.every)
        if base > now:
            return base
        # Whole seconds, so the time written into the file reads back exactly.
        return float(math.ceil(base + self.every * (math.floor((now - base) / self.every) + 1)))

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self._asdict().items() if v is not None}

    @classmethod
    def from_json(cls, data: Any) -> Schedule | None:
        """A cached schedule, or None when the cache entry is not one (then re-parse)."""
        if not isinstance(data, dict) or not isinstance(data.get("note"), str):
            return None
        try:
            return cls(**data)
        except TypeError:
            return None


def parse_time(text: str) -> float:
    """Unix seconds of an ISO 8601 time with a zone; ValueError saying what is wrong."""
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{quote(text, 60)} is not {TIME_RULE}") from None
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"{quote(text, 60)} has no time zone: add Z or an offset such as +01:00")
    return when.timestamp()


def parse_every(value: str | int) -> int:
    """Seconds of an `every:`; ValueError for zero, a negative, a fraction or a typo."""
    if isinstance(value, bool):
        raise ValueError(f"every must be {EVERY_RULE}, got {value!r}")
    m = _EVERY.fullmatch(str(value).strip())
    if m is None:
        raise ValueError(f"every must be {EVERY_RULE}, got {quote(str(value))}")
    seconds = int(m.group(1)) * _UNIT[m.group(2)]
    if seconds < 1:
        raise ValueError("every must be at least 1 second")
    if seconds > EVERY_MAX_S:
        raise ValueError(f"every is over {EVERY_MAX_S // 86400} days")
    return seconds


def iso(when: float) -> str:
    """A time as looopbot writes it: UTC, whole seconds when it has no fraction."""
    dt = datetime.fromtimestamp(when, UTC)
    if when == int(when):
        dt = dt.replace(microsecond=0)
    return dt.isoformat().replace("+00:00", "Z")


def build(
    note: str,
    *,
    at: str | None = None,
    every: str | int | None = None,
    start: str | None = None,
    goal: str | None = None,
    next_: float | None = None,
) -> Schedule:
    """A schedule from its fields (a decision, the command line); ValueError if invalid."""
    note = note.strip()  # as YAML reads it back: a block scalar's final newline is not news
    if (at is None) == (every is None):
        raise ValueError('give exactly one of "at" (once) or "every" (recurring)')
    if at is not None and start is not None:
        raise ValueError('"start" goes with "every", not with "at"')
    if not note.strip():
        raise ValueError("note is empty: say what to check then")
    if len(note.encode()) > NOTE_CAP:
        raise ValueError(f"note is over {NOTE_CAP} bytes")
    if "\0" in note:
        raise ValueError("note contains a NUL byte")
    if at is not None:
        return Schedule(note=note, at=parse_time(at), at_text=at.strip(), goal=goal)
    assert every is not None
    seconds = parse_every(every)
    begin = parse_time(start) if start is not None else None
    return Schedule(
        note=note,
        every=seconds,
        every_text=str(every).strip(),
        start=begin,
        start_text=start.strip() if start is not None else None,
        next=next_,
        goal=goal,
    )


def parse(text: str) -> Schedule:
    """A schedule file's text; Invalid naming the line when it cannot be used."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    try:
        root = YAML(typ="rt").compose(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise Invalid(
            mark.line + 1 if mark is not None else 1,
            f"not valid YAML: {exc.problem or exc.context or 'invalid YAML'}",
        ) from None
    except YAMLError as exc:
        raise Invalid(
            1, f"not valid YAML: {str(exc).splitlines()[0] if str(exc) else exc}"
        ) from None
    except RecursionError:  # a deeply nested document
        raise Invalid(1, "not valid YAML: nested too deeply") from None
    if root is None or root.tag != "tag:yaml.org,2002:map":
        raise Invalid(1, "a schedule is a mapping: at: or every:, note:, goal:")
    values: dict[str, tuple[str, int]] = {}
    for key, node in root.value:
        line = key.start_mark.line + 1
        name = key.value if isinstance(key.value, str) else None
        if name not in KEYS:
            shown = name if name is not None else "(not a plain key)"
            raise Invalid(line, f"unknown key {shown[:40]!r} (known: {', '.join(KEYS)})")
        if name in values:
            raise Invalid(line, f"{name} is given twice")
        if not isinstance(node.value, str) or node.tag == "tag:yaml.org,2002:null":
            raise Invalid(line, f"{name} must be a single value")
        values[name] = (node.value, line)
    return _checked(values, root.start_mark.line + 1)


def _checked(values: dict[str, tuple[str, int]], top: int) -> Schedule:
    def get(key: str) -> str | None:
        return values[key][0] if key in values else None

    def line(*keys: str) -> int:
        return next((values[k][1] for k in keys if k in values), top)

    if "note" not in values:
        raise Invalid(top, "note: is missing: say what to check when it is due")
    if not values["note"][0].strip():
        raise Invalid(line("note"), "note is empty: say what to check then")
    goal = get("goal")
    if goal is not None:
        from looopbot.ids import describe_bad_id, is_valid_id

        if not is_valid_id(goal):
            raise Invalid(line("goal"), f"goal {describe_bad_id(goal)}")
    nxt = get("next")
    try:
        next_t = parse_time(nxt) if nxt is not None else None
    except ValueError as exc:
        raise Invalid(line("next"), f"next: {exc}") from None
    if nxt is not None and "every" not in values:
        raise Invalid(line("next"), "next: belongs to a recurring (every:) schedule")
    for key in ("at", "start"):
        if key in values:
            try:
                parse_time(values[key][0])
            except ValueError as exc:
                raise Invalid(line(key), f"{key}: {exc}") from None
    try:
        return build(
            values["note"][0],
            at=get("at"),
            every=get("every"),
            start=get("start"),
            goal=goal,
            next_=next_t,
        )
    except ValueError as exc:
        raise Invalid(line("every", "at", "start", "note"), str(exc)) from None


def render(schedule: Schedule) -> str:
    """The file text for a schedule looopbot writes (a decision, `schedule write`)."""
    from io import StringIO

    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap
    from ruamel.yaml.error import YAMLError
    from ruamel.yaml.scalarstring import LiteralScalarString

    fields = _fields(schedule)
    doc = CommentedMap(fields)
    note = schedule.note
    if "\n" in note:
        doc["note"] = LiteralScalarString(note)
    yaml = YAML(typ="rt")
    yaml.width = 4096  # a long note stays one line rather than folding at 80 columns
    out = StringIO()
    try:
        yaml.dump(doc, out)
        if parse(out.getvalue()) == schedule:
            return out.getvalue()
    except (Invalid, YAMLError):
        pass
    # Text ruamel.yaml cannot carry as it is (control characters, odd line breaks): every
    # value double-quoted with YAML's escapes says the same, character for character.
    return "".join(
        f"{key}: {value if isinstance(value, int) else _quoted(value)}\n"
        for key, value in fields.items()
    )


def _fields(schedule: Schedule) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if schedule.at_text is not None:
        fields["at"] = schedule.at_text
    if schedule.every_text is not None:
        every = schedule.every_text
        fields["every"] = int(every) if every.isdigit() else every
    if schedule.start_text is not None:
        fields["start"] = schedule.start_text
    if schedule.next is not None:
        fields["next"] = iso(schedule.next)
    fields["note"] = schedule.note
    if schedule.goal is not None:
        fields["goal"] = schedule.goal
    return fields


def _printable(o: int) -> bool:
    """YAML's printable set, less the line and paragraph separators (read as breaks)."""
    return (
        0x20 <= o <= 0x7E
        or 0xA0 <= o <= 0x2027
        or 0x202A <= o <= 0xD7FF
        or (0xE000 <= o <= 0xFFFD and o != 0xFEFF)
        or o >= 0x10000
    )


def _quoted(text: str) -> str:
    """A YAML double-quoted scalar: printable characters as they are, the rest escaped."""
    out = ['"']
    for ch in text:
        o = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif _printable(o):
            out.append(ch)
        elif o <= 0xFFFF:
            out.append(f"\\u{o:04x}")
        else:
            out.append(f"\\U{o:08x}")
    out.append('"')
    return "".join(out)


def advanced(text: str, schedule: Schedule, when: float) -> str:
    """The file text with `next:` set to `when`, every other byte as the author left it
    (comments, order, style); re-rendered only when the text cannot be edited in place
    (a flow mapping, a document end marker)."""
    from ruamel.yaml import YAML

    want = schedule._replace(next=when)
    root = YAML(typ="rt").compose(text)
    stamp = iso(when)
    found = [node for key, node in root.value if key.value == "next"]
    if found:
        node = found[0]
        edited = text[: node.start_mark.index] + stamp + text[node.end_mark.index :]
    else:
        edited = text + ("" if text.endswith("\n") or not text else "\n") + f"next: {stamp}\n"
    try:
        if parse(edited) == want:
            return edited
    except Invalid:
        pass
    return render(want)
