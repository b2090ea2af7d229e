"""Asks (issue 9): a worker's question with an id and options — options enforced, the
answer delivered once, STRANDED when its worker is gone, shown to the decider, and
`looopbot wait` returning on a new ask or saying the loop is not running."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from conftest import BIN, NOOP, Repo, task, wait_lines, wait_state
from test_actions_e2e import assert_failed


def pending(repo: Repo) -> list[dict[str, object]]:
    done = repo.run("asks", "--json")
    assert done.code == 0, done.err
    asks: list[dict[str, object]] = json.loads(done.out)["asks"]
    return asks


def wait_pending(repo: Repo, n: int = 1, within: float = 20) -> list[dict[str, object]]:
    deadline = time.monotonic() + within
    while len(found := pending(repo)) < n:
        assert time.monotonic() < deadline, found
        time.sleep(0.1)
    return found


def asking(repo: Repo, out: Path, **ask: object) -> None:
    spec = task("w1", ask={"question": "deploy to prod?", "out": str(out), **ask})
    done = repo.run("worker", "start", "w1", spec)
    assert done.code == 0, done.err


def test_options_are_enforced_and_the_answer_reaches_the_waiting_ask_once(
    wrepo: Repo, tmp_path: Path
) -> None:
    repo, out = wrepo, tmp_path / "asked"
    asking(repo, out, options="yes,no")
    (ask,) = wait_pending(repo)
    assert ask["id"] == "w1#1" and ask["options"] == ["yes", "no"]
    assert ask["worker"] == "w1" and ask["stranded"] is False
    refused = repo.run("answer", "w1", "maybe")
    assert refused.code == 1 and "choose one of: yes, no" in refused.err
    assert pending(repo)  # still pending: a refused answer delivers nothing
    assert repo.run("answer", "w1#1", "YES").code == 0
    assert wait_lines(out, 3) == ["w1#1", "yes", "exit 0"]  # printed as the option is spelt
    wait_state(repo, "w1", "exited")
    assert pending(repo) == []
    again = repo.run("answer", "w1#1", "yes")
    assert again.code == 1 and "not pending" in again.err
    assert "by hand: answered w1#1: yes" in repo.read("journal.md")


def test_an_ask_whose_worker_died_is_stranded(wrepo: Repo, tmp_path: Path) -> None:
    repo, out = wrepo, tmp_path / "asked"
    asking(repo, out, options="a,b", no_wait=True)
    wait_state(repo, "w1", "exited")  # it asked and left without waiting
    (ask,) = pending(repo)
    assert ask["stranded"] is True
    shown = repo.run("asks")
    assert "STRANDED" in shown.out and "w1#1" in shown.out


def test_the_decider_sees_pending_asks_and_answers_within_the_options(
    wrepo: Repo, tmp_path: Path
) -> None:
    repo, out = wrepo, tmp_path / "asked"
    asking(repo, out, options="ship,hold")
    wait_pending(repo)
    repo.decide({"action": "steer_session", "id": "w1", "input": "hold"})
    assert repo.tick().json()["outcome"] == "decided"
    prompt = repo.prompts()[-1]
    section = prompt.split("=== PENDING ASKS ===\n", 1)[1].split("\n\n=== ", 1)[0]
    assert "w1#1 (worker w1" in section and "deploy to prod?" in section
    assert "options: ship, hold" in section
    assert wait_lines(out, 3) == ["w1#1", "hold", "exit 0"]


def test_the_deciders_answer_outside_the_options_is_refused(wrepo: Repo, tmp_path: Path) -> None:
    repo, out = wrepo, tmp_path / "asked"
    asking(repo, out, options="ship,hold")
    wait_pending(repo)
    repo.decide({"action": "steer_session", "id": "w1", "input": "whatever"})
    assert_failed(repo.tick(), "is not an answer w1#1 takes", "ship, hold")
    assert [a["id"] for a in pending(repo)] == ["w1#1"]  # still waiting for a real answer
    repo.run("answer", "w1", "hold")


def test_wait_returns_on_a_new_ask(wrepo: Repo, tmp_path: Path) -> None:
    repo, out = wrepo, tmp_path / "asked"
    repo.decide(NOOP)
    assert repo.tick().code == 0  # a loop that ran just now
    waiter = subprocess.Popen(
        [str(BIN), "-C", str(repo.root), "wait", "--asks"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **repo.env},
    )
    try:
        time.sleep(0.5)
        assert waiter.poll() is None  # nothing needs a human yet
        asking(repo, out, options="yes,no")
        stdout, stderr = waiter.communicate(timeout=30)
    finally:
        waiter.kill()
    assert waiter.returncode == 0, stderr
    assert stdout.startswith("ask w1#1 (w1): deploy to prod? [yes/no]")
    repo.run("answer", "w1", "no")


def test_wait_exits_2_when_the_loop_is_not_running(repo: Repo) -> None:
    done = repo.run("wait")
    assert done.code == 2 and "not running" in done.err
    text = repo.read("looopbot.yaml").replace("interval: 60", "interval: 1", 1)
    assert "interval: 1" in text
    repo.write("looopbot.yaml", text)
    repo.git("commit", "-qam", "a short interval")
    repo.decide(NOOP)
    assert repo.tick().code == 0
    time.sleep(3.5)  # past 3 intervals of 1 s with no beat
    done = repo.run("wait")
    assert done.code == 2 and "no beat for" in done.err


def test_wait_returns_on_a_failed_beat(repo: Repo) -> None:
    repo.decide(NOOP)
    assert repo.tick().code == 0
    waiter = subprocess.Popen(
        [str(BIN), "-C", str(repo.root), "wait"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(0.5)
        repo.queue({"stderr": "boom\n", "exit": 3})
        assert repo.tick("--force").code == 1
        stdout, stderr = waiter.communicate(timeout=30)
    finally:
        waiter.kill()
    assert waiter.returncode == 0, stderr
    assert stdout.startswith("failed beat ")


def test_bad_options_and_ids_are_clear_errors(wrepo: Repo) -> None:
    repo = wrepo
    for args, needle in (
        (("ask", "w1", "q", "--options", "only"), "one option is no choice"),
        (("ask", "../x", "q"), "../x"),
        (("answer", "w1#x", "yes"), "neither a worker id nor an ask id"),
        (("answer", "../x#1", "yes"), "not a valid id"),
        (("answer", "w1#7", "yes"), "w1"),
    ):
        done = repo.run(*args)
        assert done.code == 1, (args, done.out, done.err)
        assert needle in done.err, (args, done.err)
        assert "Traceback" not in done.err
