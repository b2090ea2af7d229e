"""Conditional GETs (ETag / `If-None-Match`) with the data each answer yielded, per URL.

GitHub does not count a `304 Not Modified` against the rate limit, so a sensor that asks
every URL with the ETag of its last answer pays nothing for an unchanged world. A 304 has no
body, though: what the URL said last time must be at hand. So each URL's ETag is kept
together with the data distilled from its body (never the raw body: a page of issues is
hundreds of kilobytes, what the sensor needs a few), in one local scratch file — never git.
An entry is self-consistent on its own (this ETag, that data), so a 304 reuses it whatever
snapshot is on disk: a dry run or a beat that failed before committing cannot leave a tag
that hides a change.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlencode

from looopbot.fsutil import write_atomic
from looopbot.github.client import GitHubClient, GitHubUnavailable

# Bumped whenever what a distiller keeps changes: an older file is then ignored, not misread.
VERSION = 1
# A list longer than this many pages is read in part (and said so): a beat's work is bounded.
MAX_PAGES = 10

# body, github3 session object (its models want one) -> what the cache keeps
Distill = Callable[[Any, Any], Any]


class Entry(NamedTuple):
    etag: str
    data: Any  # what the distiller made of the body
    next: str | None  # the `Link: rel="next"` URL, which a bodiless 304 may not repeat


class Reader:
    """Reads URLs of one client conditionally; `save` keeps what was read for next time."""

    def __init__(self, client: GitHubClient, path: Path) -> None:
        self.client = client
        self.path = path
        self.old = _load(path)
        self.used: dict[str, Entry] = {}
        self.truncated: list[str] = []  # lists read only up to MAX_PAGES

    def url(self, path: str, **params: str | int) -> str:
        """The absolute URL of an API path, its query in a stable order (it is a cache key)."""
        query = urlencode(sorted((k, str(v)) for k, v in params.items()))
        return f"{self.client.settings.api_url}{path}" + (f"?{query}" if query else "")

    def one(self, url: str, distill: Distill) -> Any:
        """The distilled body of `url`, fresh or — on a 304 — as last read."""
        return self._get(url, distill).data

    def pages(self, url: str, distill: Distill) -> list[Any]:
        """The distilled pages of a paginated list, following `Link` up to MAX_PAGES. Each
        page is asked conditionally on its own: a 304 for page 1 says nothing about page 2
        (an item closed there shifts the later pages, not the first)."""
        out: list[Any] = []
        next_url: str | None = url
        while next_url is not None:
            if len(out) == MAX_PAGES:
                if url not in self.truncated:
                    self.truncated.append(url)
                break
            entry = self._get(next_url, distill)
            out.append(entry.data)
            next_url = entry.next
        return out

    def save(self, *, complete: bool) -> None:
        """Write the cache: after a complete reading only the URLs read (so it never grows
        past one world's worth), after a partial one also the older entries (still true)."""
        urls = self.used if complete else {**self.old, **self.used}
        record = {"version": VERSION, "urls": {u: e._asdict() for u, e in urls.items()}}
        with contextlib.suppress(OSError):  # only an accelerator: next time asks in full
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(self.path, json.dumps(record, sort_keys=True), durable=False)

    def _get(self, url: str, distill: Distill) -> Entry:
        from github3 import exceptions as gx
        from requests import RequestException

        if url in self.used:  # one answer per URL per beat, however often it is asked
            return self.used[url]
        known = self.old.get(url)
        headers = {"If-None-Match": known.etag} if known is not None else {}
        try:
            response = self.client.session.get(url, headers=headers)
        except RequestException as exc:
            # What github3's own calls raise for it, so `talking` words it the same way.
            raise gx.ConnectionError(exc) from None
        if response.status_code == 304 and known is not None:
            entry = known
        elif response.status_code == 200:
            try:
                body = response.json()
            except ValueError:
                raise GitHubUnavailable("broken", "GitHub answered 200 without JSON") from None
            following = response.links.get("next", {}).get("url")
            entry = Entry(
                response.headers.get("ETag", ""),
                _distilled(distill, body, self.client.gh),
                following,
            )
        elif response.status_code >= 400:
            raise gx.error_for(response)
        else:
            raise GitHubUnavailable("broken", f"GitHub answered {response.status_code}")
        if entry.etag:
            self.used[url] = entry
        return entry


def _distilled(distill: Distill, body: Any, gh: Any) -> Any:
    try:
        return distill(body, gh)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        # github3's models raise IncompleteResponse for a missing key (and `talking` words
        # it); anything else shaped wrong is the same news: not the GitHub we know.
        raise GitHubUnavailable(
            "broken", f"GitHub answered an unexpected body ({type(exc).__name__})"
        ) from None


def _load(path: Path) -> dict[str, Entry]:
    try:
        raw = json.loads(path.read_bytes())
        if raw["version"] != VERSION:
            return {}
        return {
            url: Entry(str(e["etag"]), e["data"], e["next"])
            for url, e in raw["urls"].items()
            if e["etag"]
        }
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}  # missing, older or damaged: ask everything in full once
