"""Worker health (issue 9): busy, waiting, stuck — one wake when a worker turns stuck,
`kill_worker` ending its whole group with the reason journaled, the supervisor ending a
stuck worker by itself under limits.kill_stuck_after — and a worker run by a named runner."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from conftest import FAKE_WORKER, NOOP, Repo, read_pids, task, wait_dead, wait_state
from test_actions_e2e import assert_failed


def limits(repo: Repo, **values: Any) -> None:
    text = repo.read("looopbot.yaml")
    lines = "".join(f"  {k}: {v}\n" for k, v in values.items())
    repo.write("looopbot.yaml", text.replace("limits:\n", "limits:\n" + lines, 1))
    repo.git("commit", "-qam", "limits for the test")


def health(repo: Repo, wid: str) -> str | None:
    found = json.loads(repo.read("snapshots/sys-workers.json"))["signal"]
    (item,) = [w for w in found if w["id"] == wid]
    return item.get("health")


def silent_for(seconds: float) -> None:
    # A worker is judged by the clock: let it stay silent past the (tiny) threshold.
    time.sleep(seconds)


def test_a_silent_worker_turns_stuck_once_and_kill_worker_ends_its_group(
    wrepo: Repo, pidfile: Path
) -> None:
    repo = wrepo
    limits(repo, worker_stuck_after=1)
    spec = task("w1", pids=str(pidfile), grandchild=True, hang=True)
    repo.decide({"action": "start_worker", "id": "w1", "prompt": spec})
    assert repo.tick().json()["outcome"] == "decided"
    wait_state(repo, "w1", "running")
    assert health(repo, "w1") == "busy"
    silent_for(1.5)
    reason = "silent for too long"
    repo.decide({"action": "kill_worker", "id": "w1", "reason": reason})
    woke = repo.tick().json()
    assert woke["outcome"] == "decided" and woke["action"] == "kill_worker", woke
    assert '"health": "stuck"' in repo.prompts()[-1]  # the decider saw why it woke
    assert wait_dead(read_pids(pidfile)) == []  # the worker and its grandchild
    record = wait_state(repo, "w1", "killed")
    assert record["state"] == "killed"
    assert f"kill_worker w1: {reason}" in repo.read("journal.md")
    assert f"killed by the loop: {reason}" in repo.read(".looopbot/workers/w1/output.log")
    assert health(repo, "w1") is None  # ended on the record: no health
    repo.decide(NOOP)
    assert repo.tick().json()["outcome"] in ("decided", "unchanged")


def test_stuck_wakes_the_loop_once_not_every_beat(wrepo: Repo) -> None:
    repo = wrepo
    limits(repo, worker_stuck_after=1)
    repo.decide({"action": "start_worker", "id": "w1", "prompt": task("w1", hang=True)})
    assert repo.tick().json()["outcome"] == "decided"
    wait_state(repo, "w1", "running")
    silent_for(1.5)
    repo.decide(NOOP)
    assert repo.tick().json()["outcome"] == "decided"
    assert health(repo, "w1") == "stuck"
    head = repo.head()
    silent_for(1.0)
    assert repo.tick().json()["outcome"] == "unchanged"  # still stuck: no news, no commit
    assert repo.head() == head and repo.calls() == 2


def test_a_worker_waiting_on_a_question_is_not_stuck_nor_killed(wrepo: Repo) -> None:
    repo = wrepo
    limits(repo, worker_stuck_after=1, kill_stuck_after=1)
    spec = task("w1", flag="ship it?", hang=True)
    repo.decide({"action": "start_worker", "id": "w1", "prompt": spec})
    assert repo.tick().json()["outcome"] == "decided"
    wait_state(repo, "w1", "running")
    silent_for(2.5)  # past both limits and past the supervisor's look
    repo.decide(NOOP)
    repo.tick()
    assert health(repo, "w1") == "waiting"
    assert json.loads(repo.read(".looopbot/workers/w1/state.json"))["state"] == "running"


def test_kill_stuck_after_lets_the_supervisor_end_a_stuck_worker(
    wrepo: Repo, pidfile: Path
) -> None:
    repo = wrepo
    limits(repo, kill_stuck_after=1)
    spec = task("w1", pids=str(pidfile), grandchild=True, hang=True)
    repo.decide({"action": "start_worker", "id": "w1", "prompt": spec})
    assert repo.tick().json()["outcome"] == "decided"
    record = wait_state(repo, "w1", "killed", within=20)
    assert record["ended_at"] is not None
    assert wait_dead(read_pids(pidfile)) == []
    log = repo.read(".looopbot/workers/w1/output.log")
    assert "limits.kill_stuck_after" in log


def test_kill_worker_of_a_worker_that_is_not_running_fails_the_beat(repo: Repo) -> None:
    repo.decide({"action": "kill_worker", "id": "ghost", "reason": "x"})
    assert_failed(repo.tick(), "ghost")


def test_start_worker_with_a_named_runner_uses_its_worker_command(wrepo: Repo) -> None:
    repo = wrepo
    alt = f"echo ran-by-alt > alt-marker; {FAKE_WORKER}"
    text = (
        repo.read("looopbot.yaml") + f"runners:\n  alt:\n    tick: 'false'\n    worker: '{alt}'\n"
    )
    repo.write("looopbot.yaml", text)
    repo.git("commit", "-qam", "an alt runner")
    repo.decide({"action": "start_worker", "id": "w1", "prompt": task("w1"), "runner": "alt"})
    assert repo.tick().json()["outcome"] == "decided"
    wait_state(repo, "w1", "exited")
    assert (repo.root / ".looopbot/worktrees/w1/alt-marker").read_text() == "ran-by-alt\n"
    repo.decide({"action": "start_worker", "id": "w2", "prompt": task("w2"), "runner": "nope"})
    assert_failed(repo.tick("--force"), "no runner named 'nope'")


def test_worker_start_by_hand_with_a_named_runner(wrepo: Repo) -> None:
    repo = wrepo
    alt = f"echo by-hand > alt-marker; {FAKE_WORKER}"
    text = (
        repo.read("looopbot.yaml") + f"runners:\n  alt:\n    tick: 'false'\n    worker: '{alt}'\n"
    )
    repo.write("looopbot.yaml", text)
    repo.git("commit", "-qam", "an alt runner")
    done = repo.run("worker", "start", "w1", task("w1"), "--runner", "alt")
    assert done.code == 0, done.err
    wait_state(repo, "w1", "exited")
    assert (repo.root / ".looopbot/worktrees/w1/alt-marker").read_text() == "by-hand\n"
    refused = repo.run("worker", "start", "w2", task("w2"), "--runner", "nope")
    assert refused.code == 1 and "no runner named 'nope'" in refused.err
