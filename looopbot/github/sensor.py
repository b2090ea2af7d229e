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
import json
from pathlib import Path
from typing import Any

from looopbot.fsutil import write_atomic
from looopbot.github.client import GitHubClient, GitHubUnavailable

_ETAG_KEY = "issues?state=open&sort=updated"


def snapshot(client: GitHubClient, etags: Path, previous: Any) -> dict[str, Any]:
    """The `github` snapshot; `previous` is the last one (or None), `etags` the scratch
    file of conditional-request tags. Never raises for an API failure."""
    last = previous if _is_good(previous) else None
    tag = _read(etags).get(_ETAG_KEY) if last is not None else None
    owner, name = client.repo.split("/", 1)
    try:
        with client.talking(f"read the open issues of {client.repo}"):
            repo = client.gh.repository(owner, name)
            listing = repo.issues(state="open", sort="updated", direction="desc", etag=tag)
            items = [issue.as_dict() for issue in listing]
    except GitHubUnavailable as exc:
        return _unavailable(last, exc)
    if last is not None and listing.last_status == 304:
        kept = {k: v for k, v in last["detail"].items() if k != "unavailable"}
        return {"signal": last["signal"], "detail": kept}
    fresh = build(client.repo, items)
    if listing.etag:
        with contextlib.suppress(OSError):  # only an accelerator: next time asks in full
            etags.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(etags, json.dumps({_ETAG_KEY: listing.etag}), durable=False)
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


def _is_good(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and isinstance(value.get("signal"), dict)
        and "issues" in value["signal"]
        and isinstance(value.get("detail"), dict)
    )


def _read(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
