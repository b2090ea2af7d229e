"""Draft pull requests for workers' deliverables (DESIGN §10, `github.pull_requests`).

GitHub's half only: compose a PR's title and body, open it as a draft or update the one a
worker already has, and read its state back. Deciding when a worker deserves a PR, pushing
its branch and remembering the outcome is the worker side's (looopbot.workers.delivery).

One PR per worker branch: GitHub refuses a second open PR for a head (422 "already exists"),
and that refusal is taken as "find it and update it", never as a failure — so two clones
(or a supervisor and a beat's retry) racing to open it still end with one PR.

Merging stays a human act: nothing here, or anywhere in looopbot, calls the merge endpoint
(tests/test_drafts.py reads the package for one). A merged PR is the approval for the
irreversible steps its worker prepared; `state` reports it so the loop can wait for it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, NamedTuple

from looopbot.github.client import GitHubClient, GitHubUnavailable

TITLE_CAP = 80
TASK_CAP = 16 * 1024  # of the brief in the body (GitHub takes 65536 characters in all)
COMMITS_SHOWN = 50
# Hidden in the body: whose PR this is. A PR on the branch without it was opened by a
# human, and looopbot leaves its words alone.
_MARKER = "<!-- looopbot-worker: {} -->"
_MARKED = re.compile(r"<!-- looopbot-worker: ([A-Za-z0-9][A-Za-z0-9._-]{0,63}) -->")


class Draft(NamedTuple):
    title: str
    body: str


class Pull(NamedTuple):
    number: int
    url: str  # html_url, for a human
    state: str  # open | merged | closed
    ours: bool  # its body carries the marker of the worker it was looked up for
    made: bool = False  # opened by this call


class Verdict(NamedTuple):
    """What the worker's run came to, for the PR body."""

    exit_code: int | None
    verify: str | None  # the declared verify command, or None
    verdict: str | None  # pass | fail


def compose(
    wid: str, branch: str, task: str, run: Verdict, commits: Sequence[str], *, more: int = 0
) -> Draft:
    """Title and body of worker `wid`'s PR: its brief, the verify verdict and the commit list
    (`commits` as "<short sha> <subject>", `more` the ones left out)."""
    first = next((line.strip() for line in task.splitlines() if line.strip()), "")
    title = f"{wid}: {first}" if first else f"looopbot worker {wid}"
    if len(title) > TITLE_CAP:
        title = title[: TITLE_CAP - 1].rstrip() + "…"
    if run.verify:
        checked = f"**{run.verdict or 'not run'}** — `{_inline(run.verify)}`"
    else:
        checked = "none declared"
    listed = "\n".join(
        f"- `{sha}` {subject}" for sha, _, subject in (c.partition(" ") for c in commits)
    )
    if more:
        listed += f"\n- … and {more} more"
    shown = task if len(task) <= TASK_CAP else task[:TASK_CAP] + "\n[… the brief is cut here …]"
    fence = "~" * max(3, 1 + max((len(m) for m in re.findall(r"~+", shown)), default=0))
    body = f"""{_MARKER.format(wid)}
Draft pull request opened by looopbot for worker `{wid}` (branch `{branch}`).
Merging it is a human's step — and the approval for any irreversible step the worker
prepared. looopbot never merges.

- **Exit code:** {run.exit_code if run.exit_code is not None else "unknown"}
- **Verify:** {checked}

### Commits

{listed or "(none)"}

### Brief

{fence}text
{shown.strip()}
{fence}
"""
    return Draft(title, body)


def _inline(text: str) -> str:
    return " ".join(text.split()).replace("`", "'")


def publish(
    client: GitHubClient, wid: str, branch: str, base: str, draft: Draft, *, known: int | None
) -> Pull:
    """Open `draft` as worker `wid`'s draft PR from `branch` to `base`, or update its open
    one (`known`: the number it had, if any). Raises GitHubUnavailable."""
    with client.talking(f"open or update the pull request for {branch}"):
        if known is not None:
            found = _get(client, known, branch)
            if found is not None and found.get("state") == "open" and not _merged(found):
                return _update(client, found, draft, wid)
        try:
            return _create(client, wid, branch, base, draft)
        except GitHubUnavailable as exc:
            if exc.kind != "exists":
                raise
        # One is open for this head already (a fresh clone, a racing retry): that one.
        found = _find_open(client, branch)
        if found is None:
            raise GitHubUnavailable(
                "invalid", f"GitHub says a pull request for {branch} exists, but none is open"
            )
        return _update(client, found, draft, wid)


def refresh(
    client: GitHubClient, number: int, wid: str, etag: str | None
) -> tuple[Pull, str] | None:
    """PR `number`'s state now and its ETag; None when it is unchanged since `etag` (a 304,
    which GitHub does not count against the rate limit). Raises GitHubUnavailable."""
    from github3 import exceptions as gx

    url = f"{client.settings.api_url}/repos/{client.repo}/pulls/{number}"
    with client.talking(f"read pull request #{number}"):
        response = client.session.get(url, headers={"If-None-Match": etag} if etag else {})
        if response.status_code == 304:
            return None
        if response.status_code != 200:
            raise gx.error_for(response)
        return _pull(_json(response), wid), response.headers.get("ETag", "")


def _create(client: GitHubClient, wid: str, branch: str, base: str, draft: Draft) -> Pull:
    from github3 import exceptions as gx

    # github3.py's create_pull has no `draft` argument (it predates draft PRs), so the
    # request goes through its authenticated session: same auth, rate-limit waits, errors.
    url = f"{client.settings.api_url}/repos/{client.repo}/pulls"
    payload = {"title": draft.title, "body": draft.body, "head": branch, "base": base}
    response = client.session.post(url, json={**payload, "draft": True})
    if response.status_code == 201:
        return _pull(_json(response), wid)._replace(made=True)
    error = gx.error_for(response)
    said = " ".join(
        str(e.get("message", "")) if isinstance(e, dict) else str(e) for e in error.errors or []
    ).lower()
    if response.status_code == 422 and "already exists" in said:
        raise GitHubUnavailable("exists", "a pull request for this branch is open already")
    if response.status_code == 422 and "no commits between" in said:
        raise GitHubUnavailable("empty", f"{base} already holds every commit of {branch}")
    raise error


def _get(client: GitHubClient, number: int, branch: str) -> dict[str, Any] | None:
    from github3 import exceptions as gx

    owner, name = client.repo.split("/")
    try:
        found = client.gh.pull_request(owner, name, number)
    except gx.NotFoundError:
        return None  # the repository changed: look it up by head instead
    data: dict[str, Any] | None = None if found is None else found.as_dict()
    if data is None or (data.get("head") or {}).get("ref") != branch:
        return None  # not this branch's (github.repo now names another repository)
    return data


def _find_open(client: GitHubClient, branch: str) -> dict[str, Any] | None:
    from github3.pulls import ShortPullRequest
    from github3.structs import GitHubIterator

    owner = client.repo.split("/")[0]
    url = f"{client.settings.api_url}/repos/{client.repo}/pulls"
    params = {"state": "open", "head": f"{owner}:{branch}"}
    for item in GitHubIterator(-1, url, ShortPullRequest, client.gh, params=params):
        found: dict[str, Any] = item.as_dict()
        return found
    return None


def _update(client: GitHubClient, data: dict[str, Any], draft: Draft, wid: str) -> Pull:
    """Bring the PR's title and body up to `draft`, with no call when they already are
    (a retry after a lost answer); a PR without our marker is a human's, left as it is."""
    pull = _pull(data, wid)
    if not pull.ours or (data.get("title"), data.get("body")) == draft:
        return pull
    url = f"{client.settings.api_url}/repos/{client.repo}/pulls/{pull.number}"
    response = client.session.patch(url, json={"title": draft.title, "body": draft.body})
    if response.status_code != 200:
        from github3 import exceptions as gx

        raise gx.error_for(response)
    return _pull(_json(response), wid)


def _json(response: Any) -> dict[str, Any]:
    """A PR from GitHub's answer; anything else (a proxy's HTML page) is a failure to say,
    never a crashed beat."""
    try:
        data = response.json()
    except ValueError:
        data = None
    if not isinstance(data, dict) or not isinstance(data.get("number"), int):
        raise GitHubUnavailable(
            "broken", f"GitHub answered {response.status_code} without a pull request"
        )
    return data


def _merged(data: dict[str, Any]) -> bool:
    return bool(data.get("merged") or data.get("merged_at"))


def _pull(data: dict[str, Any], wid: str) -> Pull:
    state = "closed" if data.get("state") == "closed" else "open"
    if _merged(data):
        state = "merged"
    marked = _MARKED.search(str(data.get("body") or ""))
    return Pull(
        int(data["number"]),
        str(data.get("html_url") or ""),
        state,
        marked is not None and marked[1] == wid,
    )
