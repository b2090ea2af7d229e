"""`looopbot status`: where the loop stands."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from looopbot import desired, guards, ledger
from looopbot import state as state_mod
from looopbot.beat import LAST_BEAT
from looopbot.config import Config, load
from looopbot.datadir import DataDir, locate
from looopbot.errors import EXIT_OK, LooopbotError
from looopbot.fsutil import read_bytes_or_none
from looopbot.text import age


def status(args: argparse.Namespace) -> int:
    dd = locate(args.data_dir)
    config = load(dd)
    now = time.time()
    raw = read_bytes_or_none(dd.state)
    problem = None
    try:
        st = state_mod.parse(raw) if raw is not None else state_mod.State()
    except state_mod.StateUnreadable as exc:
        st, problem = state_mod.State(), f"state file unreadable: {exc}"
    last: Any = None
    last_raw = read_bytes_or_none(dd.scratch(LAST_BEAT))
    if last_raw is not None:
        try:
            last = json.loads(last_raw)
        except ValueError:
            last = None
    backoff_until = None
    if st.failures and st.failed_at is not None:
        backoff_until = st.failed_at + guards.backoff_wait(st.failures)
    spent: float | None = None
    try:
        spent = ledger.spent_since(dd.ledger, ledger.day_start(now))
    except ledger.Mangled as exc:  # a reading command shows it; the budget guard holds on it
        problem = f"{problem}; {exc.message}" if problem else exc.message
    snapshot = _snapshot(dd, "sys-workers")
    claims = _snapshot(dd, "sys-claims")
    doc = {
        "data_dir": str(dd.root),
        "runner": config.runner.name,
        "last_beat": last,
        "world_hash": st.decided_hash,
        "decided_at": st.decided_at,
        "decided_action": st.decided_action,
        "follow_up_at": st.follow_up_at,
        "failures": st.failures,
        "last_failure": st.failure,
        "backoff_until": backoff_until if backoff_until and backoff_until > now else None,
        "decides_last_hour": len([t for t in st.decides if now - t < guards.HOUR]),
        "spent_today_usd": None if spent is None else round(spent, 6),
        "max_daily_usd": config.limits.max_daily_usd,
        "goals": [gid for gid, _ in desired.goals_of(desired.read(dd))],
        "workers": snapshot.get("signal", []) if isinstance(snapshot, dict) else [],
        "claims": claims.get("signal", []) if isinstance(claims, dict) else [],
        "push": _push_state(dd, config),
        "problem": problem,
    }
    if args.json:
        print(json.dumps(doc))
        return EXIT_OK
    print(f"data dir   {doc['data_dir']}  (runner: {doc['runner']})")
    if last:
        ago = age(now - float(last.get("at", now)))
        what = last.get("journal") or last.get("reason")
        print(f"last beat  {ago} ago: {last.get('outcome')} — {what}")
    else:
        print("last beat  (none on this machine yet)")
    if st.decided_at:
        ago = age(now - st.decided_at)
        world = str(st.decided_hash)[:12]
        print(f"decided    {ago} ago: {st.decided_action} (world {world})")
    if st.failures:
        wait = f", retry in {int(doc['backoff_until'] - now)}s" if doc["backoff_until"] else ""
        print(f"failures   {st.failures} in a row{wait}: {st.failure}")
    budget = (
        f" of ${config.limits.max_daily_usd:.2f}" if config.limits.max_daily_usd is not None else ""
    )
    calls = doc["decides_last_hour"]
    spend = "unknown" if spent is None else f"${spent:.4f}"
    print(f"spend      {spend} today{budget}; {calls} runner calls in the last hour")
    print(f"goals      {', '.join(doc['goals']) or '(none)'}")
    print(f"workers    {len(doc['workers'])}   claims {len(doc['claims'])}")
    push = doc["push"]
    if push is not None:
        print(f"remote     {_push_line(push, now)}")
    if problem:
        print(f"problem    {problem}")
    return EXIT_OK


def _push_state(dd: DataDir, config: Config) -> dict[str, Any] | None:
    """Ahead/behind the remote branch as last fetched (no network), and the last push."""
    from looopbot import remote, sync

    try:
        up = remote.upstream(dd, config)
    except LooopbotError:
        return None  # detached, or not a repo: nothing to say about pushing
    if not remote.has_remote(dd, up.remote):
        return None
    found = remote.counts(dd, up)
    return {
        "enabled": config.push,
        "upstream": str(up),
        "ahead": found[0] if found else None,
        "behind": found[1] if found else None,
        "last": sync.last(dd),
    }


def _push_line(push: dict[str, Any], now: float) -> str:
    said = f"{push['upstream']}"
    if push["ahead"] is None:
        said += " (not fetched yet)"
    else:
        said += f": ahead {push['ahead']}, behind {push['behind']} (as last fetched)"
    last = push["last"]
    if last:
        when = age(now - float(last.get("at", now)))
        said += f"; last push {when} ago: {last.get('result')}"
        if last.get("error"):
            said += f" — {last['error']}"
    if not push["enabled"]:
        said += "; push is off (tick --push, git.push: true or LOOOPBOT_PUSH=1)"
    return said


def _snapshot(dd: Any, name: str) -> Any:
    raw = read_bytes_or_none(dd.snapshots / f"{name}.json")
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None
