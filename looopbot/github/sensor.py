"""The data of the built-in `github` sensor (DESIGN §3, §10): open issues and pull requests.

Identity and state (number, labels, author association, draft) are the `signal`, so a new
issue or a new label wakes the loop; titles, URLs and times are `detail`, so an edited title
does not. The list is asked for most recently updated first, so any change to any open item
changes page 1 — which is what makes page 1's ETag a fair test of the whole list: a 304
there (free of rate limit) means the last snapshot still holds. The ETag lives in local
scratch, never in git. A failing API keeps the last snapshot, marked in `detail`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from looopbot.config import Config
from looopbot.datadir import DataDir
from looopbot.errors import LooopbotError
from looopbot.fsutil import write_atomic
from looopbot.github.client import GitHubClient, GitHubUnavailable, connect
from looopbot.redact import redact_value, redactor

NAME = "sys-github"  # sys-: a user's sensors/github.sh must not collide with it
ETAGS = "github-etags.json"  # local scratch
# A beat waits this long at most for a rate limit; past it, the last snapshot is kept.
_MAX_WAIT = 60.0
_TIMEOUT = 10.0


def sense(dd: DataDir, config: Config) -> dict[str, Any]:
    """The snapshot for this beat (github.sensor on). Never raises: a broken setup (no
    token, no repository) is an error snapshot like a failing API's."""
    settings = config.github
    assert settings is not None  # the beat asks only when github: is configured
    previous = _read_json(dd.snapshots / f"{NAME}.json")
    from looopbot.github import repo

    try:
        client = connect(
            settings,
            repo.resolve(dd, config, settings),
            max_wait=min(_MAX_WAIT, config.limits.network_timeout),
            timeout=min(_TIMEOUT, config.limits.network_timeout),
        )
    except GitHubUnavailable as exc:
        return _unavailable(_kept(previous), exc)
    except LooopbotError as exc:
        return _unavailable(_kept(previous), GitHubUnavailable("setup", exc.message))
    # Titles are anyone's words: scrubbed like a user sensor's output.
    return snapshot(client, dd.scratch(ETAGS), previous, redactor())


def snapshot(
    client: GitHubClient, etags: Path, previous: Any, scrub: Callable[[str], str] = str
) -> dict[str, Any]:
    """The `github` snapshot; `previous` is the last one (or None), `etags` the scratch
    file of conditional-request tags, `scrub` the redaction for its strings. Never raises
    for an API failure."""
    last = _kept(previous)
    saved = _read_json(etags)
    # The ETag is good only for the snapshot it was fetched with: a dry run, or a beat that
    # failed before committing, may have stored a newer one than the snapshot on disk — a
    # 304 for it would keep the older snapshot for ever.
    fits = isinstance(saved, dict) and last is not None and saved.get("of") == _digest(last)
    tag = saved.get("etag") if fits and isinstance(saved, dict) else None
    from github3.issues import ShortIssue
    from github3.structs import GitHubIterator

    # The list straight from its URL: fetching the repository first would cost a counted
    # request every beat, and an unchanged world must cost none.
    url = f"{client.settings.api_url}/repos/{client.repo}/issues"
    params = {"state": "open", "sort": "updated", "direction": "desc"}
    try:
        with client.talking(f"read the open issues of {client.repo}"):
            listing = GitHubIterator(-1, url, ShortIssue, client.gh, params=params, etag=tag)
            items = [issue.as_dict() for issue in listing]
    except GitHubUnavailable as exc:
        return _unavailable(last, exc)
    if last is not None and tag is not None and listing.last_status == 304:
        return last
    fresh: dict[str, Any] = redact_value(build(client.repo, items), scrub)
    if listing.etag:
        record = {"etag": listing.etag, "of": _digest(fresh)}
        with contextlib.suppress(OSError):  # only an accelerator: next time asks in full
            etags.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(etags, json.dumps(record), durable=False)
    return fresh


def build(repo: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    """Signal and detail from raw issue-list items (pull requests carry `pull_request`)."""
    issues: list[dict[str, Any]] = []
    pulls: list[dict[str, Any]] = []
    detail: dict[str, Any] = {}
    for item in sorted(items, key=lambda i: int(i["number"])):
        if item.get("state", "open") != "open":
            continue
        ident: dict[str, Any] = {
            "number": item["number"],
            "labels": sorted(label["name"] for label in item.get("labels") or []),
            "author_association": item.get("author_association") or "NONE",
        }
        if "pull_request" in item:
            ident["draft"] = bool(item.get("draft"))
            pulls.append(ident)
        else:
            issues.append(ident)
        detail[str(item["number"])] = {
            "title": item.get("title") or "",
            "url": item.get("html_url") or "",
            "created_at": item.get("created_at"),
            "updated_at": item.get("updated_at"),
        }
    return {
        "signal": {"issues": issues, "pull_requests": pulls},
        "detail": {"repo": repo, "items": detail},
    }


def _unavailable(last: dict[str, Any] | None, exc: GitHubUnavailable) -> dict[str, Any]:
    said = {"kind": exc.kind, "message": exc.message}
    if last is None:
        # A stable signal: a steady failure wakes the loop once, not every beat.
        return {"signal": {"error": f"github-{exc.kind}"}, "detail": {"unavailable": said}}
    return {"signal": last["signal"], "detail": {**last["detail"], "unavailable": said}}


def _kept(value: Any) -> dict[str, Any] | None:
    """The last good snapshot, without a failure's mark; None after an error snapshot."""
    good = (
        isinstance(value, dict)
        and isinstance(value.get("signal"), dict)
        and "issues" in value["signal"]
        and isinstance(value.get("detail"), dict)
    )
    if not good:
        return None
    detail = {k: v for k, v in value["detail"].items() if k != "unavailable"}
    return {"signal": value["signal"], "detail": detail}


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
