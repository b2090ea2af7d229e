#!/usr/bin/env python3
"""looopbot's push benchmark: pull + beat + push on repos with long histories, side by side
with a fresh repo. Prints JSON figures.

    python bench/push.py [--quick]

Like bench/beat.py (whose helpers it shares), it runs the installed `looopbot` against data
repos it builds in a temporary directory, and touches neither the network, $HOME nor your
git config: the remotes are bare repos on this disk, reached through file:// so that git
speaks its real protocol (upload-pack, receive-pack) to them. `--quick` takes fewer rounds
of the same repos and beats.

The repos. `fresh` is `looopbot init` plus one settled beat; `5000` and `50000` are the same
with that many commits of history before the settled beat, written in seconds by
`git fast-import` rather than by 50,000 beats: bot-like commits (journal.md, the state, the
cost ledger and a snapshot change, with looopbot's trailers), every 25th a human's goal
edit. History's journal.md keeps a rolling window of 12 lines, since a file that grows by a
line a commit makes the import quadratic; so the working tree is the same size in every
repo and history is the one thing that differs (a long journal is bench/beat.py's
flat_scaling). Each repo gets a bare remote per clone kind, beaten in through
- a full clone (`git clone file://…`), kept across rounds;
- a shallow clone (`git clone --depth 1 file://…`), kept across rounds;
- a new shallow clone for every beat, as a GitHub Actions run checks one out (no local
  scratch either: no cached config, no sensor run times).

The beats, each `looopbot tick --json` in a new process, each checked for what it did:
- no_push: an unchanged beat with push off, for reference;
- unchanged: the same with push on; nothing to pull or push. The common case: it must cost
  one fetch and nothing more;
- decided: a forced beat whose runner (a bash builtin) writes a goal; it commits and pushes;
- pull: a human pushed a goal edit just before; the beat fast-forwards, decides, pushes;
- race: the runner itself has the human push a goal edit while it "decides", so the beat's
  push is rejected once: fetch, replay the bot's commit onto the human's, push again;
- first (new shallow clone only): the decided beat, in a clone made just before it.
Untimed set-up before each: a beat that settles what the last one left (unchanged, no_push),
the human's push (pull).

Figures are wall time and CPU time (the looopbot process and every process it waited for:
git, the remote's side of the protocol, sensors, the runner). Rounds are interleaved (every
repo, clone and beat once per round, after one warm-up round that is not kept), so a slow
patch of the machine hits all alike; each figure is a median, wall time with its range. In
the race, the human's pull-commit-push inside the runner and the jittered backoff before
the retry (0.25-0.75 s by design, so that clones that collided do not collide again in
lockstep) are taken off: neither is looopbot's work, and the backoff's randomness would
drown the figure; both are reported. A last round runs every beat once more with
GIT_TRACE2_EVENT set, listing every git command looopbot ran and how long it took.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import NamedTuple

from beat import DECIDE, LOOOPBOT, env_for, looopbot_python, machine, make_repo, ms, sh

SIZES = (0, 5_000, 50_000)
BEATS = {
    "full": ("no_push", "unchanged", "decided", "pull", "race"),
    "shallow": ("no_push", "unchanged", "decided", "pull", "race"),
    "new": ("first",),
}
KIND_NAMES = {"full": "full clone", "shallow": "shallow clone", "new": "new shallow clone"}
TARGET_RATIO = 1.25  # bench/beat.py's bar for "flat"
JOURNAL_WINDOW = 12
COST_WINDOW = 5
HUMAN_EVERY = 25
BEAT_S = 600  # history's beats are ten minutes apart

# A human's edit of a goal, pushed from their own clone ($1). Pull first: the bot pushes too.
HUMAN = """\
set -e
cd "$1"
git pull -q --ff-only
printf 'goal: a human edit at %s\\n' "$EPOCHREALTIME" > goals/human.md
git add goals/human.md
git commit -qm 'human: edit a goal'
git push -q
"""

# The racing runner: the human pushes while the runner "decides", then the usual decision.
# The human's wall time and CPU time (bash's `times`: the subshell, then its children) go to
# $BENCH_RACE_LOG so the bench can take them off; their git commands stay out of the trace.
RACE = (
    '( unset GIT_TRACE2_EVENT; s=$EPOCHREALTIME; bash "$BENCH_HUMAN_SH" "$BENCH_HUMAN" '
    '>/dev/null 2>&1 || exit 1; echo "$s $EPOCHREALTIME" > "$BENCH_RACE_LOG"; '
    'times >> "$BENCH_RACE_LOG" ) || exit 1; ' + DECIDE
)

# How every beat runs: the installed package's CLI main in a new interpreter, as the
# `looopbot` console script runs it (`-I` keeps a source checkout off sys.path), plus what
# the bench reads from inside:
# - the process's own peak RSS, as VmHWM: the high-water mark of this process image alone
#   (ru_maxrss would not do: Linux carries the spawning process's peak over into it, here
#   the bench's, which builds 50,000 commits in memory);
# - its own CPU time; the rest of the CPU is its children's;
# - the backoff it slept before retrying a rejected push. The wrapper only records what
#   looopbot.sync's `_backoff` returns; the process sleeps it as it would anyway.
PROBE = """\
import resource, sys
from looopbot import sync
slept = []
backoff = sync._backoff
def recorded(attempt):
    slept.append(backoff(attempt))
    return slept[-1]
sync._backoff = recorded
from looopbot.cli import main
code = main(sys.argv[1:])
with open("/proc/self/status") as f:
    hwm = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
own = resource.getrusage(resource.RUSAGE_SELF)
print(f"bench-probe {hwm} {own.ru_utime + own.ru_stime} {sum(slept)}", file=sys.stderr)
raise SystemExit(code)
"""

# What each beat must have done, or its figure measures something else:
# (outcome, what `push.pulled` starts with, push.result); None: push is off.
EXPECT: dict[str, tuple[str, str, str] | None] = {
    "no_push": None,
    "unchanged": ("unchanged", "up to date", "up to date"),
    "decided": ("decided", "up to date", "pushed"),
    "pull": ("decided", "fast-forward", "pushed"),
    "race": ("decided", "rebased 1", "pushed"),
    "first": ("decided", "up to date", "pushed"),
}


def name(size: int) -> str:
    return "fresh" if size == 0 else str(size)


def git(root: Path, env: Mapping[str, str], *args: str) -> str:
    return sh(["git", *args], env, root)


def tick(root: Path, *extra: str, push: bool = True) -> list[str]:
    return [LOOOPBOT, "-C", str(root), "tick", *(["--push"] if push else []), "--json", *extra]


def history(root: Path, env: Mapping[str, str], commits: int) -> None:
    """`commits` bot-like commits on top of HEAD, by git fast-import, then checked out."""
    branch = git(root, env, "symbolic-ref", "HEAD").strip()
    head = git(root, env, "rev-parse", "HEAD").strip()
    state = json.loads((root / ".looopbot" / "state.json").read_text())
    start = int(time.time()) - commits * BEAT_S - 3600
    journal: list[bytes] = []
    cost: list[bytes] = []
    out = bytearray()

    def blob(path: str, data: bytes) -> None:
        out.extend(b"M 100644 inline %s\ndata %d\n%s\n" % (path.encode(), len(data), data))

    for i in range(commits):
        when = start + i * BEAT_S
        stamp = time.strftime("%Y-%m-%d %H:%M", time.gmtime(when)).encode()
        run = time.strftime("%Y%m%dT%H%M%S.000000Z", time.gmtime(when)).encode() + b"-%06x" % i
        human = i % HUMAN_EVERY == HUMAN_EVERY - 1
        if human:
            who, msg = b"human <human@example.invalid>", b"human: edit a goal\n"
        else:
            who = b"looopbot <looopbot@example.invalid>"
            msg = (
                b"looopbot: decided \xc2\xb7 write_goal bench\n\nLooopbot-Run: %s\n"
                b"Looopbot-Outcome: decided\nLooopbot-World: %064x\n" % (run, i)
            )
        out.extend(b"commit %s\n" % branch.encode())
        out.extend(b"author %s %d +0000\ncommitter %s %d +0000\n" % (who, when, who, when))
        out.extend(b"data %d\n%s" % (len(msg), msg))
        if i == 0:
            out.extend(b"from %s\n" % head.encode())
        if human:
            blob("goals/human.md", b"goal: a human edit number %d\n" % i)
        else:
            journal = [*journal[-(JOURNAL_WINDOW - 1) :], b"- %s bench beat %d\n" % (stamp, i)]
            cost = [
                *cost[-(COST_WINDOW - 1) :],
                b'{"cost_usd": null, "id": "%s", "kind": "tick", "runner": "bench", "ts": %d}\n'
                % (run, when),
            ]
            state["decides"] = [float(when)]
            blob("journal.md", b"".join(journal))
            blob(".looopbot/cost.jsonl", b"".join(cost))
            blob(".looopbot/state.json", json.dumps(state, indent=1, sort_keys=True).encode())
            blob("snapshots/sensor-s00.json", b'{\n  "signal": {\n    "n": %d\n  }\n}\n' % i)
        out.extend(b"\n")
    subprocess.run(
        ["git", "fast-import", "--quiet"], input=bytes(out), cwd=root, env=env, check=True
    )
    git(root, env, "reset", "-q", "--hard")


def build(base: Path, env: Mapping[str, str], size: int) -> dict[str, Path]:
    """The data repo with `size` commits of history and, per clone kind, its own bare
    remote, the clone looopbot beats in and a human's clone. Paths by role."""
    seed = make_repo(base, f"seed-{name(size)}", env, sensors=1)
    # Snapshots, state and a journal line, as a beaten repo has (no remote yet: no push).
    sh(tick(seed, "--force", push=False), env)
    if size:
        history(seed, env, size)
        sh(tick(seed, "--force", push=False), env)
    paths = {"seed": seed}
    for kind in BEATS:
        remote = base / f"remote-{name(size)}-{kind}.git"
        git(base, env, "clone", "-q", "--bare", str(seed), str(remote))
        paths[f"{kind} remote"] = remote
        paths[kind] = base / f"{kind}-{name(size)}"
        if kind != "new":  # a new clone is made before each beat
            depth = ["--depth", "1"] if kind == "shallow" else []
            git(base, env, "clone", "-q", *depth, f"file://{remote}", str(paths[kind]))
            human = base / f"human-{name(size)}-{kind}"
            git(base, env, "clone", "-q", "--depth", "1", f"file://{remote}", str(human))
            paths[f"{kind} human"] = human
    return paths


def check(beat: str, doc: Mapping[str, object], where: Path) -> None:
    """Stop the bench unless the beat did what `beat` stands for."""
    expect = EXPECT[beat]
    push = doc.get("push")
    if expect is None:
        ok = doc.get("outcome") == "unchanged" and push is None
    else:
        outcome, pulled, result = expect
        ok = (
            doc.get("outcome") == outcome
            and isinstance(push, dict)
            and str(push.get("pulled")).startswith(pulled)
            and push.get("result") == result
            and (doc.get("commit") is None) == (outcome == "unchanged")
        )
    if not ok:
        raise SystemExit(f"bench: the {beat} beat in {where} did something else: {doc}")


class Run(NamedTuple):
    """One measured beat."""

    wall: float  # seconds, start to exit of the looopbot process
    cpu: float  # CPU seconds of the looopbot process and every process it waited for
    own_cpu: float  # CPU seconds of the looopbot process alone
    rss_kib: int  # the looopbot process's own peak RSS
    slept: float = 0.0  # the backoff before a retried push
    human_wall: float = 0.0  # the human's pull-commit-push inside the race runner
    human_cpu: float = 0.0

    @property
    def net(self) -> float:
        """Wall seconds that are looopbot's work: without the backoff and the human."""
        return self.wall - self.slept - self.human_wall

    @property
    def net_cpu(self) -> float:
        return self.cpu - self.human_cpu


def cpu_now() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def bash_seconds(word: str) -> float:
    """`1m2.500s`, as bash's `times` prints it, in seconds."""
    minutes, _, seconds = word.rstrip("s").partition("m")
    return int(minutes) * 60 + float(seconds)


class Bench:
    def __init__(self, base: Path, env: dict[str, str], python: str) -> None:
        self.base = base
        self.env = env
        self.python = python
        self.human_sh = base / "human.sh"
        self.human_sh.write_text(HUMAN)
        self.race_log = base / "race.log"
        self.repos: dict[int, dict[str, Path]] = {}
        self.runs: dict[tuple[str, str, int], list[Run]] = {}  # (kind, beat, size)
        self.clone_s: dict[int, list[float]] = {}  # the new shallow clones, by size

    def prepare(self, size: int, kind: str, beat: str) -> dict[str, str]:
        """Set up what `beat` starts from (untimed); the environment it runs in."""
        paths = self.repos[size]
        clone = paths[kind]
        env = dict(self.env)
        if beat in ("no_push", "unchanged"):
            sh(tick(clone), env)  # whatever the last beat left to decide is decided now
        elif beat == "pull":
            sh(["bash", str(self.human_sh), str(paths[f"{kind} human"])], env)
        elif beat == "race":
            env.update(
                LOOOPBOT_TICK_COMMAND=RACE,
                BENCH_HUMAN_SH=str(self.human_sh),
                BENCH_HUMAN=str(paths[f"{kind} human"]),
                BENCH_RACE_LOG=str(self.race_log),
            )
            self.race_log.unlink(missing_ok=True)
        elif beat == "first":
            shutil.rmtree(clone, ignore_errors=True)
            start = time.perf_counter()
            url = f"file://{paths[f'{kind} remote']}"
            git(self.base, env, "clone", "-q", "--depth", "1", url, str(clone))
            self.clone_s.setdefault(size, []).append(time.perf_counter() - start)
        return env

    def beat(self, size: int, kind: str, beat: str, trace: Path | None = None) -> Run:
        """One `beat` in the clone, after its set-up, checked for what it did."""
        clone = self.repos[size][kind]
        env = self.prepare(size, kind, beat)
        if trace is not None:
            env["GIT_TRACE2_EVENT"] = str(trace)
        cmd = [self.python, "-I", "-c", PROBE, "-C", str(clone), "tick", "--json"]
        cmd += [] if beat == "no_push" else ["--push"]
        cmd += [] if beat in ("no_push", "unchanged") else ["--force"]
        cpu, start = cpu_now(), time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        wall, cpu = time.perf_counter() - start, cpu_now() - cpu
        said = proc.stderr.strip().splitlines()
        if proc.returncode != 0 or not said or not said[-1].startswith("bench-probe "):
            raise SystemExit(f"bench: the {beat} beat in {clone} failed: {proc.stderr}")
        check(beat, json.loads(proc.stdout), clone)
        self.synced(size, kind)
        rss, own_cpu, slept = said[-1].split()[1:]
        run = Run(wall, cpu, float(own_cpu), int(rss), float(slept))
        if beat == "race":
            spans, shell, kids = self.race_log.read_text().splitlines()
            s, e = spans.split()
            human_cpu = sum(bash_seconds(w) for w in (*shell.split(), *kids.split()))
            run = run._replace(human_wall=float(e) - float(s), human_cpu=human_cpu)
        return run

    def synced(self, size: int, kind: str) -> None:
        """The clone's HEAD is the remote's branch: nothing left to push or pull."""
        clone = self.repos[size][kind]
        remote = self.repos[size][f"{kind} remote"]
        if git(clone, self.env, "rev-parse", "HEAD") != git(remote, self.env, "rev-parse", "HEAD"):
            raise SystemExit(f"bench: {clone} and its remote differ after a beat")

    def round(self, *, keep: bool) -> None:
        for size in SIZES:
            for kind, beats in BEATS.items():
                for beat in beats:
                    run = self.beat(size, kind, beat)
                    if keep:
                        self.runs.setdefault((kind, beat, size), []).append(run)

    def traced(self, size: int, kind: str, beat: str) -> dict[str, list[float]]:
        trace = self.base / "trace.json"
        trace.unlink(missing_ok=True)
        self.beat(size, kind, beat, trace)
        return git_commands(trace)


def git_commands(trace: Path) -> dict[str, list[float]]:
    """From a trace2 event file: per git subcommand looopbot ran, [count, total ms]. Only
    top-level processes count (a sid without '/'): fetch's own upload-pack is part of it."""
    started: dict[str, str] = {}
    took: dict[str, list[float]] = {}
    for line in trace.read_text().splitlines() if trace.exists() else []:
        event = json.loads(line)
        sid = event.get("sid", "")
        if "/" in sid:
            continue
        if event.get("event") == "start":
            argv = [a for a in event.get("argv", []) if not a.startswith("--literal")]
            started[sid] = argv[1] if len(argv) > 1 else "git"
        elif event.get("event") == "exit" and sid in started:
            got = took.setdefault(started[sid], [0, 0.0])
            got[0] += 1
            got[1] = round(got[1] + event.get("t_abs", 0.0) * 1000, 1)
    return dict(sorted(took.items()))


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def figures_of(runs: list[Run], race: bool) -> dict[str, object]:
    nets = [r.net for r in runs]
    got: dict[str, object] = {
        "median_ms": ms(median(nets)),
        "min_ms": ms(min(nets)),
        "max_ms": ms(max(nets)),
        "cpu_ms": ms(median(r.net_cpu for r in runs)),
        "looopbot_cpu_ms": ms(median(r.own_cpu for r in runs)),
        "rss_mb": round(max(r.rss_kib for r in runs) * 1024 / 1e6, 1),
    }
    if race:
        got["wall_ms"] = ms(median(r.wall for r in runs))
        got["backoff_ms"] = ms(median(r.slept for r in runs))
        got["human_push_ms"] = ms(median(r.human_wall for r in runs))
    return got


def summary(bench: Bench) -> dict[str, object]:
    beats: dict[str, object] = {}
    for kind, names in BEATS.items():
        per: dict[str, object] = {}
        for beat in names:
            runs = {s: bench.runs[(kind, beat, s)] for s in SIZES}
            row: dict[str, object] = {
                name(s): figures_of(got, beat == "race") for s, got in runs.items()
            }
            wall = cpu = 0.0
            for s in SIZES[1:]:
                wall = median(r.net for r in runs[s]) / median(r.net for r in runs[0])
                cpu = median(r.net_cpu for r in runs[s]) / median(r.net_cpu for r in runs[0])
                row[f"ratio_{name(s)}"] = round(wall, 2)
                row[f"cpu_ratio_{name(s)}"] = round(cpu, 2)
            # The largest repo against the fresh one, in wall time and in CPU time (the
            # steadier of the two on a shared machine).
            row["flat"] = {"wall": wall <= TARGET_RATIO, "cpu": cpu <= TARGET_RATIO}
            per[beat] = row
        beats[KIND_NAMES[kind]] = per
    return beats


def size_of(root: Path, env: Mapping[str, str]) -> dict[str, object]:
    counted = git(root, env, "count-objects", "-v")
    info = dict(line.split(": ", 1) for line in counted.splitlines())
    return {
        "commits": int(git(root, env, "rev-list", "--count", "HEAD")),
        "objects": int(info["count"]) + int(info["in-pack"]),
        "pack_mb": round(int(info["size-pack"]) * 1024 / 1e6, 1),
    }


def main() -> None:
    quick = "--quick" in sys.argv
    rounds = 3 if quick else 9
    python = looopbot_python()
    load_before = os.getloadavg()[0]
    figures: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="looopbot-bench-push-") as tmp:
        base = Path(tmp)
        home = base / "home"
        home.mkdir()
        env = env_for(home)
        bench = Bench(base, env, python)
        repos: dict[str, dict[str, object]] = {}
        for size in SIZES:
            start = time.perf_counter()
            bench.repos[size] = build(base, env, size)
            repos[name(size)] = {
                **size_of(bench.repos[size]["full remote"], env),
                "built_s": round(time.perf_counter() - start, 1),
            }
        bench.round(keep=False)  # warm-up: the first beats in new clones, the OS's caches
        bench.clone_s.clear()
        start = time.perf_counter()
        for _ in range(rounds):
            bench.round(keep=True)
        figures["beats"] = summary(bench)
        figures["rounds"] = rounds
        figures["measured_s"] = round(time.perf_counter() - start, 1)
        figures["target_ratio"] = TARGET_RATIO
        for size in SIZES:  # what a run on Actions pays before looopbot starts
            repos[name(size)]["shallow_clone_ms"] = ms(median(bench.clone_s[size]))
        figures["repos"] = repos
        # One more beat of each, traced: the git commands looopbot ran ([count, ms], one run).
        figures["git_commands"] = {
            KIND_NAMES[kind]: {
                beat: {name(s): bench.traced(s, kind, beat) for s in SIZES} for beat in beats
            }
            for kind, beats in BEATS.items()
        }
        figures["still_shallow"] = {
            name(s): git(bench.repos[s]["shallow"], env, "rev-parse", "--is-shallow-repository")
            .strip()
            .lower()
            == "true"
            for s in SIZES
        }
    figures["machine"] = machine(python, quick, load_before)
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
