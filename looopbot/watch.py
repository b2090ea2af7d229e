"""What `looopbot watch` shows, read from the data repo alone (issue 9).

Everything comes from what a clone has: the beats from git history (outcome, action, the
journal line in the subject, the cost trailer), workers and their questions from the
committed `sys-workers` snapshot, today's spend from the committed ledger, the next wake
from state.json. Nothing from this machine's scratch, so `watch` works beside `run` and on
a clone that pulls.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from looopbot import gitstore, ledger
from looopbot import state as state_mod
from looopbot.config import Config
from looopbot.datadir import DataDir
from looopbot.fsutil import read_bytes_or_none
from looopbot.text import age

BEATS_SHOWN = 10


class Beat(NamedTuple):
    at: int
    outcome: str
    action: str | None
    journal: str
    cost_usd: float | None
    commit: str


class View(NamedTuple):
    head: str | None
    beats: list[Beat]  # newest first
    workers: list[dict[str, Any]]  # sys-workers signal items
    spent_usd: float | None  # None: the ledger could not be read
    budget_usd: float | None
    next_wake: float | None  # absolute time, or None when nothing is due
    next_why: str = ""  # what wakes it then


def gather(dd: DataDir, config: Config, now: float, shown: int = BEATS_SHOWN) -> View:
    beats = [_beat(b) for b in gitstore.history(dd, shown)]
    workers = _signal(dd, "sys-workers")
    try:
        spent: float | None = ledger.spent_since(dd.ledger, ledger.day_start(now))
    except ledger.Mangled:
        spent = None
    return View(
        head=beats[0].commit if beats else None,
        beats=beats,
        workers=[w for w in workers if isinstance(w, dict)],
        spent_usd=spent,
        budget_usd=config.limits.max_daily_usd,
        **_next_wake(dd),
    )


def _beat(found: gitstore.Beat) -> Beat:
    t = found.trailers
    # The subject is `looopbot: <head> · <journal line>`: the words after the head.
    journal = found.subject.split(" · ", 1)[1] if " · " in found.subject else found.subject
    try:
        cost: float | None = float(t["Looopbot-Cost-USD"])
    except (KeyError, ValueError):
        cost = None
    return Beat(
        found.time,
        t.get("Looopbot-Outcome", "?"),
        t.get("Looopbot-Action"),
        journal,
        cost,
        found.commit,
    )


def _signal(dd: DataDir, name: str) -> list[Any]:
    raw = read_bytes_or_none(dd.snapshots / f"{name}.json")
    try:
        value = json.loads(raw) if raw is not None else None
    except ValueError:
        return []
    signal = value.get("signal") if isinstance(value, dict) else None
    return signal if isinstance(signal, list) else []


def _next_wake(dd: DataDir) -> dict[str, Any]:
    """The next time the loop decides with nothing else changed: the follow-up the decider
    asked for, or the next schedule falling due (schedules/ as the repo holds them)."""
    from looopbot.schedules import store

    wakes: list[tuple[float, str]] = []
    raw = read_bytes_or_none(dd.state)
    try:
        follow = state_mod.parse(raw).follow_up_at if raw is not None else None
    except state_mod.StateUnreadable:
        follow = None
    if follow is not None:
        wakes.append((follow, "a follow-up the decider asked for"))
    for entry in store.read_all(dd):
        if entry.schedule is not None and entry.schedule.due is not None:
            wakes.append((entry.schedule.due, f"schedule {entry.name}"))
    if not wakes:
        return {"next_wake": None}
    when, why = min(wakes)
    return {"next_wake": when, "next_why": why}


def questions(view: View) -> list[tuple[str, str]]:
    """(worker, question) for each live worker waiting on a human."""
    return [(str(w.get("id")), str(w["note"])) for w in view.workers if w.get("note")]


def spend_line(view: View) -> str:
    spent = (
        "unknown (the ledger has a mangled row)"
        if view.spent_usd is None
        else (f"${view.spent_usd:.4f}")
    )
    budget = f" of ${view.budget_usd:.2f}" if view.budget_usd is not None else " (no budget)"
    return f"{spent} today{budget}"


def wake_line(view: View, now: float) -> str:
    if view.next_wake is None:
        return "when something changes"
    if view.next_wake <= now:
        return f"now ({view.next_why} is due)"
    return f"in {age(view.next_wake - now)} ({view.next_why})"
