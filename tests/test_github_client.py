"""The GitHub client (DESIGN §10): which repository, rate limits, one-line errors, a token
that never shows. The HTTP tests drive the real github3.py against tests/fakegithub.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import git

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
