"""DECIDE: run the configured tick command once and read its one decision (DESIGN §6)."""

from __future__ import annotations

import json
import os
import random
import re
import shlex
import shutil
import stat
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

from looopbot import proc, runs
from looopbot.config import Config, Runner
from looopbot.datadir import DataDir
from looopbot.extract import find_decision, read_cost, runner_errors
from looopbot.fsutil import drop_dead_temp_files, write_atomic
from looopbot.text import one_line

STDOUT_LIMIT = 64 * 1024 * 1024


class Attempt(NamedTuple):
    """A runner call that failed transiently and was tried again."""

    at: float
    error: str
    cost_usd: float | None


class Ran(NamedTuple):
    """What the runner produced: a decision object, or the reason there is none. `retried`
    lists the calls before the last one, which each cost what they cost."""

    decision: dict[str, Any] | None
    error: str | None
    cost_usd: float | None
    run_dir: Path
    retried: tuple[Attempt, ...] = ()


def self_bin() -> str:
    """The looopbot executable, for commands we start (`$LOOOPBOT_BIN`)."""
    argv0 = Path(sys.argv[0])
    if argv0.name == "looopbot" and os.access(argv0, os.X_OK):
        return str(argv0.resolve())
    return shutil.which("looopbot") or "looopbot"


DECISION_CAP = 1024 * 1024  # a decision is a few KiB; more is a runner gone wrong


def decision_file(dd: DataDir, run_id: str) -> Path:
    """Where the runner of `run_id` writes its decision: its own run folder, so a runner
    that outlived a killed beat can never decide into a later one."""
    return dd.runs / run_id / "decision.json"


def runner_env(dd: DataDir, run_id: str) -> dict[str, str]:
    return proc.child_env(
        {
            "LOOOPBOT_DATA_DIR": str(dd.root),
            "LOOOPBOT_RUN_ID": run_id,
            "LOOOPBOT_DECISION_FILE": str(decision_file(dd, run_id)),
            "LOOOPBOT_BIN": self_bin(),
        }
    )


def decide(dd: DataDir, config: Config, prompt: str, run_id: str) -> Ran:
    """Run the tick command; a transient failure (its output matches the runner's
    `retry_match`) is tried again, up to `retries` times, before it is the beat's failure."""
    run_dir = dd.runs / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    runs.prune(dd, config.limits.runs_keep, run_id)
    for kept in dd.runs.iterdir():  # a beat killed writing its prompt or decision left one
        drop_dead_temp_files(kept)
    write_atomic(run_dir / "prompt.md", prompt)
    runner = config.runner
    retried: list[Attempt] = []
    while True:
        started = time.time()
        result, stdout = _call(dd, config, prompt, run_id, run_dir)
        cost = read_cost(stdout, runner.cost)
        error = _failure(result, stdout, config)
        if error is None or len(retried) >= runner.retries:
            break
        if not _transient(result, stdout, runner):
            break
        retried.append(Attempt(round(started, 3), error, cost))
        # The failed call's decision file, if any, must not be read as the next one's.
        (run_dir / "decision.json").unlink(missing_ok=True)
        wait = runner.retry_sleep * random.uniform(0.5, 1.5)  # jitter: clones do not retry in step
        with (run_dir / "output.log").open("ab") as log:
            log.write(
                f"\n--- looopbot: transient failure, attempt {len(retried) + 1} of "
                f"{runner.retries + 1} in {wait:.1f}s: {error}\n".encode()
            )
        time.sleep(wait)
    decision: dict[str, Any] | None = None
    if error is None:
        decision, error = _read_decision(dd, run_dir, result, stdout)
    if error is not None and retried:
        error += f" (after {len(retried) + 1} attempts)"
    return Ran(decision, error, cost, run_dir, tuple(retried))


def _call(
    dd: DataDir, config: Config, prompt: str, run_id: str, run_dir: Path
) -> tuple[proc.Result, str]:
    """One run of the tick command: the prompt on stdin, or as the file `{prompt_file}`
    names when the command has one (for CLIs that take a file, or a prompt too big for
    their argument)."""
    tick = config.runner.tick
    stdin: bytes | None = prompt.encode()
    if "{prompt_file}" in tick:
        tick = tick.replace("{prompt_file}", shlex.quote(str(run_dir / "prompt.md")))
        stdin = None
    try:
        result = proc.run(
            proc.Spec(
                argv=["bash", "-c", tick],
                cwd=dd.root,
                env=runner_env(dd, run_id),
                timeout=config.limits.tick_timeout,
                stdin=stdin,
                stdout_limit=STDOUT_LIMIT,
                stderr_tail=4096,
                log=run_dir / "output.log",
                on_start=runs.note_runner(dd, run_id),
            )
        )
    finally:
        dd.scratch(runs.RUNNER_NOTE).unlink(missing_ok=True)
    return result, result.stdout.decode("utf-8", errors="replace")


def _transient(result: proc.Result, stdout: str, runner: Runner) -> bool:
    """A failure worth a second call: the runner ran and said it was rate limited or
    overloaded. A timeout, a spawn error or oversized output is not (it would recur)."""
    if result.spawn_error is not None or result.timed_out or result.too_large:
        return False
    said = stdout[-65536:] + "\n" + result.stderr.decode("utf-8", errors="replace")
    return re.search(runner.retry_match, said) is not None


def _read_decision(
    dd: DataDir, run_dir: Path, result: proc.Result, stdout: str
) -> tuple[dict[str, Any] | None, str | None]:
    """The decision from the run's decision file, else from stdout (then written to the
    file, the one place a decision is read from); or why there is none."""
    path = run_dir / "decision.json"
    rel = path.relative_to(dd.root)
    try:
        # Not through a symlink, and never blocking: a FIFO the runner left would hang the
        # beat (holding its lock) long after the runner is gone.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        fd = None
    except OSError:
        return None, f"{rel} is not a regular file (a symlink, a folder…), not a decision"
    raw: bytes | None = None
    if fd is not None:
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                return None, f"{rel} is not a regular file (a FIFO, a device…), not a decision"
            raw = f.read(DECISION_CAP + 1)
    if raw is None:
        found = find_decision(stdout)
        if found is None:
            hint = no_decision(stdout, result.stderr.decode("utf-8", errors="replace"))
            return None, (
                "the runner left no decision: no decision file and no JSON object with an "
                f'"action" key in its output (see {run_dir.relative_to(dd.root)}/output.log)'
                + (f"; it reported: {hint}" if hint else "")
            )
        try:
            raw = json.dumps(found, indent=1).encode() + b"\n"
        except RecursionError:
            return None, "the decision in the runner's output is nested too deep to use"
        write_atomic(path, raw)
    if len(raw) > DECISION_CAP:
        return None, f"the decision is over {DECISION_CAP} bytes ({rel}): not a decision"
    try:
        parsed = json.loads(raw)
    except RecursionError:
        return None, f"the decision file {rel} is nested too deep to parse"
    except ValueError as exc:
        return None, f"the decision file is not valid JSON ({exc})"
    if not isinstance(parsed, dict):
        return None, "the decision file does not hold a JSON object"
    return parsed, None


def _failure(result: proc.Result, stdout: str, config: Config) -> str | None:
    name = config.runner.name
    if result.spawn_error is not None:
        return f"runner '{name}' could not start: {result.spawn_error}"
    if result.timed_out:
        return (
            f"runner '{name}' timed out after {config.limits.tick_timeout:g}s "
            f"(limits.tick_timeout) running {_command(config)}; its whole process group "
            "was killed"
        )
    if result.too_large:
        return f"runner '{name}' printed more than {STDOUT_LIMIT} bytes"
    stderr = result.stderr.decode("utf-8", errors="replace")
    said = runner_errors(stdout)
    if result.exit_code != 0:
        # The runner's own words beat a generic code: claude prints its error as JSON on
        # stdout, gemini as JSON on stderr, others as plain stderr lines.
        told = said.fatal or said.soft or runner_errors(stderr).fatal or runner_errors(stderr).soft
        detail = told or _last_lines(stderr)
        suffix = f": {detail}" if detail else ""
        return f"runner '{name}' exited with code {result.exit_code}{suffix}"
    if said.fatal is not None:
        return f"runner '{name}' reported an error: {said.fatal}"
    return None


def _command(config: Config) -> str:
    """The tick command that actually ran, and where it came from."""
    tick = " ".join(config.runner.tick.split())
    shown = tick if len(tick) <= 120 else tick[:119] + "…"
    where = " (from $LOOOPBOT_TICK_COMMAND)" if os.environ.get("LOOOPBOT_TICK_COMMAND") else ""
    return f"`{shown}`{where}"


def no_decision(stdout: str, stderr: str) -> str | None:
    """What the runner said that might explain a missing decision."""
    said = runner_errors(stdout)
    return said.soft or runner_errors(stderr).soft


def _last_lines(text: str, n: int = 3) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return one_line(" | ".join(lines[-n:]), 600)
