"""Review findings on the worker runtime, with real supervisors and real worker processes."""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import BIN, TESTS, Repo, end_workers, wait_dead, wait_lines

from looopbot.config import load
from looopbot.datadir import DataDir, locate
from looopbot.workers import fleet, record

WORKER = f"{sys.executable} {TESTS / 'fake_worker.py'} {{prompt_file}}"


@pytest.fixture
def dd(repo: Repo, monkeypatch: pytest.MonkeyPatch) -> Iterator[DataDir]:
    monkeypatch.setenv("LOOOPBOT_WORKER_COMMAND", WORKER)
    monkeypatch.setenv("PATH", f"{BIN.parent}{os.pathsep}{os.environ['PATH']}")
    yield locate(str(repo.root))
    end_workers(repo)


def test_a_message_queued_behind_a_restart_reaches_the_new_run(dd: DataDir, tmp_path: Path) -> None:
    starts, echo = tmp_path / "starts", tmp_path / "echo"
    spec = {"starts": str(starts), "read": 1, "echo": str(echo), "hang": True}
    fleet.start(dd, load(dd), "w1", f"work\nFAKE {json.dumps(spec)}\n")
    wait_lines(starts, 1)
    worker = record.read(dd, "w1")
    assert worker is not None and worker.supervisor is not None
    # Both messages wait in the inbox together: the supervisor is paused while they land.
    os.kill(worker.supervisor.pid, signal.SIGSTOP)
    try:
        fleet.restart(dd, "w1")
        fleet.steer(dd, "w1", "for the new run")
    finally:
        os.kill(worker.supervisor.pid, signal.SIGCONT)
    assert len(wait_lines(starts, 2)) == 2
    assert wait_lines(echo, 1) == ["for the new run"]


def test_a_stop_during_verify_leaves_no_verify_running(dd: DataDir, pidfile: Path) -> None:
    verify = f"echo $$ >> {pidfile}; exec sleep 300"
    fleet.start(dd, load(dd), "w1", "work\nFAKE {}\n", verify)
    (pid,) = (int(line) for line in wait_lines(pidfile, 1))
    stopped = fleet.stop(dd, "w1")
    assert stopped.state == "killed"
    assert wait_dead([pid]) == []
