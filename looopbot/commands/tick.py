"""`looopbot tick`: one beat."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from looopbot import artifacts, ghactions
from looopbot.beat import BeatResult, dry_run, run_beat
from looopbot.config import unknown_env
from looopbot.datadir import DataDir, locate
from looopbot.errors import EXIT_FAIL, EXIT_OK, LooopbotError


def warn_unknown_env() -> None:
    """A misspelled LOOOPBOT_* override would otherwise be ignored without a word."""
    for message in unknown_env(os.environ):
        print(f"looopbot: warning: {message}", file=sys.stderr)


def tick(args: argparse.Namespace) -> int:
    try:
        return _tick(args)
    except LooopbotError as exc:
        # Under GitHub Actions the job summary says why the beat did not run or failed.
        ghactions.append_summary(ghactions.refusal_summary(exc.message))
        raise


def _tick(args: argparse.Namespace) -> int:
    warn_unknown_env()
    if args.push:
        # Push on for everything this beat does and starts: its claims and its workers'
        # claims go to the remote (whose fetch they must survive), their branches too.
        os.environ["LOOOPBOT_PUSH"] = "1"
    dd = locate(args.data_dir)
    if args.dry_run:
        if args.artifacts:
            raise LooopbotError("--artifacts exports a beat's run; a dry run has none")
        result = dry_run(dd, force=args.force)
        if args.json:
            print(json.dumps({**result.public(), "reason": result.reason, "prompt": result.prompt}))
        else:
            if result.prompt:
                print(result.prompt)
            print(f"# dry run: {result.reason} (world {result.world_hash[:12]})")
        return EXIT_OK
    result = run_beat(dd, force=args.force, push=args.push)
    if args.artifacts:
        artifacts.export(dd, result.run_id, result.public(), Path(args.artifacts))
    return report(dd, result, as_json=args.json)


def report(dd: DataDir, result: BeatResult, *, as_json: bool) -> int:
    failed = result.outcome == "failed"
    ghactions.append_summary(ghactions.beat_summary({**result.public(), "reason": result.reason}))
    if as_json:
        print(json.dumps(result.public()))
    else:
        print(describe(result))
    if failed:
        print(f"looopbot: beat failed: {result.error}", file=sys.stderr)
    if result.github and as_json:
        print(f"looopbot: {result.github}", file=sys.stderr)  # the beat itself is fine
    pushed = result.push
    if pushed is not None and not pushed.ok:
        # The beat's commit is safe locally; the next beat with push on sends it.
        print(f"looopbot: {pushed.line()}", file=sys.stderr)
    return EXIT_FAIL if failed or (pushed is not None and not pushed.ok) else EXIT_OK


def describe(result: BeatResult) -> str:
    said = _describe(result)
    if result.push is not None:
        said += f"\n  {result.push.line()}"
    if result.github:
        said += f"\n  {result.github}"
    return said


def _describe(result: BeatResult) -> str:
    commit = f" [{result.commit[:10]}]" if result.commit else ""
    if result.outcome == "decided":
        cost = f" ${result.cost_usd:.4f}" if result.cost_usd is not None else ""
        return f"decided {result.action}: {result.journal}{cost}{commit}"
    if result.outcome == "failed":
        return f"failed: {result.error}{commit}"
    return f"{result.outcome}: {result.reason} (world {result.world_hash[:12]}){commit}"
