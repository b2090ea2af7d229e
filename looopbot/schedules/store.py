"""The schedules in a data dir, the `sys-schedules` snapshot and what a decided beat does to
the schedules it saw due (DESIGN §2, §3).

The snapshot's signal is the set of due schedules — each `{name, due}`, `due` being the
absolute time it fell due — so a schedule wakes the loop once, when it falls due, and a
quiet loop stays quiet: nothing in the signal moves with the clock. A schedule that cannot
be read joins the signal as `{name, error: true}` (a steady break wakes the loop once, as a
broken sensor does, for the decider to fix or report). Notes and the next times of the
schedules that are not due are detail: a human editing the note of a schedule that is not
due has told the loop nothing it must act on now, so that costs no runner call.

Every beat reads the files; parsing them costs ruamel.yaml's import, so parsed schedules
are cached in local scratch by the digest of their bytes (only an accelerator: a missing
or broken cache is re-derived from the files).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

from looopbot.datadir import DataDir
from looopbot.errors import LooopbotError
from looopbot.fsutil import read_bytes_or_none, write_atomic
from looopbot.ids import describe_bad_id, is_valid_id
from looopbot.schedules.spec import FILE_CAP, Invalid, Schedule, iso, parse

NAME = "sys-schedules"
FOLDER = "schedules"
SUFFIX = ".yaml"
_CACHE = "schedules-cache.json"
_CACHE_VERSION = 1


class Entry(NamedTuple):
    """One `schedules/*.yaml`: its schedule, or the one-line problem that stops it."""

    name: str
    schedule: Schedule | None
    problem: str | None = None
    line: int = 0  # of the problem; 0: the file as a whole
    text: str = ""

    @property
    def error(self) -> str | None:
        """The problem as one `path:line: message` line."""
        if self.problem is None:
            return None
        where = path_of(self.name) + (f":{self.line}" if self.line else "")
        return f"{where}: {self.problem}"


def path_of(name: str) -> str:
    return f"{FOLDER}/{name}{SUFFIX}"


def _read(full: str) -> bytes:
    """A schedule file's bytes; OSError-free: ValueError says why it cannot be read."""
    try:
        fd = os.open(full, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        # Never through a symlink: a schedule linked to ~/.ssh/… would reach the prompt.
        if os.path.islink(full):
            raise ValueError("is a symlink: schedules must be regular files") from None
        raise ValueError(f"cannot be read: {exc.strerror}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # a folder, a fifo, a device
            raise ValueError("is not a regular file")
        raw = os.read(fd, FILE_CAP + 1)
    finally:
        os.close(fd)
    if len(raw) > FILE_CAP:
        raise ValueError(f"is over the {FILE_CAP}-byte cap for a schedule")
    return raw


def _names(dd: DataDir) -> list[str]:
    try:
        return sorted(
            n for n in os.listdir(dd.path(FOLDER)) if n.endswith(SUFFIX) and not n.startswith(".")
        )
    except (FileNotFoundError, NotADirectoryError):
        return []


def read_all(dd: DataDir) -> list[Entry]:
    """Every `schedules/*.yaml`, sorted by name; never raises for a bad file."""
    names = _names(dd)
    if not names:
        return []
    cache = _load_cache(dd)
    fresh: dict[str, Any] = {}
    out = []
    for file_name in names:
        entry, cached = _entry(dd, file_name, cache)
        out.append(entry)
        if cached is not None:
            fresh[file_name] = cached
    if fresh != cache:
        with contextlib.suppress(OSError):  # a read-only checkout parses every time
            doc = {"v": _CACHE_VERSION, "files": fresh}
            write_atomic(dd.scratch(_CACHE), json.dumps(doc, sort_keys=True), durable=False)
    return out


def read_one(dd: DataDir, name: str) -> Entry | None:
    """The schedule `name` as it is on disk now; None when there is no such file."""
    full = dd.path(path_of(name))
    if not os.path.lexists(full):
        return None
    return _entry(dd, f"{name}{SUFFIX}", {})[0]


def _entry(dd: DataDir, file_name: str, cache: dict[str, Any]) -> tuple[Entry, Any]:
    """The entry, and what to cache for it (None: nothing)."""
    stem = file_name[: -len(SUFFIX)]
    if not is_valid_id(stem):
        return Entry(stem, None, f"ignored: {describe_bad_id(stem)}"), None
    try:
        raw = _read(str(dd.path(path_of(stem))))
    except ValueError as exc:
        return Entry(stem, None, str(exc)), None
    digest = hashlib.sha256(raw).hexdigest()
    hit = cache.get(file_name)
    text = raw.decode("utf-8", errors="replace")
    if isinstance(hit, dict) and hit.get("digest") == digest:
        if isinstance(hit.get("problem"), str) and isinstance(hit.get("line"), int):
            return Entry(stem, None, hit["problem"], hit["line"], text), hit
        schedule = Schedule.from_json(hit.get("schedule"))
        if schedule is not None:
            return Entry(stem, schedule, text=text), hit
    try:
        schedule = parse(raw.decode("utf-8"))
    except UnicodeDecodeError:
        problem, line = "not UTF-8 text", 1
    except Invalid as exc:
        problem, line = exc.message, exc.line
    else:
        return Entry(stem, schedule, text=text), {"digest": digest, "schedule": schedule.to_json()}
    return Entry(stem, None, problem, line, text), {
        "digest": digest,
        "problem": problem,
        "line": line,
    }


def _load_cache(dd: DataDir) -> dict[str, Any]:
    raw = read_bytes_or_none(dd.scratch(_CACHE))
    if raw is None:
        return {}
    try:
        doc = json.loads(raw)
    except ValueError:
        return {}
    if not isinstance(doc, dict) or doc.get("v") != _CACHE_VERSION:
        return {}
    files = doc.get("files")
    return files if isinstance(files, dict) else {}


def snapshot(dd: DataDir, now: float, scrub: Callable[[str], str] | None = None) -> dict[str, Any]:
    """sys-schedules: signal = the due (and the broken) schedules; detail = every schedule
    with its next time and note. Absolute times only; `now` decides only what is due."""
    signal: list[dict[str, Any]] = []
    detail: dict[str, Any] = {}
    entries = read_all(dd)
    for e in entries:
        if e.schedule is None:
            signal.append({"name": e.name, "error": True})
            detail[e.name] = {"error": e.error}
            continue
        s = e.schedule
        if s.is_due(now):
            signal.append({"name": e.name, "due": _num(s.due)})
        item: dict[str, Any] = {"note": s.note, "next": _num(s.due)}
        if s.every is not None:
            item["every"] = s.every
        if s.goal is not None:
            item["goal"] = s.goal
        detail[e.name] = item
    value: dict[str, Any] = {"signal": signal, "detail": {"schedules": detail}}
    if entries:
        from looopbot.redact import redact_value, redactor

        value = redact_value(value, scrub or redactor())
    return value


def _num(t: float | None) -> float | int | None:
    """Whole seconds as an int, so the snapshot reads `1765011600`, not `1765011600.0`."""
    if t is None:
        return None
    return int(t) if t == int(t) else t


def due_items(value: Any) -> list[dict[str, Any]]:
    """The due and broken schedules of a sys-schedules snapshot, with their detail, for the
    prompt (pure: ages are the prompt's business)."""
    if not isinstance(value, dict) or not isinstance(value.get("signal"), list):
        return []
    detail = value.get("detail")
    known = detail.get("schedules") if isinstance(detail, dict) else None
    known = known if isinstance(known, dict) else {}
    out = []
    for item in value["signal"]:
        if isinstance(item, dict) and isinstance(item.get("name"), str):
            more = known.get(item["name"])
            out.append({**item, **(more if isinstance(more, dict) else {})})  # the error's words
    return out


def decided_signal(before: Any, after: Any) -> list[Any]:
    """The sys-schedules signal of a decided world: what the decider saw that its move left
    due. A schedule it handled is gone; one that fell due by another hand (a human's push,
    or the move's own write_schedule with a past time) is news for the next beat."""
    if not isinstance(before, list) or not isinstance(after, list):
        return []
    return [item for item in after if item in before]


def handle_due(
    dd: DataDir,
    seen: Any,
    now: float,
    *,
    skip: Iterable[str],
    remove: Callable[[str], None],
    write: Callable[[str, str], object],
    keep_users: Callable[[str], None],
) -> list[str]:
    """After a decided move: each schedule the decider saw due is done — a one-shot is
    removed, a recurring one advances `next:` past now — unless the move itself wrote or
    deleted it (`skip`), it changed since it was sensed, or the user has uncommitted edits
    to it (then it stays due; the returned lines say so, and what was done)."""
    skipped = set(skip)
    done: list[str] = []
    notes: list[str] = []
    for item in due_items(seen):
        name = item["name"]
        if "error" in item or name in skipped:
            continue
        entry = read_one(dd, name)
        if entry is None or entry.schedule is None:
            continue
        s = entry.schedule
        if not s.is_due(now) or _num(s.due) != item.get("due"):
            continue  # edited while the decider thought: the next beat reads the new one
        rel = path_of(name)
        try:
            keep_users(rel)
        except LooopbotError as exc:
            notes.append(f"schedule {name} stays due: {exc.message}")
            continue
        if s.every is None:
            remove(rel)
            done.append(f"{name} (done, removed)")
        else:
            from looopbot.schedules.spec import advanced

            when = s.following(now)
            write(rel, advanced(entry.text, s, when))
            done.append(f"{name} (next {iso(when)})")
    if done:
        notes.insert(0, "schedules handled: " + ", ".join(done))
    return notes
