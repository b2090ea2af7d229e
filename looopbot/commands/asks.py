"""`looopbot ask`, `asks` and `wait`: questions for a human, and waiting for one (issue 9)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from looopbot import gitstore
from looopbot.beat import LAST_BEAT
from looopbot.config import load
from looopbot.datadir import DataDir, locate
from looopbot.errors import EXIT_OK, EXIT_USAGE, LooopbotError
from looopbot.fsutil import read_bytes_or_none
from looopbot.text import age
from looopbot.workers import asks, fleet

WAIT_POLL = 0.5
NOT_RUNNING_INTERVALS = 3  # no beat for this many intervals: the loop is not running


def ask(args: argparse.Namespace) -> int:
    dd = locate(args.data_dir)
    fleet.check_id(args.id)
    options = asks.parse_options(args.options)
    found = fleet.ask(dd, args.id, args.question, options)
    print(found.id, flush=True)
    if args.no_wait:
        return EXIT_OK
    print(
        f"waiting for an answer to {found.id} (looopbot answer {found.id} …)",
        file=sys.stderr,
        flush=True,
    )
    print(asks.wait_answer(dd, found), flush=True)
    return EXIT_OK


def list_asks(args: argparse.Namespace) -> int:
    dd = locate(args.data_dir)
    now = time.time()
    rows = [_row(a, live, now) for a, live in asks.all_pending(dd)]
    if args.json:
        print(json.dumps({"asks": rows}))
        return EXIT_OK
    if not rows:
        print("no pending asks")
    for r in rows:
        options = f" [{'/'.join(r['options'])}]" if r["options"] else ""
        stranded = "  STRANDED (its worker is no longer live)" if r["stranded"] else ""
        when = f"{age(r['age_s'])} ago" if r["age_s"] is not None else "?"
        print(f"{r['id']}\t{r['worker']}\t{when}\t{r['question']}{options}{stranded}")
    return EXIT_OK


def _row(a: asks.Ask, live: bool, now: float) -> dict[str, Any]:
    return {
        "id": a.id,
        "worker": a.worker,
        "question": a.question,
        "options": list(a.options),
        "asked_at": a.asked_at,
        "age_s": None if a.asked_at is None else round(max(0.0, now - a.asked_at), 1),
        "stranded": not live,
    }


def wait(args: argparse.Namespace) -> int:
    """Block until something needs a human: a pending ask, a notification or a failed beat
    (with --asks, asks only). Exit 0 printing it; 2 when the loop is not running."""
    dd = locate(args.data_dir)
    start = _head(dd)
    while True:
        found = _needs_a_human(dd, start, asks_only=args.asks)
        if found is not None:
            print(found, flush=True)
            return EXIT_OK
        stale = _not_running(dd)
        if stale is not None:
            print(f"looopbot: the loop is not running: {stale}", file=sys.stderr, flush=True)
            return EXIT_USAGE
        time.sleep(WAIT_POLL)


def _needs_a_human(dd: DataDir, start: str | None, *, asks_only: bool) -> str | None:
    for a, live in asks.all_pending(dd):
        if live:
            options = f" [{'/'.join(a.options)}]" if a.options else ""
            return f"ask {a.id} ({a.worker}): {a.question}{options}"
    if asks_only:
        return None
    for beat in _beats_since(dd, start):
        t = beat.trailers
        if t.get("Looopbot-Outcome") == "failed":
            return f"failed beat {beat.commit[:10]}: {beat.subject}"
        if t.get("Looopbot-Action") == "send_notification":
            return f"notification {beat.commit[:10]}: {beat.subject}"
    return None


def _head(dd: DataDir) -> str | None:
    newest = next(gitstore.history(dd, 1), None)
    return newest.commit if newest else None


def _beats_since(dd: DataDir, start: str | None) -> list[gitstore.Beat]:
    found = []
    for beat in gitstore.history(dd, 50):
        if beat.commit == start:
            break
        found.append(beat)
    return list(reversed(found))


def _not_running(dd: DataDir) -> str | None:
    """Why the loop looks stopped (no beat for NOT_RUNNING_INTERVALS intervals), or None.
    A beat is known from this machine's last-beat note or, on a clone, the last beat
    commit — a quiet loop commits nothing, so only a local loop is seen that way."""
    try:
        interval = load(dd).limits.interval
    except LooopbotError:
        interval = 60.0
    last = 0.0
    raw = read_bytes_or_none(dd.scratch(LAST_BEAT))
    try:
        note = json.loads(raw) if raw is not None else {}
    except ValueError:
        note = {}
    if isinstance(note, dict) and isinstance(note.get("at"), int | float):
        last = float(note["at"])
    newest = next(gitstore.history(dd, 1), None)
    if newest is not None and newest.trailers.get("Looopbot-Outcome") != "init":
        last = max(last, float(newest.time))
    limit = NOT_RUNNING_INTERVALS * interval
    if last == 0.0:
        return "no beat has run here"
    if time.time() - last > limit:
        return f"no beat for {age(time.time() - last)} (over {NOT_RUNNING_INTERVALS} intervals)"
    return None
