"""The Actions REST calls github3.py lacks (DESIGN §10): dispatch a workflow, read the
newest run of a branch, cancel a run — through the client's authenticated session, so
rate limits, the token and error messages are handled exactly as for every other call.

Only the fields looopbot uses are read from a run, and each is checked: a payload that is
not what GitHub documents is a `GitHubUnavailable("broken")`, never a KeyError in a beat.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple
from urllib.parse import quote

from looopbot.github.client import GitHubClient, GitHubUnavailable

# What GitHub's `status` of a run may be; `completed` runs carry a `conclusion`.
STATUSES = frozenset(
    {"requested", "queued", "pending", "waiting", "in_progress", "completed", "action_required"}
)


class Run(NamedTuple):
    id: int
    status: str
    conclusion: str | None  # success, failure, cancelled, timed_out, … once completed
    url: str  # the run's page, for a human

    def to_json(self) -> dict[str, Any]:
        return self._asdict()


class Listed(NamedTuple):
    """The newest run of a branch (None: none yet), or `unchanged` for a 304."""

    run: Run | None
    etag: str | None
    unchanged: bool = False


def _repo_url(client: GitHubClient) -> str:
    return f"{client.settings.api_url}/repos/{client.repo}/actions"


def _send(client: GitHubClient, method: str, url: str, **kwargs: Any) -> Any:
    """One request on the client's session; a transport failure or an error status is
    raised as github3 would, for `client.talking` to turn into one line."""
    import requests
    from github3 import exceptions as gx

    try:
        response = client.session.request(method, url, **kwargs)
    except requests.RequestException as exc:
        raise gx.TransportError(exc) from None
    if response.status_code >= 400:
        raise gx.error_for(response)
    return response


def dispatch(client: GitHubClient, workflow: str, ref: str, inputs: Mapping[str, str]) -> None:
    """POST …/workflows/{workflow}/dispatches: start `workflow` on branch `ref` (GitHub
    answers 204 with no body — the run id is not returned; find it with `newest_run`)."""
    url = f"{_repo_url(client)}/workflows/{quote(workflow, safe='')}/dispatches"
    with client.talking(f"dispatch {workflow} on {ref}"):
        _send(client, "POST", url, json={"ref": ref, "inputs": dict(inputs)})


def newest_run(
    client: GitHubClient, workflow: str, branch: str, *, etag: str | None = None
) -> Listed:
    """The newest workflow_dispatch run of `workflow` on `branch`. With `etag` (from an
    earlier answer) the request is conditional: a 304 costs no rate limit."""
    url = f"{_repo_url(client)}/workflows/{quote(workflow, safe='')}/runs"
    params = {"branch": branch, "event": "workflow_dispatch", "per_page": "1"}
    headers = {"If-None-Match": etag} if etag else {}
    with client.talking(f"read the runs of {branch}"):
        response = _send(client, "GET", url, params=params, headers=headers)
        if response.status_code == 304:
            return Listed(None, etag, unchanged=True)
        body = _json(response)
        runs = body.get("workflow_runs") if isinstance(body, dict) else None
        if not isinstance(runs, list):
            raise GitHubUnavailable("broken", "GitHub's run list has no workflow_runs")
        newest = max((parse_run(r) for r in runs), key=lambda r: r.id, default=None)
        return Listed(newest, response.headers.get("ETag"))


def cancel(client: GitHubClient, run_id: int) -> bool:
    """Cancel run `run_id`; False when it had already completed (GitHub's 409)."""
    from github3 import exceptions as gx

    url = f"{_repo_url(client)}/runs/{run_id}/cancel"
    with client.talking(f"cancel run {run_id}"):
        try:
            _send(client, "POST", url)
        except gx.GitHubError as exc:
            if exc.code == 409:
                return False
            raise
    return True


def parse_run(raw: Any) -> Run:
    """A run from GitHub's payload; raises GitHubUnavailable("broken") when a field that
    looopbot uses is missing or of the wrong kind."""
    if not isinstance(raw, dict):
        raise GitHubUnavailable("broken", "a workflow run is not a JSON object")
    rid, status, conclusion, url = (
        raw.get("id"),
        raw.get("status"),
        raw.get("conclusion"),
        raw.get("html_url"),
    )
    # bool is an int in Python: a `true` id is as wrong as a string one.
    if not isinstance(rid, int) or isinstance(rid, bool) or rid <= 0:
        raise GitHubUnavailable("broken", "a workflow run has no valid id")
    if status not in STATUSES:
        raise GitHubUnavailable("broken", f"workflow run {rid} has an unknown status")
    if conclusion is not None and not (isinstance(conclusion, str) and conclusion.isidentifier()):
        raise GitHubUnavailable("broken", f"workflow run {rid} has an invalid conclusion")
    if not isinstance(url, str) or not url.startswith(("https://", "http://")):
        url = ""
    return Run(rid, status, conclusion if status == "completed" else None, url)


def _json(response: Any) -> Any:
    try:
        return response.json()
    except ValueError:
        raise GitHubUnavailable(
            "broken", "GitHub answered with something that is not JSON"
        ) from None
