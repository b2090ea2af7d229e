"""Every git CLI call looopbot makes: through the one subprocess helper, with the one git
environment (looopbot.gitenv), a timeout and no prompt.

The git CLI is what honours the user's whole setup (worktrees, sparse checkouts, split
indexes, hooks, credentials, `url.*.insteadOf`, merge drivers), so porcelain goes here.
GitPython's `Git.execute` builds its child's environment from `os.environ` and can only add
variables, never drop an inherited `GIT_INDEX_FILE`, and it has no process-group kill; so
the commands themselves run through `looopbot.proc`, like every other child.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from looopbot import gitenv, proc
from looopbot.errors import LooopbotError

TIMEOUT_S = 120.0  # a local git command; a hung one (a credential helper…) must not hang us
OUTPUT_CAP = 256 * 1024 * 1024


class GitFailed(LooopbotError):
    """A git command refused or failed; `stderr` holds git's own words."""

    def __init__(self, args: Sequence[str], result: proc.Result) -> None:
        said = result.stderr.decode("utf-8", errors="replace").strip()
        if result.timed_out:
            said = f"timed out after {TIMEOUT_S:g}s"
        elif result.spawn_error:
            said = f"could not start git: {result.spawn_error}"
        words = " ".join(args[:2])
        lines = [line for line in said.splitlines() if line.strip()]
        super().__init__(f"git {words}: {lines[-1] if lines else f'exit {result.exit_code}'}")
        self.stderr = said
        self.exit_code = result.exit_code


def run(
    cwd: Path,
    *args: str,
    stdin: bytes | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = TIMEOUT_S,
    check: bool = True,
) -> proc.Result:
    """`git ARGS` in `cwd`; raises GitFailed on a non-zero exit unless `check` is False."""
    argv = ["git", "--literal-pathspecs", *args]
    result = proc.run(
        proc.Spec(
            argv=argv,
            cwd=cwd,
            env=gitenv.for_git(env),
            timeout=timeout,
            stdin=stdin,
            stdout_limit=OUTPUT_CAP,
            stderr_tail=8192,
        )
    )
    if check and not result.ok:
        raise GitFailed(args, result)
    return result


def out(cwd: Path, *args: str, env: Mapping[str, str] | None = None) -> str:
    """git's stdout as text (raises GitFailed on a non-zero exit)."""
    return run(cwd, *args, env=env).stdout.decode("utf-8", errors="replace")
