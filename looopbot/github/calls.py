"""Plain REST calls on the client's authenticated session: conditional reads and small writes.

github3.py's objects cannot ask for one issue conditionally (`If-None-Match`), and fetch
their parent before they write. The dashboard needs both to be exact: an unchanged beat
must cost a 304 (free of rate limit), and a write exactly one request. Call inside
`GitHubClient.talking`, which turns any failure into one GitHubUnavailable line.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from looopbot.github.client import GitHubClient, GitHubUnavailable, _transport_reason

_MAX_PAGES = 10  # a list longer than 1,000 items was not made by a human in one beat


class Answer(NamedTuple):
    status: int
    etag: str | None
    data: Any  # the parsed JSON body; None for a 304 or an empty body
    next_url: str | None  # the `Link: rel="next"` page


def call(
    client: GitHubClient,
    method: str,
    path: str,
    *,
    etag: str | None = None,
    body: Any = None,
    params: dict[str, str] | None = None,
) -> Answer:
    """One request to `path` (below the API root, or a whole URL from a `Link` header)."""
    import requests
    from github3 import exceptions as gx

    url = path if "://" in path else client.settings.api_url + path
    headers = {"If-None-Match": etag} if etag else {}
    try:
        response = client.session.request(method, url, headers=headers, json=body, params=params)
    except requests.RequestException as exc:
        raise GitHubUnavailable(
            "unreachable",
            f"cannot reach GitHub at {client.settings.api_url} ({_transport_reason(exc)})",
        ) from None
    if response.status_code == 304:
        return Answer(304, etag, None, None)
    if response.status_code >= 400:
        raise gx.error_for(response)  # `talking` explains it in one line
    try:
        data = response.json() if response.content else None
    except ValueError:
        raise GitHubUnavailable(
            "broken", f"GitHub answered {method} {path} with a body that is not JSON"
        ) from None
    following = response.links.get("next", {}).get("url")
    return Answer(response.status_code, response.headers.get("ETag"), data, following)


def listing(
    client: GitHubClient, path: str, *, etag: str | None = None, params: dict[str, str]
) -> Answer:
    """Every page of a list; `etag` is page 1's. A 304 (page 1 unchanged) has data None."""
    first = call(client, "GET", path, etag=etag, params={"per_page": "100", **params})
    if first.status == 304:
        return first
    items = list(first.data or [])
    following, pages = first.next_url, 1
    while following and pages < _MAX_PAGES:
        page = call(client, "GET", following)
        items += page.data or []
        following, pages = page.next_url, pages + 1
    # Page 1's ETag covers page 1 only: a list that runs on grows on its last page, and a
    # 304 for page 1 would hide the new items there for good. A long list is read whole.
    return first._replace(data=items, next_url=None, etag=first.etag if pages == 1 else None)
