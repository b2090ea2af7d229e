"""Review findings on workers, checked through the real CLI and real beats."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import BIN, NOOP, Repo, task, wait_dead, wait_lines, wait_state


def test_a_worker_that_ends_while_the_decider_thinks_still_wakes_the_next_beat(
    wrepo: Repo, tmp_path: Path
) -> None:
    pids = tmp_path / "pids"
    wrepo.decide(
        {"action": "start_worker", "id": "w1", "prompt": task("w1", pids=str(pids), hang=True)}
    )
    assert wrepo.tick().json()["outcome"] == "decided"
    wait_state(wrepo, "w1", "running")
    worker_pid = int(wait_lines(pids, 1)[0])
    state_file = wrepo.root / ".looopbot/workers/w1/state.json"
    # The next decide takes a while, and the worker ends during it: the runner ends it and
    # waits until the supervisor has recorded the end, then answers noop.
    wrepo.queue(
        {
            "spawn": f"kill {worker_pid}; "
            f"while ! grep -q '\"exited\"' {state_file}; do sleep 0.02; done",
            "stdout": json.dumps(NOOP),
        }
    )
    r = wrepo.tick("--force")
    assert r.json()["outcome"] == "decided", r.out
    assert '"state": "running"' in wrepo.prompts()[-1]  # what that decider saw
    assert wait_dead([worker_pid]) == []
    # The decider never saw the worker end: that is news, and the next beat must decide.
    wrepo.decide(NOOP)
    r = wrepo.tick()
    assert r.json()["outcome"] == "decided", r.out
    assert '"state": "exited"' in wrepo.prompts()[-1]


def test_a_claim_taken_while_the_decider_thinks_still_wakes_the_next_beat(
    wrepo: Repo,
) -> None:
    wrepo.decide(NOOP)
    assert wrepo.tick().json()["outcome"] == "decided"
    wrepo.queue(
        {
            "spawn": f"{BIN} -C {wrepo.root} claim db --session someone",
            "stdout": json.dumps(NOOP),
        }
    )
    assert wrepo.tick("--force").json()["outcome"] == "decided"
    assert "refs/heads/looopbot/claim/db" in wrepo.git("for-each-ref", "refs/heads/looopbot/")
    wrepo.decide(NOOP)
    r = wrepo.tick()
    assert r.json()["outcome"] == "decided", r.out
    assert '"holder": "someone"' in wrepo.prompts()[-1]


def test_a_record_naming_another_id_is_unreadable_and_prune_stays_in_its_folder(
    repo: Repo,
) -> None:
    victim = repo.root / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("precious\n")
    rec = {
        "id": "../../victim",
        "state": "exited",
        "command": "true",
        "branch": "master",
        "base": "0" * 40,
        "base_branch": "master",
        "started_at": 1.0,
        "ended_at": 2.0,
        "exit_code": 0,
    }
    repo.write(".looopbot/workers/w1/state.json", json.dumps(rec))
    r = repo.run("worker", "prune", "--all")
    assert (victim / "keep.txt").read_text() == "precious\n"
    assert r.code == 0, r.err
    listed = repo.run("worker", "list", "--json").json()
    assert listed["unreadable"] == ["w1"] and listed["workers"] == []


def test_a_record_with_a_mistyped_field_is_unreadable_and_the_beat_goes_on(repo: Repo) -> None:
    rec = {
        "id": "w1",
        "state": "exited",
        "command": "true",
        "branch": "looopbot/worker/w1",
        "base": "0" * 40,
        "base_branch": "master",
        "started_at": "yesterday",
        "exit_code": 0,
    }
    repo.write(".looopbot/workers/w1/state.json", json.dumps(rec))
    repo.decide(NOOP)
    r = repo.tick()
    assert r.code == 0, r.err
    assert "Traceback" not in r.err
    signal = json.loads(repo.read("snapshots/sys-workers.json"))["signal"]
    assert signal == [{"id": "w1", "state": "unreadable", "exit_code": None}]
    assert repo.run("worker", "list").code == 0
