"""DECIDE and ACT: build the prompt, call the runner once, validate and execute its one move,
and fold the outcome into the state (success clears backoff; failure arms it)."""

from __future__ import annotations

from collections.abc import Callable

from looopbot import desired as desired_mod
from looopbot import guards
from looopbot.act import Acted, execute
from looopbot.actions import BadDecision, Decision, goal_of, parse_decision, summary
from looopbot.beat import BeatResult, World, prune_runs
from looopbot.changes import Changes
from looopbot.config import Config
from looopbot.datadir import DataDir
from looopbot.errors import LooopbotError
from looopbot.journal import format_line, recent
from looopbot.ledger import Row
from looopbot.prompt import PromptInput, build
from looopbot.runner import decide
from looopbot.state import State
from looopbot.world import desired_digests, what_changed


def prompt_input(
    dd: DataDir, config: Config, state: State, world: World, now: float
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
    )


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
) -> tuple[State, BeatResult]:
    ran = decide(dd, config, build(prompt_input(dd, config, state, world, now)), run_id)
    prune_runs(dd, config.limits.runs_keep)
    changes.append(
        ".looopbot/cost.jsonl",
        Row(round(now, 3), "tick", run_id, config.runner.name, ran.cost_usd).to_json(),
    )
    wiring = config.runner.wiring
    blind = state.cost_unknown if state.cost_wiring == wiring else 0
    state = state._replace(
        decides=(*(t for t in state.decides if now - t < guards.HOUR), round(now, 3)),
        cost_unknown=blind + 1 if ran.cost_usd is None else 0,
        cost_wiring=wiring,
        last_shell=None,  # shown once: this prompt had it
    )
    error = ran.error
    decision: Decision | None = None
    acted = Acted()
    if error is None:
        try:
            decision = parse_decision(ran.decision, config.limits.allowed_actions)
            acted = execute(dd, config, decision, changes, scrub)
        except (BadDecision, LooopbotError) as exc:
            error = exc.message
        error = error or acted.error
    if acted.shell is not None:
        state = state._replace(last_shell=acted.shell)
    name = decision.name if decision else None
    if error is not None:
        error = scrub(f"{name}: {error}" if name and not error.startswith(name) else error)
        text = f"failed: {error}"
        state = state._replace(
            failures=state.failures + 1,
            failed_at=round(now, 3),
            failure=error,
            failed_desired=world.desired_hash,
        )
        changes.append("journal.md", format_line(text, now))
        return state, BeatResult(
            "failed",
            world.hash,
            run_id,
            reason=text,
            action=name,
            journal=text,
            cost_usd=ran.cost_usd,
            error=error,
        )
    assert decision is not None
    text = scrub(decision.journal or summary(decision))
    # Only live goals are remembered: archived ones would make the state grow forever.
    live = set(desired_mod.goal_ids(dd))
    acted_on = {g: t for g, t in state.goal_acted.items() if g in live}
    gid = goal_of(decision.action)
    if gid is not None and gid in live:
        acted_on[gid] = round(now, 3)
    follow = decision.next_interval_s
    # decided_hash/files/signals are set from the world as seen before the move; the beat
    # replaces them with the world after it (beat.after_move).
    state = state._replace(
        decided_hash=world.hash,
        decided_at=round(now, 3),
        decided_action=decision.name,
        decided_files=desired_digests(world.desired),
        decided_signals=world.signals,
        follow_up_at=round(now + follow, 3) if follow else None,
        failures=0,
        failed_at=None,
        failure=None,
        failed_desired=None,
        goal_acted=acted_on,
    )
    changes.append("journal.md", format_line(text, now))
    return state, BeatResult(
        "decided",
        world.hash,
        run_id,
        reason="decided",
        action=decision.name,
        journal=text,
        cost_usd=ran.cost_usd,
    )
