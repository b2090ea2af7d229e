"""`validate`'s check of a GitHub workflow file: what would make GitHub reject it, or make a
looopbot workflow quietly stop beating. Not a linter (actionlint is one); the few mistakes a
hand edit of a goal-repo workflow makes, with the line to fix."""

from __future__ import annotations

import re
from typing import Any

# A shell line that runs looopbot: at its start or after `;`, `&&`, `||`, `|`, possibly
# behind VAR=value assignments or `python -m` (not `pip install looopbot`).
_CALLS = re.compile(
    r"(?:^|[;&|(]\s*)\s*(?:\w+=\S*\s+)*(?:python3?\s+-m\s+)?looopbot(?:\s|$)", re.MULTILINE
)


def is_looopbot_workflow(name: str, text: str) -> bool:
    """One of looopbot's own workflows: stamped by `github install`, or named for it."""
    from looopbot.workflows import STAMP_LINE

    return name.startswith("looopbot") or STAMP_LINE in text


def check_workflow(name: str, text: str) -> list[tuple[int, str]]:
    """Problems with one workflow file, as (line, message); line 1 when none applies."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    try:
        doc = YAML(typ="rt").load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        return [(line, f"invalid YAML: {exc.problem or exc.context or 'cannot parse'}")]
    except YAMLError as exc:
        return [(1, f"invalid YAML: {exc}")]
    if not isinstance(doc, dict):
        return [(1, "a workflow is a YAML mapping with 'on' and 'jobs' keys")]
    out: list[tuple[int, str]] = []
    # `on` read as YAML 1.1 would read it (the boolean true) still names the triggers.
    if "on" not in doc and True not in doc:
        out.append((1, "no 'on': a workflow needs the events that start it"))
    jobs = doc.get("jobs")
    if not isinstance(jobs, dict) or not jobs:
        where = _line(doc, "jobs")
        out.append((where, "a workflow needs a top-level 'jobs' mapping with at least one job"))
        return out
    if is_looopbot_workflow(name, text) and not any(_CALLS.search(run) for run in _runs(jobs)):
        out.append(
            (
                _line(doc, "jobs"),
                "a looopbot workflow that never runs looopbot: no step's "
                "'run:' calls it (restore it with 'looopbot github install')",
            )
        )
    return out


def _runs(jobs: dict[Any, Any]) -> list[str]:
    found = []
    for job in jobs.values():
        steps = job.get("steps") if isinstance(job, dict) else None
        for step in steps if isinstance(steps, list) else []:
            if isinstance(step, dict) and isinstance(step.get("run"), str):
                found.append(step["run"])
    return found


def _line(doc: Any, key: str) -> int:
    """The 1-based line of a top-level key (ruamel keeps it), else 1."""
    try:
        return int(doc.lc.key(key)[0]) + 1
    except (AttributeError, KeyError, TypeError):
        return 1
