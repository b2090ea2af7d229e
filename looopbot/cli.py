"""The command line (DESIGN §11): argparse and dispatch only.

Command modules are imported when their command runs, so `looopbot tick` on an unchanged
world pays for nothing it does not use.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from looopbot import __version__
from looopbot.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, LooopbotError


def _add(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str, target: str, help_: str
) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help_, description=help_)
    p.set_defaults(target=target)
    return p


def _json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON document")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="looopbot",
        description="A control loop for ongoing work whose whole memory is a git repository.",
    )
    top.add_argument("-V", "--version", action="version", version=f"looopbot {__version__}")
    top.add_argument(
        "-C",
        "--data-dir",
        metavar="DIR",
        help="the data dir (default: $LOOOPBOT_DATA_DIR, else the nearest looopbot.yaml upward)",
    )
    sub = top.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = _add(sub, "init", "init:init", "make (or adopt) a data repo with starter files")
    p.add_argument("dir", nargs="?", default=None, help="where (default: the current dir)")
    p.add_argument("--runner", default="example", help="claude, codex, gemini, pi or example")
    p.add_argument("--github", action="store_true", help="also install the GitHub workflows")

    p = _add(sub, "tick", "tick:tick", "run one beat")
    p.add_argument("--force", action="store_true", help="decide even if nothing changed")
    p.add_argument("--dry-run", action="store_true", help="sense and show, change nothing")
    p.add_argument("--push", action="store_true", help="push the beat commit (not yet available)")
    _json(p)

    p = _add(sub, "run", "run:run", "run beats in the foreground until interrupted")
    p.add_argument("--interval", type=float, help="seconds between beats (limits.interval)")
    p.add_argument("--max-beats", type=int, help="stop after this many beats")

    p = _add(sub, "status", "status:status", "last beat, outcome, guards, goals")
    _json(p)

    p = _add(sub, "journal", "reading:journal", "print the journal")
    p.add_argument("--tail", type=int, metavar="N", help="only the last N lines")

    p = _add(sub, "history", "reading:history", "the beats in git history, with trailers")
    p.add_argument("-n", type=int, default=20, metavar="N", help="how many beats (20)")
    _json(p)

    _add(sub, "prompt", "reading:prompt", "print the prompt the next decision would get")

    p = _add(sub, "cost", "reading:cost", "spend by day and runner")
    p.add_argument("period", nargs="?", choices=("today", "all"), default="all")
    _json(p)

    p = _add(sub, "goal", "steer:goal", "list, write or archive goals by hand")
    gsub = p.add_subparsers(dest="verb", metavar="VERB", required=True)
    g = gsub.add_parser("list", help="list the goals")
    _json(g)
    g = gsub.add_parser("write", help="write goals/ID.md (BODY, or - for stdin)")
    g.add_argument("id")
    g.add_argument("body", nargs="?", default="-")
    g = gsub.add_parser("archive", help="move goals/ID.md to goals/archive/")
    g.add_argument("id")

    p = _add(sub, "playbook", "steer:playbook", "replace PLAYBOOK.md by hand")
    psub = p.add_subparsers(dest="verb", metavar="VERB", required=True)
    g = psub.add_parser("write", help="replace PLAYBOOK.md (BODY, or - for stdin)")
    g.add_argument("body", nargs="?", default="-")

    p = _add(sub, "sensor", "steer:sensor", "list, write or run sensors")
    ssub = p.add_subparsers(dest="verb", metavar="VERB", required=True)
    g = ssub.add_parser("list", help="list the sensors")
    _json(g)
    g = ssub.add_parser("write", help="write sensors/NAME.sh (SCRIPT, or - for stdin)")
    g.add_argument("name")
    g.add_argument("script", nargs="?", default="-")
    g = ssub.add_parser("run", help="run sensors now and print their snapshots (writes nothing)")
    g.add_argument("name", nargs="?")

    p = _add(sub, "validate", "validate:validate", "check config, goals, sensors and ids")
    _json(p)

    p = _add(
        sub,
        "example-decider",
        "example:example_decider",
        "the offline example runner (reads a prompt on stdin, writes one decision)",
    )
    p.add_argument("--worker", metavar="PROMPT_FILE", help=argparse.SUPPRESS)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    module, _, func = str(args.target).partition(":")
    try:
        command = getattr(importlib.import_module(f"looopbot.commands.{module}"), func)
        code: int = command(args)
        return code
    except LooopbotError as exc:
        print(f"looopbot: {exc.message}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        print("looopbot: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return 0  # `looopbot journal | head`
    except Exception:
        return _crash(args)


def _crash(args: argparse.Namespace) -> int:
    """An unexpected error is a bug: keep the traceback where the user can send it to us."""
    text = traceback.format_exc()
    log: Path | None = None
    try:
        from looopbot.datadir import locate

        dd = locate(args.data_dir)
        dd.meta.mkdir(parents=True, exist_ok=True)
        log = dd.crash_log
        with log.open("a") as f:
            f.write(text + "\n")
    except Exception:
        log = None
    where = f"; the traceback is in {log}" if log else ""
    last = text.strip().splitlines()[-1]
    print(f"looopbot: internal error: {last}{where} — please report it", file=sys.stderr)
    if log is None:
        print(text, file=sys.stderr)
    return EXIT_INTERNAL


def entry() -> None:
    raise SystemExit(main())


if __name__ == "__main__":
    entry()
