"""The beat (DESIGN §1), as a pipeline:

    lock → housekeeping → SENSE → DIFF → guards → DECIDE → ACT → RECORD

Each beat is level-triggered: it re-derives everything from the files, so a beat killed at
any point leaves nothing the next one cannot continue from.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from looopbot import desired as desired_mod
from looopbot import guards, ledger, sense
from looopbot import record as record_mod
from looopbot import state as state_mod
from looopbot.changes import Changes
from looopbot.config import Config
from looopbot.config import load as load_config
from looopbot.datadir import DataDir
from looopbot.errors import LooopbotError
from looopbot.fsutil import write_atomic
from looopbot.redact import redactor
from looopbot.runs import new_run_id
from looopbot.state import State
from looopbot.world import World, desired_hash, signal_digest, wake_signal, world_hash

if TYPE_CHECKING:
    from looopbot.decide import Decided
    from looopbot.sync import Report

LAST_BEAT = "last-beat.json"  # local scratch: what the last beat did, for `status`


class BeatResult(NamedTuple):
    outcome: str  # decided | unchanged | failed | backoff | capped | budget | dry-run
    world_hash: str
    run_id: str
    reason: str = ""
    action: str | None = None
    journal: str | None = None
    commit: str | None = None
    cost_usd: float | None = None
    error: str | None = None
    prompt: str | None = None
    push: Report | None = None  # pull and push, when push is on

    def public(self) -> dict[str, Any]:
        """The stable `tick --json` document."""
        keys = ("outcome", "action", "journal", "world_hash", "commit", "cost_usd", "error")
        doc = {k: getattr(self, k) for k in keys}
        doc["push"] = self.push.public() if self.push is not None else None
        return doc


def sense_world(
    dd: DataDir, config: Config, state: State, now: float, *, honour_interval: bool = True
) -> World:
    desired = desired_mod.read(dd)
    snapshots = sense.run_sensors(
        dd, sense.discover(dd), config.limits, now, honour_interval=honour_interval
    )
    snapshots.update(
        sense.system_snapshots(
            dd,
            state.goal_acted,
            desired_mod.ids_of(desired),
            now=now,
            stuck_after=config.limits.worker_stuck_after,
        )
    )
    if config.github is not None and config.github.sensor:
        from looopbot.github import sensor as github_sensor  # github3 only when asked for

        snapshots[github_sensor.NAME] = github_sensor.sense(dd, config)
    signals = {name: wake_signal(v) for name, v in snapshots.items()}
    return World(desired, snapshots, signals, world_hash(desired, signals), desired_hash(desired))


def held_by(
    dd: DataDir, config: Config, state: State, world: World, now: float
) -> guards.Hold | None:
    """The guard holding this beat back; the ledger is read only when a budget is set."""
    spent: float | ledger.Mangled | None = None
    if config.limits.max_daily_usd is not None:
        try:
            spent = ledger.spent_since(dd.ledger, ledger.day_start(now))
        except ledger.Mangled as exc:
            spent = exc  # today's spend is unknown: the budget guard fails closed on it
    return guards.hold(
        state,
        config.limits,
        now,
        desired=world.desired_hash,
        spent_today=spent,
        wiring=config.runner.wiring,
    )


def run_beat(dd: DataDir, *, force: bool = False, push: bool = False) -> BeatResult:
    """One beat, under the lock. Raises LockHeld (75) or LooopbotError for a broken setup.
    With `push` (or git.push / LOOOPBOT_PUSH), the remote branch is pulled before sensing
    and the beat's commits pushed after (looopbot.sync)."""
    from looopbot.gitstate import check_committable
    from looopbot.lock import beat_lock

    with beat_lock(dd):
        config = load_config(dd)
        # Refuse before writing anything: a repo mid-rebase gets no snapshots either.
        check_committable(dd)
        if not (push or config.push):
            return _beat(dd, config, force=force)
        from looopbot import sync

        report = sync.pull(dd, config)
        aside = report.aside()
        result = _beat(dd, config, force=force, asides=[aside] if aside else [])
        sync.push(dd, config, report)
        commit = result.commit
        if commit is not None and report.pushed not in (None, commit):
            # Rebased around a human's push: the beat's commit is now its replayed copy.
            commit = sync.landed(dd, commit, result.run_id)
        return result._replace(push=report, commit=commit)


def _beat(
    dd: DataDir, config: Config, *, force: bool, asides: list[str] | None = None
) -> BeatResult:
    now = time.time()
    run_id = new_run_id(now)
    scrub = redactor()
    changes = record_mod.start(dd)
    state, state_problem = state_mod.load(dd.state)
    loaded = state
    notes = [state_problem] if state_problem else []
    if changes.recovered:
        notes.append("recovered the writes of an interrupted beat: " + ", ".join(changes.recovered))
    from looopbot.runs import end_orphaned_runner
    from looopbot.workers import system

    # A runner left by a killed beat must not decide into this one, nor keep spending.
    orphan = end_orphaned_runner(dd)
    if orphan:
        notes.append(orphan)
    notes += system.housekeeping(dd, config, now)
    # SENSE
    world = sense_world(dd, config, state, now)
    changed_snapshots = _write_snapshots(dd, changes, world)
    # DIFF
    state, moved = _streaks(dd, state, world)
    wake = guards.wake(state, world.hash, now, force=force, noop_ttl=config.limits.noop_ttl)
    outcome, reason = ("unchanged", wake.reason)
    decided: Decided | None = None
    if wake.decide:
        if not moved:
            # No signal changed on this beat (forced, follow-up, an aged noop, a goal edit):
            # every streak is broken, and the decider must not hear of flapping.
            state = state._replace(streaks={n: (d, 0) for n, (d, _) in state.streaks.items()})
        held = held_by(dd, config, state, world, now)
        if held is not None:
            outcome, reason = held.outcome, held.message
        else:
            from looopbot.decide import acted_goals, decide_and_act, next_state

            decided = decide_and_act(
                dd, config, state, world, now=now, run_id=run_id, changes=changes, scrub=scrub
            )
            # The decided world is the one AFTER the move: the loop's own edit to a goal, or
            # the worker it just started, is not news to it (that would cost a second,
            # redundant runner call and read as a change a human made). A decider that
            # wants to go on asks with next_interval_s. The snapshots follow now, in this
            # beat's commit, rather than as a commit of their own next beat.
            goal_acted = acted_goals(state.goal_acted, decided, now, desired_mod.goal_ids(dd))
            after = None
            if decided.error is None:
                notes += _handle_schedules(dd, changes, world, decided, now)
                after = after_move(
                    dd,
                    goal_acted,
                    world,
                    changes.paths,
                    now=now,
                    stuck_after=config.limits.worker_stuck_after,
                )
                changed_snapshots += _write_snapshots(dd, changes, after)
            state = next_state(
                state, config, decided, before=world, after=after, now=now, goal_acted=goal_acted
            )
            if after is not None:
                state = state._replace(streaks=_as_decided(state.streaks, after.signals))
            outcome = "failed" if decided.error is not None else "decided"
            world = after or world
    if decided is not None:
        action = decided.decision.name if decided.decision else None
        result = BeatResult(
            outcome,
            world.hash,
            run_id,
            reason=decided.journal,
            action=action,
            journal=scrub(decided.journal),
            cost_usd=decided.cost_usd,
            error=decided.error,
        )
        subject = decided.error or result.journal or reason
    else:
        result = BeatResult(outcome, world.hash, run_id, reason=reason)
        subject = "snapshots " + ", ".join(changed_snapshots) if changed_snapshots else reason
    new_state = state.to_json() if state != loaded or state_problem else None
    entry = record_mod.Entry(
        outcome=outcome,
        run_id=run_id,
        subject=subject,
        head=(result.action or outcome) if outcome == "decided" else outcome,
        journal=result.journal,
        action=result.action if outcome == "decided" else None,
        world=world.hash,
        cost_usd=result.cost_usd,
        state=new_state,  # serializing a big unchanged state is waste
    )
    commit = record_mod.record(dd, config, changes, entry, now, notes=notes, asides=asides or ())
    result = result._replace(commit=commit)
    _remember(dd, result, now, signals_moved=moved)
    return result


def _streaks(dd: DataDir, state: State, world: World) -> tuple[State, bool]:
    """Flapping streaks, and whether any signal moved this beat.

    A quiet beat leaves the streaks alone: resetting them would change the state file and
    cost a commit after every change. A beat where a signal moved commits anyway; it
    resets the streaks first when the beat before it (noted in local scratch) was quiet.
    """
    digests = {name: d for name, (d, _n) in state.streaks.items()}
    if not _last_beat(dd).get("signals_moved", False):
        base = {name: (d, 0) for name, d in digests.items()}
    else:
        base = dict(state.streaks)
    streaks = guards.update_streaks(base, world.signals)
    if {name: d for name, (d, _n) in streaks.items()} == digests:
        return state, False
    return state._replace(streaks=streaks), True


def _as_decided(
    streaks: Mapping[str, tuple[str, int]], signals: Mapping[str, Any]
) -> dict[str, tuple[str, int]]:
    """The streaks with the digests of the world the move left, counts kept: the move's own
    doing (the worker it started) is no change of a signal — else the next quiet beat would
    count it, and commit the state file for it."""
    return {
        name: (signal_digest(sig), streaks[name][1] if name in streaks else 0)
        for name, sig in sorted(signals.items())
    }


def _last_beat(dd: DataDir) -> dict[str, Any]:
    try:
        with open(dd.scratch(LAST_BEAT), "rb") as f:
            found = json.loads(f.read())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def _handle_schedules(
    dd: DataDir, changes: Changes, world: World, decided: Decided, now: float
) -> list[str]:
    """The schedules this decided beat saw due are done: a one-shot removed, a recurring one
    advanced, in this beat's commit. A failed or held beat never gets here, so its due
    schedules stay due and wake the next beat. The move's own write_schedule or
    delete_schedule of one stands as the move left it."""
    from looopbot.actions import DeleteSchedule, WriteSchedule
    from looopbot.schedules import store as schedules
    from looopbot.worktree_state import refuse_uncommitted

    action = decided.decision.action if decided.decision else None
    skip = [action.name] if isinstance(action, WriteSchedule | DeleteSchedule) else []
    return schedules.handle_due(
        dd,
        world.snapshots.get(schedules.NAME),
        now,
        skip=skip,
        remove=changes.remove,
        write=changes.write,
        # What this beat (or a killed one it took over) wrote is not the user's edit.
        keep_users=lambda rel: refuse_uncommitted(
            dd, [rel], "advancing the schedule", changes.paths
        ),
    )


def after_move(
    dd: DataDir,
    goal_acted: Mapping[str, float],
    world: World,
    written: Iterable[str],
    *,
    now: float,
    stuck_after: float,
) -> World:
    """The world as the decider's move left it: the desired files the move wrote, the system
    snapshots recomputed (a goal written, a worker started); sensor readings as sensed."""
    current = desired_mod.read(dd)
    # A human's edit to another goal while the decider thought is news: only the files the
    # move itself wrote take their new content in the decided world.
    desired = dict(world.desired)
    for path in written:
        if path == "PLAYBOOK.md" or path.startswith("goals/"):
            if path in current:
                desired[path] = current[path]
            else:
                desired.pop(path, None)
    snapshots = {
        **world.snapshots,
        **sense.system_snapshots(
            dd, goal_acted, desired_mod.ids_of(current), now=now, stuck_after=stuck_after
        ),
    }
    signals = {name: wake_signal(v) for name, v in snapshots.items()}
    # Only the move's own doing is not news. A worker that ended or flagged, or a claim
    # taken or released, while the decider thought (minutes, for a real runner) is: the
    # decided signals keep what the decider saw there, so the next beat wakes for it.
    if "sys-workers" in world.signals:
        signals["sys-workers"] = _moved_workers(
            world.signals["sys-workers"], signals["sys-workers"]
        )
    if "sys-claims" in world.signals:
        signals["sys-claims"] = world.signals["sys-claims"]
    from looopbot.schedules.store import NAME as SCHEDULES
    from looopbot.schedules.store import decided_signal

    if SCHEDULES in signals:
        signals[SCHEDULES] = decided_signal(world.signals.get(SCHEDULES), signals[SCHEDULES])
    return World(desired, snapshots, signals, world_hash(desired, signals), desired_hash(desired))


def _moved_workers(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> list[Any]:
    """The sys-workers signal the decider saw, plus the workers its move made live."""
    from looopbot.workers.record import LIVE

    seen = {item["id"]: item for item in before}
    for item in after:
        was = seen.get(item["id"])
        if item["state"] in LIVE and (was is None or was["state"] not in LIVE):
            seen[item["id"]] = item
    return sorted(seen.values(), key=lambda item: str(item["id"]))


def _write_snapshots(dd: DataDir, changes: Changes, world: World) -> list[str]:
    files = {f"snapshots/{n}.json": sense.snapshot_bytes(v) for n, v in world.snapshots.items()}
    changed = [rel[len("snapshots/") : -len(".json")] for rel in changes.write_all(files)]
    for name in sense.snapshot_names(dd):
        if name not in world.snapshots:  # its sensor is gone
            changes.remove(f"snapshots/{name}.json")
            changed.append(name)
    return sorted(set(changed))


def _remember(dd: DataDir, result: BeatResult, now: float, *, signals_moved: bool) -> None:
    record = {
        **result.public(),
        "run_id": result.run_id,
        "reason": result.reason,
        "at": now,
        "signals_moved": signals_moved,
    }
    with contextlib.suppress(OSError):  # only `status` reads it
        write_atomic(dd.scratch(LAST_BEAT), json.dumps(record), durable=False)


def dry_run(dd: DataDir, *, force: bool = False) -> BeatResult:
    """Sense and show what would happen, changing nothing (no lock, no writes)."""
    config = load_config(dd)
    now = time.time()
    try:
        state = state_mod.parse(dd.state.read_bytes())
    except (OSError, state_mod.StateUnreadable):
        state = State()
    world = sense_world(dd, config, state, now, honour_interval=False)
    wake = guards.wake(state, world.hash, now, force=force, noop_ttl=config.limits.noop_ttl)
    run_id = "dry-run"
    if not wake.decide:
        return BeatResult("unchanged", world.hash, run_id, reason="would skip: " + wake.reason)
    held = held_by(dd, config, state, world, now)
    if held is not None:
        return BeatResult(held.outcome, world.hash, run_id, reason="would hold: " + held.message)
    from looopbot.decide import prompt_input
    from looopbot.prompt import build

    text = build(prompt_input(dd, config, state, world, now))
    return BeatResult(
        "dry-run",
        world.hash,
        run_id,
        reason=f"would call runner '{config.runner.name}' ({wake.reason})",
        prompt=text,
    )


def ensure_not_error(result: BeatResult) -> None:
    if result.outcome == "failed":
        raise LooopbotError(f"beat failed: {result.error}")
