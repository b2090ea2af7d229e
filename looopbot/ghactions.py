"""What looopbot tells GitHub Actions while it runs there: the job summary and annotations.

looopbot writes its own job summary when `$GITHUB_STEP_SUMMARY` is set, rather than leaving
a workflow step to format `tick --json`: the text is built, escaped for Markdown and redacted
in one tested place; it is there even when the beat fails or looopbot refuses to start one;
and the workflow stays one plain `looopbot tick` line that a user can read and change.
Outside Actions the variable is unset and nothing is written.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Any

from looopbot.redact import redactor

SUMMARY_VAR = "GITHUB_STEP_SUMMARY"


def in_actions(env: Mapping[str, str] | None = None) -> bool:
    """Running as a GitHub Actions step (GitHub sets GITHUB_ACTIONS=true there)."""
    return (os.environ if env is None else env).get("GITHUB_ACTIONS") == "true"


def append_summary(markdown: str, env: Mapping[str, str] | None = None) -> None:
    """Append Markdown to the job summary, when there is one. A summary that cannot be
    written is a warning: it must never fail the beat it describes."""
    path = (os.environ if env is None else env).get(SUMMARY_VAR)
    if not path:
        return
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write(markdown.rstrip("\n") + "\n\n")
    except OSError as exc:
        print(f"looopbot: warning: cannot write the job summary {path}: {exc}", file=sys.stderr)


def cell(value: Any) -> str:
    """A value as one Markdown table cell: one line, pipes escaped."""
    text = " ".join(str(value).split())
    return text.replace("\\", "\\\\").replace("|", "\\|") or " "


def table(rows: list[tuple[str, Any]]) -> str:
    lines = ["| | |", "| --- | --- |"]
    lines += [f"| {cell(k)} | {cell(v)} |" for k, v in rows]
    return "\n".join(lines)


def beat_summary(doc: Mapping[str, Any], env: Mapping[str, str] | None = None) -> str:
    """The job summary of one beat, from its `tick --json` document (plus `reason`)."""
    env = os.environ if env is None else env
    scrub = redactor(env)
    rows: list[tuple[str, Any]] = [("outcome", doc.get("outcome") or "?")]
    said = {doc.get("outcome"), doc.get("journal")}
    for key in ("action", "journal", "reason", "error"):
        # The reason repeats the journal of a decided beat and the outcome of a quiet one.
        if doc.get(key) and (key != "reason" or doc[key] not in said):
            rows.append((key, scrub(str(doc[key]))))
    if doc.get("cost_usd") is not None:
        rows.append(("cost", f"${float(doc['cost_usd']):.4f}"))
    commit = doc.get("commit")
    if commit:
        server, repo = env.get("GITHUB_SERVER_URL"), env.get("GITHUB_REPOSITORY")
        short = f"`{str(commit)[:10]}`"
        rows.append(
            ("commit", f"[{short}]({server}/{repo}/commit/{commit})" if server and repo else short)
        )
    else:
        rows.append(("commit", "none (nothing changed)"))
    if doc.get("push") is not None:
        rows.append(("push", scrub(_plain(doc["push"]))))
    return "### looopbot beat\n\n" + table(rows)


def refusal_summary(message: str, env: Mapping[str, str] | None = None) -> str:
    """The job summary of a `tick` that stopped with an error: refused to start a beat (bad
    config, a lock held…) or failed after one."""
    return "### looopbot beat\n\n" + table([("error", redactor(env)(message))])


def _plain(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}: {v}" for k, v in value.items() if v not in (None, "", []))
    return str(value)


def annotation(message: str, path: str | None = None, line: int = 0, level: str = "error") -> str:
    """A workflow command GitHub shows on the file and line: `::error file=…,line=…::msg`."""
    props = []
    if path:
        props.append(f"file={_escape_property(path)}")
        if line:
            props.append(f"line={line}")
    head = f"::{level} {','.join(props)}" if props else f"::{level}"
    return f"{head}::{_escape_data(message)}"


def _escape_data(text: str) -> str:
    # The escapes GitHub's own toolkit (@actions/core) applies: a newline would end the
    # command and a literal %0A would be read as one.
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")
