"""The supervisor: one small process per worker that outlives the beat which started it.

    python -m looopbot.workers.supervisor DATA_DIR ID

`fleet.start` launches it detached (its own session) and then writes the worker's record
naming the supervisor's identity; the supervisor waits for that record, so from the first
moment the record exists it names a live supervisor and is never mistaken for `lost`.

From then on the supervisor is the record's only writer: it runs the worker command under
`bash -c` in the worktree, in the worker's own process group, with a stdin pipe it keeps;
appends everything the worker prints to output.log; takes control messages from inbox/
(steer text, keys, restart, stop); and when the worker ends runs the declared verify once.

The worker is our child and is not reaped until its group has been killed, so a signal to
its group can never reach a stranger through PID reuse (see looopbot.proc).
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from looopbot import proc
from looopbot.datadir import DataDir
from looopbot.fsutil import read_bytes_or_none
from looopbot.ids import is_valid_id
from looopbot.workers import identity, record
from looopbot.workers.record import Worker

POLL_S = 0.05  # how often the inbox is looked at while the worker runs
TERM_GRACE_S = 3.0  # SIGTERM to the group, then SIGKILL after this
RECORD_WAIT_S = 30.0  # for fleet.start to write the record that names us
VERIFY_TAIL = 2048

# Named keys (actions.KEYS) as the bytes a terminal would send; C-c and C-d are not bytes
# here: C-c is SIGINT to the worker's group, C-d closes its stdin.
KEY_BYTES = {"Enter": b"\n", "Tab": b"\t", "Escape": b"\x1b", "Up": b"\x1b[A", "Down": b"\x1b[B"}


def note(log: Path, text: str) -> None:
    """A line of our own in output.log, marked so it is not mistaken for the worker's."""
    with contextlib.suppress(OSError), log.open("ab") as f:
        f.write(f"[looopbot {time.strftime('%H:%M:%S')}] {text}\n".encode())


class Stopped(Exception):
    """A SIGTERM (a stop) while verify runs: the inbox is not read then, and proc.run ends
    the verify's own process group as this passes through it, so none outlives us."""


def exit_code(returncode: int) -> int:
    """A shell-style code: killed by signal N is 128+N (JSON has no negative convention)."""
    return 128 - returncode if returncode < 0 else returncode


class Supervisor:
    def __init__(self, dd: DataDir, worker: Worker, env: Mapping[str, str]) -> None:
        self.dd = dd
        self.worker = worker
        self.paths = record.paths(dd, worker.id)
        self.env = dict(env)
        self.child: subprocess.Popen[bytes] | None = None
        self.pidfd: int | None = None
        self.sel = selectors.DefaultSelector()  # the pidfd: readable once the worker exits
        self.pending = bytearray()  # stdin bytes the worker has not taken yet
        self.close_stdin = False  # C-d: close once `pending` is written
        self.terminate = False  # SIGTERM to us
        self.verifying = False  # inside verify: a SIGTERM raises Stopped there

    # --- the worker process -----------------------------------------------------------

    def spawn(self) -> None:
        # Its own process group: C-c and stop reach all of it.
        child = proc.spawn(
            ["bash", "-c", self.worker.command],
            self.paths.worktree,
            self.env,
            log=self.paths.log,
            stdin_pipe=True,
        )
        assert child.stdin is not None
        os.set_blocking(child.stdin.fileno(), False)
        self.child = child
        self.pending.clear()
        self.close_stdin = False
        self.pidfd = None
        if hasattr(os, "pidfd_open"):
            with contextlib.suppress(OSError):
                self.pidfd = os.pidfd_open(child.pid)
                self.sel.register(self.pidfd, selectors.EVENT_READ)

    def exited(self, timeout: float) -> bool:
        """Wait up to `timeout` for the worker's leader to exit; it stays unreaped."""
        assert self.child is not None
        if self.pidfd is not None:
            self.sel.select(timeout)
        else:
            time.sleep(min(timeout, POLL_S))
        try:
            info = os.waitid(os.P_PID, self.child.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return True
        return info is not None

    def signal_group(self, sig: signal.Signals) -> None:
        assert self.child is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.child.pid, sig)

    def reap(self) -> int:
        """Kill what the leader left in its group, then reap the leader; its exit code."""
        assert self.child is not None
        # A worker that forked helpers must not leave them running in a finished worktree.
        self.signal_group(signal.SIGKILL)
        code = self.child.wait()
        if self.child.stdin is not None:
            with contextlib.suppress(OSError):
                self.child.stdin.close()
        if self.pidfd is not None:
            self.sel.unregister(self.pidfd)
            os.close(self.pidfd)
            self.pidfd = None
        return exit_code(code)

    def end_group(self) -> int:
        """SIGTERM to the whole group, a grace period, then SIGKILL; the leader's code."""
        self.signal_group(signal.SIGTERM)
        deadline = time.monotonic() + TERM_GRACE_S
        while not self.exited(max(0.0, min(POLL_S, deadline - time.monotonic()))):
            if time.monotonic() >= deadline:
                break
        return self.reap()

    # --- stdin ------------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        if self.close_stdin:
            note(self.paths.log, "stdin is closed (C-d); input dropped")
            return
        self.pending += data
        self.flush()

    def flush(self) -> None:
        assert self.child is not None
        stdin: IO[bytes] | None = self.child.stdin
        if stdin is None or stdin.closed:
            self.pending.clear()
            return
        try:
            while self.pending:
                n = os.write(stdin.fileno(), self.pending)
                del self.pending[:n]
        except BlockingIOError:
            return  # the worker is not reading yet: the rest goes on a later turn
        except (BrokenPipeError, ConnectionResetError):
            note(self.paths.log, "the worker closed its stdin; input dropped")
            self.pending.clear()
        if self.close_stdin and not self.pending:
            with contextlib.suppress(OSError):
                stdin.close()

    # --- the inbox --------------------------------------------------------------------

    def take_inbox(self) -> Iterator[dict[str, Any]]:
        """The inbox's messages in order, each removed only as it is handed over: those
        behind a stop or restart the caller acts on stay for the next turn."""
        try:
            names = sorted(n for n in os.listdir(self.paths.inbox) if not n.startswith("."))
        except FileNotFoundError:
            return
        for name in names:
            path = self.paths.inbox / name
            raw = read_bytes_or_none(path)
            with contextlib.suppress(OSError):
                path.unlink()
            try:
                message = json.loads(raw or b"")
            except ValueError:
                message = None
            if isinstance(message, dict):
                yield message
            else:
                note(self.paths.log, f"ignored an unreadable inbox message {name}")

    def handle(self, message: dict[str, Any]) -> str | None:
        """Act on one control message; returns "stop" or "restart" when the loop must."""
        op = message.get("op")
        if op == "input" and isinstance(message.get("text"), str):
            text: str = message["text"]
            self.feed((text if text.endswith("\n") else text + "\n").encode())
        elif op == "keys" and isinstance(message.get("keys"), list):
            for key in message["keys"]:
                if key == "C-c":
                    self.signal_group(signal.SIGINT)
                elif key == "C-d":
                    self.close_stdin = True
                    self.flush()
                elif key in KEY_BYTES:
                    self.feed(KEY_BYTES[key])
                else:
                    note(self.paths.log, f"ignored unknown key {key!r}")
        elif op in ("stop", "restart"):
            return str(op)
        else:
            note(self.paths.log, f"ignored an inbox message with op {op!r}")
        return None

    # --- the record -------------------------------------------------------------------

    def save(self, **changes: Any) -> None:
        self.worker = self.worker._replace(**changes)
        record.write(self.dd, self.worker)

    def process_identity(self) -> identity.Identity | None:
        assert self.child is not None
        return identity.of(self.child.pid)

    # --- the whole life ---------------------------------------------------------------

    def run(self) -> int:
        try:
            self.spawn()
        except OSError as exc:  # the worktree vanished, bash is missing…
            note(self.paths.log, f"the worker command could not start: {exc}")
            self.save(state="exited", exit_code=127, ended_at=time.time())
            return 0
        self.save(state="running", process=self.process_identity())
        while True:
            if self.exited(POLL_S):
                code = self.reap()
                self.finish(code)
                return 0
            if self.pending:
                self.flush()
            action = None
            for message in self.take_inbox():
                action = self.handle(message) or action
                if action is not None:
                    break
            if self.terminate or action == "stop":
                code = self.end_group()
                note(self.paths.log, "stopped: the worker's process group was ended")
                self.save(state="killed", exit_code=code, ended_at=time.time())
                return 0
            if action == "restart":
                self.end_group()
                restarts = self.worker.restarts + 1
                note(self.paths.log, f"restart {restarts}: the command starts again")
                self.spawn()
                self.save(restarts=restarts, process=self.process_identity(), exit_code=None)

    def finish(self, code: int) -> None:
        """The worker exited by itself: judge it (verify) and record the end in one write,
        so the loop never sees "exited 0" without the verdict a declared verify owes it."""
        verdict = None
        if self.worker.verify:
            self.verifying = True
            try:
                verdict = self.verify(self.worker.verify)
            except Stopped:
                note(self.paths.log, "stopped during verify: its process group was ended")
                self.save(state="killed", exit_code=code, ended_at=time.time())
                return
            finally:
                self.verifying = False
        self.save(state="exited", exit_code=code, ended_at=time.time(), verdict=verdict)

    def verify(self, command: str) -> str:
        note(self.paths.log, f"verify: {command}")
        result = proc.run(
            proc.Spec(
                argv=["bash", "-c", command],
                cwd=self.paths.worktree,
                env=self.env,
                timeout=verify_timeout(self.dd),
                merge_stderr=True,
                stdout_tail=VERIFY_TAIL,
                log=self.paths.log,
            )
        )
        verdict = "pass" if result.ok else "fail"
        why = "timed out" if result.timed_out else f"exit {result.exit_code}"
        note(self.paths.log, f"verify: {verdict} ({why})")
        return verdict


def verify_timeout(dd: DataDir) -> float:
    """limits.verify_timeout as the config says now; the default if it cannot be read."""
    from looopbot.config import LIMITS, load
    from looopbot.errors import LooopbotError

    try:
        return load(dd).limits.verify_timeout
    except (LooopbotError, OSError):
        return float(LIMITS["verify_timeout"][1])


def worker_env(dd: DataDir, wid: str, worktree: Path) -> dict[str, str]:
    from looopbot.runner import self_bin

    return proc.child_env(
        {
            "LOOOPBOT_SESSION_ID": wid,
            "LOOOPBOT_DATA_DIR": str(dd.root),
            "LOOOPBOT_WORKTREE": str(worktree),
            # fleet.start passes the CLI it ran as; `python -m` cannot find it itself.
            "LOOOPBOT_BIN": os.environ.get("LOOOPBOT_BIN") or self_bin(),
        }
    )


def wait_for_record(dd: DataDir, wid: str, me: identity.Identity) -> Worker | None:
    """The record fleet.start writes right after launching us, once it names us."""
    deadline = time.monotonic() + RECORD_WAIT_S
    while time.monotonic() < deadline:
        with contextlib.suppress(record.Unreadable):
            worker = record.read(dd, wid)
            if worker is not None and worker.supervisor == me:
                return worker
        time.sleep(0.01)
    return None


def main(argv: list[str]) -> int:
    if len(argv) != 2 or not is_valid_id(argv[1]):
        print("usage: python -m looopbot.workers.supervisor DATA_DIR ID", file=sys.stderr)
        return 2
    root, wid = Path(argv[0]).resolve(), argv[1]
    dd = DataDir(root, None)  # only paths under .looopbot/ are needed here
    me = identity.of(os.getpid())
    assert me is not None
    worker = wait_for_record(dd, wid, me)
    if worker is None:
        return 1  # whoever launched us died before naming us: there is nothing to run
    sup = Supervisor(dd, worker, worker_env(dd, wid, record.paths(dd, wid).worktree))

    def on_term(_sig: int, _frame: Any) -> None:
        sup.terminate = True
        if sup.verifying:
            raise Stopped

    def unmoved(_sig: int, _frame: Any) -> None:
        pass

    signal.signal(signal.SIGTERM, on_term)
    # C-c and a hangup are for the worker's group, not us. A handler, not SIG_IGN: an
    # ignored signal stays ignored across exec, and the worker must feel its C-c.
    signal.signal(signal.SIGHUP, unmoved)
    signal.signal(signal.SIGINT, unmoved)
    try:
        return sup.run()
    except BaseException as exc:
        # Whatever went wrong here, the worker must not run on unsupervised.
        if sup.child is not None and sup.child.returncode is None:
            sup.end_group()
        note(sup.paths.log, f"supervisor failed: {exc!r}")
        with contextlib.suppress(Exception):
            sup.save(state="killed", ended_at=time.time())
        raise


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
