"""The built-in `github` sensor (DESIGN §3, §10): open issues and pull requests, failing
checks on the default branch and on each open PR's head, and comments that mention the bot.

Identity and state are the `signal` — numbers, labels, author association, draft, a PR's
mergeable state and review decision, which checks fail and how, the ids of the newest
mentions — so a new issue, a new label, a red check, a changed review or a new mention wakes
the loop. Words, URLs and times are `detail`, so an edited title or a re-run that fails the
same way does not. Every URL is asked conditionally (`conditional.py`): an unchanged world
costs only 304s, which GitHub does not count. The work is bounded (MAX_PULLS PRs, pages per
list), and says so in `detail` when it is. Any failed request keeps the whole last snapshot,
marked in `detail`: a signal is never half old, half new.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import quote

from looopbot.config import Config
from looopbot.datadir import DataDir
from looopbot.errors import LooopbotError
from looopbot.github import checks, conditional, mentions, pulls
from looopbot.github.client import GitHubClient, GitHubUnavailable, connect
from looopbot.redact import redact_value, redactor

NAME = "sys-github"  # sys-: a user's sensors/github.sh must not collide with it
ETAGS = "github-etags.json"  # local scratch: per URL, the ETag and what its answer said
# Pull requests looked into per beat (4 requests each), the most recently updated first.
MAX_PULLS = 20
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
    client: GitHubClient, cache: Path, previous: Any, scrub: Callable[[str], str] = str
) -> dict[str, Any]:
    """The `github` snapshot; `previous` is the last one (or None), `cache` the scratch file
    of conditional requests, `scrub` the redaction for its strings. Never raises for an API
    failure: any failed request keeps the whole last snapshot, marked — never half of one."""
    last = _kept(previous)
    reader = conditional.Reader(client, cache)
    try:
        reading = read(reader, client.repo, client.settings.mention)
    except GitHubUnavailable as exc:
        reader.save(complete=False)
        return _unavailable(last, exc)
    reader.save(complete=True)
    fresh: dict[str, Any] = redact_value(build(reading, last), scrub)
    return fresh


class Reading(NamedTuple):
    """Everything one beat read, distilled; `build` makes the snapshot of it."""

    repo: str
    items: list[dict[str, Any]]  # open issues and PRs, most recently updated first
    default_branch: str
    branch_failing: list[dict[str, Any]]
    pulls: dict[int, dict[str, Any]]  # the PRs looked into: head, mergeability, reviews, checks
    mentions: list[dict[str, Any]]
    truncated: list[str]


def read(reader: conditional.Reader, repo: str, mention: str) -> Reading:
    """Ask GitHub (conditionally) for everything the snapshot holds; raises
    GitHubUnavailable naming what failed."""
    with reader.client.talking(f"read the open issues of {repo}"):
        # Most recently updated first: the PRs looked into are the livelier ones.
        url = reader.url(
            f"/repos/{repo}/issues", state="open", sort="updated", direction="desc", per_page=100
        )
        items = [item for page in reader.pages(url, _items) for item in page]
    with reader.client.talking(f"read the default branch of {repo}"):
        # From the repository itself (asked with its ETag too, so free while unchanged):
        # the local clone's idea of it may be stale or of another repository.
        branch = reader.one(reader.url(f"/repos/{repo}"), _default_branch)
    with reader.client.talking(f"read the checks of {repo}'s {branch}"):
        branch_failing = checks.failing(reader, repo, checks.branch_ref(branch))
    looked: dict[int, dict[str, Any]] = {}
    for item in [i for i in items if i["pull_request"]][:MAX_PULLS]:
        number = item["number"]
        with reader.client.talking(f"read pull request #{number} of {repo}"):
            pull = pulls.read(reader, repo, number)
            looked[number] = {
                **pull,
                "failing": checks.failing(reader, repo, quote(pull["head_sha"], safe="")),
            }
    with reader.client.talking(f"read the comments of {repo}"):
        found = mentions.read(reader, repo, mention)
    return Reading(repo, items, branch, branch_failing, looked, found, reader.truncated)


def build(reading: Reading, last: dict[str, Any] | None = None) -> dict[str, Any]:
    """Signal and detail from a reading; `last` (the previous good snapshot) lends a pull
    request its last known mergeable state while GitHub is still computing it."""
    known = {
        p["number"]: p.get("mergeable_state")
        for p in (last or {}).get("signal", {}).get("pull_requests", [])
    }
    issues: list[dict[str, Any]] = []
    prs: list[dict[str, Any]] = []
    items: dict[str, Any] = {}
    pull_detail: dict[str, Any] = {}
    for item in sorted(reading.items, key=lambda i: int(i["number"])):
        number = item["number"]
        ident: dict[str, Any] = {
            "number": number,
            "labels": item["labels"],
            "author_association": item["author_association"],
        }
        items[str(number)] = {k: item[k] for k in ("title", "url", "created_at", "updated_at")}
        if not item["pull_request"]:
            issues.append(ident)
            continue
        ident["draft"] = item["draft"]
        looked = reading.pulls.get(number)
        if looked is not None:
            ident["mergeable_state"] = pulls.settled(looked["mergeable_state"], known.get(number))
            ident["review_decision"] = looked["review_decision"]
            ident["failing"] = checks.signal(looked["failing"])
            pull_detail[str(number)] = {
                "head_sha": looked["head_sha"],
                "mergeable_state_said": looked["mergeable_state"],
                "failing": looked["failing"],
            }
        prs.append(ident)
    detail: dict[str, Any] = {
        "repo": reading.repo,
        "items": items,
        "pull_requests": pull_detail,
        "default_branch": {"failing": reading.branch_failing},
        "mentions": {
            str(m["id"]): {k: v for k, v in m.items() if k != "id"} for m in reading.mentions
        },
    }
    if len(prs) > len(reading.pulls):
        detail["capped"] = (
            f"{len(prs)} open pull requests; mergeability, reviews and checks read for the "
            f"{len(reading.pulls)} most recently updated"
        )
    if reading.truncated:
        detail["truncated"] = f"lists read up to {conditional.MAX_PAGES} pages: " + ", ".join(
            reading.truncated
        )
    signal = {
        "issues": issues,
        "pull_requests": prs,
        "default_branch": {
            "name": reading.default_branch,
            "failing": checks.signal(reading.branch_failing),
        },
        "mentions": [m["id"] for m in reading.mentions],
    }
    return {"signal": signal, "detail": detail}


def _items(body: Any, gh: Any) -> list[dict[str, Any]]:
    from github3.issues import ShortIssue

    out = []
    for raw in body:
        issue = ShortIssue(raw, gh)  # github3 checks the shape: a missing key is an error
        if issue.state != "open":
            continue
        out.append(
            {
                "number": issue.number,
                "labels": sorted(label["name"] for label in raw["labels"] or []),
                "author_association": raw.get("author_association") or "NONE",
                "pull_request": issue.pull_request_urls is not None,
                "draft": bool(raw.get("draft")),
                "title": issue.title or "",
                "url": issue.html_url or "",
                "created_at": raw["created_at"],
                "updated_at": raw["updated_at"],
            }
        )
    return out


def _default_branch(body: Any, gh: Any) -> str:
    branch = body["default_branch"]
    if not isinstance(branch, str) or not branch:
        raise ValueError("no default branch")
    return branch


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


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
