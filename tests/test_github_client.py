"""The GitHub client (DESIGN §10): which repository, rate limits, one-line errors, a token
that never shows. The HTTP tests drive the real github3.py against tests/fakegithub.py."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import git
from fakegithub import FakeGitHub

from looopbot import config
from looopbot.config import GitHubSettings
from looopbot.datadir import DataDir
from looopbot.errors import LooopbotError
from looopbot.github import repo as ghrepo
from looopbot.github.client import GitHubClient, GitHubUnavailable, connect, rate_limit_wait

TOKEN = "ghp_" + "S3cr3t" * 6  # token-shaped, so redact() would also catch a leak


def settings(**kw: object) -> GitHubSettings:
    base = config._build({"github": {}}, {}).github
    assert base is not None
    return base._replace(**kw)


# --- which repository ------------------------------------------------------------------------

DOTCOM = ghrepo.hosts("https://api.github.com")


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com/me/loop.git",
        "https://github.com/me/loop",
        "https://github.com/me/loop/",
        "https://x-access-token:abc@github.com/me/loop.git",
        "git@github.com:me/loop.git",
        "git@github.com:me/loop",
        "ssh://git@github.com/me/loop.git",
        "ssh://git@ssh.github.com:443/me/loop.git",
        "  https://github.com/me/loop.git\n",
    ],
)
def test_repo_from_github_urls(url: str) -> None:
    assert ghrepo.from_url(url, DOTCOM) == "me/loop"


@pytest.mark.parametrize(
    "url",
    [
        "https://gitlab.com/me/loop.git",
        "git@gitlab.com:me/loop.git",
        "https://github.com/me",
        "https://github.com/me/loop/tree/main",
        "/srv/git/loop.git",
        "file:///srv/git/loop.git",
        "",
    ],
)
def test_repo_from_other_urls_is_none(url: str) -> None:
    assert ghrepo.from_url(url, DOTCOM) is None


def test_enterprise_hosts_come_from_api_url() -> None:
    ghe = ghrepo.hosts("https://ghe.example.com/api/v3")
    assert ghrepo.from_url("git@ghe.example.com:team/loop.git", ghe) == "team/loop"
    assert ghrepo.from_url("https://github.com/team/loop.git", ghe) is None


def _git_repo(tmp_path: Path, origin: str | None) -> DataDir:
    git(tmp_path, "init", "-q")
    if origin:
        git(tmp_path, "remote", "add", "origin", origin)
    return DataDir(root=tmp_path, repo_root=tmp_path)


def test_resolve_reads_the_origin_remote(tmp_path: Path) -> None:
    dd = _git_repo(tmp_path, "git@github.com:me/loop.git")
    cfg = config._build({}, {})
    assert ghrepo.resolve(dd, cfg, settings()) == "me/loop"
    assert ghrepo.resolve(dd, cfg, settings(repo="other/one")) == "other/one"


def test_resolve_without_a_github_origin_says_what_to_set(tmp_path: Path) -> None:
    dd = _git_repo(tmp_path, "https://user:hunter2hunter2@gitlab.com/me/loop.git")
    with pytest.raises(LooopbotError) as exc:
        ghrepo.resolve(dd, config._build({}, {}), settings())
    assert "github.repo" in exc.value.message and "'origin'" in exc.value.message
    assert "hunter2" not in exc.value.message


def test_resolve_follows_git_remote(tmp_path: Path) -> None:
    dd = _git_repo(tmp_path, "https://gitlab.com/me/loop.git")
    git(tmp_path, "remote", "add", "hub", "https://github.com/me/mirror.git")
    cfg = config._build({"git": {"remote": "hub"}}, {})
    assert ghrepo.resolve(dd, cfg, settings()) == "me/mirror"


# --- rate limits, as pure decisions --------------------------------------------------------


def test_rate_limit_wait() -> None:
    now = 1_000_000.0
    assert rate_limit_wait(200, {"X-RateLimit-Remaining": "0"}, "", now) is None
    assert rate_limit_wait(403, {}, '{"message": "Resource not accessible"}', now) is None
    assert rate_limit_wait(429, {"Retry-After": "7"}, "", now) == 7
    assert rate_limit_wait(403, {"Retry-After": "3"}, "", now) == 3
    primary = {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(now) + 42)}
    assert rate_limit_wait(403, primary, "", now) == 42
    assert rate_limit_wait(403, {}, "You have exceeded a secondary rate limit", now) == 60
    assert rate_limit_wait(429, {}, "", now) == 60


# --- the token never shows ---------------------------------------------------------------------


def test_no_token_is_a_clear_error_naming_the_variable() -> None:
    with pytest.raises(GitHubUnavailable) as exc:
        connect(settings(token_env="LOOP_GH"), "me/loop", env={"GITHUB_TOKEN": TOKEN})
    assert exc.value.kind == "auth"
    assert "$LOOP_GH is not set" in exc.value.message and TOKEN not in exc.value.message


def test_repr_and_str_hide_the_token() -> None:
    client = connect(settings(), "me/loop", env={"GITHUB_TOKEN": TOKEN})
    assert isinstance(client, GitHubClient)
    for shown in (repr(client), str(client), repr(client.settings), str(client.settings)):
        assert TOKEN[:8] not in shown and "S3cr3t" not in shown, shown
    assert "me/loop" in repr(client) and "GITHUB_TOKEN" in repr(client)
    assert str(client) == repr(client)


# --- against a fake GitHub, through the real github3.py --------------------------------------

REPO = "/repos/octocat/Hello-World"


@pytest.fixture
def fake() -> Iterator[FakeGitHub]:
    with FakeGitHub() as server:
        server.serve(REPO, "repo_example.json")
        server.serve(f"{REPO}/issues", "issues_list_page1.json", "issues_list_page2.json")
        yield server


class Sleeps(list[float]):
    """Records the client's waits instead of sleeping them (the waits are what is tested)."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def client_for(fake: FakeGitHub, sleeps: Sleeps | None = None, max_wait: float = 60) -> Any:
    return connect(
        settings(api_url=fake.base_url),
        "octocat/Hello-World",
        env={"GITHUB_TOKEN": TOKEN},
        sleep=sleeps if sleeps is not None else Sleeps(),
        max_wait=max_wait,
    )


def unavailable(client: GitHubClient, call: Callable[[], object]) -> GitHubUnavailable:
    with pytest.raises(GitHubUnavailable) as exc, client.talking("read the repository"):
        call()
    message = exc.value.message
    assert message.startswith("read the repository: "), message
    assert "\n" not in message and TOKEN not in message and "S3cr3t" not in message
    return exc.value


def repository(client: GitHubClient) -> Any:
    return client.gh.repository("octocat", "Hello-World")


def test_pagination_follows_link_over_two_pages(fake: FakeGitHub) -> None:
    client = client_for(fake)
    with client.talking("list issues"):
        issues = list(repository(client).issues(state="all"))
    assert len(issues) == 150
    pages = [r.query.get("page", "1") for r in fake.requests(f"{REPO}/issues")]
    assert pages == ["1", "2"]
    # The token goes to GitHub, in the header, and nowhere else.
    assert {r.headers["authorization"] for r in fake.log} == {f"token {TOKEN}"}
    assert client.session.remaining == 4999


def test_a_matching_etag_costs_no_body(fake: FakeGitHub) -> None:
    client = client_for(fake)
    with client.talking("list issues"):
        repo = repository(client)
        first = repo.issues(state="open")
        assert len(list(first)) == 150
        again = repo.issues(state="open", etag=first.etag)
        assert list(again) == []
    assert again.last_status == 304
    last = fake.requests(f"{REPO}/issues")[-1]
    assert last.headers["if-none-match"] == first.etag
    assert (last.status, last.sent) == (304, 0)


def test_retry_after_is_waited_then_the_request_succeeds(fake: FakeGitHub) -> None:
    sleeps = Sleeps()
    client = client_for(fake, sleeps)
    fake.fail_next(429, "too many", headers={"Retry-After": "7"})
    with client.talking("read the repository"):
        assert repository(client).full_name == "octocat/Hello-World"
    assert sleeps == [7.0]
    assert [r.status for r in fake.requests(REPO)] == [429, 200]


def test_a_primary_limit_resetting_soon_is_waited_out(fake: FakeGitHub) -> None:
    sleeps = Sleeps()
    client = client_for(fake, sleeps, max_wait=120)
    reset = str(int(time.time()) + 30)
    fake.fail_next(403, "API rate limit exceeded", headers=limit_headers(reset))
    with client.talking("read the repository"):
        repository(client)
    assert len(sleeps) == 1 and 0 < sleeps[0] <= 30
    assert [r.status for r in fake.requests(REPO)] == [403, 200]


def limit_headers(reset: str) -> dict[str, str]:
    return {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset}


def test_an_exhausted_rate_limit_is_a_clear_error_without_waiting(fake: FakeGitHub) -> None:
    sleeps = Sleeps()
    client = client_for(fake, sleeps, max_wait=60)
    fake.fail_next(
        403, "API rate limit exceeded", headers=limit_headers(str(int(time.time()) + 3600))
    )
    err = unavailable(client, lambda: repository(client))
    assert err.kind == "rate-limited" and "rate limit exhausted until" in err.message
    assert sleeps == [] and len(fake.requests(REPO)) == 1


def test_secondary_limits_are_waited_only_within_the_bound(fake: FakeGitHub) -> None:
    sleeps = Sleeps()
    client = client_for(fake, sleeps, max_wait=12)
    fake.fail_next(
        403, "You have exceeded a secondary rate limit", headers={"Retry-After": "5"}, times=3
    )
    err = unavailable(client, lambda: repository(client))
    assert err.kind == "rate-limited" and "wait 5s" in err.message
    assert sleeps == [5.0, 5.0] and len(fake.requests(REPO)) == 3


def test_401_names_the_token_variable_not_the_token(fake: FakeGitHub) -> None:
    client = client_for(fake)
    fake.fail_next(401, "Bad credentials")
    err = unavailable(client, lambda: repository(client))
    assert err.kind == "auth"
    assert "$GITHUB_TOKEN" in err.message and "401 Bad credentials" in err.message


@pytest.mark.parametrize(
    ("status", "message", "kind", "words"),
    [
        (403, "Resource not accessible by integration", "forbidden", ("403", "needs access")),
        (404, "Not Found", "not-found", ("404", "octocat/Hello-World", "$GITHUB_TOKEN")),
        (502, "Bad Gateway", "server", ("502", "last good data")),
    ],
)
def test_api_errors_are_one_line(
    fake: FakeGitHub, status: int, message: str, kind: str, words: tuple[str, ...]
) -> None:
    sleeps = Sleeps()
    client = client_for(fake, sleeps)
    fake.fail_next(status, message)
    err = unavailable(client, lambda: repository(client))
    assert err.kind == kind
    for word in words:
        assert word in err.message, err.message
    assert sleeps == []  # a forbidden call is not a rate limit: waiting would not help


def test_422_says_what_github_rejected(fake: FakeGitHub) -> None:
    client = client_for(fake)
    with client.talking("read the repository"):
        repo = repository(client)
    fake.fail_next(422, "Validation Failed", errors=[{"message": "title is too long"}])
    err = unavailable(client, lambda: repo.create_issue(title="x" * 300))
    assert err.kind == "invalid"
    assert "422 Validation Failed: title is too long" in err.message
    assert fake.requests(f"{REPO}/issues")[-1].method == "POST"


def test_an_unreachable_github_is_a_clear_error(fake: FakeGitHub) -> None:
    client = client_for(fake)
    fake.stop()
    err = unavailable(client, lambda: repository(client))
    assert err.kind == "unreachable"
    assert f"cannot reach GitHub at {fake.base_url} (connection refused)" in err.message
