"""A local fake GitHub: recorded REST payloads served over real HTTP on 127.0.0.1.

The real github3.py talks to it exactly as to api.github.com: every absolute URL in a body
points back here, a list served in pages gets `Link` headers (with the query github3.py
expects to find again in `rel="next"`), every body has an ETag and a matching
`If-None-Match` gets a bodiless 304. Two kinds of content: `serve(path, …)` pins a recorded
payload to a path, and `repo(owner/name)` is a stateful repository (tests/fakerepo.py) whose
issues, comments, pull requests and workflow runs change as the client writes. Failures are
scripted: `fail_next(429, …)` answers the next requests with that status whatever they ask,
`slow_next(s)` delays them. `log` records every request — method, path, query, headers, the
JSON body, the status and the body size sent — for tests to assert on.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import parse_qsl, urlencode, urlsplit

from fakerepo import BOT, FakeRepo, Request, user

if TYPE_CHECKING:
    from looopbot.github.client import GitHubClient

FIXTURES = Path(__file__).parent / "fixtures" / "github"
RECORDED_BASE = "https://api.github.com"
DOCS = "https://docs.github.com/rest"


class Logged(NamedTuple):
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    status: int
    sent: int  # body bytes
    body: Any = None  # the request's JSON body, parsed


class _Scripted(NamedTuple):
    status: int
    headers: dict[str, str]
    body: dict[str, Any]
    path: str | None = None  # only a request for this path meets it


def client_for(
    fake: FakeGitHub,
    repo: str,
    token: str,
    *,
    sleep: Callable[[float], None] | None = None,
    max_wait: float = 0,
    **settings: Any,
) -> GitHubClient:
    """looopbot's GitHub client of `repo` on this fake, the token from GITHUB_TOKEN as a
    real run gets it; rate-limit waits are not slept unless `sleep` says otherwise."""
    from looopbot import config
    from looopbot.github.client import connect

    base = config._build({"github": {}}, {}).github
    assert base is not None
    return connect(
        base._replace(api_url=fake.base_url, **settings),
        repo,
        env={"GITHUB_TOKEN": token},
        sleep=sleep if sleep is not None else (lambda _s: None),
        max_wait=max_wait,
    )


def fixture(name: str) -> Any:
    """A recorded payload, as JSON data (still with api.github.com URLs)."""
    return json.loads((FIXTURES / name).read_text())


class FakeGitHub:
    """Start with `with FakeGitHub() as fake:`; `fake.base_url` is its API root."""

    def __init__(self) -> None:
        self.routes: dict[str, list[str]] = {}  # path -> pages of JSON text
        self.repos: dict[str, FakeRepo] = {}
        self.users: dict[str, str] = {}  # token -> login; any other token is the bot's
        self.log: list[Logged] = []
        self._script: list[_Scripted] = []
        self._aimed: list[tuple[str, str, _Scripted]] = []  # (method, path, answer)
        self._delays: list[float] = []
        # Reentrant: a repository's handlers run under it and may read through helpers.
        self._lock = threading.RLock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        # A short poll: shutdown() waits for the serving loop to look, 0.5 s by default.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> FakeGitHub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop serving and free the port: a later request is refused."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()

    def serve(self, path: str, *pages: Any) -> None:
        """Serve GET `path`: one payload, or several as pages. A `str` names a fixture file;
        anything else is served as JSON. Recorded URLs are rewritten to point here."""
        texts = [
            json.dumps(fixture(p) if isinstance(p, str) else p).replace(
                RECORDED_BASE, self.base_url
            )
            for p in pages
        ]
        with self._lock:
            self.routes[path] = texts

    def repo(self, full_name: str = "octocat/Hello-World") -> FakeRepo:
        """The stateful repository `owner/name`, made on first use."""
        with self._lock:
            if full_name not in self.repos:
                self.repos[full_name] = FakeRepo(full_name, self.base_url, self._lock)
            return self.repos[full_name]

    def slow_next(self, seconds: float, *, times: int = 1) -> None:
        """Delay the answers to the next `times` requests by `seconds`."""
        with self._lock:
            self._delays.extend([seconds] * times)

    def fail_next(
        self,
        status: int,
        message: str = "",
        *,
        headers: dict[str, str] | None = None,
        errors: list[Any] | None = None,
        times: int = 1,
        path: str | None = None,
    ) -> None:
        """Answer the next `times` requests (for `path` only, when given) with this error."""
        body: dict[str, Any] = {"message": message or f"HTTP {status}", "documentation_url": DOCS}
        if errors:
            body["errors"] = errors
        with self._lock:
            self._script.extend([_Scripted(status, headers or {}, body, path)] * times)

    def fail_on(self, method: str, path: str, status: int, message: str = "") -> None:
        """Answer the next `method` request for exactly `path` with this error, once."""
        body = {"message": message or f"HTTP {status}", "documentation_url": DOCS}
        with self._lock:
            self._aimed.append((method, path, _Scripted(status, {}, body)))

    def heal(self) -> None:
        """Drop the scripted failures not yet answered: GitHub is back."""
        with self._lock:
            self._script.clear()
            self._aimed.clear()

    def requests(self, path: str | None = None) -> list[Logged]:
        with self._lock:
            return [r for r in self.log if path is None or r.path == path]

    def _answer(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: Any
    ) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            delay = self._delays.pop(0) if self._delays else 0.0
            due = [i for i, e in enumerate(self._script) if e.path in (None, path)]
            scripted = self._script.pop(due[0]) if due else None
            aimed = [i for i, (m, p, _) in enumerate(self._aimed) if (m, p) == (method, path)]
            if scripted is None and aimed:
                scripted = self._aimed.pop(aimed[0])[2]
            pages = self.routes.get(path) if method == "GET" else None
        if delay:
            time.sleep(delay)
        if scripted is not None:
            return scripted.status, scripted.headers, json.dumps(scripted.body).encode()
        if pages is None:
            return self._stateful(method, path, query, headers, body)
        return self._paged(path, query, headers, pages)

    def _stateful(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: Any
    ) -> tuple[int, dict[str, str], bytes]:
        token = headers.get("authorization", "").partition(" ")[2]
        login = self.users.get(token, BOT)
        answer = None
        if method == "GET" and path == "/user":
            answer = 200, user(login, self.base_url)
        parts = path.split("/", 4)  # '', 'repos', owner, name, rest
        if len(parts) >= 4 and parts[1] == "repos":
            with self._lock:
                repo = self.repos.get(f"{parts[2]}/{parts[3]}")
            rest = "/" + parts[4] if len(parts) == 5 else ""
            if repo is not None:
                answer = repo.answer(Request(method, path, query, body, login), rest)
        if answer is None:
            return 404, {}, json.dumps({"message": "Not Found", "documentation_url": DOCS}).encode()
        status, data = answer
        if status == 204 or data is None:
            return status, {}, b""
        if status != 200 or method != "GET":
            return status, {}, json.dumps(data).encode()
        if isinstance(data, list):
            size = min(100, max(1, int(query.get("per_page", "30"))))
            pages = [json.dumps(data[i : i + size]) for i in range(0, len(data), size)] or ["[]"]
            return self._paged(path, query, headers, pages)
        return self._paged(path, query, headers, [json.dumps(data)])

    def _paged(
        self, path: str, query: dict[str, str], headers: dict[str, str], pages: list[str]
    ) -> tuple[int, dict[str, str], bytes]:
        page = int(query.get("page", "1"))
        if not 1 <= page <= len(pages):
            return 200, {}, b"[]"
        body = pages[page - 1].encode()
        out = {"ETag": '"' + hashlib.sha256(body).hexdigest()[:32] + '"'}
        if len(pages) > 1:
            out["Link"] = self._links(path, query, page, len(pages))
        if headers.get("if-none-match") == out["ETag"]:
            return 304, out, b""
        return 200, out, body

    def _links(self, path: str, query: dict[str, str], page: int, last: int) -> str:
        def url(n: int) -> str:
            return f"{self.base_url}{path}?{urlencode({**query, 'page': str(n)})}"

        rels = []
        if page < last:
            rels += [(page + 1, "next"), (last, "last")]
        if page > 1:
            rels += [(1, "first"), (page - 1, "prev")]
        return ", ".join(f'<{url(n)}>; rel="{rel}"' for n, rel in rels)


def _handler(fake: FakeGitHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _any(self) -> None:
            parts = urlsplit(self.path)
            query = dict(parse_qsl(parts.query))
            headers = {k.lower(): v for k, v in self.headers.items()}
            length = int(headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                sent = json.loads(raw) if raw else None
            except ValueError:
                sent = None
            status, extra, body = fake._answer(self.command, parts.path, query, headers, sent)
            # Logged before answering: the client may look at the log the moment it has read.
            with fake._lock:
                fake.log.append(
                    Logged(self.command, parts.path, query, headers, status, len(body), sent)
                )
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            extra = {"X-RateLimit-Limit": "5000", "X-RateLimit-Remaining": "4999", **extra}
            for key, value in extra.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _any

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the request log is `fake.log`, not stderr

    return Handler
