"""`worker list|start|stop|logs|prune`, `flag`, `unflag`, `answer` (DESIGN §8, §11).

A start, a stop and an answer are moves a human makes by hand: journaled and committed like
a beat's action (steer.by_hand). A flag is raised by a worker about itself, often while a
beat holds the lock, so it only writes the worker's local flag file.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from looopbot.changes import Changes
from looopbot.commands.steer import apply, by_hand, text_arg
from looopbot.config import Config, load
from looopbot.datadir import DataDir, locate
from looopbot.errors import EXIT_FAIL, EXIT_OK, LooopbotError
from looopbot.fsutil import tail_lines
from looopbot.text import age
from looopbot.workers import asks, fleet, record, upkeep
from looopbot.workers.record import Worker

FOLLOW_POLL_S = 0.2


def worker(args: argparse.Namespace) -> int:
    dd = locate(args.data_dir)
    verbs: dict[str, Callable[[DataDir, argparse.Namespace], int]] = {
        "list": _list,
        "start": _start,
        "stop": _stop,
        "logs": _logs,
        "prune": _prune,
        "run": _run,
    }
    return verbs[args.verb](dd, args)


def _ahead(dd: DataDir, w: Worker) -> int | None:
    from looopbot.workers import worktree

    try:
        return worktree.commits_ahead(dd, w.branch, w.base_branch)
    except LooopbotError:
        return None


def _row(dd: DataDir, w: Worker, now: float) -> dict[str, Any]:
    return {
        "id": w.id,
        "state": w.state,
        "exit_code": w.exit_code,
        "verify": w.verdict,
        "age_s": round(now - w.started_at, 1),
        "started_at": w.started_at,
        "ended_at": w.ended_at,
        "branch": w.branch,
        "ahead": _ahead(dd, w),
        "restarts": w.restarts,
        "flag": record.flag(dd, w.id),
        "pr": _pr(dd, w.id),
    }


def _last_read(dd: DataDir) -> tuple[dict[str, Any], dict[str, Any]]:
    """The Actions workers' items and detail in the last sys-workers snapshot, by id."""
    try:
        snap = json.loads((dd.snapshots / "sys-workers.json").read_bytes())
        items = {i["id"]: i for i in snap["signal"] if i.get("backend") == "actions"}
        details = snap["detail"]["workers"]
        if isinstance(details, dict):
            return items, details
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass
    return {}, {}


def _actions_rows(dd: DataDir, now: float, local: set[str]) -> list[dict[str, Any]]:
    """Workers on GitHub Actions as the last beat read them (sys-workers): listing asks
    GitHub nothing."""
    from looopbot.workers import onactions

    found = onactions.records(dd)
    if not found:
        return []
    items, details = _last_read(dd)
    rows = []
    for w in found:
        if w.id in local:
            continue
        item, info = items.get(w.id) or {}, details.get(w.id) or {}
        seen = info.get("started_at") == w.started_at  # this start's, not an earlier one's
        rows.append(
            {
                "id": w.id,
                "backend": "actions",
                "state": item.get("state", "dispatched") if seen else "dispatched",
                "conclusion": item.get("conclusion") if seen else None,
                "exit_code": None,
                "verify": None,
                "age_s": round(now - w.started_at, 1),
                "started_at": w.started_at,
                "ended_at": None,
                "branch": w.branch,
                "ahead": info.get("ahead") if seen else None,
                "restarts": 0,
                "flag": None,
                "url": info.get("url") if seen else None,
                "pr": _actions_pr(item, info) if seen else None,
            }
        )
    return rows


def _pr(dd: DataDir, wid: str) -> dict[str, Any] | None:
    """Its draft pull request (github.pull_requests): state, number, url, why pending."""
    from looopbot.workers import delivery

    found = delivery.read(dd, wid)
    if found is None:
        return None
    return {"state": found.state, "number": found.number, "url": found.url, "error": found.error}


def _list(dd: DataDir, args: argparse.Namespace) -> int:
    now = time.time()
    found = fleet.census(dd)
    rows = [_row(dd, w, now) for w in found.workers]
    rows += _actions_rows(dd, now, {w.id for w in found.workers})
    if args.json:
        print(json.dumps({"workers": rows, "unreadable": found.unreadable}))
        return EXIT_OK
    if not rows and not found.unreadable:
        print("no workers")
    for r in rows:
        code = "-" if r["exit_code"] is None else str(r["exit_code"])
        verdict = f" verify:{r['verify']}" if r["verify"] else ""
        ahead = "?" if r["ahead"] is None else f"+{r['ahead']}"
        flag = f"\tflag: {r['flag']}" if r["flag"] else ""
        if r.get("backend") == "actions":
            verdict = f" ({r['conclusion']})" if r["conclusion"] else ""
            flag = f"\ton GitHub Actions {r['url'] or ''}".rstrip()
        pr = r.get("pr")
        if pr is not None:
            flag += f"\tpr {'#' + str(pr['number']) + ' ' if pr['number'] else ''}{pr['state']}"
        print(
            f"{r['id']}\t{r['state']}{verdict}\texit {code}\t{age(r['age_s'])}"
            f"\t{r['branch']} {ahead}{flag}"
        )
    for wid in found.unreadable:
        print(f"{wid}\tunreadable\t.looopbot/workers/{wid}/state.json cannot be read")
    return EXIT_OK


def _start(dd: DataDir, args: argparse.Namespace) -> int:
    obj: dict[str, Any] = {
        "action": "start_worker",
        "id": args.id,
        "prompt": text_arg(args.prompt, "the prompt"),
    }
    if args.verify is not None:
        obj["verify"] = args.verify
    if args.runner is not None:
        obj["runner"] = args.runner
    apply(dd, obj)
    return EXIT_OK


def _local(dd: DataDir, wid: str) -> Worker | None:
    """The local record (None: none); an unreadable one counts as there, for fleet.get to
    report."""
    try:
        return record.read(dd, wid)
    except record.Unreadable:
        return Worker(wid, "lost", "", record.branch(wid), "", "", 0.0)


def _stop(dd: DataDir, args: argparse.Namespace) -> int:
    from looopbot.workers import onactions

    fleet.check_id(args.id)
    on_actions = onactions.read(dd, args.id)
    local = _local(dd, args.id) if on_actions is not None else None

    def do(config: Config, changes: Changes, scrub: Callable[[str], str]) -> str:
        if on_actions is not None and (local is None or not record.effective(local).live):
            said = onactions.stop(dd, config, on_actions)
            return f"stop_worker {args.id} (on GitHub Actions: {said})"
        stopped = fleet.stop(dd, args.id)
        return f"stop_worker {args.id} ({stopped.state})"

    by_hand(dd, "stop_worker", do, args.id)
    return EXIT_OK


def _run(dd: DataDir, args: argparse.Namespace) -> int:
    from looopbot.workers import onrunner

    return onrunner.run_here(dd, load(dd), args.id)


def _logs(dd: DataDir, args: argparse.Namespace) -> int:
    from looopbot.workers import onactions

    fleet.check_id(args.id)
    if _local(dd, args.id) is None and onactions.read(dd, args.id) is not None:
        raise LooopbotError(
            f"worker '{args.id}' runs on GitHub Actions: its output is in its run's log on "
            "GitHub ('looopbot worker list' shows the run's URL)"
        )
    fleet.get(dd, args.id)  # a clear error for an unknown id
    log = record.paths(dd, args.id).log
    out = sys.stdout.buffer
    if args.tail is not None:
        lines = tail_lines(log, args.tail)
        out.write("".join(line + "\n" for line in lines).encode())
        try:  # follow from the end, whatever the tail showed
            offset = log.stat().st_size
        except FileNotFoundError:
            offset = 0
    else:
        offset = _copy(log, 0)
    out.flush()
    if not args.follow:
        return EXIT_OK
    # Until the worker is no longer live; then what it printed last, and stop.
    while True:
        live = fleet.get(dd, args.id).live
        offset = _copy(log, offset)
        if not live:
            return EXIT_OK
        time.sleep(FOLLOW_POLL_S)


def _copy(path: Path, offset: int) -> int:
    """Write the file's bytes from `offset` to stdout; the new offset."""
    with contextlib.suppress(FileNotFoundError), open(path, "rb") as f:
        f.seek(offset)
        while chunk := f.read(65536):
            sys.stdout.buffer.write(chunk)
            offset += len(chunk)
    sys.stdout.buffer.flush()
    return offset


def _actions_pr(item: dict[str, Any], info: dict[str, Any]) -> dict[str, Any] | None:
    """A worker on Actions' draft PR, as the last beat read it (actions_pr)."""
    pr = item.get("pr")
    if not isinstance(pr, dict):
        return None
    return {
        "state": pr.get("state"),
        "number": pr.get("number"),
        "url": info.get("pr_url") or "",
        "error": info.get("pr_error") or "",
    }


def _prune(dd: DataDir, args: argparse.Namespace) -> int:
    now = time.time()
    outcomes = upkeep.prune(dd, load(dd), now, everything=args.all)
    gone = _prune_actions(dd, now, everything=args.all)
    if not outcomes and not gone:
        print("nothing to prune")
    failed = False
    for p in outcomes:
        if isinstance(p, upkeep.PruneFailed):
            print(f"looopbot: {p.message}", file=sys.stderr)
            failed = True
            continue
        keep = f"branch {p.branch} kept (it holds work)" if p.kept_branch else "branch deleted"
        print(f"pruned {p.id}: worktree removed, {keep}")
    return EXIT_FAIL if failed else EXIT_OK


def _prune_actions(dd: DataDir, now: float, *, everything: bool) -> list[str]:
    """Forget workers on GitHub Actions whose run is over (as the last beat read it) and
    whose draft PR, if any, is settled: their committed records go, in one commit. Their
    branches stay on the remote — the run's work is there, and perhaps a merged PR."""
    from looopbot.workers import onactions

    items, details = _last_read(dd)
    ttl = load(dd).limits.worker_ttl
    due = []
    for w in onactions.records(dd):
        item, info = items.get(w.id) or {}, details.get(w.id) or {}
        pr = item.get("pr")
        settled = not isinstance(pr, dict) or pr.get("state") not in ("open", "pending")
        over = info.get("started_at") == w.started_at and item.get("state") == "completed"
        aged = everything or now - w.started_at >= ttl
        if over and settled and aged and _local(dd, w.id) is None:
            due.append(w.id)
    if not due:
        return []

    def do(config: Config, changes: Changes, scrub: Callable[[str], str]) -> str:
        for wid in due:
            changes.remove(onactions.record_rel(wid))
        return "worker prune: forgot " + ", ".join(due) + " (on GitHub Actions, run over)"

    by_hand(dd, "worker-prune", do, ", ".join(due))
    for wid in due:
        print(f"pruned {wid}: {onactions.record_rel(wid)} removed, its branch stays on the remote")
    return due


def flag(args: argparse.Namespace) -> int:
    dd = locate(args.data_dir)
    fleet.flag(dd, args.id, args.message)
    print(f"flagged {args.id}: waiting for 'looopbot answer {args.id} …'")
    return EXIT_OK


def unflag(args: argparse.Namespace) -> int:
    dd = locate(args.data_dir)
    fleet.unflag(dd, args.id)
    return EXIT_OK


def answer(args: argparse.Namespace) -> int:
    dd = locate(args.data_dir)
    asks.target(args.id)  # a clear error for a malformed id before reading stdin
    text = text_arg(args.text, "the answer").strip("\n")
    if not text.strip():
        raise LooopbotError("the answer is empty — say what the worker should do")

    def do(config: Config, changes: Changes, scrub: Callable[[str], str]) -> str:
        which, delivered = fleet.answer(dd, args.id, text)
        return f"answered {which}: {delivered}"

    by_hand(dd, "answer", do, args.id.partition("#")[0])
    return EXIT_OK
