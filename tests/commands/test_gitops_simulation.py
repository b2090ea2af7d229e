"""The scheduled workflow, simulated (issue 7): 50 runs of `looopbot tick --push`, each in a
fresh shallow clone as an Actions runner makes one, some at once; beside them a long-lived
clone running `looopbot run --push`, as a person's machine would; and humans pushing goals,
PLAYBOOK edits and journal lines between and during the runs (a human push from inside the
scripted runner lands while that beat decides).

At the end, nothing of anyone's is lost and nothing was forced:
- every human commit, and every commit a run reported pushed, is on the remote branch;
- every clone's HEAD is on it too: a run whose push gave up under contention is re-run in
  the same clone until its commit is delivered (and only a moved remote may make it give up);
- every journal line of every writer is there exactly once, each writer's in its order;
- the state file parses and is the one the newest state-changing beat computed;
- the bare remote's reflog shows only fast-forwards; git fsck is clean everywhere; no clone
  is left mid-rebase, with an interrupted move's record or with an index lock.
"""

from __future__ import annotations

import json
import random
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import Repo, git
from gitops import clone, fsck, not_mid_rebase, published

from looopbot.state import parse

RUNS = 50
AT_ONCE = 3  # Actions runs in flight together (beside the local clone and the humans)
HUMAN_EDITS = 14  # by the human working between runs
SPAWNED_EVERY = 5  # every 5th run's runner has a human push land while it decides
IMPATIENT_EVERY = 4  # every 4th run does not retry a rejected push
LOCAL_BEATS = 10
REDELIVERIES = 6  # re-runs in the same clone for a run whose push gave up
HUMAN = Path(__file__).parent.parent / "human_pusher.py"
STATE = ".looopbot/state.json"
HUMAN_KINDS = ("goal:shared", "journal", "playbook", "goal:h{n}", "journal")


@dataclass
class Tick:
    writer: str
    code: int
    doc: dict[str, Any]
    err: str


@dataclass
class Clone:
    writer: str
    repo: Repo
    ticks: list[Tick]
    lines: list[str]  # the journal texts its decisions asked for, in order


def decision(tag: str, i: int) -> dict[str, Any]:
    moves: list[dict[str, Any]] = [
        {"action": "write_goal", "id": tag, "body": f"goal: {tag}"},
        {"action": "write_goal", "id": "shared", "body": f"goal: {tag}"},  # humans write it too
        {"action": "noop", "reason": tag},
        {"action": "send_notification", "message": tag},
        {"action": "write_playbook", "body": f"# Playbook\n\n{tag}\n"},  # humans edit it too
    ]
    return {**moves[i % len(moves)], "journal": tag}


def human_cmd(remote: Path, workdir: Path, kind: str, tag: str, record: Path) -> list[str]:
    return [sys.executable, str(HUMAN), str(remote), str(workdir), kind, tag, str(record)]


def tick(c: Clone, *args: str, env: dict[str, str] | None = None) -> Tick:
    run = c.repo.tick("--push", *args, timeout=180, env=env)
    try:
        doc = run.json()
    except ValueError:
        doc = {}
    t = Tick(c.writer, run.code, doc, run.err)
    c.ticks.append(t)
    return t


def deliver(c: Clone) -> None:
    """While the last beat's push gave up on a remote that kept moving, beat again in the
    same clone (as the next scheduled run from a kept clone would): its commit goes out."""
    for k in range(REDELIVERIES):
        push = c.ticks[-1].doc.get("push") or {}
        if c.ticks[-1].code == 0 or push.get("kind") != "moved":
            return
        again = f"{c.writer}-again-{k}"
        c.repo.decide({"action": "noop", "reason": again, "journal": again})
        if tick(c).doc.get("outcome") == "decided":
            c.lines.append(again)


def actions_run(tmp_path: Path, remote: Path, records: Path, i: int) -> Clone:
    """One scheduled run: a fresh shallow clone, one beat."""
    tag = f"run-{i}"
    c = Clone(tag, clone(tmp_path, remote, tag, depth=1), [], [])
    step: dict[str, Any] = {"stdout": json.dumps(decision(tag, i))}
    if i % SPAWNED_EVERY == 1:
        kind = HUMAN_KINDS[i % len(HUMAN_KINDS)].format(n=i)
        cmd = human_cmd(remote, tmp_path / f"human-during-{i}", kind, f"during-{i}", records)
        step["spawn"] = shlex.join(cmd)
    c.repo.queue(step)
    # Some runs give up at the first rejection, so redelivery from the same clone is
    # exercised, not merely allowed.
    impatient = {"LOOOPBOT_PUSH_RETRIES": "0"} if i % IMPATIENT_EVERY == 3 else None
    first = tick(c, *(["--force"] if i % 2 == 0 else []), env=impatient)
    if first.doc.get("outcome") == "decided":
        c.lines.append(tag)
    deliver(c)
    return c


def local_loop(tmp_path: Path, remote: Path) -> Clone:
    """A person's machine: a full clone running `looopbot run --push` beside the runs."""
    c = Clone("local", clone(tmp_path, remote, "local"), [], [])
    tags = [f"local-{n}" for n in range(LOCAL_BEATS)]
    c.repo.decide(*(decision(tag, n) for n, tag in enumerate(tags)))
    beats = ("--interval", "0.3", "--max-beats", str(LOCAL_BEATS))
    loop = c.repo.run("run", "--push", *beats, timeout=300)
    assert loop.code == 0 and "Traceback" not in loop.err, loop.err
    c.lines += tags[: c.repo.calls()]  # its runner answered in queue order
    for unused in (c.repo.fake / "queue").glob("*.json"):
        unused.unlink()
    # The last of its commits go out with one more beat, as they would with the next one.
    c.repo.decide({"action": "noop", "reason": "local-last", "journal": "local-last"})
    if tick(c, "--force").doc.get("outcome") == "decided":
        c.lines.append("local-last")
    deliver(c)
    return c


def human_loop(tmp_path: Path, remote: Path, records: Path) -> int:
    """A human editing goals, the PLAYBOOK and the journal between (and during) the runs;
    how many of their pushes never got through."""
    failed = 0
    for n in range(HUMAN_EDITS):
        kind = HUMAN_KINDS[n % len(HUMAN_KINDS)].format(n=n)
        cmd = human_cmd(remote, tmp_path / "human", kind, f"human-{n}", records)
        failed += subprocess.run(cmd, capture_output=True, check=False).returncode != 0
        time.sleep(random.uniform(0.5, 2.0))
    return failed


def journal_texts(journal: str) -> list[str]:
    return [line.split(" ", 3)[3] for line in journal.splitlines() if line.startswith("- ")]


def in_order(lines: list[str], wanted: list[str]) -> bool:
    positions = [lines.index(w) for w in wanted]
    return positions == sorted(positions)


def ancestor(remote: Path, sha: str, tip: str) -> bool:
    out = subprocess.run(
        ["git", "merge-base", "--is-ancestor", sha, tip], cwd=remote, capture_output=True
    )
    return out.returncode == 0


def made_by(clones: list[Clone]) -> dict[str, tuple[Path, str]]:
    """Each beat's commit as its beat made it, before any rebase: run id -> (clone, commit),
    the oldest entry with that run id in the clone's branch reflog."""
    found: dict[str, tuple[Path, str]] = {}
    for c in clones:
        branch = c.repo.git("symbolic-ref", "--short", "HEAD").strip()
        log = c.repo.git("log", "-g", "--format=%H %(trailers:key=Looopbot-Run,valueonly)", branch)
        for line in log.splitlines():
            sha, _, run = line.partition(" ")
            if run.strip():
                found[run.strip()] = (c.repo.root, sha)  # newest first: the oldest stays
    return found


def fast_forwards_only(remote: Path, branch: str) -> list[str]:
    """The branch's reflog on the bare remote: every update moves it forward from where the
    previous one left it. Returns the problems."""
    problems = []
    lines = (remote / "logs" / "refs" / "heads" / branch).read_text().splitlines()
    previous = None
    for line in lines:
        old, new = line.split()[:2]
        if previous is not None and old != previous:
            problems.append(f"{old[:10]} is not where the branch was ({previous[:10]})")
        if set(old) != {"0"} and not ancestor(remote, old, new):
            problems.append(f"{old[:10]} -> {new[:10]} is not a fast-forward")
        previous = new
    return problems


@pytest.mark.slow
def test_fifty_scheduled_runs_beside_a_local_loop_and_humans_lose_nothing(
    tmp_path: Path,
) -> None:
    seed, remote = published(tmp_path)
    git(remote, "config", "core.logAllRefUpdates", "always")
    branch = git(remote, "symbolic-ref", "--short", "HEAD").strip()
    start = seed.head()
    records = tmp_path / "human-records.jsonl"
    records.touch()

    with ThreadPoolExecutor(max_workers=AT_ONCE + 2) as pool:
        local = pool.submit(local_loop, tmp_path, remote)
        humans = pool.submit(human_loop, tmp_path, remote, records)
        runs = []
        for i in range(RUNS):
            runs.append(pool.submit(actions_run, tmp_path, remote, records, i))
            # A schedule's runs start staggered; AT_ONCE of them overlap, as a local run
            # beside Actions would.
            time.sleep(random.uniform(0.0, 0.15))
            while sum(not f.done() for f in runs) >= AT_ONCE:
                time.sleep(0.02)
        clones = [f.result() for f in runs]
        clones.append(local.result())
        assert humans.result() == 0, "a human's push never got through"

    tip = git(remote, "rev-parse", branch).strip()
    ticks = [t for c in clones for t in c.ticks]
    # Every beat ran; the only failure allowed is a push that gave up on a moving remote.
    for t in ticks:
        push = t.doc.get("push") or {}
        assert t.code == 0 or (t.code == 1 and push.get("kind") == "moved"), (
            t.writer,
            json.dumps(t.doc, indent=1),
            t.err,
        )
        assert t.doc.get("error") is None, (t.writer, t)
    # ... and its commit went out with a later beat from the same clone.
    for c in clones:
        assert c.ticks[-1].code == 0, (c.writer, c.ticks[-1])
        assert ancestor(remote, c.repo.head(), tip), f"{c.writer}'s HEAD is not on the remote"
    pushed = [t.doc["push"]["pushed"] for t in ticks if t.doc["push"]["result"] == "pushed"]
    assert len(pushed) >= RUNS // 2, "the simulation must really push"
    assert all(ancestor(remote, sha, tip) for sha in pushed)

    human = [json.loads(line) for line in records.read_text().splitlines()]
    during = [h for h in human if h["tag"].startswith("during-")]
    assert len(human) - len(during) == HUMAN_EDITS
    assert len(during) >= RUNS // SPAWNED_EVERY // 2  # the forced ones' runners all push
    for h in human:
        assert ancestor(remote, h["sha"], tip), f"human commit {h['tag']} was lost"

    # Every journal line of every writer, once, each writer's in its order.
    journal = journal_texts(git(remote, "show", f"{tip}:journal.md"))
    writers = {c.writer: c.lines for c in clones}
    for h in human:  # the human between the runs is one writer; each one during, another
        if h["journal"]:
            writer = h["tag"] if h in during else "human"
            writers.setdefault(writer, []).append(h["journal"].split(" ", 3)[3])
    for writer, lines in writers.items():
        for line in lines:
            n = journal.count(line)
            assert n == 1, f"{writer}'s line {line!r} is there {n} times"
        assert in_order(journal, lines), f"{writer}'s lines are out of order"
    assert sum(len(lines) for lines in writers.values()) >= RUNS // 2

    # The state file is the one the newest beat that changed it computed — its own version,
    # as it committed it in its clone, even where a rebase met another beat's state; only
    # the other writers' runner calls of the hour and goal times are merged in.
    state = git(remote, "show", f"{tip}:{STATE}")
    parse(state.encode())
    originals = made_by([*clones, Clone("seed", seed, [], [])])
    log = git(remote, "log", "--format=%(trailers:key=Looopbot-Run,valueonly)", tip)
    for run in [r for r in log.split() if r]:
        root, made = originals[run]
        if git(root, "diff", "--name-only", f"{made}^", made, "--", STATE).strip():
            own, merged = json.loads(git(root, "show", f"{made}:{STATE}")), json.loads(state)
            counters = ("decides", "goal_acted")
            assert {k: v for k, v in merged.items() if k not in counters} == {
                k: v for k, v in own.items() if k not in counters
            }, run
            assert set(own["decides"]) <= set(merged["decides"]), run
            assert all(merged["goal_acted"][g] >= t for g, t in own["goal_acted"].items()), run
            break
    else:
        raise AssertionError("no beat changed the state file")

    # Nothing was forced; nothing is broken or left half-done anywhere.
    assert ancestor(remote, start, tip)
    assert fast_forwards_only(remote, branch) == []
    fsck(remote)
    for c in clones:
        root = c.repo.root
        not_mid_rebase(root)
        assert not (root / ".looopbot" / "advance.json").exists(), c.writer
        assert not (root / ".git" / "index.lock").exists(), c.writer
        assert c.repo.status_porcelain() == "", (c.writer, c.repo.status_porcelain())
        fsck(root)
