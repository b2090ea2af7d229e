"""The fleet: start, steer and stop workers; flags and answers; the sys-workers snapshot.

This is the API the beat, its actions and the `worker` commands call (DESIGN §8). Starts
(and housekeeping, which may rewrite a dead worker's record) are serialized by a file lock,
`.looopbot/fleet.lock`, so two starts can never both squeeze under `max_workers` or both
take one id. The lock is separate from the beat lock, which a beat already holds when it
starts a worker.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple

from looopbot import proc
from looopbot.actions import KEYS, MESSAGE_CAP
from looopbot.changes import Changes
from looopbot.config import Config
from looopbot.datadir import DataDir
from looopbot.errors import LooopbotError
from looopbot.fsutil import read_bytes_or_none, write_atomic
from looopbot.ids import check_branch_id, is_valid_id
from looopbot.workers import asks, identity, orphans, record
from looopbot.workers.record import Worker

START_WAIT_S = 20.0  # for the supervisor to report the worker running
STOP_WAIT_S = 15.0  # for the supervisor to end the group (its grace is 3 s)


def check_id(wid: str) -> None:
    """Before any path or ref is built from it: an unsafe id writes nothing anywhere."""
    check_branch_id(wid, "worker id")


@contextmanager
def fleet_lock(dd: DataDir) -> Iterator[None]:
    dd.meta.mkdir(parents=True, exist_ok=True)
    fd = os.open(dd.scratch("fleet.lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # held for seconds at most (one start)
        yield
    finally:
        os.close(fd)


class Census(NamedTuple):
    workers: list[Worker]  # effective records, by id
    unreadable: list[str]  # ids whose state.json cannot be read


def census(dd: DataDir) -> Census:
    workers, bad = [], []
    for wid in record.ids(dd):
        if not is_valid_id(wid):
            continue  # not ours (hand-made); nothing of ours is ever named like that
        try:
            worker = record.read(dd, wid)
        except record.Unreadable:
            bad.append(wid)
            continue
        if worker is not None:
            workers.append(record.effective(worker))
    return Census(workers, bad)


def workers(dd: DataDir) -> list[Worker]:
    """Every worker as the world sees it (a live record with a dead supervisor is lost)."""
    return census(dd).workers


def live_count(dd: DataDir) -> int:
    """Live workers; an unreadable record counts as live (the fleet fails closed)."""
    found = census(dd)
    return sum(w.live for w in found.workers) + len(found.unreadable)


def get(dd: DataDir, wid: str) -> Worker:
    """The worker's effective record, or a LooopbotError saying there is none."""
    check_id(wid)
    try:
        worker = record.read(dd, wid)
    except record.Unreadable as exc:
        raise LooopbotError(
            f"the record of worker '{wid}' cannot be read ({exc}) — "
            f"remove .looopbot/workers/{wid}/state.json"
        ) from None
    if worker is None:
        from looopbot.workers import onactions

        if onactions.read(dd, wid) is not None:
            raise onactions.refuse_stdin(wid)
        raise LooopbotError(f"there is no worker '{wid}' (see 'looopbot worker list')")
    return record.effective(worker)


# --- start --------------------------------------------------------------------------------


def start(
    dd: DataDir,
    config: Config,
    wid: str,
    prompt: str,
    verify: str | None = None,
    *,
    runner: str | None = None,
) -> Worker:
    """Start worker `wid` on `prompt` with the worker command of `runner` (a configured
    runner's name; default the active runner); returns its record once the worker runs."""
    check_id(wid)
    if not prompt.strip():
        raise LooopbotError(f"worker '{wid}': the prompt is empty — say what the worker must do")
    name = runner or config.runner.name
    if name not in config.worker_commands and name != config.runner.name:
        known = ", ".join(sorted(config.worker_commands))
        raise LooopbotError(f"worker '{wid}': no runner named '{name}' (known: {known})")
    template = config.worker_commands.get(name, config.runner.worker)
    if not template.strip():
        raise LooopbotError(
            f"runner '{name}' has no worker command — set runners.{name}.worker in looopbot.yaml"
        )
    if dd.repo_root is None:
        raise LooopbotError(f"{dd.root} is not inside a git repository — workers need one")
    with fleet_lock(dd):
        _admit(dd, config, wid)
        from looopbot.workers import contract, worktree

        branch, base, base_branch = worktree.ensure(dd, wid)
        p = record.paths(dd, wid)
        _clear_leftovers(p)
        write_atomic(p.brief, contract.brief(prompt))
        command = template.replace("{prompt_file}", shlex.quote(str(p.brief)))
        sup = _launch(dd, wid)
        me = identity.of(sup.pid)
        worker = Worker(
            id=wid,
            state="starting",
            command=command,
            branch=branch,
            base=base,
            base_branch=base_branch,
            started_at=time.time(),
            supervisor=me,
            verify=verify or None,
        )
        record.write(dd, worker)  # names the supervisor, which waits for exactly this
        return _await_running(dd, wid, sup)


def start_on_actions(
    dd: DataDir, config: Config, changes: Changes, wid: str, *, prompt: str, verify: str | None
) -> None:
    """Start worker `wid` as a GitHub Actions run (workers.backend: actions); its record
    goes into `changes`. No local process, no worktree."""
    check_id(wid)
    if not prompt.strip():
        raise LooopbotError(f"worker '{wid}': the prompt is empty — say what the worker must do")
    if not config.runner.worker.strip():  # the run would find none either
        name = config.runner.name
        raise LooopbotError(
            f"runner '{name}' has no worker command — set runners.{name}.worker in looopbot.yaml"
        )
    from looopbot.workers import onactions

    with fleet_lock(dd):
        _admit(dd, config, wid, extra_live=_actions_live(dd, wid))
        onactions.start(dd, config, changes, wid, prompt=prompt, verify=verify)


def _actions_live(dd: DataDir, wid: str) -> int:
    """Actions workers (other than `wid`) not known to have completed, from the last
    snapshot: a run not yet read counts as live, so the cap fails closed."""
    from looopbot.workers import onactions

    try:
        last = json.loads((dd.snapshots / "sys-workers.json").read_bytes())
        done = {
            i["id"]
            for i in last["signal"]
            if i.get("backend") == "actions" and i.get("state") == "completed"
        }
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        done = set()
    return sum(w.id != wid and w.id not in done for w in onactions.records(dd))


def _admit(dd: DataDir, config: Config, wid: str, extra_live: int = 0) -> None:
    """Refuse a start that would take a live id or go over max_workers."""
    found = census(dd)
    if wid in found.unreadable:
        raise LooopbotError(
            f"the record of worker '{wid}' cannot be read — remove "
            f".looopbot/workers/{wid}/state.json to free the id"
        )
    mine = next((w for w in found.workers if w.id == wid), None)
    if mine is not None and mine.live:
        raise LooopbotError(
            f"worker '{wid}' is already {mine.state} — stop it ('looopbot worker stop {wid}') "
            "or choose another id"
        )
    if mine is not None and mine.state == "lost":
        orphans.mark_lost(dd, wid, time.time())  # its orphaned group must not share the worktree
    if found.unreadable:
        raise LooopbotError(
            f"the fleet cannot be counted: the record of worker(s) {', '.join(found.unreadable)} "
            "cannot be read, so it counts as full — fix or remove their state.json"
        )
    live = sum(w.live for w in found.workers) + extra_live
    cap = config.limits.max_workers
    if live >= cap:
        raise LooopbotError(
            f"{live} worker(s) live, the limit is {cap} (limits.max_workers) — "
            "stop one or wait for one to finish"
        )


def _clear_leftovers(p: record.Paths) -> None:
    """Control messages and a question meant for an earlier run of this id are void."""
    shutil.rmtree(p.inbox, ignore_errors=True)
    with contextlib.suppress(FileNotFoundError):
        p.flag.unlink()
    from looopbot.workers import delivery

    delivery.supersede(p.dir)
    p.inbox.mkdir(parents=True, exist_ok=True)


def _launch(dd: DataDir, wid: str) -> subprocess.Popen[bytes]:
    from looopbot.runner import self_bin

    p = record.paths(dd, wid)
    with p.log.open("ab") as log:
        log.write(f"[looopbot {time.strftime('%H:%M:%S')}] start\n".encode())
    try:
        # Its own session: it outlives this command and a Ctrl-C meant for it.
        return proc.spawn(
            [sys.executable, "-m", "looopbot.workers.supervisor", str(dd.root), wid],
            dd.root,
            proc.child_env({"LOOOPBOT_BIN": self_bin()}),
            log=p.log,
        )
    except OSError as exc:
        raise LooopbotError(f"worker '{wid}': the supervisor could not start: {exc}") from None


def _await_running(dd: DataDir, wid: str, sup: subprocess.Popen[bytes]) -> Worker:
    deadline = time.monotonic() + START_WAIT_S
    while True:
        worker = record.read(dd, wid)
        assert worker is not None
        if worker.state != "starting":
            return record.effective(worker)
        if sup.poll() is not None or time.monotonic() >= deadline:
            break
        time.sleep(0.01)
    if sup.poll() is None:
        sup.kill()  # it never reported: do not leave it to start a worker later
        sup.wait()
    worker = record.read(dd, wid)  # it may have written its last record as it went
    assert worker is not None
    if worker.state != "starting":
        return record.effective(worker)
    record.write(dd, worker._replace(state="lost", ended_at=time.time()))
    raise LooopbotError(f"worker '{wid}' did not start — see .looopbot/workers/{wid}/output.log")


# --- control messages -----------------------------------------------------------------


def _live(dd: DataDir, wid: str) -> Worker:
    worker = get(dd, wid)
    if not worker.live:
        raise LooopbotError(f"worker '{wid}' is not running (it is {worker.state})")
    return worker


def _post(dd: DataDir, wid: str, message: dict[str, Any]) -> None:
    """Drop a control message in the worker's inbox; the supervisor takes them in order."""
    inbox = record.paths(dd, wid).inbox
    name = f"{time.time_ns():020d}-{os.getpid()}-{os.urandom(2).hex()}.json"
    write_atomic(inbox / name, json.dumps(message), durable=False)


def _thread(dd: DataDir, wid: str, body: str) -> bool:
    """For a worker on GitHub Actions, say `body` in its dashboard thread (its run hands it
    to the worker's stdin) and return True; False for a worker of this machine's."""
    from looopbot.workers import onactions

    check_id(wid)
    if onactions.elsewhere(dd, wid) is None:
        return False
    from looopbot.config import load
    from looopbot.github import thread

    thread.relay(dd, load(dd), wid, body)
    return True


def steer(dd: DataDir, wid: str, text: str) -> None:
    """Deliver a line of text to a live worker's stdin."""
    if len(text.encode()) > MESSAGE_CAP:
        raise LooopbotError(f"the text for worker '{wid}' is over the {MESSAGE_CAP}-byte cap")
    if _thread(dd, wid, f"/answer {wid} {text}"):
        return  # a worker that asked takes it as its answer there, as steer_session does here
    _live(dd, wid)
    _post(dd, wid, {"op": "input", "text": text})


def keys(dd: DataDir, wid: str, keys: Sequence[str]) -> None:
    """Named keys to a live worker: Enter, Tab, Escape, Up, Down, C-c (SIGINT), C-d (EOF)."""
    unknown = [k for k in keys if k not in KEYS]
    if unknown or not keys:
        raise LooopbotError(
            f"unknown key(s) {', '.join(map(repr, unknown))} (valid: {', '.join(KEYS)})"
            if unknown
            else f"no keys given (valid: {', '.join(KEYS)})"
        )
    if _thread(dd, wid, f"/keys {wid} {' '.join(keys)}"):
        return
    _live(dd, wid)
    _post(dd, wid, {"op": "keys", "keys": list(keys)})


def restart(dd: DataDir, wid: str) -> None:
    """End the worker's group and run its command again in the same worktree."""
    _live(dd, wid)
    _post(dd, wid, {"op": "restart"})


def stop(dd: DataDir, wid: str) -> Worker:
    """End the worker's whole process group; returns the record once it says so."""
    worker = get(dd, wid)
    if not worker.live:
        if worker.state == "lost" and orphans.recorded_live(dd, wid):
            with fleet_lock(dd):  # its supervisor died: end the orphaned group ourselves
                orphans.mark_lost(dd, wid, time.time(), state="killed")
            return get(dd, wid)
        raise LooopbotError(f"worker '{wid}' is not running (it is {worker.state})")
    _post(dd, wid, {"op": "stop"})
    deadline = time.monotonic() + STOP_WAIT_S
    while time.monotonic() < deadline:
        worker = get(dd, wid)
        if not worker.live:
            break
        time.sleep(0.02)
    if worker.state == "lost" or worker.live:
        # The supervisor is gone (or wedged): end the group ourselves, and say so where
        # whoever reads the worker's log will look.
        from looopbot.workers.supervisor import note

        note(
            record.paths(dd, wid).log,
            f"the supervisor did not answer the stop within {STOP_WAIT_S:g} s: "
            "its worker was ended from outside",
        )
        with fleet_lock(dd):
            if worker.live and worker.supervisor is not None:
                orphans.end_orphan(worker.supervisor)
            orphans.mark_lost(dd, wid, time.time(), force=True, state="killed")
        worker = get(dd, wid)
    return worker


def kill(dd: DataDir, config: Config, wid: str, reason: str) -> str:
    """End a worker on the loop's word (kill_worker): its whole group, recorded `killed`,
    the reason written where whoever reads its log will look — or, for a worker on
    GitHub Actions, its run cancelled. What happened, for the journal."""
    from looopbot.workers import onactions
    from looopbot.workers.supervisor import note

    check_id(wid)
    on_actions = onactions.elsewhere(dd, wid)
    if on_actions is not None:
        return onactions.stop(dd, config, on_actions)
    worker = stop(dd, wid)
    note(record.paths(dd, wid).log, f"killed by the loop: {reason}")
    return worker.state


# --- flags ----------------------------------------------------------------------------


def flag(dd: DataDir, wid: str, message: str) -> None:
    """A worker's question for a human, shown as `note` while the worker is live."""
    get(dd, wid)
    write_atomic(record.paths(dd, wid).flag, _question(message) + "\n")


def _question(message: str) -> str:
    text = " ".join(message.split())
    if not text:
        raise LooopbotError("the question is empty — say what a human must decide")
    if len(text.encode()) > MESSAGE_CAP:
        raise LooopbotError(f"the question is over the {MESSAGE_CAP}-byte cap")
    return text


def ask(dd: DataDir, wid: str, message: str, options: tuple[str, ...]) -> asks.Ask:
    """A question with an id (and maybe the answers it takes): raised as a flag, recorded
    as an ask."""
    get(dd, wid)
    text = _question(message)
    found = asks.open_ask(dd, wid, text, options)
    write_atomic(record.paths(dd, wid).flag, text + "\n")
    return found


def unflag(dd: DataDir, wid: str) -> None:
    get(dd, wid)
    with contextlib.suppress(FileNotFoundError):
        record.paths(dd, wid).flag.unlink()


def answer(dd: DataDir, to: str, text: str) -> tuple[str, str]:
    """A human's answer to worker or ask `to`: checked against the ask's options, to the
    worker's stdin, recorded for a `looopbot ask` that waits, then the question is down.
    Returns (the ask's id, the answer as delivered)."""
    wid, ask_id = asks.target(to)
    if len(text.encode()) > MESSAGE_CAP:
        raise LooopbotError(f"the answer for worker '{wid}' is over the {MESSAGE_CAP}-byte cap")
    if _thread(dd, wid, f"/answer {to} {text}"):
        # Its run delivers it, checking the ask's options, and says so there if it refuses.
        return f"{to} (via its dashboard thread)", text
    question = asks.pending(dd, wid)
    if question is None:
        if ask_id is not None:
            raise LooopbotError(f"ask {ask_id} is not pending — see `looopbot asks`")
        steer(dd, wid, text)  # no question up: an answer is plain input, as before asks
        return wid, text
    delivered = asks.check_answer(question, ask_id, text)
    steer(dd, wid, delivered)
    asks.answered(dd, question, delivered)
    unflag(dd, wid)
    return question.id, delivered


# --- the sys-workers snapshot -----------------------------------------------------------


def snapshot(dd: DataDir, stuck_after: float) -> dict[str, Any]:
    """sys-workers: {id, state, exit_code} per worker (+ `note` while live and flagged,
    + `health` while live or lost, + `verify` once judged); detail holds counts and
    absolute times only."""
    from looopbot.workers import delivery, health

    found = census(dd)
    now = time.time()
    pulls: dict[str, str] = {}
    signal_: list[dict[str, Any]] = []
    counts: dict[str, int] = {}
    times: dict[str, dict[str, float | None]] = {}
    for worker in found.workers:
        item: dict[str, Any] = {"id": worker.id, "state": worker.state}
        item["exit_code"] = worker.exit_code
        note = record.flag(dd, worker.id) if worker.live else None
        if note:
            item["note"] = note
        p = record.paths(dd, worker.id)
        said = health.of(worker, p, flagged=bool(note), now=now, stuck_after=stuck_after)
        if said is not None:
            item["health"] = said
        if worker.verdict:
            item["verify"] = worker.verdict
        pr = delivery.read(dd, worker.id)  # its draft PR (github.pull_requests)
        if pr is not None:
            item["pr"] = delivery.signal(pr)
            if pr.url:
                pulls[worker.id] = pr.url
        signal_.append(item)
        counts[worker.state] = counts.get(worker.state, 0) + 1
        times[worker.id] = {"started_at": worker.started_at, "ended_at": worker.ended_at}
    for wid in found.unreadable:
        signal_.append({"id": wid, "state": "unreadable", "exit_code": None})
        counts["unreadable"] = counts.get("unreadable", 0) + 1
    signal_.sort(key=lambda item: str(item["id"]))
    detail: dict[str, Any] = {"counts": counts, "workers": times}
    if pulls:
        detail["pull_requests"] = pulls
    return {"signal": signal_, "detail": detail}


def log_bytes(dd: DataDir, wid: str) -> bytes:
    check_id(wid)
    return read_bytes_or_none(record.paths(dd, wid).log) or b""
