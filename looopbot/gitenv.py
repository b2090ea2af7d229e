"""The one git environment: an allow-list of `GIT_*` variables for every git call and child.

looopbot is often run from places that set git variables for their own purposes: a git hook
(`GIT_INDEX_FILE`, `GIT_DIR`, `GIT_PREFIX` …), an editor spawned by `git commit`, a rebase's
`exec` line. Inherited, they would redirect a beat's commit to another index, a worktree's
checkout to the main repo, or a worker's commits to the wrong branch. Like pre-commit's
`no_git_env`, we keep only the variables that configure *how* git talks to the world
(credentials, ssh, certificates, config files, tracing) and drop every one that says *where*
git should work. The process's own environment is cleaned once at start (`scrub`), so dulwich
and GitPython see the same thing as every child (`clean`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping

# How git reaches remotes and which config it reads: the user's setup, to be honoured.
_ALLOWED = frozenset(
    {
        "GIT_ALLOW_PROTOCOL",
        "GIT_ASKPASS",
        "GIT_AUTHOR_EMAIL",
        "GIT_AUTHOR_NAME",
        "GIT_COMMITTER_EMAIL",
        "GIT_COMMITTER_NAME",
        "GIT_CONFIG_COUNT",
        "GIT_CONFIG_GLOBAL",
        "GIT_CONFIG_NOSYSTEM",
        "GIT_CONFIG_SYSTEM",
        "GIT_CURL_VERBOSE",
        "GIT_EXEC_PATH",
        "GIT_HTTP_LOW_SPEED_LIMIT",
        "GIT_HTTP_LOW_SPEED_TIME",
        "GIT_HTTP_PROXY_AUTHMETHOD",
        "GIT_HTTP_USER_AGENT",
        "GIT_LFS_SKIP_SMUDGE",
        "GIT_PROTOCOL_FROM_USER",
        "GIT_SSH",
        "GIT_SSH_COMMAND",
        "GIT_SSH_VARIANT",
        "GIT_SSL_CAINFO",
        "GIT_SSL_CAPATH",
        "GIT_SSL_CERT",
        "GIT_SSL_KEY",
        "GIT_SSL_NO_VERIFY",
        "GIT_TRACE",
        "GIT_TRACE2",
        "GIT_TRACE2_EVENT",
        "GIT_TRACE2_PERF",
        "GIT_TRACE_CURL",
        "GIT_TRACE_PACKET",
        "GIT_TRACE_PERFORMANCE",
    }
)
# `git -c` passed down through the environment (GIT_CONFIG_KEY_0=…, GIT_CONFIG_VALUE_0=…).
_ALLOWED_PREFIXES = ("GIT_CONFIG_KEY_", "GIT_CONFIG_VALUE_")

# Set for every git call: never wait on a password prompt or a pager nobody sees.
NO_PROMPT = {"GIT_TERMINAL_PROMPT": "0", "GIT_PAGER": "cat", "GCM_INTERACTIVE": "never"}


def allowed(name: str) -> bool:
    """Whether an inherited variable may reach git (every non-`GIT_` variable may)."""
    if not name.startswith("GIT_"):
        return True
    return name in _ALLOWED or name.startswith(_ALLOWED_PREFIXES)


def clean(env: Mapping[str, str], extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """`env` without the git variables that say where git works, plus `extra`."""
    out = {k: v for k, v in env.items() if allowed(k)}
    if extra:
        out.update(extra)
    return out


def for_git(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a git command we run: clean, no prompts, plus `extra`."""
    return clean(os.environ, {**NO_PROMPT, **(extra or {})})


def scrub(env: MutableMapping[str, str] | None = None) -> list[str]:
    """Drop the disallowed git variables from this process's environment (once, at start);
    the names dropped."""
    target = os.environ if env is None else env
    dropped = sorted(k for k in target if not allowed(k))
    for name in dropped:
        del target[name]
    return dropped
