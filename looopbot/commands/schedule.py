"""`looopbot schedule list|write|delete`: durable wake-ups by hand. A write or a delete is
validated, journaled and committed exactly like the write_schedule / delete_schedule move."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from looopbot.commands.steer import apply, text_arg
from looopbot.datadir import locate
from looopbot.errors import EXIT_OK, LooopbotError
from looopbot.schedules import store
from looopbot.schedules.spec import iso
from looopbot.text import age


def schedule(args: argparse.Namespace) -> int:
    dd = locate(args.data_dir)
    if args.verb == "list":
        return _list(store.read_all(dd), time.time(), as_json=args.json)
    if args.verb == "delete":
        apply(dd, {"action": "delete_schedule", "name": args.name})
        return EXIT_OK
    if (args.at is None) == (args.every is None):
        raise LooopbotError("schedule write: give exactly one of --at TIME or --every DURATION")
    decision = {
        "action": "write_schedule",
        "name": args.name,
        "note": text_arg(args.note, "the note"),
        "at": args.at,
        "every": args.every,
        "start": args.start,
        "goal": args.goal,
    }
    apply(dd, decision)
    return EXIT_OK


def _list(entries: list[store.Entry], now: float, *, as_json: bool) -> int:
    rows: list[dict[str, Any]] = []
    for e in entries:
        s = e.schedule
        if s is None:
            rows.append({"name": e.name, "error": e.error})
            continue
        rows.append(
            {
                "name": e.name,
                "at": s.at,
                "every": s.every,
                "next": s.due,
                "due": s.is_due(now),
                "note": s.note,
                "goal": s.goal,
            }
        )
    if as_json:
        print(json.dumps({"schedules": rows}))
        return EXIT_OK
    for row in rows:
        if "error" in row:
            print(f"{row['name']}\terror: {row['error']}")
            continue
        kind = "once" if row["at"] is not None else f"every {row['every']}s"
        nxt = row["next"]
        if nxt is None:
            when = "due now (first run)"
        elif row["due"]:
            when = f"due since {iso(nxt)} ({age(now - nxt)} overdue)"
        else:
            when = f"next {iso(nxt)} (in {age(nxt - now)})"
        goal = f"\tgoal {row['goal']}" if row["goal"] else ""
        note = " ".join(str(row["note"]).split())
        print(f"{row['name']}\t{kind}\t{when}{goal}\t{note}")
    return EXIT_OK
