"""The one subprocess helper, with real processes: exits, output caps, stdin, group kills.

Kill behaviour is proven by evidence, never by timing: the children write their pids (and
timestamps) to files, and the test checks that those processes are gone afterwards.
"""

from __future__ import annotations

import hashlib
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import read_pids, wait_dead, wait_lines

from looopbot import proc


def spec(script: str, cwd: Path, timeout: float = 30.0, **kw: Any) -> proc.Spec:
    """A bash script under the helper; 30 s timeout unless the test is about timeouts."""
    return proc.Spec(
        argv=["bash", "-c", script], cwd=cwd, env=proc.child_env(), timeout=timeout, **kw
    )


# --- exit codes and output ------------------------------------------------------------------


@pytest.mark.parametrize("code", [0, 1, 3, 42, 255])
def test_exit_code_is_reported(tmp_path: Path, code: int) -> None:
    r = proc.run(spec(f"exit {code}", tmp_path))
    assert r.exit_code == code
    assert r.ok is (code == 0)
    assert not r.timed_out and not r.too_large and r.spawn_error is None


def test_killed_by_a_signal_is_a_negative_exit_code(tmp_path: Path) -> None:
    r = proc.run(spec("kill -9 $$", tmp_path))
    assert r.exit_code == -signal.SIGKILL
    assert not r.ok and not r.timed_out


def test_stdout_and_stderr_are_captured_separately(tmp_path: Path) -> None:
    r = proc.run(spec("echo out; echo err >&2; echo more", tmp_path))
    assert r.stdout == b"out\nmore\n"
    assert r.stderr == b"err\n"
    assert r.stdout_bytes == len(r.stdout)


def test_cwd_and_env_reach_the_child(tmp_path: Path) -> None:
    r = proc.run(
        proc.Spec(
            argv=["bash", "-c", 'pwd -P; echo "$PROC_TEST_VAR"'],
            cwd=tmp_path,
            env=proc.child_env({"PROC_TEST_VAR": "hello"}),
            timeout=30,
        )
    )
    assert r.stdout.decode().splitlines() == [str(tmp_path.resolve()), "hello"]


def test_stderr_keeps_only_its_last_bytes(tmp_path: Path) -> None:
    script = 'for i in $(seq 1 2000); do printf "e%05d\\n" $i >&2; done'
    full = b"".join(b"e%05d\n" % i for i in range(1, 2001))
    r = proc.run(spec(script, tmp_path, stderr_tail=100))
    assert len(full) > 10_000
    assert r.stderr == full[-100:]
    assert r.exit_code == 0


def test_stdout_tail_keeps_the_tail_and_counts_everything(tmp_path: Path) -> None:
    full = b"".join(b"line %d\n" % i for i in range(1, 20001))
    r = proc.run(spec("seq -f 'line %g' 1 20000", tmp_path, stdout_tail=50))
    assert r.stdout == full[-50:]
    assert r.stdout_bytes == len(full)
    assert r.ok


def test_merge_stderr_interleaves_into_stdout(tmp_path: Path) -> None:
    r = proc.run(spec("echo a; echo b >&2; echo c; echo d >&2", tmp_path, merge_stderr=True))
    assert r.stdout == b"a\nb\nc\nd\n"
    assert r.stderr == b""


def test_log_receives_every_byte(tmp_path: Path) -> None:
    log = tmp_path / "output.log"
    log.write_bytes(b"earlier\n")
    r = proc.run(spec("seq 1 5000; echo oops >&2", tmp_path, stdout_tail=10, log=log))
    body = log.read_bytes()
    assert body.startswith(b"earlier\n")  # appended, not truncated
    assert b"".join(b"%d\n" % i for i in range(1, 5001)) in body
    assert b"oops\n" in body
    assert r.stdout == b"4998\n4999\n5000\n"[-10:]


def test_large_stdin_reaches_the_child_intact(tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)  # several pipe buffers' worth
    r = proc.run(spec("sha256sum | cut -d' ' -f1", tmp_path, stdin=data))
    assert r.exit_code == 0, r.stderr
    assert r.stdout.decode().strip() == hashlib.sha256(data).hexdigest()


def test_stdin_that_the_child_ignores_does_not_hang(tmp_path: Path) -> None:
    r = proc.run(spec("echo done", tmp_path, stdin=os.urandom(2 * 1024 * 1024)))
    assert r.exit_code == 0 and r.stdout == b"done\n"
    assert not r.timed_out


def test_empty_stdin_is_an_immediate_eof(tmp_path: Path) -> None:
    r = proc.run(spec("wc -c", tmp_path, stdin=b""))
    assert r.stdout.strip() == b"0"
    assert not r.timed_out


def test_without_stdin_the_child_reads_eof_not_our_terminal(tmp_path: Path) -> None:
    r = proc.run(spec("cat; echo end", tmp_path))
    assert r.stdout == b"end\n"
    assert not r.timed_out


def test_missing_executable_is_a_spawn_error(tmp_path: Path) -> None:
    r = proc.run(
        proc.Spec(argv=[str(tmp_path / "no-such-program")], cwd=tmp_path, env={}, timeout=5)
    )
    assert r.exit_code is None
    assert r.spawn_error and "no-such-program" in r.spawn_error
    assert not r.ok
    assert r.stdout == b"" and r.stdout_bytes == 0


# --- timeouts and group kills ---------------------------------------------------------------


GRANDCHILDREN = """
sleep 300 & echo $! >> {pids}
sleep 300 & echo $! >> {pids}
( sleep 300 & echo $! >> {pids}; wait ) &
echo started
wait
"""


def _wait_for_lines(path: Path, n: int) -> None:
    # The script writes its pids first; they are there long before any timeout fires.
    assert path.exists() and len(path.read_text().split()) == n, path


def test_timeout_kills_the_whole_group_including_grandchildren(
    tmp_path: Path, pidfile: Path
) -> None:
    r = proc.run(spec(GRANDCHILDREN.format(pids=pidfile), tmp_path, timeout=1.0))
    assert r.timed_out
    assert not r.ok
    assert r.stdout == b"started\n"  # output up to the kill is kept
    _wait_for_lines(pidfile, 3)
    assert wait_dead(read_pids(pidfile)) == []


def test_timeout_kills_a_group_that_ignores_sigterm(tmp_path: Path, pidfile: Path) -> None:
    # An ignored SIGTERM is inherited across exec, so the sleeps ignore it too: only the
    # SIGKILL after the grace can end them.
    script = "trap '' TERM\n" + GRANDCHILDREN.format(pids=pidfile)
    r = proc.run(spec(script, tmp_path, timeout=0.5))
    assert r.timed_out
    assert r.exit_code == -signal.SIGKILL
    _wait_for_lines(pidfile, 3)
    assert wait_dead(read_pids(pidfile)) == []


def test_leader_exit_with_a_grandchild_holding_the_pipe_returns(
    tmp_path: Path, pidfile: Path
) -> None:
    # The background job inherits stdout/stderr: without the group kill at the leader's exit,
    # run() would wait for EOF until that job ends. The job leaves a mark if it lived to end.
    mark = tmp_path / "finished"
    script = f"(sleep 20; touch {mark}) & echo $! > {pidfile}; echo done; exit 5"
    r = proc.run(spec(script, tmp_path, timeout=60))
    assert r.exit_code == 5
    assert r.stdout == b"done\n"
    assert not r.timed_out
    assert wait_dead(read_pids(pidfile)) == []
    assert not mark.exists(), "run() waited for the grandchild instead of killing it"


def test_a_grandchild_that_escaped_the_group_does_not_hang_run(
    tmp_path: Path, pidfile: Path
) -> None:
    # setsid puts it beyond killpg; run() stops listening to the pipe it holds instead.
    r = proc.run(spec(f"setsid sleep 300 & echo $! > {pidfile}; echo done", tmp_path))
    assert r.exit_code == 0
    assert r.stdout == b"done\n"
    assert not r.timed_out


def test_stdout_over_the_limit_is_too_large_and_kills_the_group(
    tmp_path: Path, pidfile: Path
) -> None:
    script = f"sleep 300 & echo $! > {pidfile}; sleep 300 & echo $! >> {pidfile}; yes"
    r = proc.run(spec(script, tmp_path, stdout_limit=1000))
    assert r.too_large
    assert not r.timed_out
    assert not r.ok
    assert r.stdout_bytes > 1000
    assert len(r.stdout) <= 1000
    assert r.exit_code == -signal.SIGKILL
    assert wait_dead(read_pids(pidfile)) == []


def test_stdout_at_the_limit_is_fine(tmp_path: Path) -> None:
    r = proc.run(spec("head -c 1000 /dev/zero", tmp_path, stdout_limit=1000))
    assert not r.too_large and r.ok
    assert r.stdout == b"\0" * 1000


# --- run_many -------------------------------------------------------------------------------


def _max_overlap(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    # At equal times an end sorts before a start (-1 < 1): touching is not overlapping.
    live = peak = 0
    for _, delta in events:
        live += delta
        peak = max(peak, live)
    return peak


@pytest.mark.parametrize("k", [1, 2, 3])
def test_run_many_never_runs_more_than_k_at_once(tmp_path: Path, k: int) -> None:
    n = 7
    stamps = tmp_path / "stamps"
    stamps.mkdir()
    script = (
        'echo "$(date +%s.%N)" > {dir}/{i}.start; sleep 0.3; '
        'echo "$(date +%s.%N)" > {dir}/{i}.end; echo {i}'
    )
    specs = [spec(script.format(dir=stamps, i=i), tmp_path) for i in range(n)]
    results = proc.run_many(specs, concurrency=k)
    assert [r.stdout for r in results] == [f"{i}\n".encode() for i in range(n)]
    intervals = [
        (float((stamps / f"{i}.start").read_text()), float((stamps / f"{i}.end").read_text()))
        for i in range(n)
    ]
    # What a process recorded lies within its lifetime, so this bounds the live count.
    peak = _max_overlap(intervals)
    assert peak <= k
    if k >= 2:
        assert peak >= 2, f"jobs never overlapped: {intervals}"


def test_run_many_results_are_in_the_order_given(tmp_path: Path) -> None:
    # Later jobs finish first; results still line up with the specs.
    sleeps = [0.6, 0.4, 0.2, 0.0]
    specs = [spec(f"sleep {s}; echo {i}; exit {i}", tmp_path) for i, s in enumerate(sleeps)]
    specs.insert(2, proc.Spec(argv=[str(tmp_path / "missing")], cwd=tmp_path, env={}, timeout=5))
    results = proc.run_many(specs, concurrency=8)
    assert len(results) == 5
    assert results[2].spawn_error is not None
    rest = results[:2] + results[3:]
    assert [r.stdout for r in rest] == [b"0\n", b"1\n", b"2\n", b"3\n"]
    assert [r.exit_code for r in rest] == [0, 1, 2, 3]


def test_run_many_one_timeout_does_not_hold_up_or_spoil_the_others(
    tmp_path: Path, pidfile: Path
) -> None:
    specs = [
        spec("echo a", tmp_path),
        spec(GRANDCHILDREN.format(pids=pidfile), tmp_path, timeout=1.0),
        spec("echo c; exit 2", tmp_path),
    ]
    a, b, c = proc.run_many(specs, concurrency=3)
    assert a.ok and a.stdout == b"a\n"
    assert b.timed_out and not b.ok
    assert c.exit_code == 2 and c.stdout == b"c\n" and not c.timed_out
    assert wait_dead(read_pids(pidfile)) == []


def test_run_many_of_nothing(tmp_path: Path) -> None:
    assert proc.run_many([], concurrency=4) == []


# --- ending a group: kill_group, end_group -------------------------------------------------


def _group(script: str, cwd: Path) -> Any:
    """A bash script as the leader of its own group, as the supervisor starts a worker."""
    return proc.spawn(["bash", "-c", script], cwd, proc.child_env())


def _gone(child: Any) -> Any:
    def gone(timeout: float) -> bool:
        # Like the supervisor: look without reaping, so the group id stays ours.
        for _ in range(2):
            if os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT):
                return True
            time.sleep(timeout)
        return False

    return gone


def test_end_group_asks_with_sigterm_then_kills_what_ignored_it(
    tmp_path: Path, pidfile: Path
) -> None:
    marks = tmp_path / "marks"
    # The leader leaves on SIGTERM (and says so); its helper ignores SIGTERM.
    script = (
        f"trap 'echo term >> {marks}; exit 0' TERM\n"
        f"(trap '' TERM; exec sleep 300) & echo $! >> {pidfile}\n"
        "wait\n"
    )
    child = _group(script, tmp_path)
    wait_lines(pidfile, 1)
    proc.end_group(child.pid, _gone(child), grace=30)
    assert child.wait() == 0  # it left by its own trap: SIGTERM came first
    assert marks.read_text() == "term\n"
    assert wait_dead(read_pids(pidfile)) == []  # SIGKILL ended the helper


def test_end_group_kills_a_leader_that_ignores_sigterm_after_the_grace(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    # Only once the trap is set: a SIGTERM before it would end bash the ordinary way.
    child = _group(f"trap '' TERM; echo set > {ready}; while :; do sleep 0.05; done", tmp_path)
    wait_lines(ready, 1)
    proc.end_group(child.pid, _gone(child), grace=0.2)
    assert child.wait() == -signal.SIGKILL


def test_end_group_signals_nothing_when_the_pid_is_not_ours(tmp_path: Path) -> None:
    child = _group("sleep 300", tmp_path)
    try:
        proc.end_group(child.pid, _gone(child), grace=0.2, ours=lambda: False)
        assert wait_dead([child.pid], within=0.5) == [child.pid]
    finally:
        child.kill()
        child.wait()


def test_kill_group_of_a_group_that_is_gone_is_no_error(tmp_path: Path) -> None:
    child = _group("exit 0", tmp_path)
    child.wait()
    proc.kill_group(child.pid, signal.SIGKILL)


# --- environment ----------------------------------------------------------------------------


def test_child_env_strips_git_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    leaks = {
        "GIT_DIR": str(tmp_path / "elsewhere.git"),
        "GIT_WORK_TREE": str(tmp_path),
        "GIT_INDEX_FILE": str(tmp_path / "index"),
    }
    for k, v in leaks.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("PROC_TEST_KEEP", "kept")
    env = proc.child_env({"EXTRA": "1"})
    assert not set(leaks) & set(env)
    assert env["PROC_TEST_KEEP"] == "kept" and env["EXTRA"] == "1"
    # ...and the child really does not see them.
    r = proc.run(
        proc.Spec(
            argv=["bash", "-c", 'echo "[$GIT_DIR][$GIT_WORK_TREE][$GIT_INDEX_FILE][$EXTRA]"'],
            cwd=tmp_path,
            env=env,
            timeout=30,
        )
    )
    assert r.stdout == b"[][][][1]\n"
