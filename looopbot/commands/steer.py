"""Steering by hand: `goal`, `playbook`, `sensor`. Each write is validated, journaled and
committed exactly like a beat's action, under the same lock."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import Any

from looopbot import desired, record, sense
from looopbot.act import execute
from looopbot.actions import parse_decision, summary
from looopbot.changes import Changes, Move
from looopbot.config import Config, load
from looopbot.datadir import DataDir, locate
from looopbot.errors import EXIT_OK, LooopbotError
from looopbot.gitstate import check_committable
from looopbot.lock import beat_lock
from looopbot.redact import redactor
from looopbot.runs import new_run_id


def text_arg(arg: str, what: str) -> str:
    """A lone `-` reads stdin; anything else is the text itself."""
    if arg == "-":
        if sys.stdin.isatty():
            print(f"reading {what} from stdin (end with Ctrl-D)…", file=sys.stderr)
        return sys.stdin.read()
    return arg


def by_hand(
    dd: DataDir,
    action: str,
    do: Callable[[Config, Changes, Callable[[str], str]], str],
    summary: str = "",
) -> str | None:
    """Do one move by hand under the beat lock, journal it ("by hand: …") and commit it
    like a beat's action (looopbot.record); `do` acts and returns the journal text.
    Returns the commit id."""
    from looopbot import sync

    with beat_lock(dd):
        config = load(dd)
        check_committable(dd)
        # Push on: the remote first, as a beat does, so the move is made on the latest.
        pulled = sync.pull(dd, config) if config.push else None
        now = time.time()
        changes = record.start(dd)
        scrub = redactor()
        with changes.executing(Move(action, scrub(summary or "(by hand)"))):
            text = "by hand: " + scrub(do(config, changes, scrub))
        sha = record.record(
            dd,
            config,
            changes,
            record.Entry(
                outcome="manual",
                run_id=new_run_id(now),
                subject=text,
                head=action,
                journal=text,
                action=action,
            ),
            now,
        )
        print(f"{text}" + (f" [{sha[:10]}]" if sha else ""), flush=True)
        sync.after_commit(dd, config, pulled)
    return sha


def apply(dd: DataDir, obj: dict[str, Any]) -> str | None:
    """Validate and execute one action by hand; returns the commit id."""
    # allowed_actions restrains the decider, not the operator at the keyboard.
    decision = parse_decision(obj)

    def do(config: Config, changes: Changes, scrub: Callable[[str], str]) -> str:
        acted = execute(dd, config, decision, changes, scrub)
        if acted.error:
            raise LooopbotError(acted.error)
        return summary(decision)

    return by_hand(dd, decision.name, do, summary(decision))


def goal(args: argparse.Namespace) -> int:
    dd = locate(args.data_dir)
    if args.verb == "list":
        rows = []
        for gid, body in desired.goals_of(desired.read(dd)):
            first = body.split("\n", 1)[0]
            rows.append(
                {"id": gid, "goal": first[5:].strip() if first.startswith("goal:") else first}
            )
        if args.json:
            print(json.dumps({"goals": rows}))
        else:
            for row in rows:
                print(f"{row['id']}\t{row['goal']}")
        return EXIT_OK
    if args.verb == "write":
        apply(dd, {"action": "write_goal", "id": args.id, "body": text_arg(args.body, "the goal")})
    else:
        apply(dd, {"action": "archive_goal", "id": args.id})
    return EXIT_OK


def playbook(args: argparse.Namespace) -> int:
    dd = locate(args.data_dir)
    apply(dd, {"action": "write_playbook", "body": text_arg(args.body, "the playbook")})
    return EXIT_OK


def sensor(args: argparse.Namespace) -> int:
    dd = locate(args.data_dir)
    if args.verb == "write":
        apply(
            dd,
            {
                "action": "write_sensor",
                "name": args.name,
                "script": text_arg(args.script, "the script"),
            },
        )
        return EXIT_OK
    sensors = sense.discover(dd)
    if args.verb == "list":
        rows = [
            {
                "name": s.name.removeprefix("sensor-"),
                "path": f"sensors/{s.path.name}",
                "interval": s.interval,
                "executable": s.argv()[0] != "bash",
            }
            for s in sensors
        ]
        if args.json:
            print(json.dumps({"sensors": rows}))
        else:
            for row in rows:
                every = f"every {row['interval']:g}s" if row["interval"] else "every beat"
                print(f"{row['name']}\t{row['path']}\t{every}")
        return EXIT_OK
    if args.name is not None:
        sensors = [s for s in sensors if s.name == f"sensor-{args.name}"]
        if not sensors:
            raise LooopbotError(f"no sensor '{args.name}' (sensors/{args.name}.sh is missing)")
    values = sense.run_sensors(dd, sensors, load(dd).limits, time.time(), honour_interval=False)
    print(json.dumps(values, indent=2, sort_keys=True, ensure_ascii=False))
    return EXIT_OK
