"""The supervisor: one small process per worker that outlives the beat which started it.

    python -m looopbot.workers.supervisor DATA_DIR ID

`fleet.start` launches it detached (its own session) and then writes the worker's record
naming the supervisor's identity; the supervisor waits for that record, so from the first
moment the record exists it names a live supervisor and is never mistaken for `lost`.

From then on the supervisor is the record's only writer: it runs the worker command under
`bash -c` in the worktree, in the worker's own process group, with a stdin pipe it keeps;
appends everything the worker prints to output.log; takes control messages from inbox/
(steer text, keys, restart, stop); and when the worker ends runs the declared verify once,
in its own process group, still reading the inbox: a stop ends the verify at once, and text
meant for the worker (which is gone by then) is noted in output.log as dropped.

The worker and the verify are our children, never reaped before their group has been
killed, so a signal to the group can never reach a stranger through PID reuse (see
looopbot.proc).
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
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

POLL_S = 0.05  # how often the inbox is looked at while the worker (or its verify) runs
TERM_GRACE_S = 3.0  # SIGTERM to the group, then SIGKILL after this
RECORD_WAIT_S = 30.0  # for fleet.start to write the record that names us
STUCK_LOOK_S = 1.0  # how often the worker is checked for limits.kill_stuck_after

# Named keys (actions.KEYS) as the bytes a terminal would send; C-c and C-d are not bytes
# here: C-c is SIGINT to the worker's group, C-d closes its stdin.
KEY_BYTES = {"Enter": b"\n", "Tab": b"\t", "Escape": b"\x1b", "Up": b"\x1b[A", "Down": b"\x1b[B"}


def note(log: Path, text: str) -> None:
    """A line of our own in output.log, marked so it is not mistaken for the worker's."""
    with contextlib.suppress(OSError), log.open("ab") as f:
        f.write(f"[looopbot {time.strftime('%H:%M:%S')}] {text}\n".encode())


def exit_code(returncode: int) -> int:
    """A shell-style code: killed by signal N is 128+N (JSON has no negative convention)."""
    return 128 - returncode if returncode < 0 else returncode


class Group:
    """`bash -c command` in its own process group (proc.spawn), our child until reaped.

    Used for the worker and for its verify alike, so both are watched by the same loop that
    reads the inbox: a stop reaches either at once.
    """

    def __init__(
        self, command: str, cwd: Path, env: Mapping[str, str], log: Path, *, stdin_pipe: bool
    ) -> None:
        self.proc = proc.spawn(["bash", "-c", command], cwd, env, log=log, stdin_pipe=stdin_pipe)
        self.sel = selectors.DefaultSelector()  # the pidfd: readable once the leader exits
        self.pidfd: int | None = None
        if hasattr(os, "pidfd_open"):
            with contextlib.suppress(OSError):
                self.pidfd = os.pidfd_open(self.proc.pid)
                self.sel.register(self.pidfd, selectors.EVENT_READ)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def exited(self, timeout: float) -> bool:
        """Wait up to `timeout` for the leader to exit; it stays unreaped."""
        if self.pidfd is not None:
            self.sel.select(timeout)
        else:
            time.sleep(min(timeout, POLL_S))
        try:
            info = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return True
        return info is not None

    def signal(self, sig: signal.Signals) -> None:
        proc.kill_group(self.pid, sig)

    def reap(self) -> int:
        """Kill what the leader left in its group, then reap the leader; its exit code."""
        # A worker that forked helpers must not leave them running in a finished worktree.
        self.signal(signal.SIGKILL)
        code = self.proc.wait()
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        if self.pidfd is not None:
            self.sel.unregister(self.pidfd)
            os.close(self.pidfd)
            self.pidfd = None
        self.sel.close()
        return exit_code(code)

    def end(self) -> int:
        """SIGTERM to the whole group, a grace period, then SIGKILL; the leader's code."""
        proc.end_group(self.pid, self.exited, TERM_GRACE_S)
        return self.reap()

    @property
    def running(self) -> bool:
        return self.proc.returncode is None


class Supervisor:
    def __init__(
        self, dd: DataDir, worker: Worker, env: Mapping[str, str], cwd: Path | None = None
    ) -> None:
        self.dd = dd
        self.worker = worker
        self.paths = record.paths(dd, worker.id)
        self.cwd = cwd or self.paths.worktree  # `worker run` on Actions: the checkout itself
        self.env = dict(env)
        self.child: Group | None = None  # the worker
        self.verifier: Group | None = None  # its verify, once the worker has exited
        self.pending = bytearray()  # stdin bytes the worker has not taken yet
        self.close_stdin = False  # C-d: close once `pending` is written
        self.terminate = False  # SIGTERM to us

    # --- the worker process -----------------------------------------------------------

    def spawn(self) -> None:
        # Its own process group: C-c and stop reach all of it.
        child = Group(self.worker.command, self.cwd, self.env, self.paths.log, stdin_pipe=True)
        assert child.proc.stdin is not None
        os.set_blocking(child.proc.stdin.fileno(), False)
        self.child = child
        self.pending.clear()
        self.close_stdin = False

    # --- stdin ------------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        if self.close_stdin:
            note(self.paths.log, "stdin is closed (C-d); input dropped")
            return
        self.pending += data
        self.flush()

    def flush(self) -> None:
        assert self.child is not None
        stdin: IO[bytes] | None = self.child.proc.stdin
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
        assert self.child is not None
        op = message.get("op")
        if op == "input" and isinstance(message.get("text"), str):
            text: str = message["text"]
            self.feed((text if text.endswith("\n") else text + "\n").encode())
        elif op == "keys" and isinstance(message.get("keys"), list):
            for key in message["keys"]:
                if key == "C-c":
                    self.child.signal(signal.SIGINT)
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

    def stop_asked_late(self) -> bool:
        """The inbox once the worker has exited: True at a stop; anything else is dropped,
        out loud, since the record still says running and its sender was told it went."""
        for message in self.take_inbox():
            if message.get("op") == "stop":
                return True
            self.drop(message)
        return False

    def drop(self, message: dict[str, Any]) -> None:
        note(self.paths.log, f"{message.get('op')} dropped: the worker has ended")

    def drop_rest(self) -> None:
        """After the last record: what is still in the inbox never reaches anyone."""
        for message in self.take_inbox():
            self.drop(message)

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
        assert self.child is not None
        self.save(state="running", process=self.process_identity())
        kill_after = kill_stuck_after(self.dd)
        looked = time.monotonic()
        while True:
            if self.child.exited(POLL_S):
                self.finish(self.child.reap())
                break
            if kill_after is not None and time.monotonic() - looked >= STUCK_LOOK_S:
                looked = time.monotonic()
                if self.stuck_for(kill_after):
                    code = self.child.end()
                    note(
                        self.paths.log,
                        f"killed: no output and no question for over {kill_after:g} s "
                        "(limits.kill_stuck_after); its process group was ended",
                    )
                    self.save(state="killed", exit_code=code, ended_at=time.time())
                    break
            if self.pending:
                self.flush()
            action = None
            for message in self.take_inbox():
                action = self.handle(message) or action
                if action is not None:
                    break
            if self.terminate or action == "stop":
                code = self.child.end()
                note(self.paths.log, "stopped: the worker's process group was ended")
                self.save(state="killed", exit_code=code, ended_at=time.time())
                break
            if action == "restart":
                self.child.end()
                restarts = self.worker.restarts + 1
                note(self.paths.log, f"restart {restarts}: the command starts again")
                self.spawn()
                self.save(restarts=restarts, process=self.process_identity(), exit_code=None)
        self.drop_rest()
        return 0

    def stuck_for(self, seconds: float) -> bool:
        """Silent for `seconds` with no question raised (a flagged worker waits, it is
        not stuck)."""
        from looopbot.workers import health

        if self.paths.flag.exists():
            return False
        return time.time() - health.last_output(self.paths, self.worker) > seconds

    def finish(self, code: int) -> None:
        """The worker exited by itself: judge it (verify) and record the end in one write,
        so the loop never sees "exited 0" without the verdict a declared verify owes it."""
        verdict = None
        if self.worker.verify:
            verdict = self.verify(self.worker.verify)
            if verdict is None:
                self.save(state="killed", exit_code=code, ended_at=time.time())
                return
        # On the remote (and in its draft PR, github.pull_requests) before the loop hears
        # of the end: the next beat may act on it. This step never raises.
        from looopbot.workers.delivery import on_exit

        ended = self.worker._replace(state="exited", exit_code=code, verdict=verdict)
        for line in on_exit(self.dd, ended):
            note(self.paths.log, line)
        self.save(state="exited", exit_code=code, ended_at=time.time(), verdict=verdict)

    def verify(self, command: str) -> str | None:
        """Run the verify in its own group, still minding the inbox; "pass" or "fail", or
        None when a stop (message or SIGTERM) ended it first."""
        log = self.paths.log
        note(log, f"verify: {command}")
        try:
            group = Group(command, self.cwd, self.env, log, stdin_pipe=False)
        except OSError as exc:
            note(log, f"verify: fail (it could not start: {exc})")
            return "fail"
        self.verifier = group
        deadline = time.monotonic() + verify_timeout(self.dd)
        timed_out = False
        while not group.exited(POLL_S):
            stop = self.stop_asked_late()
            if stop or self.terminate:
                group.end()
                why = "a stop message" if stop else "SIGTERM"
                note(log, f"stopped during verify ({why}): its process group was ended")
                return None
            if time.monotonic() >= deadline:
                timed_out = True
                break
        code = group.end() if timed_out else group.reap()
        verdict = "pass" if code == 0 and not timed_out else "fail"
        note(log, f"verify: {verdict} ({'timed out' if timed_out else f'exit {code}'})")
        return verdict


def kill_stuck_after(dd: DataDir) -> float | None:
    """limits.kill_stuck_after as the config says at the worker's start; None (off) if it
    cannot be read — a supervisor never kills on a guess."""
    from looopbot.config import load
    from looopbot.errors import LooopbotError

    try:
        return load(dd).limits.kill_stuck_after
    except (LooopbotError, OSError):
        return None


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
        sup.terminate = True  # the loop (worker or verify) sees it within POLL_S

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
        # Whatever went wrong here, the worker (or its verify) must not run on unsupervised.
        for group in (sup.child, sup.verifier):
            if group is not None and group.running:
                group.end()
        note(sup.paths.log, f"supervisor failed: {exc!r}")
        with contextlib.suppress(Exception):
            sup.save(state="killed", ended_at=time.time())
        raise


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
