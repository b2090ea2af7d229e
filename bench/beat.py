#!/usr/bin/env python3
"""looopbot's benchmark: prints JSON figures, measured side by side in one run.

    python bench/beat.py [--quick]

Runs the installed `looopbot` (next to this Python, or on PATH) against data repos it
builds in a temporary directory. Nothing here touches the network, $HOME or your git config.
`--quick` takes fewer repetitions; the repos stay the same size, so every figure means the
same thing, only with more noise.

Figures:
- skip_path: an unchanged beat with 10 trivial sensors vs the minimal honest shell floor
  (BASELINE below: the same sensors in parallel, one sha256sum, a compare; target ratio
  <= 2.0), as a beat inside `looopbot run` (production) and as a cold `looopbot tick`;
- parallel_sensors: one beat with 16 sensors that each sleep 0.5 s (target <= 1.5 s);
- flat_scaling: an unchanged beat on a repo with 5,000 commits, a 50,000-line journal and
  500 goals vs the same beat on a fresh repo (target ratio <= 1.25);
- tracked_files: a decided beat (it writes a goal and commits) on a repo whose index holds
  20,000 and 100,000 extra files vs the same on a fresh repo (target ratio <= 1.25);
- decide_overhead: a decided beat minus an unchanged beat on a fresh repo (target <= 40 ms);
- peak_memory: the maximum RSS of the looopbot process in a decided beat with 100,000
  tracked files (target <= 60 MB, MB = 10^6 bytes).

Times are medians of beats measured in interleaved rounds (each round runs every
contender once), so a slow patch of the machine hits all of them alike.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

LOOOPBOT = str(Path(sys.executable).parent / "looopbot")
if not Path(LOOOPBOT).exists():
    LOOOPBOT = shutil.which("looopbot") or "looopbot"

# The decider: a bash builtin printing a write_goal decision whose body differs every beat
# (the run id is unique), so each decided beat changes a goal and makes a commit.
DECIDE = (
    "printf '"
    + json.dumps({"action": "write_goal", "id": "bench", "body": "goal: bench beat %s"})
    + '\\n\' "$LOOOPBOT_RUN_ID"'
)

# The floor an unchanged beat is measured against: what any loop must do at least. The same
# sensors run in parallel, each straight into its own file; ONE sha256sum over their outputs
# and the desired state looopbot hashes too (PLAYBOOK.md, goals/*.md); a compare with the
# last hash, kept in a file. No subshell per sensor, no helper processes, no JSON parsing:
# bash, one fork+exec per sensor and one for sha256sum.
BASELINE = """\
# usage: bash baseline.sh DATA_DIR OUT_DIR
shopt -s nullglob
cd "$1" || exit 1
out=$2
for s in sensors/*.sh; do
  "./$s" > "$out/${s##*/}" &
done
wait
new=$(sha256sum "$out"/* PLAYBOOK.md goals/*.md)
last=
[[ -f $out.last ]] && read -r -d '' last < "$out.last"
if [[ $new != "$last" ]]; then
  printf '%s' "$new" > "$out.last"
fi
"""

# Runs one looopbot command in this very process and reports the process's own peak RSS
# and that of the largest child it waited for (RUSAGE_CHILDREN: sensors, the runner, git),
# so the figure is the looopbot process, not the bench and not a child. Its own peak is
# VmHWM, the high-water mark of this process image: RUSAGE_SELF's maxrss would not do, as
# Linux carries the spawning process's peak over into it through the exec (it reported the
# bench's own 37 MB here). `-I` keeps the current directory off sys.path: a source checkout
# must not shadow the installed package, which is what the `looopbot` console script runs.
RSS_PROBE = """\
import resource, sys
from looopbot.cli import main
code = main(sys.argv[1:])
with open("/proc/self/status") as f:
    own = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(f"bench-rss {own} {kids}", file=sys.stderr)
raise SystemExit(code)
"""

FILES_PER_FOLDER = 100


def looopbot_python() -> str:
    """The interpreter the `looopbot` console script runs (its shebang)."""
    try:
        with open(LOOOPBOT, "rb") as f:
            first = f.readline().decode().strip()
    except OSError:
        return sys.executable
    return first[2:].strip() if first.startswith("#!") and "python" in first else sys.executable


def env_for(home: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("LOOOPBOT_", "GIT_")) and k not in ("BASH_ENV", "ENV")
    }
    env.update(
        HOME=str(home),
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=str(home / ".gitconfig"),
        GIT_AUTHOR_NAME="bench",
        GIT_AUTHOR_EMAIL="bench@example.invalid",
        GIT_COMMITTER_NAME="bench",
        GIT_COMMITTER_EMAIL="bench@example.invalid",
        LOOOPBOT_TICK_COMMAND=DECIDE,
        # The bench forces hundreds of decided beats an hour; the hourly cap would turn
        # them into "capped" beats that do no work.
        LOOOPBOT_MAX_DECIDES_PER_HOUR="1000000",
    )
    return env


def sh(cmd: list[str], env: Mapping[str, str], cwd: Path | None = None) -> str:
    out = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"bench: {' '.join(cmd)} failed: {out.stderr}")
    return out.stdout


def make_repo(
    base: Path, name: str, env: Mapping[str, str], sensors: int, sleep: float = 0
) -> Path:
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


def timed(cmd: list[str], env: Mapping[str, str]) -> float:
    """Wall seconds of one run of `cmd`; a failure stops the bench."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"bench: {' '.join(cmd)} exited {proc.returncode}: {proc.stderr!r}")
    return elapsed


def medians(cmds: Mapping[str, list[str]], env: Mapping[str, str], rounds: int) -> dict[str, float]:
    """Median seconds of each command over interleaved rounds, after one warm-up each."""
    for cmd in cmds.values():
        timed(cmd, env)
    samples: dict[str, list[float]] = {name: [] for name in cmds}
    for _ in range(rounds):
        for name, cmd in cmds.items():
            samples[name].append(timed(cmd, env))
    return {name: statistics.median(s) for name, s in samples.items()}


def tick(root: Path, *extra: str) -> list[str]:
    return [LOOOPBOT, "-C", str(root), "tick", *extra]


def beat_in_run(root: Path, env: Mapping[str, str], beats: int, rounds: int) -> float:
    """Seconds per unchanged beat inside `looopbot run`, where the loop lives for real.

    `run --interval 0` beats back to back; the difference between a run of `beats` beats
    and one of 5 cancels the interpreter start, imports and the first beat, leaving the
    cost of a beat in the running loop (the config reload each loop does included).
    """
    few = 5

    def run(n: int) -> list[str]:
        return [LOOOPBOT, "-C", str(root), "run", "--interval", "0", "--max-beats", str(n)]

    got = medians({"few": run(few), "many": run(beats)}, env, rounds)
    return (got["many"] - got["few"]) / (beats - few)


def decides(root: Path, env: Mapping[str, str]) -> None:
    """Check that a forced tick is a decided beat that commits, or the figures lie."""
    out = json.loads(sh(tick(root, "--force", "--json"), env))
    if out["outcome"] != "decided" or not out["commit"]:
        raise SystemExit(f"bench: a forced tick in {root} did not decide and commit: {out}")


def commits(root: Path, env: Mapping[str, str]) -> int:
    return int(sh(["git", "rev-list", "--count", "HEAD"], env, root))


def index_in_step(root: Path, env: Mapping[str, str]) -> bool:
    """Whether `git status` is clean: the beat commits moved the index along with HEAD."""
    return sh(["git", "status", "--porcelain"], env, root) == ""


def grow(root: Path, env: Mapping[str, str], commits: int, journal_lines: int, goals: int) -> None:
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
    sh(
        ["git", "merge", "-q", "--allow-unrelated-histories", "-m", "old history", "history"],
        env,
        root,
    )
    sh(["git", "branch", "-q", "-D", "history"], env, root)
    with (root / "journal.md").open("a") as f:
        for i in range(journal_lines):
            f.write(f"- 2026-01-01 00:00 old move number {i}\n")
    for i in range(goals):
        (root / "goals" / f"goal-{i:03d}.md").write_text(f"goal: keep thing {i} healthy\n")
    sh(["git", "add", "-A"], env, root)
    sh(["git", "commit", "-qm", "bench: an old repo"], env, root)


def vendor(root: Path, env: Mapping[str, str], files: int) -> None:
    """Commit `files` extra files (vendor/pNNNN/fNNN.txt, one shared blob) and check them
    out, so they sit in the working tree and in the index with their stat info.

    git fast-import writes the commit in a second, whatever the count; `git reset --hard`
    then writes the files and the index. Files written in the same second as the index are
    "racily clean" (git would re-read them on every status), so after a second has passed,
    `git update-index --refresh` records them as clean: the repo looks like one that has
    sat there for a while, as a real one would.
    """
    head = sh(["git", "rev-parse", "HEAD"], env, root).strip()
    branch = sh(["git", "symbolic-ref", "HEAD"], env, root).strip()
    blob = b"a vendored file\n"
    msg = b"bench: vendor %d files" % files
    stream = [
        b"blob\nmark :1\ndata %d\n%s\n" % (len(blob), blob),
        b"commit %s\n" % branch.encode(),
        b"committer bench <bench@example.invalid> 1700000000 +0000\n",
        b"data %d\n%s\nfrom %s\n" % (len(msg), msg, head.encode()),
        *(
            b"M 100644 :1 vendor/p%04d/f%03d.txt\n" % (i // FILES_PER_FOLDER, i % FILES_PER_FOLDER)
            for i in range(files)
        ),
        b"\n",
    ]
    subprocess.run(
        ["git", "fast-import", "--quiet"], input=b"".join(stream), cwd=root, env=env, check=True
    )
    sh(["git", "reset", "-q", "--hard"], env, root)
    time.sleep(1.1)
    sh(["git", "update-index", "-q", "--refresh"], env, root)
    tracked = len(sh(["git", "ls-files"], env, root).splitlines())
    if tracked < files or not index_in_step(root, env):
        raise SystemExit(f"bench: {root} holds {tracked} tracked files or is not clean")


def peak_rss(root: Path, env: Mapping[str, str], python: str) -> tuple[int, int]:
    """(KiB of the looopbot process itself, KiB of its largest child) in one decided beat."""
    cmd = [python, "-I", "-c", RSS_PROBE, "-C", str(root), "tick", "--force"]
    out = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    last = out.stderr.strip().splitlines()[-1] if out.stderr.strip() else ""
    if out.returncode != 0 or not last.startswith("bench-rss "):
        raise SystemExit(f"bench: the RSS probe failed ({out.returncode}): {out.stderr}")
    own, kids = last.split()[1:]
    return int(own), int(kids)


def ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def machine(python: str, quick: bool, load_before: float) -> dict[str, object]:
    def first(path: str, key: str) -> str:
        try:
            with open(path) as f:
                for line in f:
                    if line.startswith(key):
                        return line.split(":", 1)[1].strip()
        except OSError:
            pass
        return "unknown"

    mem_kib = first("/proc/meminfo", "MemTotal").split()[0]
    versions = subprocess.run(
        [
            python,
            "-I",
            "-c",
            "import importlib.metadata as m, platform;"
            "print(platform.python_version(), m.version('looopbot'))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    git = subprocess.run(["git", "--version"], capture_output=True, text=True, check=True)
    return {
        "cpu": first("/proc/cpuinfo", "model name"),
        "cores": os.cpu_count(),
        "memory_gib": round(int(mem_kib) / 1024**2, 1) if mem_kib.isdigit() else None,
        "kernel": platform.release(),
        "python": versions[0],
        "looopbot": versions[1],
        "git": git.stdout.strip().removeprefix("git version "),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "quick": quick,
        # Other work on the machine skews every figure: the 1-minute load average when the
        # bench started and when it ended says whether it had the machine to itself.
        "load_1m": {"start": round(load_before, 2), "end": round(os.getloadavg()[0], 2)},
    }


def main() -> None:
    quick = "--quick" in sys.argv
    rounds = 5 if quick else 15  # cheap beats
    decided_rounds = 3 if quick else 9  # decided beats on big repos
    python = looopbot_python()
    load_before = os.getloadavg()[0]
    figures: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="looopbot-bench-") as tmp:
        base = Path(tmp)
        home = base / "home"
        home.mkdir()
        env = env_for(home)

        # skip path: an unchanged beat vs the shell floor
        fresh = make_repo(base, "fresh", env, sensors=10)
        decides(fresh, env)  # the first beat decides; from now on the world is unchanged
        script = base / "baseline.sh"
        script.write_text(BASELINE)
        out = base / "baseline-out"
        out.mkdir()
        skip = medians(
            {"baseline": ["bash", str(script), str(fresh), str(out)], "tick": tick(fresh)},
            env,
            rounds,
        )
        in_run = beat_in_run(fresh, env, beats=50 if quick else 200, rounds=3 if quick else 5)
        figures["skip_path"] = {
            "sensors": 10,
            "bash_baseline_ms": ms(skip["baseline"]),
            "beat_in_run_ms": ms(in_run),
            "ratio_in_run": round(in_run / skip["baseline"], 2),
            "tick_cold_ms": ms(skip["tick"]),
            "ratio_cold": round(skip["tick"] / skip["baseline"], 2),
            "target_ratio": 2.0,
            "baseline_script": BASELINE,
        }

        # parallel sensors
        sixteen = make_repo(base, "sixteen", env, sensors=16, sleep=0.5)
        decides(sixteen, env)
        par = medians({"tick": tick(sixteen)}, env, 3)["tick"]
        figures["parallel_sensors"] = {
            "sensors": 16,
            "each_sleeps_s": 0.5,
            "beat_s": round(par, 3),
            "target_s": 1.5,
        }

        # flat scaling with history
        old = make_repo(base, "old", env, sensors=10)
        grow(old, env, commits=5000, journal_lines=50_000, goals=500)
        decides(old, env)
        flat = medians({"fresh": tick(fresh), "old": tick(old)}, env, rounds)
        figures["flat_scaling"] = {
            "fresh_ms": ms(flat["fresh"]),
            "old_ms": ms(flat["old"]),
            "old_repo": {"commits": commits(old, env), "journal_lines": 50_000, "goals": 500},
            "ratio": round(flat["old"] / flat["fresh"], 2),
            "target_ratio": 1.25,
        }

        # decided beats vs tracked files, and the decide overhead on the fresh repo
        sizes = (20_000, 100_000)
        repos = {"fresh": fresh}
        for n in sizes:
            repos[str(n)] = make_repo(base, f"files{n}", env, sensors=10)
            vendor(repos[str(n)], env, n)
        for root in repos.values():
            decides(root, env)
        before = {name: commits(root, env) for name, root in repos.items()}
        cmds: dict[str, list[str]] = {}
        for name, root in repos.items():
            cmds[f"{name} unchanged"] = tick(root)
            cmds[f"{name} decided"] = tick(root, "--force")
        got = medians(cmds, env, decided_rounds)
        for name, root in repos.items():  # warm-up + rounds: one commit per decided beat
            if commits(root, env) - before[name] != decided_rounds + 1:
                raise SystemExit(f"bench: not every forced beat in {root} made a commit")
        decided = {name: got[f"{name} decided"] for name in repos}
        figures["tracked_files"] = {
            "decided_beat_ms": {name: ms(t) for name, t in decided.items()},
            **{f"ratio_{n}": round(decided[str(n)] / decided["fresh"], 2) for n in sizes},
            "target_ratio": 1.25,
            "unchanged_beat_ms": {name: ms(got[f"{name} unchanged"]) for name in repos},
            "decided_beats_measured": decided_rounds,
            "files": f"vendor/pNNNN/fNNN.txt, {FILES_PER_FOLDER} per folder, committed, "
            "checked out and refreshed in the index",
            "git_status_clean_after": {name: index_in_step(r, env) for name, r in repos.items()},
        }
        figures["decide_overhead"] = {
            "decided_ms": ms(decided["fresh"]),
            "unchanged_ms": ms(got["fresh unchanged"]),
            "overhead_ms": ms(decided["fresh"] - got["fresh unchanged"]),
            "target_ms": 40,
            "runner": "a bash builtin printing a write_goal decision; each beat commits",
        }

        # peak memory of a decided beat at 100,000 tracked files
        probes = [peak_rss(repos["100000"], env, python) for _ in range(1 if quick else 3)]
        own_kib = max(p[0] for p in probes)
        kids_kib = max(p[1] for p in probes)
        figures["peak_memory"] = {
            "tracked_files": 100_000,
            "looopbot_process_mb": round(own_kib * 1024 / 1e6, 1),
            "children_max_rss_mb": round(kids_kib * 1024 / 1e6, 1),
            "target_mb": 60,
            "measured": "looopbot_process_mb: the max over decided beats of VmHWM (peak "
            "RSS) of the Python process running looopbot.cli.main (the looopbot process "
            "itself, not its children). children_max_rss_mb: its RUSAGE_CHILDREN maxrss (the "
            "sensors, runner and git it waited for); Linux counts a child's RSS from before its "
            "exec, i.e. the looopbot process's RSS when it spawned, so that is an upper bound",
        }

    figures["machine"] = machine(python, quick, load_before)
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
