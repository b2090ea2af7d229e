"""DECIDE: run the configured tick command once and read its one decision (DESIGN §6)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from looopbot import proc
from looopbot.config import Config
from looopbot.datadir import DataDir
from looopbot.errors import LooopbotError
from looopbot.extract import find_decision, read_cost, runner_errors
from looopbot.fsutil import write_atomic

STDOUT_LIMIT = 64 * 1024 * 1024


@dataclass(frozen=True)
class Ran:
    """What one runner call produced: a decision object, or the reason there is none."""

    decision: dict[str, Any] | None
    error: str | None
    cost_usd: float | None
    run_dir: Path


def self_bin() -> str:
    """The looopbot executable, for commands we start (`$LOOOPBOT_BIN`)."""
    argv0 = Path(sys.argv[0])
    if argv0.name == "looopbot" and os.access(argv0, os.X_OK):
        return str(argv0.resolve())
    return shutil.which("looopbot") or "looopbot"


def runner_env(dd: DataDir, run_id: str) -> dict[str, str]:
    return proc.child_env(
        {
            "LOOOPBOT_DATA_DIR": str(dd.root),
            "LOOOPBOT_RUN_ID": run_id,
            "LOOOPBOT_DECISION_FILE": str(dd.decision_file),
            "LOOOPBOT_BIN": self_bin(),
        }
    )


def clear_decision_file(dd: DataDir) -> None:
    """A decision file left by an earlier (crashed) beat must never be executed."""
    path = dd.decision_file
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except IsADirectoryError:
        raise LooopbotError(
            f"{path} is a directory — remove it so runners can write decisions"
        ) from None


def decide(dd: DataDir, config: Config, prompt: str, run_id: str) -> Ran:
    run_dir = dd.runs / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(run_dir / "prompt.md", prompt)
    clear_decision_file(dd)
    runner = config.runner
    result = proc.run(
        proc.Spec(
            argv=["bash", "-c", runner.tick],
            cwd=dd.root,
            env=runner_env(dd, run_id),
            timeout=config.limits.tick_timeout,
            stdin=prompt.encode(),
            stdout_limit=STDOUT_LIMIT,
            stderr_tail=4096,
            log=run_dir / "output.log",
        )
    )
    stdout = result.stdout.decode("utf-8", errors="replace")
    cost = read_cost(stdout, runner.cost)
    error = _failure(result, stdout, config)
    decision: dict[str, Any] | None = None
    raw = _take_decision_file(dd, run_dir)
    if error is None:
        if raw is not None:
            try:
                parsed = json.loads(raw)
            except ValueError as exc:
                error = f"the decision file is not valid JSON ({exc})"
            else:
                decision = parsed if isinstance(parsed, dict) else None
                if decision is None:
                    error = "the decision file does not hold a JSON object"
        else:
            decision = find_decision(stdout)
            if decision is None:
                hint = no_decision(stdout, result.stderr.decode("utf-8", errors="replace"))
                error = (
                    "the runner left no decision: no decision file and no JSON object with an "
                    f'"action" key in its output (see {run_dir.relative_to(dd.root)}/output.log)'
                    + (f"; it reported: {hint}" if hint else "")
                )
            else:
                write_atomic(run_dir / "decision.json", json.dumps(decision, indent=1) + "\n")
    return Ran(decision, error, cost, run_dir)


def _take_decision_file(dd: DataDir, run_dir: Path) -> bytes | None:
    try:
        raw = dd.decision_file.read_bytes()
    except (FileNotFoundError, IsADirectoryError):
        return None
    write_atomic(run_dir / "decision.json", raw)
    with contextlib.suppress(FileNotFoundError):
        dd.decision_file.unlink()
    return raw


def _failure(result: proc.Result, stdout: str, config: Config) -> str | None:
    name = config.runner.name
    if result.spawn_error is not None:
        return f"runner '{name}' could not start: {result.spawn_error}"
    if result.timed_out:
        return (
            f"runner '{name}' timed out after {config.limits.tick_timeout:g}s "
            "(limits.tick_timeout); its whole process group was killed"
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


def no_decision(stdout: str, stderr: str) -> str | None:
    """What the runner said that might explain a missing decision."""
    said = runner_errors(stdout)
    return said.soft or runner_errors(stderr).soft


def _last_lines(text: str, n: int = 3) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " | ".join(lines[-n:])[:600]
