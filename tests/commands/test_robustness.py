"""Robustness end to end: the lock, broken config, kill -9 at any stage, a garbage state
file, the user's own edits, and `run` stopping cleanly on signals."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import BIN, NOOP, Repo, git, is_dead, wait_dead

JOURNAL_LINE = re.compile(r"^- \d{4}-\d{2}-\d{2} \d{2}:\d{2} \S")


def popen(repo: Repo, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(BIN), "-C", str(repo.root), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **repo.env, **(env or {})},
    )


def wait_for(what: str, cond: Callable[[], bool], limit: float = 20) -> None:
    """Poll for evidence; the limit only keeps a broken build from hanging the suite."""
    end = time.monotonic() + limit
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.02)


def runner_started(repo: Repo, n: int) -> Callable[[], bool]:
    """The n-th runner call has taken its queued answer (the beat is inside DECIDE)."""
    q = repo.fake / "queue"
    return lambda: repo.calls() >= n and not any(q.glob("*.json"))


def commit_sensors(repo: Repo) -> None:
    repo.git("add", "sensors")
    repo.git("commit", "-qm", "human: sensors")


def marked(tag: str) -> list[int]:
    """Live processes carrying LB_TEST_TAG=tag in their environment: the descendants
    of one beat we started (sensors and runners run in process groups of their own, so
    only the environment they inherit ties them to the beat that spawned them)."""
    needle = f"LB_TEST_TAG={tag}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            env = (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in env.split(b"\0") and not is_dead(int(entry.name)):
            found.append(int(entry.name))
    return found


def end_leftovers(tag: str) -> None:
    """Kill, by pid, what a killed beat left running, until a scan finds none."""
    quiet = 0
    end = time.monotonic() + 20
    while quiet < 3:
        assert time.monotonic() < end, "leftover processes would not end"
        pids = marked(tag)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        quiet = 0 if pids else quiet + 1
        time.sleep(0.01)


# --- the lock ---------------------------------------------------------------------------


def test_a_second_tick_exits_75_while_a_beat_holds_the_lock(repo: Repo) -> None:
    repo.queue({"stdout": json.dumps({**NOOP, "journal": "the slow one"}), "sleep": 3})
    first = popen(repo, "tick", "--json")
    try:
        wait_for("the first beat's runner", runner_started(repo, 1))
        second = repo.tick()
        # Evidence that the second did not wait: the first was still running when it ended.
        assert first.poll() is None
        assert second.code == 75, (second.out, second.err)
        assert "another beat is running" in second.err
        assert "Traceback" not in second.err + second.out
        out, err = first.communicate(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert first.returncode == 0, err
    assert json.loads(out)["outcome"] == "decided"
    assert repo.calls() == 1
    assert "the slow one" in repo.read("journal.md")
    assert repo.status_porcelain() == ""


# --- broken config ----------------------------------------------------------------------

LOADS_CONFIG: list[tuple[str, ...]] = [
    ("tick",),
    ("tick", "--json"),
    ("tick", "--dry-run"),
    ("tick", "--force"),
    ("run", "--max-beats", "1", "--interval", "0.1"),
    ("status",),
    ("status", "--json"),
    ("prompt",),
    ("goal", "write", "ship", "goal: ship"),
    ("goal", "archive", "setup"),
    ("playbook", "write", "# new playbook"),
    ("sensor", "write", "probe", "#!/bin/sh\necho 1\n"),
    ("sensor", "run"),
]


def _break(text: str, how: str) -> tuple[str, int]:
    """Break looopbot.yaml on the sensor_timeout line; returns the text and that line."""
    lines = text.split("\n")
    i = next(n for n, line in enumerate(lines) if line.strip().startswith("sensor_timeout:"))
    if how == "syntax":
        lines[i] = "  sensor_timeout: 60: 5"
    elif how == "unknown-key":
        lines[i] = "  sensor_timout: 60"
    else:
        lines[i] = "  sensor_timeout: soon"
    return "\n".join(lines), i + 1


@pytest.mark.parametrize("how", ["syntax", "unknown-key", "bad-type"])
def test_broken_config_names_file_and_line_for_every_command(repo: Repo, how: str) -> None:
    text, line = _break(repo.read("looopbot.yaml"), how)
    repo.write("looopbot.yaml", text)
    repo.git("commit", "-qam", "human: a typo")
    repo.sensor("probe", "#!/usr/bin/env bash\necho 1\n")
    head, status = repo.head(), repo.status_porcelain()
    for args in LOADS_CONFIG:
        r = repo.run(*args)
        assert r.code == 1, (args, r.out, r.err)
        assert "Traceback" not in r.out + r.err, args
        err = r.err.strip().splitlines()
        assert len(err) == 1, (args, r.err)
        assert err[0].startswith(f"looopbot: looopbot.yaml:{line}: "), (args, err[0])
        says = {"syntax": "YAML", "unknown-key": "sensor_timout", "bad-type": "sensor_timeout"}
        assert says[how] in err[0], err[0]
    v = repo.run("validate")
    assert v.code == 1 and "Traceback" not in v.out + v.err
    assert f"looopbot.yaml:{line}: " in v.out
    assert repo.calls() == 0
    assert repo.head() == head, "nothing committed"
    assert repo.status_porcelain() == status
    assert not (repo.root / "snapshots").exists()
    assert not (repo.root / ".looopbot/crash.log").exists()


def test_a_bad_limit_in_the_environment_names_the_variable(repo: Repo) -> None:
    head = repo.head()
    for args in (("tick",), ("status",), ("run", "--max-beats", "1")):
        r = repo.run(*args, env={"LOOOPBOT_SENSOR_TIMEOUT": "abc"})
        assert r.code == 1, (args, r.err)
        assert "LOOOPBOT_SENSOR_TIMEOUT" in r.err and "abc" in r.err
        assert len(r.err.strip().splitlines()) == 1
        assert "Traceback" not in r.out + r.err
    assert repo.calls() == 0
    assert repo.head() == head
    assert repo.status_porcelain() == ""


# --- kill -9 at any stage ---------------------------------------------------------------


def blobs(repo: Repo, specs: list[str]) -> list[bytes]:
    """Read many `rev:path` blobs with one git process."""
    proc = subprocess.run(
        ["git", "cat-file", "--batch"],
        cwd=repo.root,
        input="".join(f"{spec}\n" for spec in specs).encode(),
        capture_output=True,
        check=True,
    )
    out, pos, found = proc.stdout, 0, []
    for spec in specs:
        header_end = out.index(b"\n", pos)
        header = out[pos:header_end].split()
        assert header[-1] != b"missing", spec
        size = int(header[2])
        found.append(out[header_end + 1 : header_end + 1 + size])
        pos = header_end + 1 + size + 1
    return found


class Committed:
    """Everything ever committed, checked as the history grows."""

    def __init__(self, repo: Repo) -> None:
        self.repo = repo
        self.seen: set[str] = set()
        self.journal: set[str] = set()

    def check(self) -> None:
        repo = self.repo
        history = repo.git("rev-list", "HEAD").split()
        reachable = set(history)
        # No commit HEAD ever pointed at is lost (HEAD only moves forward).
        for sha in repo.git("log", "-g", "--format=%H", "HEAD").split():
            assert sha in reachable, f"commit {sha} from the reflog is no longer in history"
        for sha in history:
            if sha in self.seen:
                continue
            self.seen.add(sha)
            names = [
                name
                for name in repo.git("ls-tree", "-r", "--name-only", sha).split("\n")
                if name.endswith((".json", ".jsonl")) or name == "journal.md"
            ]
            for name, raw in zip(names, blobs(repo, [f"{sha}:{n}" for n in names]), strict=True):
                text = raw.decode()
                if name.endswith(".json"):
                    json.loads(text)  # no half-written JSON was ever committed
                elif name.endswith(".jsonl"):
                    for row in text.splitlines():
                        json.loads(row)
                else:
                    lines = text.splitlines()
                    for line in lines:
                        assert JOURNAL_LINE.match(line), (sha, line)
                    self.journal.update(lines)
        head_journal = set(repo.git("show", "HEAD:journal.md").splitlines())
        lost = self.journal - head_journal
        assert not lost, f"journal lines lost: {lost}"
        state = json.loads(repo.git("show", "HEAD:.looopbot/state.json"))
        assert isinstance(state, dict)
        fsck = subprocess.run(
            ["git", "fsck", "--full", "--no-dangling"],
            cwd=repo.root,
            capture_output=True,
            text=True,
            check=False,
        )
        assert fsck.returncode == 0, fsck.stdout + fsck.stderr
        bad = [
            line
            for line in (fsck.stdout + fsck.stderr).splitlines()
            if line.split(" ")[0].rstrip(":") in ("error", "missing", "broken", "bad", "fatal")
        ]
        assert not bad, bad


def test_kill_9_at_any_stage_leaves_a_repo_the_next_beat_continues(
    repo: Repo, tmp_path: Path
) -> None:
    reading, slow = tmp_path / "reading", tmp_path / "slow"
    reading.write_text("0")
    # SENSE takes real time in the beats we kill (0.3 s), and its signal moves every round.
    repo.sensor(
        "slow",
        f"#!/usr/bin/env bash\n[ -e {slow} ] && sleep 0.3\n"
        f'echo "{{\\"signal\\": $(cat {reading})}}"\n',
    )
    repo.sensor("fast", "#!/usr/bin/env bash\necho '{\"ok\": true}'\n")
    commit_sensors(repo)
    committed = Committed(repo)

    def answer(i: int, tag: str) -> dict[str, Any]:
        if i % 2:
            d: dict[str, Any] = {**NOOP, "journal": f"{tag} {i} noop"}
        else:
            body = f"goal: round {i}\n" + "detail line\n" * 50
            d = {"action": "write_goal", "id": f"g{i % 6}", "body": body, "journal": f"{tag} {i}"}
        return {"stdout": json.dumps(d), "sleep": 0.3 if tag == "killed" else 0}

    def normal_tick(i: int) -> None:
        repo.queue(answer(i, "normal"))
        r = repo.tick("--force")
        assert r.code == 0, (i, r.out, r.err)
        assert r.json()["outcome"] == "decided", r.out
        assert f"normal {i}" in repo.git("show", "HEAD:journal.md")
        locks = sorted(str(p.relative_to(repo.root)) for p in repo.root.glob(".git/**/*.lock"))
        assert repo.status_porcelain() == "", f"round {i}: {repo.status_porcelain()} {locks}"

    # One unkilled slow beat tells how long a beat takes here; the kills spread across it
    # (sensing, the runner, acting, recording).
    slow.touch()
    start = time.monotonic()
    repo.queue(answer(0, "killed"))
    assert repo.tick("--force").code == 0
    span = (time.monotonic() - start) * 1.1
    committed.check()
    rounds = 20
    for i in range(1, rounds + 1):
        reading.write_text(str(i))
        slow.touch()
        repo.queue(answer(i, "killed"))
        tag = f"{tmp_path.name}-{i}"
        beat = popen(repo, "tick", "--force", env={"LB_TEST_TAG": tag})
        time.sleep(span * (i - 1) / (rounds - 1))
        beat.send_signal(signal.SIGKILL)
        beat.communicate()
        assert beat.returncode in (-signal.SIGKILL, 0), beat.returncode
        # The killed beat's runner and sensors live on in their own process groups; end
        # them, so the queue holds exactly the next beat's answer.
        end_leftovers(tag)
        for leftover in (repo.fake / "queue").glob("*.json"):
            leftover.unlink()
        slow.unlink()
        normal_tick(i)
        committed.check()
    assert len(committed.journal) >= rounds


def test_a_killed_run_leaves_the_lock_free_and_its_runner_is_ended(
    repo: Repo, tmp_path: Path
) -> None:
    repo.queue({"stdout": json.dumps(NOOP), "sleep": 3})
    tag = tmp_path.name
    loop = popen(repo, "run", "--interval", "0.1", env={"LB_TEST_TAG": tag})
    try:
        wait_for("the runner", runner_started(repo, 1))
        loop.send_signal(signal.SIGKILL)
        loop.communicate()
        orphans = marked(tag)  # the killed beat's runner, still running
        assert orphans
        repo.decide({**NOOP, "journal": "after the kill"})
        r = repo.tick("--force")
        assert r.code == 0, (r.code, r.err)
        assert r.json()["outcome"] == "decided"
        # The lock was free even though the killed beat's runner was still alive; the next
        # beat ended that runner's group before starting its own, and journaled it.
        assert wait_dead(orphans) == []
    finally:
        if loop.poll() is None:
            loop.kill()
        end_leftovers(tag)
    journal = repo.git("show", "HEAD:journal.md")
    assert "after the kill" in journal
    assert "ended the runner of an interrupted beat" in journal
    assert repo.status_porcelain() == ""


# --- state and the user's edits ---------------------------------------------------------


def test_an_unreadable_state_file_is_moved_aside_and_the_beat_carries_on(repo: Repo) -> None:
    repo.decide(NOOP)
    assert repo.tick().code == 0
    garbage = '{"version": 1, "failures": [not json at all\n'
    repo.write(".looopbot/state.json", garbage)
    repo.git("commit", "-qam", "human: a bad merge of the state file")
    repo.decide({**NOOP, "journal": "fresh start"})
    r = repo.tick()
    assert r.code == 0, r.err
    assert r.json()["outcome"] == "decided", "a fresh state has no decided world: decide"
    assert repo.calls() == 2
    aside = list((repo.root / ".looopbot").glob("state.json.unreadable-*"))
    assert len(aside) == 1 and aside[0].read_text() == garbage
    journal = repo.read("journal.md")
    assert "unreadable" in journal and aside[0].name in journal
    assert "fresh start" in journal
    state = json.loads(repo.git("show", "HEAD:.looopbot/state.json"))
    assert state["decided_hash"] == r.json()["world_hash"]
    assert repo.status_porcelain() == ""
    # and the loop goes on from there
    assert repo.tick().json()["outcome"] == "unchanged"


def test_the_users_uncommitted_edits_survive_a_beat(repo: Repo) -> None:
    repo.write("notes.txt", "one\n")
    repo.write("todo.txt", "a\n")
    repo.git("add", "notes.txt", "todo.txt")
    repo.git("commit", "-qm", "human: notes")
    repo.write("notes.txt", "one\ntwo (unstaged)\n")
    repo.write("todo.txt", "a\nb (staged)\n")
    repo.git("add", "todo.txt")
    repo.write("todo.txt", "a\nb (staged)\nc (unstaged on top)\n")
    repo.write("scratch.txt", "untracked\n")
    before = (
        repo.git("diff"),
        repo.git("diff", "--cached"),
        repo.status_porcelain(),
    )
    assert before[0] and before[1]
    repo.decide({"action": "write_goal", "id": "ship", "body": "goal: ship\n", "journal": "j"})
    head = repo.head()
    r = repo.tick()
    assert r.code == 0, r.err
    assert r.json()["commit"] == repo.head() != head
    after = (repo.git("diff"), repo.git("diff", "--cached"), repo.status_porcelain())
    assert after == before
    committed = set(repo.git("show", "--name-only", "--format=", "HEAD").split())
    assert "goals/ship.md" in committed
    assert not committed & {"notes.txt", "todo.txt", "scratch.txt"}
    assert repo.git("show", "HEAD:notes.txt") == "one\n"
    assert repo.git("show", "HEAD:todo.txt") == "a\n"
    assert repo.read("scratch.txt") == "untracked\n"
    assert repo.read("notes.txt") == "one\ntwo (unstaged)\n"


# --- run --------------------------------------------------------------------------------


def counting_sensor(repo: Repo, tmp_path: Path) -> None:
    """A sensor whose signal moves every beat, so every beat of `run` would decide."""
    n = tmp_path / "n"
    n.write_text("0")
    repo.sensor(
        "count",
        f'#!/usr/bin/env bash\nn=$(( $(cat {n}) + 1 )); echo $n > {n}\necho "$n"\n',
    )
    commit_sensors(repo)


def test_run_max_beats_runs_that_many_beats(repo: Repo, tmp_path: Path) -> None:
    counting_sensor(repo, tmp_path)
    repo.decide({**NOOP, "journal": "beat one"}, {**NOOP, "journal": "beat two"})
    n = repo.commits()
    r = repo.run("run", "--max-beats", "2", "--interval", "0.2")
    assert r.code == 0, r.err
    assert repo.calls() == 2
    assert repo.commits() == n + 2
    assert len([line for line in r.out.splitlines() if "decided" in line]) == 2
    journal = repo.read("journal.md")
    assert "beat one" in journal and "beat two" in journal
    assert repo.status_porcelain() == ""


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 0), (signal.SIGINT, 130)])
def test_run_finishes_the_current_beat_on_a_signal(
    repo: Repo, tmp_path: Path, sig: signal.Signals, code: int
) -> None:
    counting_sensor(repo, tmp_path)
    repo.queue({"stdout": json.dumps({**NOOP, "journal": "the interrupted beat"}), "sleep": 2})
    loop = popen(repo, "run", "--interval", "0.1")
    try:
        wait_for("the runner", runner_started(repo, 1))
        loop.send_signal(sig)
        out, err = loop.communicate(timeout=30)
    finally:
        if loop.poll() is None:
            loop.kill()
            loop.wait()
    assert loop.returncode == code, (out, err)
    assert "Traceback" not in out + err
    # the beat in flight finished and was recorded ...
    assert repo.trailers()["Looopbot-Outcome"] == "decided"
    assert "the interrupted beat" in repo.git("show", "HEAD:journal.md")
    assert "the interrupted beat" in repo.read("journal.md").splitlines()[-1]
    # ... and no further beat started (it would have called the runner: the sensor moved)
    assert repo.calls() == 1
    assert repo.status_porcelain() == ""
    assert git(repo.root, "fsck", "--full", "--no-dangling") == ""
