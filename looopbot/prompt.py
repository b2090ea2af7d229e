"""The prompt (DESIGN §7). Pure: a function of its inputs, no file access.

Untrusted text (goals, snapshots, journal, shell output, even the playbook, which the decider
may have written) cannot forge a section: its lines that begin with `===` or `---` are
escaped with a backslash. Every cut is marked where it happens.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from looopbot.actions import ACTION_NAMES, WORKER_ACTIONS, catalogue
from looopbot.text import age

PLAYBOOK_CAP = 16 * 1024
GOAL_CAP = 8 * 1024
PROMPT_CAP = 256 * 1024


class PromptInput(NamedTuple):
    playbook: str
    goals: Sequence[tuple[str, str]]  # (id, body), sorted by id
    snapshots: Sequence[tuple[str, Any]]  # (name, value), sorted by name
    changed: Sequence[str]
    now: float
    allowed: frozenset[str] = frozenset(ACTION_NAMES)
    workers_available: bool = True
    failure: str | None = None
    shell: Mapping[str, Any] | None = None
    flapping: Sequence[str] = ()
    journal: Sequence[str] = ()
    goal_acted: Mapping[str, float | None] = {}  # never mutated
    # This run's decision file (data-dir relative); empty when no run is under way.
    decision_file: str = ""


def escape(text: str) -> str:
    """Neutralise lines that could pass for a section header.

    Lines are split at every break Python knows (\\r, \\u2028, …), not only at \\n: a lone
    \\r or a Unicode line separator inside a goal or a JSON string starts a line too.
    """
    if "===" not in text and "---" not in text:
        return text
    return "".join(
        "\\" + line if line.startswith(("===", "---", "\\===", "\\---")) else line
        for line in text.splitlines(keepends=True)
    )


def cap(text: str, limit: int, what: str) -> str:
    raw = text.encode()
    if len(raw) <= limit:
        return text
    kept = raw[:limit].decode("utf-8", errors="ignore")
    return kept + f"\n[… cut: {len(raw) - len(kept.encode())} more bytes of {what} …]"


WORKERS_HELP = """\
Workers do longer work for you: start_worker starts an agent in its own git worktree on
branch looopbot/worker/<id>, with your prompt as its task (an optional "verify" shell command
judges it done). Its state, exit code, verify verdict and any question it flagged ("note")
show in snapshots/sys-workers.json; a flagged worker waits for an answer on its stdin:
steer_session sends it a line (that is how you answer; a human can also answer with
`looopbot answer`), send_key sends keys, restart_session restarts it in the same worktree.
One worker per id while it runs; start one for a goal with the goal's id. Named claims
(snapshots/sys-claims.json) show who holds a shared resource. A worker's branch is its
deliverable: merging it is a human's step. A worker's "pr" is the draft pull request looopbot
opened for it (pending, open, merged, closed): "merged" is a human's approval of the
irreversible steps that worker prepared — wait for it; never merge one yourself.

"""


def instructions(p: PromptInput) -> str:
    offered = [a for a in ACTION_NAMES if a in p.allowed]
    if not p.workers_available:
        offered = [a for a in offered if a not in WORKER_ACTIONS]
    lines = [line for line in catalogue() if line.split(":")[0] in offered]
    workers = WORKERS_HELP if "start_worker" in offered else ""
    where = f" ({p.decision_file})" if p.decision_file else ""
    return f"""You are the decider of looopbot, a control loop for someone's ongoing work. The
desired state is the PLAYBOOK and the GOALS below; the observed state is the SENSOR READINGS.
Each beat you choose exactly ONE move that brings the world closer to the goals. looopbot,
not you, validates and executes it, and records it in git. Do not run tools or change files
yourself: answer with the decision only.

Actions (one JSON object; fields marked ? are optional):
{chr(10).join("- " + line for line in lines)}
Every decision may also carry "journal" (one line saying what you did and why) and
"next_interval_s" (ask to decide again after that many seconds, 5..300, even if nothing
changes).

Ids and names: 1-64 characters of letters, digits, '.', '_', '-', starting with a letter or
digit. A goal file's first line is `goal: <one line>`. Sensors are bash scripts that print ONE
JSON value; put what should wake the loop under "signal" and the rest under "detail".

Write the decision as JSON to the file named by $LOOOPBOT_DECISION_FILE{where}, or print it
as the last thing you output, for example:
{{"action": "noop", "reason": "waiting for the build to finish"}}

{workers}Guardrails: never take an irreversible step (merge, deploy, delete data, spend money, post
publicly) without a human: prepare it and use send_notification to ask. Ask rather than
guess. Prefer noop when nothing useful can be done. A sensor listed as flapping should be
fixed rather than reacted to.
"""


def _snapshot_text(
    name: str, value: Any, goal_acted: Mapping[str, float | None], now: float
) -> str:
    text = json.dumps(value, indent=1, sort_keys=True, ensure_ascii=False)
    if name == "sys-workers" and isinstance(value, dict):
        times = (value.get("detail") or {}).get("workers") or {}
        ages = "; ".join(
            f"{wid}: started {age(now - t['started_at'])} ago"
            + (f", ended {age(now - t['ended_at'])} ago" if t.get("ended_at") else "")
            for wid, t in sorted(times.items())
            if isinstance(t, dict) and isinstance(t.get("started_at"), int | float)
        )
        if ages:
            text += f"\n(worker ages: {ages})"
    if name == "sys-goals" and goal_acted:
        ages = ", ".join(
            f"{g}: {'never' if t is None else age(now - t) + ' ago'}"
            for g, t in sorted(goal_acted.items())
        )
        text += f"\n(last acted on each goal: {ages})"
    return text


def build(p: PromptInput) -> str:
    """The whole prompt, at most PROMPT_CAP bytes."""
    goals = "\n".join(
        f"--- goals/{gid}.md\n{escape(cap(body, GOAL_CAP, f'goals/{gid}.md')).rstrip()}"
        for gid, body in p.goals
    )
    readings = "\n".join(
        f"--- snapshots/{name}.json\n" + escape(_snapshot_text(name, value, p.goal_acted, p.now))
        for name, value in p.snapshots
    )
    sections: list[tuple[str, str]] = [
        ("", instructions(p)),
        ("PLAYBOOK", escape(cap(p.playbook, PLAYBOOK_CAP, "PLAYBOOK.md")).rstrip()),
        ("GOALS", goals or "(no goals)"),
        ("SENSOR READINGS", readings or "(no sensors)"),
        ("WHAT CHANGED", escape("\n".join(p.changed))),
    ]
    if p.failure:
        sections.append(("LAST FAILURE", escape(p.failure)))
    if p.shell:
        sections.append(
            (
                "LAST SHELL OUTPUT",
                escape(
                    f"$ {p.shell.get('cmd')}\n(exit code {p.shell.get('exit_code')})\n"
                    f"{p.shell.get('output', '')}".rstrip()
                ),
            )
        )
    if p.flapping:
        sections.append(
            (
                "FLAPPING SENSORS",
                "These changed their signal on every recent beat; fix them (move the varying "
                "part to detail) instead of reacting:\n" + "\n".join(f"- {n}" for n in p.flapping),
            )
        )
    sections.append(("RECENT JOURNAL", escape("\n".join(p.journal)) or "(empty)"))
    stamp = time.strftime("%Y-%m-%d %H:%M:%S %Z (%A)", time.localtime(p.now))
    tail = f"Current local time: {stamp}\n"
    return _fit(sections, tail)


# When the whole prompt is over the cap, these are cut first, in this order.
# LAST FAILURE and FLAPPING SENSORS are short in practice but unbounded (a runner's error text).
_CUT_ORDER = (
    "SENSOR READINGS",
    "RECENT JOURNAL",
    "GOALS",
    "WHAT CHANGED",
    "LAST SHELL OUTPUT",
    "LAST FAILURE",
    "FLAPPING SENSORS",
)


def _render(sections: list[tuple[str, str]], tail: str) -> str:
    parts = [text if not title else f"=== {title} ===\n{text}" for title, text in sections]
    return "\n\n".join(parts) + "\n\n" + tail


def _fit(sections: list[tuple[str, str]], tail: str) -> str:
    text = _render(sections, tail)
    for title in _CUT_ORDER:
        over = len(text.encode()) - PROMPT_CAP
        if over <= 0:
            break
        for i, (t, body) in enumerate(sections):
            if t == title:
                keep = max(0, len(body.encode()) - over - 200)
                sections[i] = (t, cap(body, keep, title.lower()))
        text = _render(sections, tail)
    return text
