"""`looopbot worker run ID`: the worker's side of `workers.backend: actions`, run by
`looopbot-worker.yml` in a checkout of the worker's branch on GitHub's runner.

It runs the configured runner's worker command on the brief the start committed to the
branch under the same supervisor a local worker has (workers.supervisor): a stdin pipe it
keeps, an inbox, `looopbot ask`/`flag` recorded for this run — with the checkout as its
worktree and this process as its supervisor. Beside it, the ear (workers.onthread) copies
its output to the job's log and listens to its dashboard thread: the worker's questions
go up, answers and keys come down to its stdin.

Then it commits whatever the worker left uncommitted, and — when the worker succeeded — a
last commit that drops the brief, so the branch's diff against its base is the work alone
(a merged pull request must not carry the brief into the base branch). A failed worker
keeps its brief, so "Re-run" on GitHub runs it again. A declared verify runs once after a
worker that exited 0; a failing one fails the run (its conclusion says so). Pushing is the
workflow's step, in plain sight.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from looopbot import gitcli, proc
from looopbot.config import Config, author_identity
from looopbot.datadir import DataDir
from looopbot.errors import LooopbotError
from looopbot.ids import check_branch_id
from looopbot.workers import identity, record
from looopbot.workers.onactions import BRIEF, BRIEF_TRAILER, VERIFY
from looopbot.workers.record import Worker
from looopbot.workers.record import branch as branch_of
from looopbot.workers.supervisor import Supervisor, worker_env

# What the worker's exit code is when the run was cancelled (SIGTERM) or it never started.
CANCELLED = 143
NOT_STARTED = 127


class _Here(Supervisor):
    """The supervisor of a worker that runs in the checkout it will be pushed from: its
    end is recorded as is — verify, commits and the push are `run_here`'s and the
    workflow's, not a local worker's delivery."""

    def finish(self, code: int) -> None:
        self.save(state="exited", exit_code=code, ended_at=time.time())


def run_here(dd: DataDir, config: Config, wid: str) -> int:
    """Run the worker; its exit code (143: cancelled, 127: could not start)."""
    from looopbot.workers import onthread

    check_branch_id(wid, "worker id")
    root = dd.repo_root
    if root is None:
        raise LooopbotError(f"{dd.root} is not inside a git repository — check out the branch")
    want = branch_of(wid)
    head = gitcli.run(root, "symbolic-ref", "-q", "--short", "HEAD", check=False)
    if head.stdout.decode().strip() != want:
        raise LooopbotError(f"worker '{wid}' runs on its branch {want} — check that out first")
    brief = dd.path(BRIEF)
    if not brief.is_file():
        raise LooopbotError(
            f"{want} holds no brief ({BRIEF}) — start the worker with workers.backend: actions"
        )
    template = config.runner.worker
    if not template.strip():
        name = config.runner.name
        raise LooopbotError(
            f"runner '{name}' has no worker command — set runners.{name}.worker in looopbot.yaml"
        )
    scratch = Path(tempfile.mkdtemp(prefix="looopbot-worker-"))
    paths = record.paths(dd, wid)
    try:
        # Outside the checkout: the worker cannot edit its brief into its own commits.
        prompt_file = scratch / "brief.md"
        shutil.copyfile(brief, prompt_file)
        shutil.rmtree(paths.dir, ignore_errors=True)  # an earlier run by hand, here
        paths.inbox.mkdir(parents=True)
        me = identity.of(os.getpid())
        tip = gitcli.out(root, "rev-parse", "HEAD").strip()
        worker = Worker(
            id=wid,
            state="starting",
            command=template.replace("{prompt_file}", shlex.quote(str(prompt_file))),
            branch=want,
            base=tip,
            base_branch=want,
            started_at=time.time(),
            supervisor=me,
        )
        record.write(dd, worker)
        sup = _Here(dd, worker, _env(dd, config, wid, root), cwd=root)
        ear = onthread.ear_for(dd, config, wid, paths.log)
        side = onthread.Companion(paths.log, ear, config.limits.thread_poll)
        before = _on_signals(sup)
        side.start()
        try:
            sup.run()
        finally:
            side.finish()
            for sig, handler in before.items():
                signal.signal(sig, handler)
        ended = record.read(dd, wid)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    code = _code(ended)
    _commit(root, config, f"looopbot: worker {wid} left this uncommitted", everything=True)
    check = dd.path(VERIFY)
    if code == 0 and check.is_file():
        # Exit 0 alone is not "done" when a verify is declared: a failing one fails the run.
        code = _verify(root, config, check.read_text().strip())
    if code == 0:
        gitcli.run(root, "rm", "-q", "--ignore-unmatch", "--", str(brief), str(check))
        _commit(root, config, f"looopbot: worker {wid} done\n\n{BRIEF_TRAILER}: {wid}\n")
    print(f"looopbot: worker {wid} exited {code}", file=sys.stderr)
    return code


def _env(dd: DataDir, config: Config, wid: str, root: Path) -> dict[str, str]:
    """The worker's environment, without the GitHub token: the worker has no business
    with the API (actions/checkout leaves the job's token to git for the push, which is
    why a worker on Actions is trusted like a collaborator — github.thread)."""
    env = worker_env(dd, wid, root)
    if config.github is not None:
        env.pop(config.github.token_env, None)
    return env


def _on_signals(sup: Supervisor) -> dict[signal.Signals, Any]:
    """A cancelled run (SIGTERM, SIGINT from the runner) ends the worker's group and
    records it; the previous handlers, to put back."""

    def on_term(_sig: int, _frame: Any) -> None:
        sup.terminate = True  # the supervisor's loop sees it within POLL_S

    return {sig: signal.signal(sig, on_term) for sig in (signal.SIGTERM, signal.SIGINT)}


def _code(ended: Worker | None) -> int:
    if ended is None or ended.exit_code is None:
        return NOT_STARTED if ended is None or ended.state != "killed" else CANCELLED
    if ended.state == "killed":
        return ended.exit_code or CANCELLED
    return ended.exit_code


def _verify(root: Path, config: Config, command: str) -> int:
    """The worker's verify, once, in the checkout: 0 for pass, 1 for fail."""
    print(f"looopbot: verify: {command}", file=sys.stderr, flush=True)
    result = proc.run(
        proc.Spec(
            argv=["bash", "-c", command],
            cwd=root,
            env=proc.child_env(),
            timeout=config.limits.verify_timeout,
            merge_stderr=True,
            stdout_tail=4096,
        )
    )
    sys.stdout.buffer.write(result.stdout)
    sys.stdout.flush()
    passed = result.exit_code == 0 and not result.timed_out
    why = "timed out" if result.timed_out else f"exit {result.exit_code}"
    print(f"looopbot: verify: {'pass' if passed else 'fail'} ({why})", file=sys.stderr)
    return 0 if passed else 1


def _commit(root: Path, config: Config, message: str, *, everything: bool = False) -> None:
    if everything:
        gitcli.run(root, "add", "-A")
    if gitcli.run(root, "diff", "--cached", "--quiet", check=False).ok:
        return  # nothing staged
    name, email = author_identity(config.author)
    gitcli.run(
        root,
        *("-c", f"user.name={name}", "-c", f"user.email={email}"),
        *("commit", "-q", "--no-verify", "-m", message),
    )
