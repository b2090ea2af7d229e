"""The command line (DESIGN §11): argparse and dispatch only.

Command modules are imported when their command runs, so `looopbot tick` on an unchanged
world pays for nothing it does not use.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from looopbot import __version__
from looopbot.errors import EXIT_FAIL, EXIT_INTERNAL, EXIT_INTERRUPTED, LooopbotError


def _json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON document")


def _init(p: argparse.ArgumentParser) -> None:
    p.add_argument("dir", nargs="?", default=None, help="where (default: the current dir)")
    p.add_argument(
        "--runner", default="example", help="claude, codex, gemini, pi, opencode or example"
    )
    p.add_argument("--github", action="store_true", help="also install the GitHub workflows")


def _tick(p: argparse.ArgumentParser) -> None:
    p.add_argument("--force", action="store_true", help="decide even if nothing changed")
    p.add_argument("--dry-run", action="store_true", help="sense and show, change nothing")
    p.add_argument(
        "--push", action="store_true", help="pull the remote branch first, push the commit after"
    )
    p.add_argument(
        "--artifacts",
        metavar="DIR",
        help="copy the run's prompt, output and decision into DIR/<run-id>/, redacted",
    )
    _json(p)


def _run(p: argparse.ArgumentParser) -> None:
    p.add_argument("--interval", type=float, help="seconds between beats (limits.interval)")
    p.add_argument("--max-beats", type=int, help="stop after this many beats")
    p.add_argument(
        "--push", action="store_true", help="pull before each beat and push after (git.push)"
    )
    p.add_argument("--json", action="store_true", help="print one JSON line per beat")


def _journal(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tail", type=int, metavar="N", help="only the last N lines")


def _history(p: argparse.ArgumentParser) -> None:
    p.add_argument("-n", type=int, default=20, metavar="N", help="how many beats (20)")
    _json(p)


def _nothing(p: argparse.ArgumentParser) -> None:
    pass


def _cost(p: argparse.ArgumentParser) -> None:
    p.add_argument("period", nargs="?", choices=("today", "all"), default="all")
    _json(p)


def _goal(p: argparse.ArgumentParser) -> None:
    verbs = p.add_subparsers(dest="verb", metavar="VERB", required=True)
    _json(verbs.add_parser("list", help="list the goals"))
    g = verbs.add_parser("write", help="write goals/ID.md (BODY, or - for stdin)")
    g.add_argument("id")
    g.add_argument("body", nargs="?", default="-")
    verbs.add_parser("archive", help="move goals/ID.md to goals/archive/").add_argument("id")


def _playbook(p: argparse.ArgumentParser) -> None:
    verbs = p.add_subparsers(dest="verb", metavar="VERB", required=True)
    g = verbs.add_parser("write", help="replace PLAYBOOK.md (BODY, or - for stdin)")
    g.add_argument("body", nargs="?", default="-")


def _sensor(p: argparse.ArgumentParser) -> None:
    verbs = p.add_subparsers(dest="verb", metavar="VERB", required=True)
    _json(verbs.add_parser("list", help="list the sensors"))
    g = verbs.add_parser("write", help="write sensors/NAME.sh (SCRIPT, or - for stdin)")
    g.add_argument("name")
    g.add_argument("script", nargs="?", default="-")
    g = verbs.add_parser("run", help="run sensors now and print their snapshots (writes nothing)")
    g.add_argument("name", nargs="?")


def _schedule(p: argparse.ArgumentParser) -> None:
    verbs = p.add_subparsers(dest="verb", metavar="VERB", required=True)
    _json(verbs.add_parser("list", help="list the schedules: when each is next due, its note"))
    g = verbs.add_parser("write", help="write schedules/NAME.yaml (NOTE, or - for stdin)")
    g.add_argument("name")
    g.add_argument("note", help="what to check when it is due (or - for stdin)")
    g.add_argument("--at", metavar="TIME", help="once, at an ISO 8601 time with a zone")
    g.add_argument("--every", metavar="DURATION", help="recurring: seconds, or 90s, 15m, 1h, 1d")
    g.add_argument("--start", metavar="TIME", help="with --every: the first due time")
    g.add_argument("--goal", metavar="ID", help="the goal it is about")
    verbs.add_parser("delete", help="remove schedules/NAME.yaml").add_argument("name")


def _unclaim(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="the resource's name (an id: letters, digits, '.', '_', '-')")
    p.add_argument(
        "--session",
        metavar="ID",
        help="the holder (default: $LOOOPBOT_SESSION_ID, else 'human')",
    )


def _claim(p: argparse.ArgumentParser) -> None:
    _unclaim(p)
    p.add_argument(
        "--ttl", type=float, default=86400.0, metavar="SECONDS", help="expire after (86400)"
    )


def _worker(p: argparse.ArgumentParser) -> None:
    verbs = p.add_subparsers(dest="verb", metavar="VERB", required=True)
    _json(verbs.add_parser("list", help="the workers: state, exit code, age, branch, flag"))
    g = verbs.add_parser("start", help="start worker ID on PROMPT (or - for stdin)")
    g.add_argument("id")
    g.add_argument("prompt")
    g.add_argument("--verify", metavar="CMD", help="a shell check run once after it exits")
    g.add_argument("--runner", metavar="NAME", help="run it with this runner's worker command")
    verbs.add_parser("stop", help="end the worker's whole process group").add_argument("id")
    g = verbs.add_parser("logs", help="print the worker's output.log")
    g.add_argument("id")
    g.add_argument("--tail", type=int, metavar="N", help="only the last N lines")
    g.add_argument("--follow", action="store_true", help="keep printing while it is live")
    g = verbs.add_parser("prune", help="remove finished workers older than limits.worker_ttl")
    g.add_argument("--all", action="store_true", help="every finished worker, whatever its age")


def _flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("id", help="the worker (usually $LOOOPBOT_SESSION_ID)")
    p.add_argument("message", help="the question a human must decide")


def _unflag(p: argparse.ArgumentParser) -> None:
    p.add_argument("id", help="the worker")


def _answer(p: argparse.ArgumentParser) -> None:
    p.add_argument("id", help="the worker, or the ask (<worker>#<n>)")
    p.add_argument("text", help="the answer (or - for stdin), delivered to its stdin")


def _ask(p: argparse.ArgumentParser) -> None:
    p.add_argument("id", help="the worker (usually $LOOOPBOT_SESSION_ID)")
    p.add_argument("question", help="the question a human must decide")
    p.add_argument("--options", metavar="A,B", help="the answers it takes, comma-separated")
    p.add_argument("--no-wait", action="store_true", help="print the ask id and return at once")


def _asks(p: argparse.ArgumentParser) -> None:
    _json(p)


def _wait(p: argparse.ArgumentParser) -> None:
    p.add_argument("--asks", action="store_true", help="wait for a pending ask only")


def _validate(p: argparse.ArgumentParser) -> None:
    _json(p)
    p.add_argument(
        "--github-annotations",
        action="store_true",
        help="print problems as GitHub annotations (automatic when GITHUB_ACTIONS=true)",
    )


def _github(p: argparse.ArgumentParser) -> None:
    verbs = p.add_subparsers(dest="verb", metavar="VERB", required=True)
    g = verbs.add_parser(
        "install", help="add or refresh the workflows in .github/workflows/ (never a changed one)"
    )
    g.add_argument("--branch", help="the branch the loop lives on (default: the current one)")
    g = verbs.add_parser(
        "preview", help="what this branch changes for the next beat, and whether it would wake"
    )
    g.add_argument("--base", default="HEAD^1", help="the revision to compare with (HEAD^1)")
    _json(g)


def _watch(p: argparse.ArgumentParser) -> None:
    p.add_argument("--once", action="store_true", help="draw one frame and exit")


def _completion(p: argparse.ArgumentParser) -> None:
    # The names are repeated here (not imported) so building the parser imports nothing.
    p.add_argument("shell", choices=("bash", "zsh", "fish"), help="which shell's script")


def _example(p: argparse.ArgumentParser) -> None:
    p.add_argument("--worker", metavar="PROMPT_FILE", help=argparse.SUPPRESS)


Configure = Callable[[argparse.ArgumentParser], None]

# name -> (module:function, help, arguments)
COMMANDS: dict[str, tuple[str, str, Configure]] = {
    "init": ("init:init", "make (or adopt) a data repo with starter files", _init),
    "tick": ("tick:tick", "run one beat", _tick),
    "run": ("run:run", "run beats in the foreground until interrupted", _run),
    "status": ("status:status", "last beat, outcome, guards, goals", _json),
    "journal": ("reading:journal", "print the journal", _journal),
    "history": ("reading:history", "the beats in git history, with trailers", _history),
    "prompt": ("reading:prompt", "print the prompt the next decision would get", _nothing),
    "cost": ("reading:cost", "spend by day and runner", _cost),
    "goal": ("steer:goal", "list, write or archive goals by hand", _goal),
    "playbook": ("steer:playbook", "replace PLAYBOOK.md by hand", _playbook),
    "sensor": ("steer:sensor", "list, write or run sensors", _sensor),
    "schedule": ("schedule:schedule", "list, write or delete durable wake-ups", _schedule),
    "validate": (
        "validate:validate",
        "check config, goals, sensors, schedules, ids and workflows",
        _validate,
    ),
    "worker": ("worker:worker", "list, start, stop, follow or prune workers", _worker),
    "flag": ("worker:flag", "raise a worker's question for a human (run by the worker)", _flag),
    "unflag": ("worker:unflag", "take a worker's question down", _unflag),
    "answer": ("worker:answer", "answer a flagged worker: the text goes to its stdin", _answer),
    "ask": (
        "asks:ask",
        "a worker asks a human, with options; waits for the answer and prints it",
        _ask,
    ),
    "asks": ("asks:list_asks", "the pending asks: worker, age, options, STRANDED", _asks),
    "wait": (
        "asks:wait",
        "block until something needs a human (an ask, a notification, a failed beat)",
        _wait,
    ),
    "claim": ("claims:claim", "take a named claim on a shared resource (a branch lease)", _claim),
    "unclaim": ("claims:unclaim", "release a named claim (the holder's, or a stale one)", _unclaim),
    "github": ("github:github", "install the GitHub Actions workflows; preview a branch", _github),
    "watch": (
        "watch:watch_cmd",
        "a live view: beats, workers, questions, spend, next wake (reads the repo only)",
        _watch,
    ),
    "completion": (
        "completion:completion",
        "print a shell completion script (bash, zsh or fish)",
        _completion,
    ),
    "example-decider": (
        "example:example_decider",
        "the offline example runner (reads a prompt on stdin, writes one decision)",
        _example,
    ),
}


def parser(only: str | None = None) -> argparse.ArgumentParser:
    """The argument parser; with `only`, just that command's (argparse is slow to build
    and an unchanged `tick` should not pay for every other command's arguments)."""
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
    for name, (target, help_, configure) in COMMANDS.items():
        if only is not None and name != only:
            continue
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(target=target)
        configure(p)
    return top


def _command_word(argv: Sequence[str]) -> str | None:
    """The command named in argv, skipping the global options; None if none is known."""
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("-C", "--data-dir"):
            i += 2
            continue
        if arg.startswith("-"):
            i += 1
            continue
        return arg if arg in COMMANDS else None
    return None


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    # Run from a git hook or an editor, we inherit GIT_INDEX_FILE, GIT_DIR…: no git call
    # of ours, in any library or child, may be redirected by them (looopbot.gitenv).
    from looopbot.gitenv import scrub

    scrub()
    args = parser(only=_command_word(argv)).parse_args(argv)
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
    except (PermissionError, NotADirectoryError, IsADirectoryError, FileExistsError) as exc:
        # The file system said no (a read-only checkout, a file where a folder belongs):
        # the user can fix that, so it is an expected failure, not a crash.
        where = f" {exc.filename}" if exc.filename else ""
        print(
            f"looopbot: cannot use{where}: {exc.strerror or exc} — fix the path or its permissions",
            file=sys.stderr,
        )
        return EXIT_FAIL
    except Exception:
        return _crash(args, argv)


def _crash(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """An unexpected error is a bug: leave a bug report (looopbot.crash) the user can send."""
    import shlex
    import traceback

    from looopbot import crash
    from looopbot.redact import redactor

    text = traceback.format_exc()
    scrub = redactor()
    log: Path | None = None
    try:
        from looopbot.datadir import locate

        dd = locate(args.data_dir)
        crash.write(dd.crash_log, crash.report(shlex.join(["looopbot", *argv]), text))
        log = dd.crash_log
    except Exception:
        log = None
    where = f"; the report is in {log}" if log else ""
    last = scrub(text.strip().splitlines()[-1])
    print(f"looopbot: internal error: {last}{where} — please report it", file=sys.stderr)
    if log is None:
        print(scrub(text), file=sys.stderr)
    return EXIT_INTERNAL


def entry() -> None:
    raise SystemExit(main())


if __name__ == "__main__":
    entry()
