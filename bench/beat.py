#!/usr/bin/env python3
"""looopbot's benchmark: prints JSON figures, measured side by side in one run.

    python bench/beat.py [--quick]

Runs the installed `looopbot` (next to this Python, or on PATH) against data repos it
builds in a temporary directory. Nothing here touches the network, $HOME or your git config.

Figures (targets from issue 2):
- skip_path: an unchanged beat with 10 trivial sensors vs a bash script running the same
  10 sensors in parallel and hashing their output (target ratio <= 2.0), both as a cold
  `looopbot tick` (a new Python process) and as a beat inside `looopbot run`;
- parallel_sensors: one beat with 16 sensors that each sleep 0.5 s (target <= 1.5 s);
- flat_scaling: an unchanged beat on a repo with 5,000 commits, a 50,000-line journal and
  500 goals vs the same beat on a fresh repo (target ratio <= 1.25);
- decide_overhead: a decided beat with an instant runner vs an unchanged beat;
- peak_memory: the beat process's maximum resident set size (target <= 100 MB).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LOOOPBOT = str(Path(sys.executable).parent / "looopbot")
if not Path(LOOOPBOT).exists():
    LOOOPBOT = shutil.which("looopbot") or "looopbot"
NOOP = json.dumps({"action": "noop", "reason": "benchmark"})


def env_for(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOOOPBOT_", "GIT_"))}
    env.update(
        HOME=str(home),
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=str(home / ".gitconfig"),
        GIT_AUTHOR_NAME="bench",
        GIT_AUTHOR_EMAIL="bench@example.invalid",
        GIT_COMMITTER_NAME="bench",
        GIT_COMMITTER_EMAIL="bench@example.invalid",
        LOOOPBOT_TICK_COMMAND=f"echo '{NOOP}'",
    )
    return env


def sh(cmd: list[str], env: dict[str, str], cwd: Path | None = None) -> str:
    out = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"bench: {' '.join(cmd)} failed: {out.stderr}")
    return out.stdout


def make_repo(base: Path, name: str, env: dict[str, str], sensors: int, sleep: float = 0) -> Path:
    root = base / name
    sh([LOOOPBOT, "init", str(root), "--runner", "example"], env)
    (root / "sensors" / "today.sh").unlink()
    for i in range(sensors):
        body = f"sleep {sleep}\n" if sleep else ""
        script = root / "sensors" / f"s{i:02d}.sh"
        script.write_text(f'#!/bin/sh\n{body}echo \'{{"signal": {{"n": {i}}}}}\'\n')
        script.chmod(0o755)
    sh(["git", "add", "-A"], env, root)
    sh(["git", "commit", "-qm", "bench sensors"], env, root)
    return root


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, int]:
    """Wall seconds and max RSS (KiB) of one run of `cmd`."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        assert proc.stderr is not None
        raise SystemExit(f"bench: {' '.join(cmd)} exited {proc.returncode}: {proc.stderr.read()}")
    return elapsed, usage.ru_maxrss


def median_time(cmd: list[str], env: dict[str, str], n: int) -> float:
    timed(cmd, env)  # warm caches
    return statistics.median(timed(cmd, env)[0] for _ in range(n))


def tick(root: Path, *extra: str) -> list[str]:
    return [LOOOPBOT, "-C", str(root), "tick", *extra]


def beat_in_run(root: Path, env: dict[str, str], beats: int) -> float:
    """Seconds per unchanged beat inside `looopbot run`, where the loop lives: the
    interpreter starts once, so this is the beat itself."""
    few, many = 5, beats
    t_few = median_time(
        [LOOOPBOT, "-C", str(root), "run", "--interval", "0", "--max-beats", str(few)], env, 3
    )
    t_many = median_time(
        [LOOOPBOT, "-C", str(root), "run", "--interval", "0", "--max-beats", str(many)], env, 3
    )
    return (t_many - t_few) / (many - few)


def bash_baseline(root: Path) -> list[str]:
    script = (
        "cd " + str(root) + " && out=$(mktemp -d) && "
        'for s in sensors/*.sh; do n=$(basename "$s"); ./"$s" > "$out/$n" & done; wait; '
        'cat "$out"/* | sha256sum > /dev/null; rm -rf "$out"'
    )
    return ["bash", "-c", script]


def grow(root: Path, env: dict[str, str], commits: int, journal_lines: int, goals: int) -> None:
    """Make a repo old: history via git fast-import, a long journal, many goals."""
    lines = []
    for i in range(commits):
        body = f"history line {i}\n".encode()
        lines.append(
            b"commit refs/heads/history\n"
            + b"committer bench <bench@example.invalid> %d +0000\n" % (1_700_000_000 + i)
            + b"data %d\nold commit %d\n" % (len(f"old commit {i}"), i)
            + b"M 100644 inline history.txt\ndata %d\n" % len(body)
            + body
            + b"\n"
        )
    subprocess.run(
        ["git", "fast-import", "--quiet"], input=b"".join(lines), cwd=root, env=env, check=True
    )
    branch = sh(["git", "symbolic-ref", "--short", "HEAD"], env, root).strip()
    sh(
        ["git", "merge", "-q", "--allow-unrelated-histories", "-m", "old history", "history"],
        env,
        root,
    )
    sh(["git", "branch", "-q", "-D", "history"], env, root)
    assert branch
    with (root / "journal.md").open("a") as f:
        for i in range(journal_lines):
            f.write(f"- 2026-01-01 00:00 old move number {i}\n")
    for i in range(goals):
        (root / "goals" / f"goal-{i:03d}.md").write_text(f"goal: keep thing {i} healthy\n")
    sh(["git", "add", "-A"], env, root)
    sh(["git", "commit", "-qm", "bench: an old repo"], env, root)


def main() -> None:
    quick = "--quick" in sys.argv
    n = 5 if quick else 15
    figures: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="looopbot-bench-") as tmp:
        base = Path(tmp)
        home = base / "home"
        home.mkdir()
        env = env_for(home)

        # skip path
        ten = make_repo(base, "ten", env, sensors=10)
        sh(tick(ten), env)
        sh(tick(ten), env)
        beat = median_time(tick(ten), env, n)
        baseline = median_time(bash_baseline(ten), env, n)
        in_run = beat_in_run(ten, env, beats=200 if not quick else 50)
        figures["skip_path"] = {
            "tick_cold_s": round(beat, 4),
            "beat_in_run_s": round(in_run, 4),
            "bash_baseline_s": round(baseline, 4),
            "ratio_cold": round(beat / baseline, 2),
            "ratio_in_run": round(in_run / baseline, 2),
            "target_ratio": 2.0,
        }

        # parallel sensors
        sixteen = make_repo(base, "sixteen", env, sensors=16, sleep=0.5)
        sh(tick(sixteen), env)
        par = median_time(tick(sixteen), env, 3)
        figures["parallel_sensors"] = {
            "sensors": 16,
            "each_sleeps_s": 0.5,
            "beat_s": round(par, 3),
            "target_s": 1.5,
        }

        # flat scaling
        fresh = make_repo(base, "fresh", env, sensors=10)
        old = make_repo(base, "old", env, sensors=10)
        grow(old, env, commits=500 if quick else 5000, journal_lines=50_000, goals=500)
        for r in (fresh, old):
            sh(tick(r), env)
            sh(tick(r), env)
        t_fresh = median_time(tick(fresh), env, n)
        t_old = median_time(tick(old), env, n)
        figures["flat_scaling"] = {
            "fresh_s": round(t_fresh, 4),
            "old_s": round(t_old, 4),
            "old_repo": {
                "commits": int(sh(["git", "rev-list", "--count", "HEAD"], env, old)),
                "journal_lines": 50_000,
                "goals": 500,
            },
            "ratio": round(t_old / t_fresh, 2),
            "target_ratio": 1.25,
        }

        # decide overhead
        decided = median_time(tick(ten, "--force"), env, n)
        figures["decide_overhead"] = {
            "decided_s": round(decided, 4),
            "unchanged_s": round(beat, 4),
            "runner": "an instant `echo` of a noop decision",
            "overhead_s": round(decided - beat, 4),
        }

        # peak memory of a decided beat (the looopbot process itself)
        _, rss_kib = timed(tick(old, "--force"), env)
        figures["peak_memory"] = {"max_rss_mb": round(rss_kib / 1024, 1), "target_mb": 100}

    figures["machine"] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "quick": quick,
    }
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
