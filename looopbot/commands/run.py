"""`looopbot run`: beats in the foreground until interrupted.

SIGINT or SIGTERM asks for a clean stop: the current beat finishes (its children run in
their own process groups, so Ctrl-C does not reach them) and the loop ends. A second
signal stops at once.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from types import FrameType
from typing import Any

from looopbot.beat import run_beat
from looopbot.commands.tick import describe, warn_unknown_env
from looopbot.config import load
from looopbot.datadir import DataDir, locate
from looopbot.errors import EXIT_INTERRUPTED, EXIT_OK, LockHeld, LooopbotError
from looopbot.fsutil import read_bytes_or_none
from looopbot.state import StateUnreadable, parse


def run(args: argparse.Namespace) -> int:
    warn_unknown_env()
    if args.push:
        os.environ["LOOOPBOT_PUSH"] = "1"  # as tick --push: for claims and workers too
    dd = locate(args.data_dir)
    stop = threading.Event()
    received: list[int] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        received.append(signum)
        stop.set()
        print("looopbot: stopping after the current beat", file=sys.stderr, flush=True)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    beats = 0
    say = _json_line if args.json else _text_line
    while not stop.is_set():
        config = load(dd)
        interval = args.interval if args.interval is not None else config.limits.interval
        try:
            result = run_beat(dd, push=args.push)
            say(describe(result), result.public())
        except LockHeld as exc:
            say(exc.message, {"outcome": "locked", "error": exc.message})
        except LooopbotError as exc:
            # A broken setup (bad config, mid-rebase) is reported and retried next beat:
            # the human may be fixing it right now.
            say(f"error: {exc.message}", {"outcome": "error", "error": exc.message}, err=True)
        beats += 1
        if args.max_beats is not None and beats >= args.max_beats:
            break
        stop.wait(_sleep_for(dd, interval))
    if received and received[0] == signal.SIGINT:
        return EXIT_INTERRUPTED
    return EXIT_OK


def _text_line(text: str, _doc: dict[str, Any], *, err: bool = False) -> None:
    print(f"{time.strftime('%H:%M:%S')} {text}", file=sys.stderr if err else sys.stdout, flush=True)


def _json_line(_text: str, doc: dict[str, Any], *, err: bool = False) -> None:
    """One JSON object per beat on stdout, errors included, for a log shipper: the fields of
    `tick --json` (a held lock and a broken setup as outcome `locked` / `error`) and the
    time the beat ended."""
    line = {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **doc}
    print(json.dumps(line, sort_keys=True), flush=True)


def _sleep_for(dd: DataDir, interval: float) -> float:
    """The interval, or less when a follow-up the decider asked for falls due sooner."""
    raw = read_bytes_or_none(dd.state)
    if raw is None:
        return interval
    try:
        follow = parse(raw).follow_up_at
    except StateUnreadable:
        return interval
    if follow is None:
        return interval
    return max(0.0, min(interval, follow - time.time()))
