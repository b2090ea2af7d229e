"""The worker runtime (DESIGN §8) with real supervisors and real worker processes.

The fleet API is called in-process; every worker is a real `fake_worker.py` run by a real
supervisor (`python -m looopbot.workers.supervisor`), in a real worktree of a real data repo.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import BIN, TESTS, Repo, read_pids, wait_dead, wait_lines

from looopbot.config import Config, load
from looopbot.datadir import DataDir, locate
from looopbot.errors import LooopbotError
from looopbot.workers import contract, fleet, identity, record, system, upkeep
from looopbot.workers.record import Worker

WORKER = f"{sys.executable} {TESTS / 'fake_worker.py'} {{prompt_file}}"


class Fleet:
    def __init__(self, repo: Repo, tmp: Path) -> None:
        self.repo = repo
        self.tmp = tmp
        self.dd: DataDir = locate(str(repo.root))

    @property
    def config(self) -> Config:
        return load(self.dd)

    def start(self, wid: str, verify: str | None = None, **spec: Any) -> Worker:
        prompt = f"Do the work for {wid}.\nFAKE {json.dumps(spec)}\n"
        return fleet.start(self.dd, self.config, wid, prompt, verify)

    def rec(self, wid: str) -> Worker:
        worker = record.read(self.dd, wid)
        assert worker is not None
        return worker

    def wait(self, wid: str, *, live: bool = False, within: float = 30) -> Worker:
        """Poll until the worker's effective state is live/finished (evidence, not timing)."""
        end = time.monotonic() + within
        while time.monotonic() < end:
            worker = fleet.get(self.dd, wid)
            if worker.live == live:
                return worker
            time.sleep(0.02)
        raise AssertionError(f"worker {wid} still {fleet.get(self.dd, wid)}")

    def branches(self) -> list[str]:
        out = self.repo.git("for-each-ref", "--format=%(refname:short)", "refs/heads/")
        return out.split()


@pytest.fixture
def fl(repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Fleet]:
    monkeypatch.setenv("LOOOPBOT_WORKER_COMMAND", WORKER)
    # The worker calls "$LOOOPBOT_BIN"; in-process, the CLI is found on PATH.
    monkeypatch.setenv("PATH", f"{BIN.parent}{os.pathsep}{os.environ['PATH']}")
    f = Fleet(repo, tmp_path)
    yield f
    # Nothing a failing test started may outlive it.
    for wid in record.ids(f.dd):
        try:
            worker = record.read(f.dd, wid)
        except record.Unreadable:
            continue
        assert worker is not None
        for ident in (worker.supervisor, worker.process):
            if ident is not None and ident.pid != os.getpid() and identity.alive(ident):
                os.killpg(ident.pid, signal.SIGKILL)


def test_start_makes_branch_worktree_brief_and_the_work_stays_on_its_branch(fl: Fleet) -> None:
    main_before = fl.repo.head()
    started = fl.start("w1", report=True)
    assert started.state in ("running", "exited")
    done = fl.wait("w1")
    assert (done.state, done.exit_code) == ("exited", 0)
    assert done.branch == "looopbot/worker/w1" and done.base == main_before
    p = record.paths(fl.dd, "w1")
    assert p.worktree.is_dir() and (p.worktree / ".git").is_file()
    brief = p.brief.read_text()
    assert brief.startswith(contract.CONTRACT) and "Do the work for w1." in brief
    # The report is a commit on the worker's branch; the data repo's branch is untouched.
    assert fl.repo.git("show", "looopbot/worker/w1:reports/w1.md") == "# report from w1\n"
    assert fl.repo.head() == main_before
    assert not (fl.repo.root / "reports" / "w1.md").exists()
    assert "committed the report" in p.log.read_text()
    snap = fleet.snapshot(fl.dd, 900)
    assert snap["signal"] == [{"id": "w1", "state": "exited", "exit_code": 0}]
    assert snap["detail"]["counts"] == {"exited": 1}
    assert snap["detail"]["workers"]["w1"]["ended_at"] == done.ended_at


def test_the_worker_gets_its_environment_and_cwd(fl: Fleet) -> None:
    starts = fl.tmp / "starts"
    fl.start("envy", starts=str(starts))
    fl.wait("envy")
    worktree = record.paths(fl.dd, "envy").worktree
    assert Path(wait_lines(starts, 1)[0]).resolve() == worktree.resolve()
    assert "fake worker envy in" in record.paths(fl.dd, "envy").log.read_text()


def test_steer_text_and_an_answer_reach_stdin_and_the_flag_shows_while_live(fl: Fleet) -> None:
    echo = fl.tmp / "echo"
    fl.start("ask", flag="deploy to prod?", read=2, echo=str(echo))
    flag = record.paths(fl.dd, "ask").flag
    end = time.monotonic() + 30
    while not flag.exists() and time.monotonic() < end:
        time.sleep(0.02)
    (item,) = fleet.snapshot(fl.dd, 900)["signal"]
    assert item == {
        "id": "ask",
        "state": "running",
        "exit_code": None,
        "note": "deploy to prod?",
        "health": "waiting",  # a question raised: waiting, not stuck
    }
    fleet.steer(fl.dd, "ask", "first line")
    fleet.answer(fl.dd, "ask", "yes, go\n")
    assert wait_lines(echo, 2) == ["first line", "yes, go"]
    assert not flag.exists()
    done = fl.wait("ask")
    assert (done.state, done.exit_code) == ("exited", 0)
    assert "note" not in fleet.snapshot(fl.dd, 900)["signal"][0]


def test_keys_are_the_bytes_a_terminal_sends(fl: Fleet) -> None:
    echo = fl.tmp / "echo"
    fl.start("keys", read=3, echo=str(echo))
    fleet.keys(fl.dd, "keys", ["Tab", "Enter", "Escape", "Up", "Enter", "Down", "Enter"])
    assert wait_lines(echo, 3) == ["\t", "\x1b\x1b[A", "\x1b[B"]
    assert fl.wait("keys").exit_code == 0
    with pytest.raises(LooopbotError, match="unknown key"):
        fleet.keys(fl.dd, "keys", ["F13"])


def test_c_d_closes_stdin(fl: Fleet) -> None:
    echo = fl.tmp / "echo"
    fl.start("eof", read=5, echo=str(echo))  # it stops reading at end of input
    fleet.steer(fl.dd, "eof", "only")
    fleet.keys(fl.dd, "eof", ["C-d"])
    done = fl.wait("eof")
    assert (done.state, done.exit_code) == ("exited", 0)
    assert echo.read_text() == "only\n"


@pytest.mark.parametrize("how", ["C-c", "stop"])
def test_c_c_and_stop_end_the_whole_process_group(fl: Fleet, how: str) -> None:
    pids = fl.tmp / "pids"
    fl.start("hang", pids=str(pids), grandchild=True, hang=True)
    wait_lines(pids, 2)
    worker_pid, grandchild = read_pids(pids)
    assert wait_dead([worker_pid, grandchild], within=0.5) == [worker_pid, grandchild]
    if how == "C-c":
        fleet.keys(fl.dd, "hang", ["C-c"])
        done = fl.wait("hang")
        assert done.state == "exited"
    else:
        done = fleet.stop(fl.dd, "hang")
        assert done.state == "killed"
    assert wait_dead([worker_pid, grandchild]) == []
    sup = done.supervisor
    assert sup is not None and wait_dead([sup.pid]) == []  # the supervisor is done too
    with pytest.raises(LooopbotError, match="not running"):
        fleet.steer(fl.dd, "hang", "anyone?")


def test_a_live_id_is_refused(fl: Fleet) -> None:
    fl.start("one", hang=True)
    before = fl.rec("one")
    with pytest.raises(LooopbotError, match="already running"):
        fl.start("one", report=True)
    assert fl.rec("one") == before  # the live worker's record is untouched
    fleet.stop(fl.dd, "one")
    fl.start("one", report=True)  # once it ended, the id is free again
    assert fl.wait("one").exit_code == 0


def test_the_fleet_cap_holds(fl: Fleet, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOOPBOT_MAX_WORKERS", "1")
    fl.start("a", hang=True)
    with pytest.raises(LooopbotError, match="max_workers"):
        fl.start("b", hang=True)
    assert "looopbot/worker/b" not in fl.branches()
    assert not record.paths(fl.dd, "b").dir.exists()
    assert fleet.live_count(fl.dd) == 1
    fleet.stop(fl.dd, "a")
    fl.start("b", report=True)
    assert fl.wait("b").exit_code == 0


def test_an_unreadable_record_counts_as_full(fl: Fleet) -> None:
    bad = record.paths(fl.dd, "broken").state
    bad.parent.mkdir(parents=True)
    bad.write_text("{not json")
    assert fleet.live_count(fl.dd) == 1
    with pytest.raises(LooopbotError, match="counts as full"):
        fl.start("fresh", report=True)
    assert not record.paths(fl.dd, "fresh").dir.exists()
    assert fleet.snapshot(fl.dd, 900)["signal"] == [
        {"id": "broken", "state": "unreadable", "exit_code": None}
    ]


def test_kill_9_of_the_supervisor_is_lost_never_running_and_housekeeping_ends_its_group(
    fl: Fleet,
) -> None:
    pids = fl.tmp / "pids"
    fl.start("orphan", pids=str(pids), grandchild=True, hang=True)
    wait_lines(pids, 2)
    worker_pid, grandchild = read_pids(pids)
    sup = fl.rec("orphan").supervisor
    assert sup is not None
    os.kill(sup.pid, signal.SIGKILL)
    assert wait_dead([sup.pid]) == []
    # The record still says running, but the world sees the truth at once.
    assert fl.rec("orphan").state == "running"
    (seen,) = fleet.workers(fl.dd)
    assert seen.state == "lost" and not seen.live
    assert fleet.snapshot(fl.dd, 900)["signal"][0]["state"] == "lost"
    assert fleet.live_count(fl.dd) == 0
    # Its orphaned group still runs until housekeeping ends it.
    assert wait_dead([worker_pid, grandchild], within=0.2) == [worker_pid, grandchild]
    upkeep.housekeeping(fl.dd, fl.config, time.time())
    assert wait_dead([worker_pid, grandchild]) == []
    assert fl.rec("orphan").state == "lost" and fl.rec("orphan").ended_at is not None
    # The lease is free: the same id starts again, on the same branch.
    fl.start("orphan", report=True)
    done = fl.wait("orphan")
    assert (done.state, done.exit_code) == ("exited", 0)


def test_a_reused_pid_is_not_mistaken_for_a_live_worker(fl: Fleet, pidfile: Path) -> None:
    me = identity.of(os.getpid())
    assert me is not None
    # A stranger that now holds the worker's old pid (its own group, like a worker's).
    stranger = subprocess.Popen(["sleep", "300"], start_new_session=True)
    pidfile.write_text(f"{stranger.pid}\n")
    base = Worker(
        id="ghost",
        state="running",
        command="true",
        branch="looopbot/worker/ghost",
        base="0" * 40,
        base_branch="main",
        started_at=time.time(),
        supervisor=me,
        process=identity.Identity(stranger.pid, "1"),  # that pid, another start time
    )
    record.write(fl.dd, base)
    (seen,) = fleet.workers(fl.dd)
    assert seen.state == "running"  # the check can pass: the very same process is alive
    record.write(fl.dd, base._replace(supervisor=identity.Identity(me.pid, "not-" + me.start)))
    (seen,) = fleet.workers(fl.dd)
    assert seen.state == "lost"
    upkeep.housekeeping(fl.dd, fl.config, time.time())
    assert fl.rec("ghost").state == "lost"
    # The stranger's group was not signalled, though it holds the recorded pid.
    assert wait_dead([stranger.pid], within=0.5) == [stranger.pid]
    stranger.kill()
    stranger.wait()


def test_verify_pass_and_fail(fl: Fleet) -> None:
    fl.start("good", verify="test -f reports/good.md", report=True)
    fl.start("bad", verify="echo checking; exit 3", report=True)
    good, bad = fl.wait("good"), fl.wait("bad")
    assert (good.exit_code, good.verdict) == (0, "pass")
    assert (bad.exit_code, bad.verdict) == (0, "fail")  # exit 0 alone is not done
    signal_ = fleet.snapshot(fl.dd, 900)["signal"]
    assert [s.get("verify") for s in signal_] == ["fail", "pass"]
    assert "checking" in record.paths(fl.dd, "bad").log.read_text()


def test_verify_that_overruns_its_timeout_fails(fl: Fleet, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOOPBOT_VERIFY_TIMEOUT", "0.5")
    fl.start("slow", verify="sleep 30")
    assert fl.wait("slow").verdict == "fail"


def test_sigterm_to_the_supervisor_during_verify_ends_the_verify_group(
    fl: Fleet, pidfile: Path
) -> None:
    # The verify forks a helper into its group, then waits: both must go.
    fl.start("judged", verify=f"sleep 300 & echo $! $$ >> {pidfile}; wait")
    helper, verify_shell = (int(x) for x in wait_lines(pidfile, 1)[0].split())
    sup = fl.rec("judged").supervisor
    assert sup is not None and fl.rec("judged").state == "running"
    os.kill(sup.pid, signal.SIGTERM)
    done = fl.wait("judged")
    assert (done.state, done.exit_code, done.verdict) == ("killed", 0, None)
    assert wait_dead([helper, verify_shell, sup.pid]) == []
    log = record.paths(fl.dd, "judged").log.read_text()
    assert "stopped during verify (SIGTERM): its process group was ended" in log


def test_restart_runs_the_command_again_in_the_same_worktree(fl: Fleet) -> None:
    starts, pids = fl.tmp / "starts", fl.tmp / "pids"
    fl.start("again", starts=str(starts), pids=str(pids), hang=True)
    wait_lines(starts, 1)
    first = read_pids(pids)[0]
    fleet.restart(fl.dd, "again")
    cwds = wait_lines(starts, 2)
    assert cwds[0] == cwds[1]
    assert wait_dead([first]) == []
    now = fl.rec("again")
    assert (now.state, now.restarts) == ("running", 1)
    assert now.process is not None and now.process.pid == read_pids(pids)[1]
    assert fleet.stop(fl.dd, "again").state == "killed"


def test_prune_keeps_branches_with_work_and_removes_the_rest(fl: Fleet) -> None:
    fl.start("worked", report=True)
    fl.start("idle")
    fl.wait("worked")
    fl.wait("idle")
    upkeep.housekeeping(fl.dd, fl.config, time.time())  # within the TTL: nothing goes
    assert record.paths(fl.dd, "worked").worktree.exists()
    later = time.time() + fl.config.limits.worker_ttl + 1
    upkeep.housekeeping(fl.dd, fl.config, later)
    for wid in ("worked", "idle"):
        p = record.paths(fl.dd, wid)
        assert not p.worktree.exists() and not p.dir.exists()
    assert "looopbot/worker/worked" in fl.branches()
    assert "looopbot/worker/idle" not in fl.branches()
    assert fl.repo.git("worktree", "list").count("\n") == 1  # only the data repo itself
    assert fleet.snapshot(fl.dd, 900)["signal"] == []


def test_one_worker_that_cannot_be_pruned_is_reported_once_and_the_others_still_go(
    fl: Fleet,
) -> None:
    fl.start("a-stuck")
    fl.start("b-fine")
    base = fl.wait("a-stuck").base_branch
    fl.wait("b-fine")
    # A human looks at the stuck worker's (empty) branch in the data repo itself: git will
    # not delete a branch that is checked out, so that prune fails, and first in id order.
    fl.repo.git("checkout", "-q", "--ignore-other-worktrees", "looopbot/worker/a-stuck")
    later = time.time() + fl.config.limits.worker_ttl + 1
    (problem,) = system.housekeeping(fl.dd, fl.config, later)
    assert problem.startswith("prune of worker a-stuck failed: git branch ")
    assert "checked out at" in problem
    assert not record.paths(fl.dd, "b-fine").dir.exists()
    assert "looopbot/worker/b-fine" not in fl.branches()
    # The stuck one is still listed (so it is tried again), its worktree already gone.
    assert [w.id for w in fleet.workers(fl.dd)] == ["a-stuck"]
    assert not record.paths(fl.dd, "a-stuck").worktree.exists()
    # The next beats meet the same failure and say nothing more about it…
    assert system.housekeeping(fl.dd, fl.config, later + 1) == []
    # …and once the branch is free, it goes.
    fl.repo.git("checkout", "-q", base)
    assert system.housekeeping(fl.dd, fl.config, later + 2) == []
    assert fleet.workers(fl.dd) == []
    assert "looopbot/worker/a-stuck" not in fl.branches()


def test_the_same_failure_of_a_later_run_of_the_id_is_reported_again(fl: Fleet) -> None:
    def stuck_prune(now: float) -> list[str]:
        base = fl.wait("stuck").base_branch
        fl.repo.git("checkout", "-q", "--ignore-other-worktrees", "looopbot/worker/stuck")
        try:
            return system.housekeeping(fl.dd, fl.config, now)
        finally:
            fl.repo.git("checkout", "-q", base)

    later = time.time() + fl.config.limits.worker_ttl + 1
    fl.start("stuck")
    (first,) = stuck_prune(later)
    fl.start("stuck")  # the id runs again: its record (and what was reported) is kept
    (again,) = stuck_prune(later + fl.config.limits.worker_ttl)
    assert again == first


def test_prune_leaves_live_workers_alone(fl: Fleet) -> None:
    fl.start("busy", hang=True)
    assert upkeep.prune(fl.dd, fl.config, time.time() + 10**9, everything=True) == []
    assert fl.rec("busy").state == "running"
    assert record.paths(fl.dd, "busy").worktree.exists()


def test_a_restarted_id_reuses_its_branch_and_its_commits(fl: Fleet) -> None:
    fl.start("twice", report=True)
    fl.wait("twice")
    first_tip = fl.repo.git("rev-parse", "looopbot/worker/twice").strip()
    upkeep.prune(fl.dd, fl.config, time.time(), everything=True)
    again = fl.start("twice")
    assert again.base == fl.repo.head()  # forked from main: the merge-base
    fl.wait("twice")
    assert (record.paths(fl.dd, "twice").worktree / "reports" / "twice.md").is_file()
    assert fl.repo.git("rev-parse", "looopbot/worker/twice").strip() == first_tip


@pytest.mark.parametrize("bad", ["../x", "a/b", ".hidden", "x y", "a" * 65, "", "a\0b", "a..b"])
def test_a_worker_with_an_unsafe_id_writes_nothing(fl: Fleet, bad: str) -> None:
    branches = fl.branches()
    with pytest.raises(LooopbotError, match="not a valid id"):
        fl.start(bad, report=True)
    assert fl.branches() == branches
    assert not (fl.dd.meta / "workers").exists()
    assert not (fl.dd.meta / "worktrees").exists()
    for call in (fleet.steer, fleet.answer, fleet.flag):
        with pytest.raises(LooopbotError, match="not a valid id"):
            call(fl.dd, bad, "text")
    assert not (fl.dd.meta / "workers").exists()


@pytest.mark.parametrize("wid", ["w.lock", "w."])
def test_an_id_git_refuses_as_a_branch_is_refused_in_our_words(fl: Fleet, wid: str) -> None:
    with pytest.raises(LooopbotError, match="may not end with"):
        fleet.start(fl.dd, fl.config, wid, "task")
    assert not (fl.dd.meta / "workers" / wid).exists()
