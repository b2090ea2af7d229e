"""DECIDE and ACT: build the prompt, call the runner once, validate and execute its one move.

They return what happened (`Decided`); `next_state` folds it into the state in one place, and
the beat hands both to the record step (looopbot.record).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

from looopbot import desired as desired_mod
from looopbot import guards
from looopbot.act import Acted, execute
from looopbot.actions import BadDecision, Decision, goal_of, parse_decision, summary
from looopbot.changes import Changes, Move
from looopbot.config import Config
from looopbot.constitution import NAME as CONSTITUTION
from looopbot.datadir import DataDir
from looopbot.errors import LooopbotError
from looopbot.journal import recent
from looopbot.ledger import Row
from looopbot.prompt import PromptInput, build
from looopbot.record import meter
from looopbot.runner import decide, decision_file
from looopbot.schedules.store import NAME as SCHEDULES
from looopbot.schedules.store import due_items
from looopbot.state import State
from looopbot.world import World, desired_digests, what_changed


class Decided(NamedTuple):
    """One runner call and its move: the decision, or why there is none or it failed."""

    decision: Decision | None
    error: str | None  # redacted; None when the move was made
    cost_usd: float | None
    shell: dict[str, Any] | None  # run_shell's output, shown once in the next prompt

    @property
    def journal(self) -> str:
        if self.error is not None:
            return f"failed: {self.error}"
        assert self.decision is not None
        return self.decision.journal or summary(self.decision)


def prompt_input(
    dd: DataDir, config: Config, state: State, world: World, now: float, *, run_id: str = ""
) -> PromptInput:
    goals = desired_mod.goals_of(world.desired)
    return PromptInput(
        playbook=world.desired.get("PLAYBOOK.md", b"").decode("utf-8", errors="replace"),
        goals=goals,
        snapshots=sorted(world.snapshots.items()),
        changed=what_changed(
            state.decided_files,
            desired_digests(world.desired),
            state.decided_signals,
            world.signals,
        ),
        now=now,
        allowed=config.limits.allowed_actions,
        # A runner without a worker command cannot start workers: do not offer them.
        workers_available=bool(config.runner.worker.strip()),
        failure=state.failure if state.failures else None,
        shell=state.last_shell,
        flapping=guards.flapping(state.streaks, config.limits.flap_streak),
        journal=recent(dd.journal),
        goal_acted={g: state.goal_acted.get(g) for g, _ in goals},
        decision_file=str(decision_file(dd, run_id).relative_to(dd.root)) if run_id else "",
        constitution=world.desired.get(CONSTITUTION, b"").decode("utf-8", errors="replace"),
        asks=pending_asks(dd, now),
        due_schedules=due_items(world.snapshots.get(SCHEDULES)),
    )


def pending_asks(dd: DataDir, now: float) -> list[str]:
    """The PENDING ASKS lines (asks live in local scratch, next to the workers)."""
    from looopbot.text import age
    from looopbot.workers import asks

    lines = []
    for ask, live in asks.all_pending(dd):
        when = f", asked {age(now - ask.asked_at)} ago" if ask.asked_at is not None else ""
        options = f" — options: {', '.join(ask.options)}" if ask.options else ""
        stranded = " — STRANDED: its worker is no longer live" if not live else ""
        lines.append(f"- {ask.id} (worker {ask.worker}{when}): {ask.question}{options}{stranded}")
    return lines


def decide_and_act(
    dd: DataDir,
    config: Config,
    state: State,
    world: World,
    *,
    now: float,
    run_id: str,
    changes: Changes,
    scrub: Callable[[str], str],
) -> Decided:
    # Redacted as a whole: the prompt leaves the machine (goals and readings are untrusted).
    prompt = scrub(build(prompt_input(dd, config, state, world, now, run_id=run_id)))
    ran = decide(dd, config, prompt, run_id)
    # Every call is metered, a retried one too: each may have cost money.
    for attempt in ran.retried:
        meter(changes, Row(attempt.at, "tick", run_id, config.runner.name, attempt.cost_usd))
    meter(changes, Row(round(now, 3), "tick", run_id, config.runner.name, ran.cost_usd))
    error = ran.error
    decision: Decision | None = None
    acted = Acted()
    if error is None:
        try:
            decision = parse_decision(ran.decision, config.limits.allowed_actions)
            said = decision.journal or summary(decision)  # the line the move will journal
            with changes.executing(Move(decision.name, scrub(said))):
                acted = execute(dd, config, decision, changes, scrub)
        except (BadDecision, LooopbotError) as exc:
            error = exc.message
        error = error or acted.error
    if error is not None:
        name = decision.name if decision else None
        error = scrub(f"{name}: {error}" if name and not error.startswith(name) else error)
    return Decided(decision, error, ran.cost_usd, acted.shell)


def acted_goals(
    goal_acted: Mapping[str, float], decided: Decided, now: float, live_goals: Iterable[str]
) -> dict[str, float]:
    """When the loop last acted on each live goal, after this move (archived goals are
    forgotten, or the state would grow forever)."""
    live = set(live_goals)
    acted_on = {g: t for g, t in goal_acted.items() if g in live}
    gid = goal_of(decided.decision.action) if decided.decision else None
    if decided.error is None and gid is not None and gid in live:
        acted_on[gid] = round(now, 3)
    return acted_on


def next_state(
    state: State,
    config: Config,
    decided: Decided,
    *,
    before: World,
    after: World | None,
    now: float,
    goal_acted: dict[str, float],
) -> State:
    """The state after a runner call: metered, and success (clears backoff, records the
    decided world — the one AFTER the move) or failure (arms backoff)."""
    wiring = config.runner.wiring
    blind = state.cost_unknown if state.cost_wiring == wiring else 0
    state = state._replace(
        decides=(*(t for t in state.decides if now - t < guards.HOUR), round(now, 3)),
        cost_unknown=blind + 1 if decided.cost_usd is None else 0,
        cost_wiring=wiring,
        last_shell=decided.shell,  # the last one was shown in this prompt; this one next
    )
    if decided.error is not None or after is None:
        return state._replace(
            failures=state.failures + 1,
            failed_at=round(now, 3),
            failure=decided.error,
            failed_desired=before.desired_hash,
        )
    assert decided.decision is not None
    follow = decided.decision.next_interval_s
    return state._replace(
        decided_hash=after.hash,
        decided_at=round(now, 3),
        decided_action=decided.decision.name,
        decided_files=desired_digests(after.desired),
        decided_signals=after.signals,
        follow_up_at=round(now + follow, 3) if follow else None,
        failures=0,
        failed_at=None,
        failure=None,
        failed_desired=None,
        goal_acted=goal_acted,
    )
