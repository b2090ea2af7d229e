"""`looopbot tick`: one beat."""

from __future__ import annotations

import argparse
import json
import sys

from looopbot.beat import BeatResult, dry_run, run_beat
from looopbot.datadir import DataDir, locate
from looopbot.errors import EXIT_FAIL, EXIT_OK, LooopbotError

PUSH_UNAVAILABLE = (
    "push is not available in this version of looopbot — drop --push, git.push and "
    "LOOOPBOT_PUSH; beats still commit locally"
)


def tick(args: argparse.Namespace) -> int:
    dd = locate(args.data_dir)
    if args.push:
        raise LooopbotError(PUSH_UNAVAILABLE)
    if args.dry_run:
        result = dry_run(dd, force=args.force)
        if args.json:
            print(json.dumps({**result.public(), "reason": result.reason, "prompt": result.prompt}))
        else:
            if result.prompt:
                print(result.prompt)
            print(f"# dry run: {result.reason} (world {result.world_hash[:12]})")
        return EXIT_OK
    return report(dd, run_beat(dd, force=args.force), as_json=args.json)


def report(dd: DataDir, result: BeatResult, *, as_json: bool) -> int:
    failed = result.outcome == "failed"
    if as_json:
        print(json.dumps(result.public()))
    else:
        print(describe(result))
    if failed:
        print(f"looopbot: beat failed: {result.error}", file=sys.stderr)
        return EXIT_FAIL
    return EXIT_OK


def describe(result: BeatResult) -> str:
    commit = f" [{result.commit[:10]}]" if result.commit else ""
    if result.outcome == "decided":
        cost = f" ${result.cost_usd:.4f}" if result.cost_usd is not None else ""
        return f"decided {result.action}: {result.journal}{cost}{commit}"
    if result.outcome == "failed":
        return f"failed: {result.error}{commit}"
    return f"{result.outcome}: {result.reason} (world {result.world_hash[:12]}){commit}"
