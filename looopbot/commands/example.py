"""The example decider: an offline runner for trying the loop without an LLM.

It is an EXAMPLE of the runner contract, not a decision-maker: it reads the prompt on stdin
and writes one valid decision to $LOOOPBOT_DECISION_FILE (or prints it). It makes one
scripted move — a first note on the seeded setup goal — and otherwise a `noop` that says to
wire a real runner.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from looopbot.errors import EXIT_OK, LooopbotError
from looopbot.fsutil import write_atomic

NOTE_HEADING = "## Notes from the example decider"
EXAMPLE_EMAIL = "looopbot@users.noreply.github.com"


def goal_body(prompt: str, gid: str) -> str | None:
    """A goal's body as the prompt shows it, with the section escaping undone."""
    lines = prompt.split("\n")
    try:
        start = lines.index(f"--- goals/{gid}.md") + 1
    except ValueError:
        return None
    body: list[str] = []
    for line in lines[start:]:
        if line.startswith(("--- ", "=== ")):
            break
        body.append(line[1:] if line.startswith(("\\===", "\\---")) else line)
    return "\n".join(body).rstrip() + "\n"


def choose(prompt: str) -> dict[str, Any]:
    setup = goal_body(prompt, "setup")
    if setup is not None and NOTE_HEADING not in setup:
        note = (
            f"\n{NOTE_HEADING}\n"
            "- The loop ran: sensors sensed, a decision was made, and this note was committed.\n"
            "- Next: wire a real runner (`looopbot init --runner claude`, or edit looopbot.yaml)\n"
            "  and replace this goal with your own.\n"
        )
        return {
            "action": "write_goal",
            "id": "setup",
            "body": setup + note,
            "journal": "example decider: added a first note to the setup goal",
        }
    return {
        "action": "noop",
        "reason": "the example decider has nothing scripted for this world",
        "journal": "example decider: noop — wire a real runner (claude, codex, gemini, pi)",
    }


def example_worker(brief_file: str) -> int:
    """An example worker: writes a report about its task in its worktree and commits it on
    its branch, the way the worker contract asks; for trying workers without an LLM."""
    from looopbot import gitcli

    brief = Path(brief_file).read_text(encoding="utf-8", errors="replace")
    task = brief.split("# Your task", 1)[-1].strip()
    session = os.environ.get("LOOOPBOT_SESSION_ID", "example")
    report = Path("reports") / f"{session}.md"
    report.parent.mkdir(exist_ok=True)
    report.write_text(
        f"# Report from the example worker\n\nTask:\n\n{task}\n\n"
        "This is an example: a real runner's worker would do the work here.\n"
    )
    # An identity of its own, so the example works where no git identity is configured.
    ident = ["-c", "user.name=looopbot example worker", "-c", f"user.email={EXAMPLE_EMAIL}"]
    here = Path.cwd()
    try:
        gitcli.run(here, "add", "--", str(report))
        gitcli.run(here, *ident, "commit", "-q", "-m", f"{session}: report")
    except gitcli.GitFailed as exc:
        raise LooopbotError(f"example worker: {exc.message}") from None
    print(f"example worker: committed {report}")
    return EXIT_OK


def example_decider(args: argparse.Namespace) -> int:
    if args.worker:
        return example_worker(args.worker)
    decision = choose(sys.stdin.read())
    text = json.dumps(decision)
    target = os.environ.get("LOOOPBOT_DECISION_FILE")
    if target:
        write_atomic(Path(target), text)
        print(f"example decider: wrote {decision['action']} to {target}")
    else:
        print(text)
    return EXIT_OK
