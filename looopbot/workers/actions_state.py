"""The Actions workers' part of `sys-workers`: each one's run state and branch, every beat.

Per worker: the newest run on its branch, asked for conditionally (the ETag and the run it
was fetched with are kept in local scratch, `actions-runs.json`), so an unchanged run costs
a 304 and no rate limit; a worker whose run has completed and whose branch has been counted
costs nothing at all. The branch is fetched and its commits counted only when the run's
state changes — a worker's run pushes once, at its end.

The signal holds the run's status and conclusion, never a time, so a beat wakes when a run
starts, ends or fails, and not otherwise. A failing API keeps each worker's last known item
(from the committed snapshot, so a fresh clone has it too) and says so in `detail`.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

from looopbot import gitcli
from looopbot.config import Config
from looopbot.datadir import DataDir
from looopbot.errors import LooopbotError
from looopbot.fsutil import write_atomic
from looopbot.github.client import GitHubClient
from looopbot.workers.onactions import WORKFLOW, ActionsWorker, client_for, records

SCRATCH = "actions-runs.json"
DISPATCHED = "dispatched"  # accepted by GitHub; its run not listed yet


def items(
    dd: DataDir, config: Config, previous: Any
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(signal items, detail per worker) for every Actions worker; never raises.
    `previous` is the last sys-workers snapshot (or None)."""
    from looopbot.github.client import GitHubUnavailable
    from looopbot.workers import actions_pr, delivery

    pulls = delivery.enabled(config)
    workers = records(dd)
    last_items, last_detail = _previous(previous)
    scratch_path = dd.scratch(SCRATCH)
    scratch = _read(scratch_path)
    client: GitHubClient | None = None
    trouble: str | None = None
    signal: list[dict[str, Any]] = []
    detail: dict[str, Any] = {}
    for worker in workers:
        last = last_items.get(worker.id)
        known = last_detail.get(worker.id) or {}
        same_run = known.get("started_at") == worker.started_at
        if not same_run:
            last, known = None, {}
        final = (
            last is not None
            and last.get("state") == "completed"
            and known.get("ahead") is not None
            # Its draft PR, when one is due, is opened and then watched until it is merged
            # or closed (github.pull_requests).
            and (
                not pulls
                or not actions_pr.due(last, known["ahead"])
                or actions_pr.settled(last.get("pr"))
            )
        )
        if final:
            assert last is not None
            signal.append(last)  # final: no request at all
            detail[worker.id] = _plain(known)
            continue
        try:
            if trouble is not None:
                raise GitHubUnavailable("setup", trouble)
            if client is None:
                client = client_for(dd, config)
            item, info = _read_run(client, worker, scratch)
        except LooopbotError as exc:
            trouble = trouble or exc.message
            signal.append(last or _item(worker, "unknown", None))
            detail[worker.id] = {**_plain(known), **_base(worker), "unavailable": exc.message}
            continue
        changed = last is None or (last["state"], last["conclusion"]) != (
            item["state"],
            item["conclusion"],
        )
        ahead = known.get("ahead")
        if changed or ahead is None:
            ahead = _ahead(dd, config, worker)
        extra: dict[str, Any] = {}
        if pulls and actions_pr.due(item, ahead):
            entry = scratch.setdefault(worker.id, {})
            # A run that has just ended (a re-run too) opens or updates its PR; an ended
            # one's PR is only read, until it is merged or closed.
            item["pr"], said = actions_pr.deliver(
                dd, config, client, worker, last=(last or {}).get("pr"), saved=entry, renew=changed
            )
            # Its address stays known across a 304; an error is only the latest one's.
            extra = {"pr_url": known["pr_url"]} if "pr_url" in known else {}
            extra.update(said)
        signal.append(item)
        detail[worker.id] = {**_base(worker), **info, "ahead": ahead, **extra}
    with contextlib.suppress(OSError):  # only an accelerator: the next beat asks in full
        scratch_path.parent.mkdir(parents=True, exist_ok=True)
        kept = {w.id: scratch[w.id] for w in workers if w.id in scratch}
        write_atomic(scratch_path, json.dumps(kept), durable=False)
    return signal, detail


def _item(worker: ActionsWorker, state: str, conclusion: str | None) -> dict[str, Any]:
    return {
        "id": worker.id,
        "backend": "actions",
        "state": state,
        "conclusion": conclusion,
        "exit_code": None,
    }


def _base(worker: ActionsWorker) -> dict[str, Any]:
    return {"started_at": worker.started_at, "ended_at": None, "branch": worker.branch}


def _plain(known: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in known.items() if k != "unavailable"}


def _read_run(
    client: GitHubClient, worker: ActionsWorker, scratch: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    from looopbot.github import actions
    from looopbot.github.client import GitHubUnavailable

    saved = scratch.get(worker.id)
    etag, kept = None, None
    # The tag is good only with the run it came with, and only for this start of the id;
    # a scratch file that does not parse is asked past, never trusted.
    if isinstance(saved, dict) and saved.get("started_at") == worker.started_at:
        with contextlib.suppress(GitHubUnavailable):
            kept = actions.parse_run(saved["run"]) if saved.get("run") is not None else None
            etag = saved["etag"] if isinstance(saved.get("etag"), str) else None
    listed = actions.newest_run(client, WORKFLOW, worker.branch, etag=etag)
    if listed.unchanged:
        run = kept
    else:
        run = listed.run
        scratch[worker.id] = {
            "started_at": worker.started_at,
            "etag": listed.etag,
            "run": run.to_json() if run is not None else None,
        }
    if run is None or run.id <= worker.after_run:  # an earlier start's run, or none yet
        return _item(worker, DISPATCHED, None), {"run": None, "url": None}
    return _item(worker, run.status, run.conclusion), {"run": run.id, "url": run.url}


def _ahead(dd: DataDir, config: Config, worker: ActionsWorker) -> int | None:
    """Commits the worker's branch (fetched now) holds beyond its base, the brief's own
    commits not counted; None when the remote or the history cannot tell."""
    from looopbot import remote
    from looopbot.workers import actions_pr

    if dd.repo_root is None:
        return None
    try:
        up = remote.upstream(dd, config)
    except LooopbotError:
        return None
    ref = f"refs/heads/{worker.branch}"
    mirror = f"refs/remotes/{up.remote}/{worker.branch}"
    fetched = gitcli.run(
        dd.repo_root,
        *("fetch", "--quiet", "--no-tags", "--no-write-fetch-head", up.remote, f"+{ref}:{mirror}"),
        timeout=config.limits.network_timeout,
        check=False,
    )
    if not fetched.ok:
        return None
    counted = gitcli.run(
        dd.repo_root,
        *("rev-list", "--count"),
        *actions_pr.own_commits(dd, up.remote, worker),
        check=False,
    )
    text = counted.stdout.decode().strip()
    return int(text) if counted.ok and text.isdigit() else None


def _previous(previous: Any) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """The last snapshot's Actions items and their detail, by id (shape-checked: it is a
    committed file a human may have edited)."""
    items_: dict[str, dict[str, Any]] = {}
    details: dict[str, dict[str, Any]] = {}
    if not isinstance(previous, dict):
        return items_, details
    signal = previous.get("signal")
    detail = previous.get("detail")
    found = detail.get("workers") if isinstance(detail, dict) else None
    for item in signal if isinstance(signal, list) else []:
        good = (
            isinstance(item, dict)
            and item.get("backend") == "actions"
            and isinstance(item.get("id"), str)
            and isinstance(item.get("state"), str)
            and isinstance(item.get("conclusion"), (str, type(None)))
        )
        if good:
            items_[item["id"]] = item
            extra = found.get(item["id"]) if isinstance(found, dict) else None
            details[item["id"]] = extra if isinstance(extra, dict) else {}
    return items_, details


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
