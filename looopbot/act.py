"""ACT: execute one validated action (DESIGN §6). looopbot does this, never the runner."""

from __future__ import annotations

import os
import shlex
import time
from collections.abc import Callable
from typing import Any, NamedTuple

from looopbot import constitution, proc
from looopbot.actions import (
    Action,
    ArchiveGoal,
    BadDecision,
    Decision,
    DeleteSchedule,
    KillWorker,
    Noop,
    RestartSession,
    RunShell,
    SendKey,
    SendNotification,
    StartWorker,
    SteerSession,
    WriteGoal,
    WritePlaybook,
    WriteSchedule,
    WriteSensor,
    check_body,
)
from looopbot.changes import Changes
from looopbot.config import Config
from looopbot.datadir import DataDir
from looopbot.errors import LooopbotError
from looopbot.redact import MARGIN, tail
from looopbot.shell import denied
from looopbot.text import quote
from looopbot.worktree_state import refuse_uncommitted

SHELL_TAIL = 2048


class Acted(NamedTuple):
    """What executing the action left for the record."""

    error: str | None = None
    shell: dict[str, Any] | None = None  # shown once in the next prompt


def goal_body(body: str, where: str) -> str:
    check_body(body, where)
    first = body.lstrip("\ufeff").split("\n", 1)[0]
    if not first.startswith("goal:") or not first[5:].strip():
        raise BadDecision(
            f"{where}: the first line must be 'goal: <one line>', got {quote(first, 60)}"
        )
    return body if body.endswith("\n") else body + "\n"


def execute(
    dd: DataDir,
    config: Config,
    decision: Decision,
    changes: Changes,
    scrub: Callable[[str], str],
) -> Acted:
    """Run the decision's action; raises LooopbotError when it is refused."""
    a = decision.action

    def keep_users(*rels: str, untracked: bool = True) -> None:
        refuse_uncommitted(dd, rels, decision.name, changes.recovered, untracked=untracked)

    match a:
        case Noop():
            return Acted()
        case WriteGoal(id=gid, body=body):
            text = scrub(goal_body(body, "write_goal.body"))
            keep_users(f"goals/{gid}.md")
            changes.write(f"goals/{gid}.md", text)
            return Acted()
        case ArchiveGoal(id=gid):
            src, dst = f"goals/{gid}.md", f"goals/archive/{gid}.md"
            if not dd.path(src).is_file():
                raise LooopbotError(f"archive_goal: there is no goal '{gid}' ({src} is missing)")
            # A goal the user wrote and never committed may be archived: its words move,
            # nothing is lost. Edits to a committed one, or anything at dst, are theirs.
            keep_users(src, untracked=False)
            keep_users(dst)
            changes.move(src, dst)
            return Acted()
        case WriteSensor(name=name, script=script):
            untouchable(script, "write_sensor")
            text = script if script.endswith("\n") else script + "\n"
            keep_users(f"sensors/{name}.sh")
            changes.write(f"sensors/{name}.sh", scrub(text), mode=0o755)
            return Acted()
        case WritePlaybook(body=body):
            check_body(body, "write_playbook.body")
            keep_users("PLAYBOOK.md")
            changes.write("PLAYBOOK.md", scrub(body if body.endswith("\n") else body + "\n"))
            return Acted()
        case RunShell(cmd=cmd):
            return run_shell(dd, config, cmd, scrub)
        case SendNotification(message=msg, id=nid):
            notify(dd, config, msg, nid)
            return Acted()
        case StartWorker() | SteerSession() | SendKey() | RestartSession() | KillWorker():
            return work(dd, config, a)
        case WriteSchedule(name=name):
            keep_users(f"schedules/{name}.yaml")
            changes.write(f"schedules/{name}.yaml", scrub(schedule_text(a, time.time())))
            return Acted()
        case DeleteSchedule(name=name):
            rel = f"schedules/{name}.yaml"
            if not os.path.lexists(dd.path(rel)):
                raise LooopbotError(
                    f"delete_schedule: there is no schedule '{name}' ({rel} is missing)"
                )
            if os.path.islink(dd.path(rel)):
                raise LooopbotError(f"delete_schedule: {rel} is a symlink — remove it by hand")
            keep_users(rel)
            changes.remove(rel)
            return Acted()
    raise LooopbotError(f"{decision.name}: no way to execute this action")  # unreachable


def schedule_text(action: WriteSchedule, now: float) -> str:
    """The file a write_schedule writes. A recurring schedule gets its first due time
    written as `next:` (absolute): a period from now, or the first start time from now on."""
    from looopbot.schedules.spec import build, render

    try:
        schedule = build(
            action.note, at=action.at, every=action.every, start=action.start, goal=action.goal
        )
    except ValueError as exc:
        raise BadDecision(f"write_schedule: {exc}") from None
    if schedule.every is not None:
        first = schedule.following(now)
        if first != schedule.start:
            schedule = schedule._replace(next=first)
    return render(schedule)


def work(dd: DataDir, config: Config, action: Action) -> Acted:
    """The worker-facing actions go to the fleet (imported only when a beat uses one)."""
    from looopbot.workers import fleet

    match action:
        case StartWorker(id=wid, prompt=prompt, verify=verify, runner=runner):
            fleet.start(dd, config, wid, prompt, verify, runner=runner)
        case SteerSession(id=wid, input=text):
            from looopbot.workers import asks

            if asks.pending(dd, wid) is not None:
                fleet.answer(dd, wid, text)  # what is said to a worker that asked answers it
            else:
                fleet.steer(dd, wid, text)
        case SendKey(id=wid, keys=keys):
            fleet.keys(dd, wid, keys)
        case RestartSession(id=wid):
            fleet.restart(dd, wid)
        case KillWorker(id=wid, reason=reason):
            fleet.kill(dd, wid, reason)
    return Acted()


def untouchable(text: str, what: str) -> None:
    if constitution.mentions(text):
        raise LooopbotError(
            f"{what} refused: it names {constitution.NAME}, which no move may write — only "
            "a human's commit changes it"
        )


def run_shell(dd: DataDir, config: Config, cmd: str, scrub: Callable[[str], str]) -> Acted:
    untouchable(cmd, "run_shell")
    rules, committed = constitution.on_disk(dd), constitution.read(dd)
    acted = _run_shell(dd, config, cmd, scrub)
    if constitution.read(dd) != committed:
        # The shell committed it (git commit -a). Rewriting the user's history is not
        # ours to do: the move fails loudly so a human reverts that commit.
        error = (
            f"run_shell committed a change to {constitution.NAME}, which no move may write "
            "— revert that commit (git log -- CONSTITUTION.md)"
        )
        return Acted(error, acted.shell)
    if constitution.on_disk(dd) != rules:
        # Named some other way (a glob, a variable, a script): put the file back as it
        # was — a human's uncommitted edit included — and fail the move.
        put_back = constitution.restore(dd, rules)
        error = (
            f"run_shell changed {constitution.NAME}, which no move may write — "
            + ("it is restored as it was" if put_back else "a directory now stands there")
            + "; only a human's commit changes it"
        )
        return Acted(error, acted.shell)
    return acted


def _run_shell(dd: DataDir, config: Config, cmd: str, scrub: Callable[[str], str]) -> Acted:
    why = denied(cmd)
    if why is not None and not config.limits.allow_dangerous_shell:
        raise LooopbotError(
            f"run_shell refused ({why}): {quote(cmd, 200)} — the deny-list keeps it for a "
            "human to run (or set limits.allow_dangerous_shell)"
        )
    result = proc.run(
        proc.Spec(
            argv=["bash", "-c", cmd],
            cwd=dd.root,
            env=proc.child_env({"LOOOPBOT_DATA_DIR": str(dd.root)}),
            timeout=config.limits.shell_timeout,
            merge_stderr=True,
            stdout_tail=SHELL_TAIL + MARGIN,  # redacted before it is cut to SHELL_TAIL
        )
    )
    output = tail(result.stdout, SHELL_TAIL, scrub)
    cut = result.stdout_bytes - len(output.encode())
    if cut > 0:
        output = f"[… {cut} earlier bytes cut …]\n" + output
    code = 124 if result.timed_out else result.exit_code
    record = {"cmd": scrub(cmd), "exit_code": code, "output": output}
    if result.spawn_error is not None:
        return Acted(f"run_shell could not start bash: {result.spawn_error}", record)
    if result.timed_out:
        return Acted(
            f"run_shell timed out after {config.limits.shell_timeout:g}s (limits.shell_timeout)",
            record,
        )
    if code != 0:
        return Acted(f"run_shell exited with code {code}", record)
    return Acted(None, record)


def notify(dd: DataDir, config: Config, message: str, nid: str | None) -> None:
    """Fire `notify.command` detached; the journal line is the notification of record."""
    if not config.notify_command:
        return
    cmd = config.notify_command.replace("{message}", shlex.quote(message)).replace(
        "{id}", shlex.quote(nid or "")
    )
    env = proc.child_env(
        {"LOOOPBOT_MESSAGE": message, "LOOOPBOT_ID": nid or "", "LOOOPBOT_DATA_DIR": str(dd.root)}
    )
    try:
        proc.spawn_detached(["bash", "-c", cmd], dd.root, env)
    except OSError as exc:
        raise LooopbotError(f"notify.command could not start: {exc}") from None
