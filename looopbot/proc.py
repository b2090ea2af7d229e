"""THE subprocess helper: process groups, timeouts, output caps, clean environments.

Every command looopbot runs (sensors, the runner, run_shell, git hooks of our own) goes
through `run_many`/`run`, so timeouts, group kills and caps behave the same everywhere.

It is one single-threaded loop over `selectors`: each child's pipes and, on Linux, a pidfd
that becomes readable when the child exits. No threads and no polling sleeps, so a beat of
ten trivial sensors costs little more than forking them.

The group leader is never reaped before its group has been killed: until we `wait()` for it,
it stays a zombie holding its PID, so `killpg(pid)` can never reach a stranger's group
through PID reuse.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, NamedTuple

from looopbot.gitenv import clean

KILL_GRACE_S = 1.0  # between SIGTERM and SIGKILL of a group that overran
_END_STEP_S = 0.02  # how long end_group waits at a time for a leader to go
DRAIN_AFTER_EXIT_S = 1.0  # reading pipes that an escaped grandchild may hold open
_CHUNK = 65536


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a child: ours, minus the git variables that would redirect its
    git to our repo or index (looopbot.gitenv), plus `extra`."""
    return clean(os.environ, extra)


class Spec(NamedTuple):
    """What to run and under which limits."""

    argv: Sequence[str]
    cwd: Path
    env: Mapping[str, str]
    timeout: float
    stdin: bytes | None = None
    # Exceeding this many stdout bytes kills the group and marks the result too_large.
    stdout_limit: int | None = None
    # Keep only the last N bytes of stdout (for output shown as a tail).
    stdout_tail: int | None = None
    merge_stderr: bool = False
    stderr_tail: int = 1024
    # Every byte of stdout and stderr is also appended here (the runner's output.log).
    log: Path | None = None
    # Called with the child's pid as soon as it runs (to leave a note a later beat can use
    # to end a group whose parent was killed).
    on_start: Callable[[int], None] | None = None


class Result(NamedTuple):
    exit_code: int | None  # None when the process could not be started
    stdout: bytes
    stderr: bytes  # the tail
    stdout_bytes: int  # all stdout seen, even beyond what was kept
    timed_out: bool = False
    too_large: bool = False
    spawn_error: str | None = None
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out and not self.too_large


class _Job:
    """One running child and what has been read from it so far (mutable, loop-private)."""

    def __init__(
        self,
        spec: Spec,
        proc: subprocess.Popen[bytes],
        started: float,
        pidfd: int | None,
        log: IO[bytes] | None,
    ) -> None:
        self.spec = spec
        self.proc = proc
        self.started = started
        self.deadline = started + spec.timeout
        self.pidfd = pidfd
        self.log = log
        self.out = bytearray()
        self.err = bytearray()
        self.out_total = 0
        self.stdin_left: memoryview | None = None
        self.open_pipes = 0
        self.exited = False  # the leader has exited (still unreaped)
        self.drain_deadline: float | None = None
        self.timed_out = False
        self.too_large = False
        self.term_at: float | None = None  # SIGTERM sent; SIGKILL follows after the grace


def run(spec: Spec) -> Result:
    return run_many([spec], concurrency=1)[0]


def run_many(specs: Sequence[Spec], concurrency: int = 8) -> list[Result]:
    """Run the commands, at most `concurrency` at once; results in the order given."""
    results: list[Result | None] = [None] * len(specs)
    queue = list(enumerate(specs))
    queue.reverse()
    running: dict[int, _Job] = {}
    sel = selectors.DefaultSelector()
    try:
        while queue or running:
            while queue and len(running) < max(1, concurrency):
                idx, spec = queue.pop()
                job_or_result = _start(spec, sel, idx)
                if isinstance(job_or_result, Result):
                    results[idx] = job_or_result
                else:
                    running[idx] = job_or_result
            if not running:
                continue
            _step(sel, running, results)
    finally:
        for job in running.values():  # only on an exception: leave no orphans
            kill_group(job.proc.pid, signal.SIGKILL)
            job.proc.wait()
        sel.close()
    return [r for r in results if r is not None]


def _start(spec: Spec, sel: selectors.BaseSelector, idx: int) -> _Job | Result:
    started = time.monotonic()
    try:
        proc = subprocess.Popen(
            list(spec.argv),
            cwd=spec.cwd,
            env=dict(spec.env),
            stdin=subprocess.PIPE if spec.stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT if spec.merge_stderr else subprocess.PIPE,
            start_new_session=True,  # its own process group (and off our terminal's Ctrl-C)
        )
    except OSError as exc:
        return Result(exit_code=None, stdout=b"", stderr=b"", stdout_bytes=0, spawn_error=str(exc))
    pidfd: int | None = None
    if hasattr(os, "pidfd_open"):
        with contextlib.suppress(OSError):
            pidfd = os.pidfd_open(proc.pid)
    if spec.on_start is not None:
        try:
            spec.on_start(proc.pid)
        except BaseException:
            os.killpg(proc.pid, signal.SIGKILL)  # never a child nobody knows of
            proc.wait()
            raise
    log = spec.log.open("ab") if spec.log is not None else None
    job = _Job(spec, proc, started, pidfd, log)
    assert proc.stdout is not None
    for stream, kind in ((proc.stdout, "out"), (proc.stderr, "err")):
        if stream is None:
            continue
        os.set_blocking(stream.fileno(), False)
        sel.register(stream, selectors.EVENT_READ, (idx, kind))
        job.open_pipes += 1
    if proc.stdin is not None and spec.stdin is not None:
        os.set_blocking(proc.stdin.fileno(), False)
        job.stdin_left = memoryview(spec.stdin)
        if job.stdin_left:
            sel.register(proc.stdin, selectors.EVENT_WRITE, (idx, "in"))
        else:
            proc.stdin.close()
    if pidfd is not None:
        sel.register(pidfd, selectors.EVENT_READ, (idx, "exit"))
    return job


def _step(
    sel: selectors.BaseSelector, running: dict[int, _Job], results: list[Result | None]
) -> None:
    now = time.monotonic()
    wake = min(_next_wake(j) for j in running.values())
    # Without a pidfd (not Linux) we must poll for the leader's exit.
    if any(j.pidfd is None and not j.exited for j in running.values()):
        wake = min(wake, now + 0.02)
    for key, _mask in sel.select(timeout=max(0.0, wake - now)):
        idx, kind = key.data
        job = running[idx]
        if kind == "in":
            _feed(sel, job, key.fileobj)  # type: ignore[arg-type]
        elif kind == "exit":
            sel.unregister(key.fileobj)
            _leader_exited(job)
        else:
            _read(sel, job, key.fileobj, kind)  # type: ignore[arg-type]
    now = time.monotonic()
    for idx, job in list(running.items()):
        if job.pidfd is None and not job.exited and _exited_unreaped(job.proc.pid):
            _leader_exited(job)
        _enforce_deadlines(sel, job, now)
        if job.exited and job.open_pipes == 0:
            results[idx] = _finish(sel, job)
            del running[idx]


def _next_wake(job: _Job) -> float:
    times = [job.deadline]
    if job.term_at is not None:
        times.append(job.term_at + KILL_GRACE_S)
    if job.drain_deadline is not None:
        times.append(job.drain_deadline)
    return min(times)


def _feed(sel: selectors.BaseSelector, job: _Job, stream: IO[bytes]) -> None:
    assert job.stdin_left is not None
    try:
        n = os.write(stream.fileno(), job.stdin_left[:_CHUNK])
        job.stdin_left = job.stdin_left[n:]
    except BlockingIOError:
        return
    except (BrokenPipeError, ConnectionResetError):
        job.stdin_left = job.stdin_left[:0]  # it stopped reading; that is its business
    if not job.stdin_left:
        sel.unregister(stream)
        with contextlib.suppress(OSError):
            stream.close()


def _read(sel: selectors.BaseSelector, job: _Job, stream: IO[bytes], kind: str) -> None:
    try:
        chunk = os.read(stream.fileno(), _CHUNK)
    except BlockingIOError:
        return
    if not chunk:
        sel.unregister(stream)
        stream.close()
        job.open_pipes -= 1
        return
    if job.log is not None:
        job.log.write(chunk)
    spec = job.spec
    if kind == "err":
        job.err += chunk
        del job.err[: max(0, len(job.err) - spec.stderr_tail)]
        return
    job.out_total += len(chunk)
    if spec.stdout_limit is not None and job.out_total > spec.stdout_limit:
        if not job.too_large:
            job.too_large = True
            kill_group(job.proc.pid, signal.SIGKILL)
        return
    job.out += chunk
    if spec.stdout_tail is not None:
        del job.out[: max(0, len(job.out) - spec.stdout_tail)]


def _leader_exited(job: _Job) -> None:
    job.exited = True
    # Whatever the leader left behind in its group goes with it: a sensor or runner that
    # forks a background process must not outlive its beat (or hold our pipes open).
    kill_group(job.proc.pid, signal.SIGKILL)
    job.drain_deadline = time.monotonic() + DRAIN_AFTER_EXIT_S


def _enforce_deadlines(sel: selectors.BaseSelector, job: _Job, now: float) -> None:
    if not job.exited and now >= job.deadline and job.term_at is None:
        job.timed_out = True
        job.term_at = now
        kill_group(job.proc.pid, signal.SIGTERM)
    if job.term_at is not None and now >= job.term_at + KILL_GRACE_S:
        kill_group(job.proc.pid, signal.SIGKILL)
    if job.drain_deadline is not None and now >= job.drain_deadline and job.open_pipes:
        # A grandchild escaped the group (setsid) and holds our pipe: stop listening.
        for stream in (job.proc.stdout, job.proc.stderr):
            if stream is not None and not stream.closed:
                with contextlib.suppress(KeyError, ValueError):
                    sel.unregister(stream)
                stream.close()
        job.open_pipes = 0


def _finish(sel: selectors.BaseSelector, job: _Job) -> Result:
    code = job.proc.wait()
    if job.pidfd is not None:
        with contextlib.suppress(KeyError, ValueError):
            sel.unregister(job.pidfd)
        os.close(job.pidfd)
    if job.proc.stdin is not None and not job.proc.stdin.closed:
        with contextlib.suppress(KeyError, ValueError):
            sel.unregister(job.proc.stdin)
        with contextlib.suppress(OSError):
            job.proc.stdin.close()
    if job.log is not None:
        job.log.close()
    return Result(
        exit_code=code,
        stdout=bytes(job.out),
        stderr=bytes(job.err),
        stdout_bytes=job.out_total,
        timed_out=job.timed_out,
        too_large=job.too_large,
        duration_s=time.monotonic() - job.started,
    )


def kill_group(pgid: int, sig: signal.Signals = signal.SIGKILL) -> None:
    """Send `sig` to every process in group `pgid`; a group already gone is no error.

    The one place looopbot signals a group. Callers keep `pgid` from naming a stranger's
    group: the leader is their unreaped child, or its identity was checked just before.
    """
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def end_group(
    pgid: int,
    gone: Callable[[float], bool],
    grace: float,
    *,
    ours: Callable[[], bool] = lambda: True,
) -> None:
    """SIGTERM to the group, up to `grace` seconds for its leader to go, then SIGKILL to
    whatever is left (helpers it forked that ignore SIGTERM).

    `gone(t)` waits at most `t` seconds and says whether the leader has exited. `ours()` is
    asked before each signal: a caller whose leader is not its own child says there whether
    the pid still names the same process, so a recycled pid is never signalled.
    """
    if not ours():
        return
    kill_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while not gone(max(0.0, min(_END_STEP_S, deadline - time.monotonic()))):
        if time.monotonic() >= deadline:
            break
    if ours():
        kill_group(pgid, signal.SIGKILL)


def _exited_unreaped(pid: int) -> bool:
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return True
    return info is not None


def spawn(
    argv: Sequence[str],
    cwd: Path,
    env: Mapping[str, str],
    *,
    log: Path | None = None,
    stdin_pipe: bool = False,
) -> subprocess.Popen[bytes]:
    """Start a long-lived command in its own session and process group (so it outlives
    us, a Ctrl-C meant for us never reaches it, and killpg reaches all of it): stdout and
    stderr appended to `log` (or discarded), stdin a pipe for the caller or /dev/null.
    Nothing is waited for: the caller owns the process (a supervisor, a notify hook)."""
    out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644) if log else None
    try:
        return subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.PIPE if stdin_pipe else subprocess.DEVNULL,
            stdout=out if out is not None else subprocess.DEVNULL,
            stderr=subprocess.STDOUT if out is not None else subprocess.DEVNULL,
            start_new_session=True,
        )
    finally:
        if out is not None:
            os.close(out)


def spawn_detached(argv: Sequence[str], cwd: Path, env: Mapping[str, str]) -> None:
    """Start a command that outlives us (a notification hook); nothing is waited for."""
    spawn(argv, cwd, env)
