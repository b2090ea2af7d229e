"""Workers driven by the decider: the worker-facing actions through real beats."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from conftest import NOOP, Repo, task, wait_dead, wait_lines, wait_state


def sys_workers(repo: Repo) -> list[dict[str, Any]]:
    return json.loads(repo.read("snapshots/sys-workers.json"))["signal"]


def test_a_decided_start_creates_branch_worktree_and_brief_and_its_exit_wakes_the_loop(
    wrepo: Repo,
) -> None:
    repo = wrepo
    main = repo.head()
    repo.decide(
        {
            "action": "start_worker",
            "id": "setup",
            "prompt": task("setup", report=True),
            "journal": "started a worker on setup",
        }
    )
    r = repo.tick()
    assert r.code == 0, r.err
    assert r.json()["outcome"] == "decided" and r.json()["action"] == "start_worker"
    assert (repo.root / ".looopbot/worktrees/setup").is_dir()
    assert "looopbot/worker/setup" in repo.git("branch", "--list", "looopbot/worker/*")
    brief = repo.read(".looopbot/workers/setup/brief.md")
    assert "worker contract" in brief and "Work for setup." in brief
    # sys-goals counts a worker action as acting on the goal of the same id
    acted = json.loads(repo.read("snapshots/sys-goals.json"))["detail"]["last_acted"]
    assert acted["setup"] is not None
    wait_state(repo, "setup", "exited")
    # The worker's commit stays on its branch; main only has the beat's commit.
    assert repo.git("show", "looopbot/worker/setup:reports/setup.md").startswith("# report")
    assert "reports/setup.md" not in repo.git("ls-tree", "-r", "--name-only", "HEAD")
    assert repo.git("rev-parse", "HEAD~1").strip() == main
    # The worker's end changes the world: the next beat decides and is told what changed.
    repo.decide(NOOP)
    r = repo.tick()
    assert r.json()["outcome"] == "decided", r.out
    assert "snapshots/sys-workers.json: signal" in repo.prompts()[-1]
    assert sys_workers(repo) == [{"id": "setup", "state": "exited", "exit_code": 0}]


def test_starting_a_worker_is_not_news_to_the_loop_that_started_it(wrepo: Repo) -> None:
    wrepo.decide({"action": "start_worker", "id": "w1", "prompt": task("w1", hang=True)})
    assert wrepo.tick().json()["outcome"] == "decided"
    wait_state(wrepo, "w1", "running")
    r = wrepo.tick()
    assert r.json()["outcome"] == "unchanged", r.out
    assert wrepo.calls() == 1


def test_steer_and_keys_from_decisions_reach_the_worker(wrepo: Repo, tmp_path: Path) -> None:
    echo, pids = tmp_path / "echo", tmp_path / "pids"
    wrepo.decide(
        {
            "action": "start_worker",
            "id": "w1",
            "prompt": task(
                "w1", read=1, echo=str(echo), pids=str(pids), grandchild=True, hang=True
            ),
        },
        {"action": "steer_session", "id": "w1", "input": "go ahead"},
        {"action": "send_key", "id": "w1", "keys": ["C-c"]},
    )
    wrepo.tick()
    wait_state(wrepo, "w1", "running")
    r = wrepo.tick("--force")
    assert r.json()["action"] == "steer_session", r.out
    assert wait_lines(echo, 1) == ["go ahead"]
    procs = [int(p) for p in wait_lines(pids, 2)]
    r = wrepo.tick("--force")
    assert r.json()["action"] == "send_key", r.out
    # C-c is SIGINT to the worker's whole group: the worker and its grandchild are gone.
    assert wait_dead(procs) == []
    assert wait_state(wrepo, "w1", "exited", "killed")["state"] in ("exited", "killed")


def test_restart_from_a_decision_runs_the_command_again_in_the_same_worktree(
    wrepo: Repo, tmp_path: Path
) -> None:
    starts = tmp_path / "starts"
    wrepo.decide(
        {"action": "start_worker", "id": "w1", "prompt": task("w1", starts=str(starts), hang=True)},
        {"action": "restart_session", "id": "w1"},
    )
    wrepo.tick()
    assert len(wait_lines(starts, 1)) == 1
    assert wrepo.tick("--force").json()["action"] == "restart_session"
    first, second = wait_lines(starts, 2)
    assert first == second and first.endswith(".looopbot/worktrees/w1")
    assert wait_state(wrepo, "w1", "running")["restarts"] == 1


def test_worker_actions_on_a_worker_that_is_not_live_fail_the_beat(wrepo: Repo) -> None:
    wrepo.decide({"action": "steer_session", "id": "ghost", "input": "hello"})
    r = wrepo.tick()
    assert r.code == 1 and r.json()["outcome"] == "failed"
    assert "ghost" in r.json()["error"]
    assert "Traceback" not in r.err
    assert wrepo.state()["failures"] == 1


def test_a_second_start_of_a_live_id_fails_the_beat(wrepo: Repo) -> None:
    spec = {"action": "start_worker", "id": "w1", "prompt": task("w1", hang=True)}
    wrepo.decide(spec, spec)
    wrepo.tick()
    wait_state(wrepo, "w1", "running")
    r = wrepo.tick("--force")
    assert r.code == 1 and r.json()["outcome"] == "failed"
    assert "w1" in r.json()["error"]


def test_a_flagged_worker_wakes_the_loop_and_the_decider_answers(
    wrepo: Repo, tmp_path: Path
) -> None:
    echo = tmp_path / "echo"
    wrepo.decide(
        {
            "action": "start_worker",
            "id": "w1",
            "prompt": task("w1", flag="deploy to prod?", read=1, echo=str(echo), hang=True),
        }
    )
    wrepo.tick()
    end = time.monotonic() + 20
    while not (wrepo.root / ".looopbot/workers/w1/flag").exists():
        assert time.monotonic() < end, "the worker never flagged"
        time.sleep(0.05)
    wrepo.decide({"action": "steer_session", "id": "w1", "input": "no, wait for Monday"})
    r = wrepo.tick()
    assert r.json()["outcome"] == "decided", r.out
    prompt = wrepo.prompts()[-1]
    assert '"note": "deploy to prod?"' in prompt
    assert wait_lines(echo, 1) == ["no, wait for Monday"]


def test_a_runner_without_a_worker_command_is_not_offered_workers(repo: Repo) -> None:
    config = repo.read("looopbot.yaml").replace("runner: example", "runner: bare")
    repo.write("looopbot.yaml", config + "runners:\n  bare:\n    tick: cat\n")
    repo.decide(NOOP)  # LOOOPBOT_TICK_COMMAND (the scripted runner) answers
    assert repo.tick().code == 0
    instructions = repo.prompts()[-1].split("=== PLAYBOOK ===")[0]
    assert "start_worker" not in instructions and "noop" in instructions
