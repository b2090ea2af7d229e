"""`looopbot worker run ID`: the worker's side of `workers.backend: actions`, run by
`looopbot-worker.yml` in a checkout of the worker's branch on GitHub's runner.

It runs the configured runner's worker command on the brief the start committed to the
branch, then commits whatever the worker left uncommitted, and — when the worker succeeded
— a last commit that drops the brief, so the branch's diff against its base is the work
alone (a merged pull request must not carry the brief into the base branch). A failed
worker keeps its brief, so "Re-run" on GitHub runs it again. A declared verify runs once
after a worker that exited 0; a failing one fails the run (its conclusion says so).
Pushing is the workflow's step, in plain sight.
"""

from __future__ import annotations

import shlex
import shutil
import sys
import tempfile
from pathlib import Path

from looopbot import gitcli, proc
from looopbot.config import Config, author_identity
from looopbot.datadir import DataDir
from looopbot.errors import LooopbotError
from looopbot.ids import check_branch_id
from looopbot.workers.onactions import BRIEF, BRIEF_TRAILER, VERIFY
from looopbot.workers.record import branch as branch_of

# GitHub ends a job after 6 hours at most; the workflow's timeout-minutes is the real limit.
WORKER_TIMEOUT_S = 6 * 3600.0


def run_here(dd: DataDir, config: Config, wid: str) -> int:
    """Run the worker; its exit code (124: timed out, 127: could not start)."""
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
    from looopbot.runner import self_bin

    scratch = Path(tempfile.mkdtemp(prefix="looopbot-worker-"))
    try:
        # Outside the checkout: the worker cannot edit its brief into its own commits.
        prompt_file = scratch / "brief.md"
        shutil.copyfile(brief, prompt_file)
        log = scratch / "output.log"
        env = {
            "LOOOPBOT_SESSION_ID": wid,
            "LOOOPBOT_DATA_DIR": str(dd.root),
            "LOOOPBOT_WORKTREE": str(root),
            "LOOOPBOT_BIN": self_bin(),
        }
        command = template.replace("{prompt_file}", shlex.quote(str(prompt_file)))
        result = proc.run(
            proc.Spec(
                argv=["bash", "-c", command],
                cwd=root,
                env=proc.child_env(env),
                timeout=WORKER_TIMEOUT_S,
                stdout_tail=1024,
                merge_stderr=True,
                log=log,
            )
        )
        with log.open("rb") as f:  # the job's log shows what the worker printed
            shutil.copyfileobj(f, sys.stdout.buffer)
        sys.stdout.flush()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    code = 127 if result.exit_code is None else 124 if result.timed_out else result.exit_code
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
