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
CONSTITUTION_CAP = 16 * 1024
FAIR_SHOWN = 3  # goals named in FAIRNESS
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
    constitution: str = ""  # CONSTITUTION.md as committed; "" when there is none
    asks: Sequence[str] = ()  # one line per pending ask
    # The due (and broken) schedules: sys-schedules' signal items with their detail.
    due_schedules: Sequence[Mapping[str, Any]] = ()


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
show in snapshots/sys-workers.json (with a health: busy, waiting, stuck or dead); a worker
that asked waits for an answer (PENDING ASKS): steer_session sends it a line (that is how you
answer; a human can also answer with `looopbot answer`), kill_worker ends a stuck one,
send_key sends keys, restart_session restarts it in the same worktree. An optional "runner"
names which configured runner's worker command runs it. One worker per id while it runs;
start one for a goal with the goal's id. Named claims (snapshots/sys-claims.json) show who
holds a shared resource. A worker's branch is its deliverable: merging it is a human's step.
A worker's "pr" is the draft pull request looopbot opened for it (pending, open, merged,
closed): "merged" is a human's approval of the irreversible steps that worker prepared — wait
for it; never merge one yourself.

"""


SCHEDULES_HELP = """\
Schedules are durable wake-ups, kept in git (schedules/<name>.yaml): write_schedule with "at"
(an ISO 8601 time with a zone, e.g. 2026-12-07T09:00:00+01:00) for once, or "every" (seconds,
or 90s, 15m, 1h, 1d) with an optional "start" time for a recurring check, and a "note" saying
what to check then. When one falls due it wakes the loop and is listed under DUE SCHEDULES;
the beat that decides on it removes a one-shot and moves a recurring one to its next time.
Use them for "re-check the deploy tomorrow at 09:00"; next_interval_s is the short nudge.

"""


def instructions(p: PromptInput) -> str:
    offered = [a for a in ACTION_NAMES if a in p.allowed]
    if not p.workers_available:
        offered = [a for a in offered if a not in WORKER_ACTIONS]
    lines = [line for line in catalogue() if line.split(":")[0] in offered]
    workers = WORKERS_HELP if "start_worker" in offered else ""
    workers += SCHEDULES_HELP if "write_schedule" in offered else ""
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
    sections: list[tuple[str, str]] = []
    if p.constitution.strip():
        # First, and never cut to fit: the rules every other section answers to.
        rules = escape(cap(p.constitution, CONSTITUTION_CAP, "CONSTITUTION.md")).rstrip()
        sections.append(("CONSTITUTION", f"{CONSTITUTION_PREFACE}\n{rules}"))
    sections += [
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
    if p.asks:
        sections.append(
            (
                "PENDING ASKS",
                escape(
                    "Workers waiting for a human. Answer one with steer_session (its worker's "
                    "id, the answer as input; an ask with options takes only one of them), "
                    "or leave it for a human:\n" + "\n".join(p.asks)
                ),
            )
        )
    fair = fairness(p.goal_acted, p.now)
    if fair:
        sections.append(("FAIRNESS", fair))
    if p.flapping:
        sections.append(
            (
                "FLAPPING SENSORS",
                "These changed their signal on every recent beat; fix them (move the varying "
                "part to detail) instead of reacting:\n" + "\n".join(f"- {n}" for n in p.flapping),
            )
        )
    if p.due_schedules:
        sections.append(("DUE SCHEDULES", escape(due_schedules(p.due_schedules, p.now))))
    sections.append(("RECENT JOURNAL", escape("\n".join(p.journal)) or "(empty)"))
    stamp = time.strftime("%Y-%m-%d %H:%M:%S %Z (%A)", time.localtime(p.now))
    tail = f"Current local time: {stamp}\n"
    return _fit(sections, tail)


CONSTITUTION_PREFACE = (
    "A human wrote these rules in CONSTITUTION.md. They bind every move, above the PLAYBOOK "
    "and the GOALS; no action can change them (only a human's commit can)."
)


def fairness(goal_acted: Mapping[str, float | None], now: float) -> str:
    """The goals left alone longest, so one loud goal cannot starve the rest; empty with
    fewer than two goals (nothing to be fair between)."""
    if len(goal_acted) < 2:
        return ""
    # Never acted on first (as the oldest), then by when; the id breaks ties stably.
    order = sorted(goal_acted.items(), key=lambda kv: (kv[1] is not None, kv[1] or 0.0, kv[0]))
    lines = [
        f"- {gid}: " + ("never acted on" if t is None else f"last acted on {age(now - t)} ago")
        for gid, t in order[:FAIR_SHOWN]
    ]
    return (
        "The goals you have left alone longest. Unless something more urgent needs the move, "
        "give one of them a turn:\n" + "\n".join(lines)
    )


def due_schedules(items: Sequence[Mapping[str, Any]], now: float) -> str:
    """One line per due schedule, with its note and how overdue it is (ages are rendered
    here, from `now`, never stored); then the broken ones."""
    lines = [
        "These fell due. Whatever you decide on this beat handles them: a one-shot is then "
        "removed and a recurring one moves to its next time (write_schedule to be reminded "
        "again)."
    ]
    for item in items:
        name = item.get("name")
        if item.get("error"):
            lines.append(f"- {name}: BROKEN ({item.get('error')}) — fix or delete it")
            continue
        due = item.get("due")
        kind = f"every {age(item['every'])}" if isinstance(item.get("every"), int) else "once"
        if isinstance(due, int | float):
            stamp = time.strftime("%Y-%m-%d %H:%M %Z", time.localtime(due))
            when = f"due {stamp}, {age(now - due)} overdue"
        else:
            when = "due since it was written"
        goal = f", goal {item['goal']}" if item.get("goal") else ""
        note = " ".join(str(item.get("note", "")).split())
        lines.append(f"- {name} ({kind}, {when}{goal}): {note}")
    return "\n".join(lines)


# When the whole prompt is over the cap, these are cut first, in this order.
# LAST FAILURE and FLAPPING SENSORS are short in practice but unbounded (a runner's error text).
_CUT_ORDER = (
    "SENSOR READINGS",
    "DUE SCHEDULES",
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
