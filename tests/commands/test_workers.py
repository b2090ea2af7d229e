"""`worker list|start|stop|logs|prune`, `flag`, `unflag`, `answer` through the installed CLI,
with real workers (tests/fake_worker.py) under real supervisors."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from conftest import BIN, Repo, read_pids, wait_dead, wait_lines


def prompt(wid: str, **spec: Any) -> str:
    return f"Work for {wid}.\nFAKE {json.dumps(spec)}\n"


def listing(repo: Repo) -> dict[str, dict[str, Any]]:
    run = repo.run("worker", "list", "--json")
    assert run.code == 0, run.err
    return {w["id"]: w for w in run.json()["workers"]}


def wait_finished(repo: Repo, wid: str, within: float = 30) -> dict[str, Any]:
    end = time.monotonic() + within
    while time.monotonic() < end:
        row = listing(repo)[wid]
        if row["state"] not in ("starting", "running"):
            return row
        time.sleep(0.05)
    raise AssertionError(f"worker {wid} never finished: {listing(repo)[wid]}")


def wait_for(path: Path, within: float = 30) -> None:
    end = time.monotonic() + within
    while not path.exists() and time.monotonic() < end:
        time.sleep(0.02)
    assert path.exists(), path


def test_worker_start_by_hand_is_journaled_and_committed_and_listed(wrepo: Repo) -> None:
    before = wrepo.commits()
    run = wrepo.run("worker", "start", "w1", "-", input=prompt("w1", report=True))
    assert run.code == 0, run.err
    assert "by hand: start_worker w1" in run.out
    assert wrepo.commits() == before + 1
    assert wrepo.trailers()["Looopbot-Action"] == "start_worker"
    assert wrepo.read("journal.md").splitlines()[-1].endswith("by hand: start_worker w1")
    assert wrepo.status_porcelain() == ""  # scratch stays out of git
    row = wait_finished(wrepo, "w1")
    assert (row["state"], row["exit_code"], row["ahead"]) == ("exited", 0, 1)
    assert row["branch"] == "looopbot/worker/w1"
    text = wrepo.run("worker", "list")
    assert text.code == 0 and text.out.startswith("w1\texited\texit 0\t")
    assert "looopbot/worker/w1 +1" in text.out
    logs = wrepo.run("worker", "logs", "w1")
    assert "committed the report" in logs.out
    tail = wrepo.run("worker", "logs", "w1", "--tail", "1")
    assert tail.out == logs.out.splitlines(keepends=True)[-1]


def test_worker_start_refusals_exit_1_and_write_nothing(wrepo: Repo) -> None:
    before = wrepo.commits()
    for bad in ("../evil", "a/b", ".x"):
        run = wrepo.run("worker", "start", bad, "do things")
        assert run.code == 1 and "not a valid id" in run.err, run.err
        assert run.err.startswith("looopbot: ") and run.err.count("\n") == 1
    assert not (wrepo.root / ".looopbot" / "workers").exists()
    assert not (wrepo.root / ".looopbot" / "worktrees").exists()
    assert "looopbot/worker" not in wrepo.git("branch", "--list")
    run = wrepo.run("worker", "start", "ok", "   ")
    assert run.code == 1, run.err
    assert wrepo.commits() == before


def test_a_live_id_and_the_cap_are_refused_with_exit_1(wrepo: Repo) -> None:
    env = {"LOOOPBOT_MAX_WORKERS": "1"}
    assert wrepo.run("worker", "start", "a", prompt("a", hang=True), env=env).code == 0
    # The detached supervisor holds no lock of the command that started it.
    goal = wrepo.run("goal", "write", "g1", "goal: still steerable")
    assert goal.code == 0, goal.err
    again = wrepo.run("worker", "start", "a", prompt("a"), env=env)
    assert again.code == 1 and "already running" in again.err
    capped = wrepo.run("worker", "start", "b", prompt("b"), env=env)
    assert capped.code == 1 and "max_workers" in capped.err
    assert wrepo.run("worker", "stop", "a").code == 0
    assert wrepo.run("worker", "start", "b", prompt("b"), env=env).code == 0


def test_worker_stop_ends_the_group_and_is_journaled(wrepo: Repo, tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    spec = prompt("h", pids=str(pids), grandchild=True, hang=True)
    assert wrepo.run("worker", "start", "h", spec).code == 0
    end = time.monotonic() + 30
    while len(read_pids(pids)) < 2 and time.monotonic() < end:
        time.sleep(0.02)
    run = wrepo.run("worker", "stop", "h")
    assert run.code == 0, run.err
    assert "by hand: stop_worker h (killed)" in run.out
    assert wait_dead(read_pids(pids)) == []
    assert listing(wrepo)["h"]["state"] == "killed"
    again = wrepo.run("worker", "stop", "h")
    assert again.code == 1 and "not running" in again.err
    missing = wrepo.run("worker", "stop", "nobody")
    assert missing.code == 1 and "no worker 'nobody'" in missing.err


def test_worker_stop_during_verify_is_answered_by_the_supervisor(
    wrepo: Repo, pidfile: Path
) -> None:
    # The worker exits at once; its verify records its pid and sleeps.
    verify = f"echo $$ >> {pidfile}; exec sleep 30"
    run = wrepo.run("worker", "start", "v", prompt("v"), "--verify", verify)
    assert run.code == 0, run.err
    (verify_pid,) = (int(x) for x in wait_lines(pidfile, 1))
    # The record still says running while verify runs: an answer is taken, but no worker
    # is left to read it, so it must be dropped out loud.
    assert wrepo.run("answer", "v", "too late?").code == 0
    run = wrepo.run("worker", "stop", "v", timeout=120)
    assert run.code == 0, run.err
    assert "by hand: stop_worker v (killed)" in run.out
    assert wait_dead([verify_pid]) == []
    rec = listing(wrepo)["v"]
    assert (rec["state"], rec["exit_code"], rec["verify"]) == ("killed", 0, None)
    log = wrepo.read(".looopbot/workers/v/output.log")
    # The supervisor took the stop message itself: the fleet's fallback (which ends the
    # supervisor from outside after fleet.STOP_WAIT_S) never ran.
    assert "stopped during verify (a stop message)" in log, log
    assert "ended from outside" not in log
    assert "input dropped: the worker has ended" in log, log
    sup = json.loads(wrepo.read(".looopbot/workers/v/state.json"))["supervisor"]
    assert wait_dead([sup["pid"]]) == []


def test_a_worker_flags_itself_and_an_answer_reaches_its_stdin(wrepo: Repo, tmp_path: Path) -> None:
    echo = tmp_path / "echo"
    spec = prompt("q", flag="merge the branch?", read=1, echo=str(echo))
    assert wrepo.run("worker", "start", "q", spec).code == 0
    wait_for(wrepo.root / ".looopbot" / "workers" / "q" / "flag")
    assert listing(wrepo)["q"]["flag"] == "merge the branch?"
    run = wrepo.run("answer", "q", "-", input="yes, merge it\n")
    assert run.code == 0, run.err
    assert wrepo.read("journal.md").splitlines()[-1].endswith("by hand: answered q: yes, merge it")
    wait_for(echo)
    assert echo.read_text() == "yes, merge it\n"
    row = wait_finished(wrepo, "q")
    assert (row["state"], row["exit_code"], row["flag"]) == ("exited", 0, None)
    late = wrepo.run("answer", "q", "too late")
    assert late.code == 1 and "not running" in late.err


def test_flag_and_unflag_by_hand(wrepo: Repo) -> None:
    assert wrepo.run("worker", "start", "f", prompt("f", hang=True)).code == 0
    assert wrepo.run("flag", "f", "which  account?\n").code == 0
    assert listing(wrepo)["f"]["flag"] == "which account?"
    assert wrepo.run("unflag", "f").code == 0
    assert listing(wrepo)["f"]["flag"] is None
    bad = wrepo.run("flag", "../f", "x")
    assert bad.code == 1 and "not a valid id" in bad.err
    assert wrepo.run("worker", "stop", "f").code == 0


def test_logs_follow_ends_when_the_worker_is_no_longer_live(wrepo: Repo) -> None:
    assert wrepo.run("worker", "start", "lf", prompt("lf", hang=True)).code == 0
    follow = subprocess.Popen(
        [str(BIN), "-C", str(wrepo.root), "worker", "logs", "lf", "--follow"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, **wrepo.env},
    )
    try:
        assert follow.stdout is not None
        first = ""
        while "fake worker lf" not in first:  # it prints while the worker is live…
            line = follow.stdout.readline()
            assert line, first
            first += line
        assert wrepo.run("worker", "stop", "lf").code == 0
        out, _ = follow.communicate(timeout=30)  # …and ends once it is not
        out = first + out
    finally:
        if follow.poll() is None:
            follow.kill()
    assert follow.returncode == 0
    assert "fake worker lf" in out and "stopped" in out


def test_worker_prune_keeps_branches_with_work(wrepo: Repo) -> None:
    assert wrepo.run("worker", "start", "kept", prompt("kept", report=True)).code == 0
    assert wrepo.run("worker", "start", "gone", prompt("gone")).code == 0
    wait_finished(wrepo, "kept")
    wait_finished(wrepo, "gone")
    young = wrepo.run("worker", "prune")
    assert young.code == 0 and young.out == "nothing to prune\n"
    run = wrepo.run("worker", "prune", "--all")
    assert run.code == 0, run.err
    assert "pruned kept: worktree removed, branch looopbot/worker/kept kept" in run.out
    assert "pruned gone: worktree removed, branch deleted" in run.out
    branches = wrepo.git("branch", "--list").split()
    assert "looopbot/worker/kept" in branches and "looopbot/worker/gone" not in branches
    assert listing(wrepo) == {}
    assert wrepo.run("worker", "list").out == "no workers\n"


def test_worker_prune_reports_a_worker_it_cannot_prune_and_prunes_the_rest(wrepo: Repo) -> None:
    assert wrepo.run("worker", "start", "a-stuck", prompt("a-stuck")).code == 0
    assert wrepo.run("worker", "start", "b-fine", prompt("b-fine")).code == 0
    wait_finished(wrepo, "a-stuck")
    wait_finished(wrepo, "b-fine")
    base = wrepo.git("branch", "--show-current").strip()
    # git will not delete a branch checked out in the data repo itself.
    wrepo.git("checkout", "-q", "--ignore-other-worktrees", "looopbot/worker/a-stuck")
    for pruned in ("pruned b-fine: worktree removed, branch deleted\n", ""):
        run = wrepo.run("worker", "prune", "--all")  # a human is told every time
        assert run.code == 1
        assert run.out == pruned
        assert run.err.startswith("looopbot: prune of worker a-stuck failed: git branch "), run.err
        assert "checked out at" in run.err and run.err.count("\n") == 1
        assert list(listing(wrepo)) == ["a-stuck"]
    wrepo.git("checkout", "-q", base)
    run = wrepo.run("worker", "prune", "--all")
    assert run.code == 0, run.err
    assert run.out == "pruned a-stuck: worktree removed, branch deleted\n"
    assert listing(wrepo) == {}


def test_worker_logs_of_an_unknown_worker(wrepo: Repo) -> None:
    run = wrepo.run("worker", "logs", "nope")
    assert run.code == 1 and "no worker 'nope'" in run.err
