"""Reading commands: `journal`, `history`, `prompt`, `cost`."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from typing import Any

from looopbot import ledger
from looopbot.datadir import locate
from looopbot.errors import EXIT_OK
from looopbot.fsutil import tail_lines


def journal(args: argparse.Namespace) -> int:
    dd = locate(args.data_dir)
    if args.tail is not None:
        lines = tail_lines(dd.journal, args.tail)
        sys.stdout.write("".join(line + "\n" for line in lines))
        return EXIT_OK
    try:
        with dd.journal.open(encoding="utf-8", errors="replace") as f:
            for line in f:
                sys.stdout.write(line)
    except FileNotFoundError:
        pass
    return EXIT_OK


def history(args: argparse.Namespace) -> int:
    from looopbot.gitstore import history as beats

    dd = locate(args.data_dir)
    found = list(beats(dd, max(0, args.n)))
    rows = [
        {
            "commit": b.commit,
            "time": b.time,
            "subject": b.subject,
            "run": b.trailers.get("Looopbot-Run"),
            "outcome": b.trailers.get("Looopbot-Outcome"),
            "action": b.trailers.get("Looopbot-Action"),
            "world": b.trailers.get("Looopbot-World"),
            "cost_usd": float(b.trailers["Looopbot-Cost-USD"])
            if "Looopbot-Cost-USD" in b.trailers
            else None,
        }
        for b in found
    ]
    if args.json:
        print(json.dumps({"beats": rows}))
        return EXIT_OK
    for b in found:
        stamp = time.strftime("%Y-%m-%d %H:%M", time.localtime(b.time))
        outcome = b.trailers.get("Looopbot-Outcome", "")
        print(f"{b.commit[:10]} {stamp} {outcome:<9} {b.subject}")
    return EXIT_OK


def prompt(args: argparse.Namespace) -> int:
    """The prompt from the snapshots on disk, without running sensors or writing anything."""
    from looopbot import desired, sense
    from looopbot import state as state_mod
    from looopbot.config import load
    from looopbot.decide import prompt_input
    from looopbot.prompt import build
    from looopbot.world import World, desired_hash, wake_signal, world_hash

    dd = locate(args.data_dir)
    config = load(dd)
    try:
        st = state_mod.parse(dd.state.read_bytes())
    except (OSError, state_mod.StateUnreadable):
        st = state_mod.State()
    snapshots: dict[str, Any] = {}
    for name in sense.snapshot_names(dd):
        try:
            snapshots[name] = json.loads((dd.snapshots / f"{name}.json").read_bytes())
        except ValueError:
            continue
    want = desired.read(dd)
    signals = {n: wake_signal(v) for n, v in snapshots.items()}
    world = World(want, snapshots, signals, world_hash(want, signals), desired_hash(want))
    print(build(prompt_input(dd, config, st, world, time.time())), end="")
    return EXIT_OK


def cost(args: argparse.Namespace) -> int:
    dd = locate(args.data_dir)
    now = time.time()
    since = ledger.day_start(now) if args.period == "today" else 0.0
    by: dict[tuple[str, str], dict[str, Any]] = defaultdict(
        lambda: {"runs": 0, "cost_usd": 0.0, "unmetered": 0}
    )
    for row in ledger.rows(dd.ledger):
        if row.ts < since:
            continue
        key = (time.strftime("%Y-%m-%d", time.localtime(row.ts)), row.runner)
        by[key]["runs"] += 1
        if row.cost_usd is None:
            by[key]["unmetered"] += 1
        else:
            by[key]["cost_usd"] += row.cost_usd
    days = [{"day": d, "runner": r, **v} for (d, r), v in sorted(by.items())]
    total = sum(d["cost_usd"] for d in days)
    if args.json:
        print(json.dumps({"period": args.period, "total_usd": total, "days": days}))
        return EXIT_OK
    for d in days:
        extra = f" ({d['unmetered']} unmetered)" if d["unmetered"] else ""
        print(f"{d['day']}  {d['runner']:<10} {d['runs']:>4} runs  ${d['cost_usd']:.4f}{extra}")
    print(f"total ({args.period}): ${total:.4f}")
    return EXIT_OK
