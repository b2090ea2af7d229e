"""`looopbot watch` (issue 9): drawn in a real terminal (tmux), it shows a beat that happens
while it runs; it reads the repo only, so a clone that pulls shows the same."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import BIN, NOOP, Repo, git, installed


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[list[str]]:
    installed("tmux", shutil.which("tmux"))
    cmd = ["tmux", "-S", str(tmp_path / "tmux.sock")]
    yield cmd
    subprocess.run([*cmd, "kill-server"], capture_output=True)


def pane(tmux: list[str]) -> str:
    done = subprocess.run([*tmux, "capture-pane", "-p"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def shows(tmux: list[str], text: str, within: float = 20) -> str:
    deadline = time.monotonic() + within
    while text not in (screen := pane(tmux)):
        assert time.monotonic() < deadline, f"{text!r} never appeared:\n{screen}"
        time.sleep(0.1)
    return screen


def start(tmux: list[str], repo_root: Path, env: dict[str, str]) -> None:
    line = f"{BIN} -C {repo_root} watch"
    full = {**os.environ, **env, "TERM": "xterm-256color"}
    subprocess.run(
        [*tmux, "new-session", "-d", "-x", "140", "-y", "40", line], check=True, env=full
    )


def test_watch_shows_a_beat_that_happens_while_it_runs(repo: Repo, tmux: list[str]) -> None:
    start(tmux, repo.root, repo.env)
    shows(tmux, "last beats")
    assert "the watcher saw this" not in pane(tmux)
    repo.decide({**NOOP, "journal": "the watcher saw this"})
    assert repo.tick().code == 0
    screen = shows(tmux, "the watcher saw this")
    assert "decided" in screen and "noop" in screen
    subprocess.run([*tmux, "send-keys", "C-c"], check=True)


def test_watch_on_a_clone_that_pulls(repo: Repo, tmux: list[str], tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo.root), str(clone))
    start(tmux, clone, {})
    shows(tmux, "last beats")
    repo.decide({**NOOP, "journal": "decided on the other machine"})
    assert repo.tick().code == 0
    git(clone, "pull", "-q", "--ff-only")
    shows(tmux, "decided on the other machine")


def test_watch_once_lists_workers_questions_and_spend(repo: Repo) -> None:
    repo.decide({**NOOP, "journal": "first look"})
    assert repo.tick().code == 0
    # What a pull brings from the machine that runs the workers: their committed snapshot.
    workers = {
        "signal": [
            {"id": "docs", "state": "running", "exit_code": None, "note": "merge to main?"},
            {"id": "lint", "state": "exited", "exit_code": 0, "verify": "passed"},
        ],
        "detail": {},
    }
    repo.write("snapshots/sys-workers.json", json.dumps(workers))
    repo.git("add", "snapshots/sys-workers.json")
    repo.git("commit", "-qm", "pulled: workers")
    done = repo.run("watch", "--once", env={"COLUMNS": "160"})
    assert done.code == 0, done.err
    assert "first look" in done.out and "decided" in done.out
    assert "$0.0000 today (no budget)" in done.out
    assert "1 waiting for a human" in done.out and "docs: merge to main?" in done.out
    assert "lint" in done.out and "passed" in done.out
    assert repo.status_porcelain() == ""  # it wrote nothing


def test_watch_names_the_next_schedule_as_the_next_wake(repo: Repo) -> None:
    done = repo.run("schedule", "write", "nightly", "re-check the deploy", "--every", "1d")
    assert done.code == 0, done.err
    shown = repo.run("watch", "--once", env={"COLUMNS": "160"})
    assert shown.code == 0, shown.err
    assert "(schedule nightly)" in shown.out and "next wake  in 23h" in shown.out
