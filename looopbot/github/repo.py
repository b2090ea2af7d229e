"""Which GitHub repository: `github.repo`, or the one the remote's URL points at."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from looopbot import gitcli
from looopbot.config import GITHUB_REPO, Config, GitHubSettings
from looopbot.datadir import DataDir
from looopbot.errors import LooopbotError

# git@github.com:owner/name.git — git's scp-like form (no scheme, a ':' before the path).
_SCP = re.compile(r"(?:[^@/\s]+@)?(?P<host>[A-Za-z0-9.-]+):(?P<path>[^/\s][^\s]*)")


def hosts(api_url: str) -> frozenset[str]:
    """The git hosts of the GitHub that `api_url` serves: github.com for api.github.com,
    the instance's own host for GitHub Enterprise (…/api/v3) or a test server."""
    host = (urlsplit(api_url).hostname or "").lower()
    if host == "api.github.com":
        return frozenset({"github.com", "www.github.com", "ssh.github.com"})
    return frozenset({host, host.removeprefix("api.")})


def from_url(url: str, known_hosts: frozenset[str]) -> str | None:
    """`owner/name` from a remote URL on one of `known_hosts` (https, ssh:// or scp-like
    forms), or None for any other URL."""
    url = url.strip()
    if "://" in url:
        try:
            parts = urlsplit(url)
            host = parts.hostname or ""
        except ValueError:
            return None
        path = parts.path
    else:
        match = _SCP.fullmatch(url)
        if match is None:
            return None
        host, path = match["host"], match["path"]
    path = path.strip("/").removesuffix(".git")
    if host.lower() not in known_hosts or not GITHUB_REPO.fullmatch(path):
        return None
    return path


def resolve(dd: DataDir, config: Config, settings: GitHubSettings) -> str:
    """`github.repo`, else the remote's (git.remote, or origin) when it is on that GitHub."""
    if settings.repo:
        return settings.repo
    remote = config.remote or "origin"
    found = None
    if dd.repo_root is not None:
        got = gitcli.run(dd.repo_root, "config", "--get", f"remote.{remote}.url", check=False)
        if got.ok:
            found = from_url(got.stdout.decode(errors="replace"), hosts(settings.api_url))
    if found is None:
        # The URL itself is not echoed: it may carry credentials (https://user:token@…).
        raise LooopbotError(
            f"github.repo is not set and the remote '{remote}' is not a repository on "
            f"{settings.api_url} — set github.repo: owner/name in looopbot.yaml"
        )
    return found
