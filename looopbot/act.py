"""ACT: execute one validated action (DESIGN §6). looopbot does this, never the runner."""

from __future__ import annotations

import shlex
from collections.abc import Callable
from typing import Any, NamedTuple

from looopbot import proc
from looopbot.actions import (
    Action,
    ArchiveGoal,
    BadDecision,
    Decision,
    Noop,
    RestartSession,
    RunShell,
    SendKey,
    SendNotification,
    StartWorker,
    SteerSession,
    WriteGoal,
    WritePlaybook,
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
        case StartWorker() | SteerSession() | SendKey() | RestartSession():
            return work(dd, config, a)
    raise LooopbotError(f"{decision.name}: no way to execute this action")  # unreachable


def work(dd: DataDir, config: Config, action: Action) -> Acted:
    """The worker-facing actions go to the fleet (imported only when a beat uses one)."""
    from looopbot.workers import fleet

    match action:
        case StartWorker(id=wid, prompt=prompt, verify=verify):
            fleet.start(dd, config, wid, prompt, verify)
        case SteerSession(id=wid, input=text):
            fleet.steer(dd, wid, text)
        case SendKey(id=wid, keys=keys):
            fleet.keys(dd, wid, keys)
        case RestartSession(id=wid):
            fleet.restart(dd, wid)
    return Acted()


def run_shell(dd: DataDir, config: Config, cmd: str, scrub: Callable[[str], str]) -> Acted:
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
    """Fire `notify.command` detached, and post on the GitHub dashboard when it is on; the
    journal line is the notification of record."""
    if config.github is not None and config.github.dashboard:
        from looopbot.github import loop as github_loop

        github_loop.notify(dd, config, message, nid)  # never raises: a failure waits
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
