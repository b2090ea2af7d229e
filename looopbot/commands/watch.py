"""`looopbot watch`: a live terminal view of the loop (rich), redrawn as beats land.

It polls the data repo: HEAD moving (a beat's commit, a pull) redraws at once; otherwise
the view is redrawn every few seconds so ages stay true. It writes nothing.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from looopbot import watch
from looopbot.config import load
from looopbot.datadir import locate
from looopbot.errors import EXIT_OK
from looopbot.text import age

POLL = 0.5  # seconds between looks at HEAD
REDRAW = 5.0  # seconds between redraws when nothing moved (for the ages)

_OUTCOME_STYLE = {
    "decided": "green",
    "failed": "bold red",
    "unchanged": "dim",
    "manual": "cyan",
    "backoff": "yellow",
    "capped": "yellow",
    "budget": "yellow",
}


def watch_cmd(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.live import Live

    dd = locate(args.data_dir)
    console = Console()
    if args.once:
        console.print(_frame(watch.gather(dd, load(dd), time.time()), time.time()))
        return EXIT_OK
    seen: str | None = None
    drawn = 0.0
    try:
        with Live(console=console, auto_refresh=False, screen=False) as live:
            while True:
                now = time.time()
                view = watch.gather(dd, load(dd), now)
                if view.head != seen or now - drawn >= REDRAW:
                    live.update(_frame(view, now), refresh=True)
                    seen, drawn = view.head, now
                time.sleep(POLL)
    except KeyboardInterrupt:
        return EXIT_OK


def _frame(view: watch.View, now: float) -> Any:
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    beats = Table(title="last beats", title_justify="left", expand=True, show_edge=False)
    for column in ("when", "outcome", "action", "journal", "cost"):
        beats.add_column(column, overflow="fold" if column == "journal" else "ellipsis")
    for beat in view.beats:
        beats.add_row(
            f"{age(now - beat.at)} ago",
            Text(beat.outcome, style=_OUTCOME_STYLE.get(beat.outcome, "")),
            beat.action or "",
            Text(beat.journal),  # Text, not markup: a journal line is untrusted
            "" if beat.cost_usd is None else f"${beat.cost_usd:.4f}",
        )
    if not view.beats:
        beats.add_row("", "", "", "(no beats yet)", "")
    workers = Table(title="workers", title_justify="left", expand=True, show_edge=False)
    for column in ("id", "state", "exit", "verify", "question"):
        workers.add_column(column)
    for w in view.workers:
        workers.add_row(
            Text(str(w.get("id", ""))),
            Text(str(w.get("health") or w.get("state", ""))),
            "" if w.get("exit_code") is None else str(w["exit_code"]),
            Text(str(w.get("verify") or "")),
            Text(str(w.get("note") or "")),
        )
    if not view.workers:
        workers.add_row("(none)", "", "", "", "")
    asks = watch.questions(view)
    lines = [
        Text.assemble(("spend      ", "bold"), watch.spend_line(view)),
        Text.assemble(("next wake  ", "bold"), watch.wake_line(view, now)),
        Text.assemble(
            ("asks       ", "bold"),
            f"{len(asks)} waiting for a human" if asks else "none pending",
        ),
    ]
    lines += [Text(f"  {wid}: {question}") for wid, question in asks]
    return Group(beats, Text(""), workers, Text(""), *lines)
