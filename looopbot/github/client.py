"""The one door to GitHub: github3.py on a session that waits out rate limits (DESIGN §10).

github3.py turns HTTP errors into exceptions but does nothing about rate limits, so the
session below reads `Retry-After` / `X-RateLimit-*` on every response and waits — within a
bounded total, so a beat is never held hostage by a reset an hour away — before trying the
same request again. Whatever still fails leaves `GitHubClient.talking` as one
`GitHubUnavailable` with a one-line message: a failing API is news for the beat, never a
traceback. The token lives only in the session's auth; no repr, message or log shows it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from looopbot.config import GitHubSettings
from looopbot.errors import LooopbotError
from looopbot.text import one_line

# GitHub's advice for a secondary limit that names no wait: "wait at least one minute".
_SECONDARY_WAIT = 60.0
_MESSAGE_CAP = 200


class GitHubUnavailable(LooopbotError):
    """GitHub could not answer; `kind` says why (auth, forbidden, not-found, invalid,
    rate-limited, unreachable, server, broken) for a caller that keeps its last good data."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def _session_class() -> type[Any]:
    # github3 (and requests under it) load only when GitHub is configured: an unchanged
    # beat must not pay for them.
    from github3.session import GitHubSession

    class WaitingSession(GitHubSession):  # type: ignore[misc]
        """A github3 session that waits out rate limits, up to `max_wait` per request."""

        def __init__(self, max_wait: float, sleep: Callable[[float], None], timeout: float) -> None:
            super().__init__(default_connect_timeout=timeout, default_read_timeout=timeout)
            self.max_wait = max_wait
            self.sleep = sleep
            self.remaining: int | None = None  # the last X-RateLimit-Remaining seen

        def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            waited = 0.0
            while True:
                response = super().request(method, url, *args, **kwargs)
                remaining = response.headers.get("X-RateLimit-Remaining", "")
                if remaining.isdigit():
                    self.remaining = int(remaining)
                delay = rate_limit_wait(
                    response.status_code, response.headers, response.text, time.time()
                )
                if delay is None:
                    return response
                if waited + delay > self.max_wait:
                    raise GitHubUnavailable("rate-limited", _limited(response.headers, delay))
                self.sleep(delay)
                waited += delay

    return WaitingSession


def rate_limit_wait(status: int, headers: Any, body: str, now: float) -> float | None:
    """Seconds to wait before trying again, or None when the response is not rate limited
    (an ordinary 403 is a permission problem, and waiting would not help)."""
    if status not in (403, 429):
        return None
    retry_after = headers.get("Retry-After", "")
    if retry_after.strip().isdigit():
        return float(retry_after)
    if headers.get("X-RateLimit-Remaining") == "0":
        reset = headers.get("X-RateLimit-Reset", "")
        return max(1.0, float(reset) - now) if reset.isdigit() else _SECONDARY_WAIT
    if status == 429 or "secondary rate limit" in body.lower():
        return _SECONDARY_WAIT
    return None


def _limited(headers: Any, delay: float) -> str:
    reset = headers.get("X-RateLimit-Reset", "")
    if headers.get("X-RateLimit-Remaining") == "0" and reset.isdigit():
        when = datetime.fromtimestamp(int(reset), UTC).strftime("%H:%M UTC")
        return f"GitHub rate limit exhausted until {when} — the last good data is kept"
    return f"GitHub asks to wait {delay:.0f}s (rate limit) — the last good data is kept"


def connect(
    settings: GitHubSettings, repo: str, env: Mapping[str, str] | None = None, **options: Any
) -> GitHubClient:
    """A client with the token from the variable `settings.token_env` names."""
    env = os.environ if env is None else env
    token = env.get(settings.token_env, "").strip()
    if not token:
        raise GitHubUnavailable(
            "auth",
            f"${settings.token_env} is not set — export a GitHub token with access to {repo} "
            "(github.token_env names the variable)",
        )
    return GitHubClient(settings, repo, token, **options)


class GitHubClient:
    """An authenticated github3.py client for one repository."""

    def __init__(
        self,
        settings: GitHubSettings,
        repo: str,
        token: str,
        *,
        max_wait: float = 60.0,
        timeout: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        import github3

        self.settings = settings
        self.repo = repo
        self.session = _session_class()(max_wait, sleep, timeout)
        # github3.GitHubEnterprise appends /api/v3 to a host; api_url is already the API
        # root (api.github.com, GHE's …/api/v3 or a test server), so set it as is.
        self.gh = github3.GitHub(token=token, session=self.session)
        self.session.base_url = settings.api_url

    def __repr__(self) -> str:
        # github3's own repr shows the token's first characters: never delegate to it.
        return (
            f"GitHubClient(repo={self.repo!r}, api_url={self.settings.api_url!r}, "
            f"token_env={self.settings.token_env!r})"
        )

    __str__ = __repr__

    @contextmanager
    def talking(self, what: str) -> Iterator[None]:
        """Run GitHub calls (and the iteration of their lazy, paginated results) inside;
        any failure leaves as one GitHubUnavailable saying `what` failed and why."""
        from github3 import exceptions as gx

        try:
            yield
        except GitHubUnavailable as exc:
            raise GitHubUnavailable(exc.kind, f"{what}: {exc.message}") from None
        except gx.TransportError as exc:
            raise GitHubUnavailable(
                "unreachable",
                f"{what}: cannot reach GitHub at {self.settings.api_url} "
                f"({_transport_reason(exc.exception)}) — the last good data is kept",
            ) from None
        except gx.GitHubError as exc:
            kind, text = self._explain(exc)
            raise GitHubUnavailable(kind, f"{what}: {text}") from None
        except gx.GitHubException as exc:
            raise GitHubUnavailable("broken", f"{what}: {_short(str(exc))}") from None

    def _explain(self, exc: Any) -> tuple[str, str]:
        said = _short(str(exc.msg or ""))
        code = exc.code
        var = f"${self.settings.token_env}"
        if code == 401:
            return "auth", f"GitHub refused the token in {var} (401 {said}) — renew or fix it"
        if code == 403:
            return (
                "forbidden",
                f"GitHub forbids this (403 {said}) — the token in {var} needs access to "
                f"{self.repo}",
            )
        if code == 404:
            return (
                "not-found",
                f"GitHub says not found (404) — check github.repo ({self.repo}) and that the "
                f"token in {var} can see it",
            )
        if code == 422:
            details = "; ".join(
                _short(str(e.get("message") or e.get("code") or e))
                if isinstance(e, dict)
                else _short(str(e))
                for e in exc.errors or []
            )
            return (
                "invalid",
                f"GitHub rejected the request (422 {said}{': ' + details if details else ''})",
            )
        if isinstance(code, int) and code >= 500:
            return "server", f"GitHub is failing ({code} {said}) — the last good data is kept"
        return "broken", f"GitHub answered {code} {said}"


def _transport_reason(exc: BaseException) -> str:
    text = str(exc).lower()
    for needle, reason in (
        ("refused", "connection refused"),
        ("timed out", "timed out"),
        ("name or service not known", "unknown host"),
        ("nodename nor servname", "unknown host"),
        ("temporary failure in name resolution", "unknown host"),
        ("certificate", "TLS certificate problem"),
    ):
        if needle in text:
            return reason
    return type(exc).__name__


def _short(text: str) -> str:
    # Server text is untrusted: one line, capped, and scrubbed of anything token-shaped.
    return one_line(text, _MESSAGE_CAP)
