"""looopbot.yaml: load, validate with line numbers, apply environment overrides (DESIGN §6, §12).

ruamel.yaml is the parser because `init` and future edits must keep the user's comments and
because its round-trip nodes carry the line of every key, so an error reads
`looopbot.yaml:LINE: …`. Parsing YAML costs more than an unchanged beat may spend, so the
validated plain data is cached as JSON in local scratch, keyed by the file's digest; the
cache is only an accelerator (a stale or broken cache is re-derived from the file).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, NamedTuple

from looopbot.datadir import CONFIG_NAME, DataDir
from looopbot.errors import LooopbotError
from looopbot.fsutil import write_atomic
from looopbot.presets import PRESETS, RETRY_MATCH

ACTIONS = (
    "noop",
    "run_shell",
    "write_goal",
    "archive_goal",
    "write_sensor",
    "write_playbook",
    "start_worker",
    "steer_session",
    "send_key",
    "restart_session",
    "kill_worker",
    "send_notification",
    "write_schedule",
    "delete_schedule",
)

DEFAULT_AUTHOR = "looopbot <looopbot@users.noreply.github.com>"
# 2: the github: section became strictly validated; a cached loose one must be re-checked.
# 3: so did workers: (backend).
_CACHE_VERSION = 3

# name -> (kind, default). Kinds: "seconds" (number > 0), "seconds?" (the same, or null:
# off), "int" (>= 0), "bool", "usd" (number >= 0 or null), "actions" (action names).
LIMITS: dict[str, tuple[str, Any]] = {
    "interval": ("seconds", 60),
    "sensor_timeout": ("seconds", 60),
    "sensor_max_bytes": ("int", 8192),
    "sensor_concurrency": ("int", 8),
    "tick_timeout": ("seconds", 1800),
    "shell_timeout": ("seconds", 300),
    "allow_dangerous_shell": ("bool", False),
    "max_decides_per_hour": ("int", 120),
    "max_daily_usd": ("usd", None),
    "noop_ttl": ("seconds", 21600),
    "flap_streak": ("int", 5),
    "max_workers": ("int", 8),
    "worker_ttl": ("seconds", 259200),
    "verify_timeout": ("seconds", 60),
    "runs_keep": ("int", 50),
    "push_retries": ("int", 5),
    "network_timeout": ("seconds", 300),
    "worker_stuck_after": ("seconds", 900),
    "kill_stuck_after": ("seconds?", None),
    # How often a worker on GitHub Actions looks at its dashboard thread (github.thread):
    # a quiet thread costs a 304, free of rate limit.
    "thread_poll": ("seconds", 15),
    "allowed_actions": ("actions", list(ACTIONS)),
}

# Every LOOOPBOT_* name looopbot reads, or sets for the commands it starts (a runner, a
# worker, a notify command), which may call looopbot back. Any other is reported: a
# misspelled override is otherwise silently ignored — a limit the user believes is set.
ENV_NAMES = frozenset(
    {
        *(f"LOOOPBOT_{name.upper()}" for name in LIMITS),
        "LOOOPBOT_RUNNER",
        "LOOOPBOT_TICK_COMMAND",
        "LOOOPBOT_WORKER_COMMAND",
        "LOOOPBOT_PUSH",
        "LOOOPBOT_DATA_DIR",
        "LOOOPBOT_RUN_ID",
        "LOOOPBOT_DECISION_FILE",
        "LOOOPBOT_BIN",
        "LOOOPBOT_SESSION_ID",
        "LOOOPBOT_WORKTREE",
        "LOOOPBOT_MESSAGE",
        "LOOOPBOT_ID",
    }
)
_ENV_PREFIX = "LOOOPBOT_"
GIT_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._/-]*")

_TOP_KEYS = ("runner", "runners", "limits", "notify", "git", "github", "workers")
_RUNNER_KEYS = ("tick", "worker", "cost", "retries", "retry_match", "retry_sleep")
MAX_RETRIES = 10
MAX_RETRY_SLEEP = 600.0
_COST_KEYS = ("type", "pointer", "mode")
_GITHUB_SWITCHES = ("sensor", "dashboard", "pull_requests")
_GITHUB_KEYS = ("repo", "api_url", "token_env", "mention", *_GITHUB_SWITCHES)
GITHUB_API = "https://api.github.com"
# Where workers run: local processes under a supervisor, or GitHub Actions runs.
WORKER_BACKENDS = ("local", "actions")
_WORKERS_KEYS = ("backend",)
GITHUB_REPO = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")
_ENV_VAR = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# A GitHub login (an app's bot account ends in [bot]), with or without the '@'.
_GITHUB_LOGIN = re.compile(r"@?[A-Za-z0-9][A-Za-z0-9-]{0,38}(\[bot\])?")
DEFAULT_MENTION = "looopbot"
# A token pasted where its variable's name belongs (token_env: ghp_…) must be refused
# without echoing it: the error goes to a terminal, a job log, maybe the journal.
_TOKEN_SHAPE = re.compile(r"(gh[pousr]_|github_pat_)", re.IGNORECASE)


class CostSpec(NamedTuple):
    """Where a runner's cost is in its JSON output: events whose "type" equals `type`
    (any JSON object when None), read at the RFC 6901 `pointer`; `sum` adds every hit,
    `total` takes the last."""

    pointer: str
    mode: Literal["sum", "total"]
    type: str | None = None


class Runner(NamedTuple):
    name: str
    tick: str
    worker: str
    cost: CostSpec | None
    # A transient failure (rate limit, overload: output matching `retry_match`) is tried
    # again up to `retries` times within the beat, `retry_sleep` seconds apart (jittered).
    retries: int = 2
    retry_match: str = RETRY_MATCH
    retry_sleep: float = 10.0

    @property
    def wiring(self) -> str:
        """A fingerprint of how cost is read; a change re-opens a fail-closed budget."""
        raw = json.dumps([self.tick, self.cost and self.cost._asdict()], sort_keys=True)
        return hashlib.sha256(raw.encode()).hexdigest()[:16]


class Limits(NamedTuple):
    interval: float
    sensor_timeout: float
    sensor_max_bytes: int
    sensor_concurrency: int
    tick_timeout: float
    shell_timeout: float
    allow_dangerous_shell: bool
    max_decides_per_hour: int
    max_daily_usd: float | None
    noop_ttl: float
    flap_streak: int
    max_workers: int
    worker_ttl: float
    verify_timeout: float
    runs_keep: int
    push_retries: int
    network_timeout: float
    worker_stuck_after: float
    kill_stuck_after: float | None
    thread_poll: float
    allowed_actions: frozenset[str]


class GitHubSettings(NamedTuple):
    """The `github:` section. It names the token's variable, never holds the token."""

    repo: str | None  # owner/name; None: the origin remote's, when it is on GitHub
    api_url: str
    token_env: str
    sensor: bool
    dashboard: bool
    pull_requests: bool
    # The handle whose @-mentions the sensor reports (no '@'); a setting, because the
    # Actions token cannot ask GitHub who it is (GET /user) and a person's token is theirs.
    mention: str = DEFAULT_MENTION


class Config(NamedTuple):
    runner: Runner
    limits: Limits
    notify_command: str | None
    author: str
    push: bool
    remote: str | None  # git.remote: overrides the branch's upstream remote
    branch: str | None  # git.branch: overrides the upstream branch's name
    github: GitHubSettings | None
    # Every runner's worker command by name (presets and runners:), for a start_worker that
    # names its runner; the active runner's includes $LOOOPBOT_WORKER_COMMAND.
    worker_commands: Mapping[str, str] = {}
    workers_backend: str = "local"  # workers.backend: one of WORKER_BACKENDS


def load(dd: DataDir) -> Config:
    """The effective config: looopbot.yaml, then the LOOOPBOT_* environment on top."""
    try:
        raw_bytes = dd.config.read_bytes()
    except FileNotFoundError:
        raise LooopbotError(f"{dd.config} is missing — run 'looopbot init'") from None
    digest = hashlib.sha256(raw_bytes).hexdigest()
    cache = dd.scratch("config-cache.json")
    plain = _read_cache(cache, digest)
    if plain is None:
        plain = parse(raw_bytes.decode("utf-8", errors="replace"), CONFIG_NAME)
        # Best effort: a read-only checkout simply parses every time.
        with contextlib.suppress(OSError):
            cached = {"v": _CACHE_VERSION, "digest": digest, "data": plain}
            write_atomic(cache, json.dumps(cached), durable=False)
    return _build(plain, os.environ)


def _read_cache(path: Path, digest: str) -> dict[str, Any] | None:
    try:
        cached = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(cached, dict) or cached.get("v") != _CACHE_VERSION:
        return None
    if cached.get("digest") != digest or not isinstance(cached.get("data"), dict):
        return None
    data: dict[str, Any] = cached["data"]
    return data


class ConfigProblem(LooopbotError):
    def __init__(self, path: str, line: int, message: str) -> None:
        super().__init__(f"{path}:{line}: {message}")
        self.path = path
        self.line = line
        self.detail = message


def parse(text: str, path: str = CONFIG_NAME) -> dict[str, Any]:
    """Parse and validate looopbot.yaml text into plain data, or raise ConfigProblem."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    yaml = YAML(typ="rt")
    try:
        doc = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        problem = exc.problem or exc.context or "invalid YAML"
        raise ConfigProblem(path, line, f"invalid YAML: {problem}") from None
    except YAMLError as exc:
        raise ConfigProblem(path, 1, f"invalid YAML: {exc}") from None
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise ConfigProblem(path, 1, "the top level must be a mapping of keys to values")
    _Checker(path).top(doc)
    plain: dict[str, Any] = json.loads(json.dumps(doc))
    return plain


class _Checker:
    def __init__(self, path: str) -> None:
        self.path = path

    def fail(self, node: Any, key: Any, message: str) -> ConfigProblem:
        return ConfigProblem(self.path, _line(node, key), message)

    def keys(self, node: Any, allowed: tuple[str, ...], where: str) -> None:
        for key in node:
            if key not in allowed:
                raise self.fail(
                    node, key, f"unknown key '{key}' in {where} (known: {', '.join(allowed)})"
                )

    def top(self, doc: Any) -> None:
        self.keys(doc, _TOP_KEYS, "the top level")
        runner = doc.get("runner", "example")
        if not isinstance(runner, str) or not runner:
            raise self.fail(doc, "runner", "'runner' must be the name of a runner")
        runners = doc.get("runners") or {}
        if not isinstance(runners, dict):
            raise self.fail(doc, "runners", "'runners' must map runner names to settings")
        for name, spec in runners.items():
            self.runner(runners, name, spec)
        if runner not in runners and runner not in PRESETS:
            known = sorted({*PRESETS, *runners})
            raise self.fail(doc, "runner", f"unknown runner '{runner}' (known: {', '.join(known)})")
        merged = {**PRESETS.get(runner, {}), **(runners.get(runner) or {})}
        if not merged.get("tick"):
            raise self.fail(doc, "runner", f"runner '{runner}' has no 'tick' command")
        limits = doc.get("limits") or {}
        if not isinstance(limits, dict):
            raise self.fail(doc, "limits", "'limits' must be a mapping")
        self.keys(limits, tuple(LIMITS), "limits")
        for name, value in limits.items():
            try:
                coerce_limit(name, value)
            except ValueError as exc:
                raise self.fail(limits, name, f"limits.{name}: {exc}") from None
        self.section(doc, "notify", {"command": str})
        self.section(doc, "git", {"author": str, "push": bool, "remote": str, "branch": str})
        git = doc.get("git") or {}
        if "author" in git and not _parse_author(git["author"]):
            raise self.fail(git, "author", "git.author must look like 'Name <email>'")
        for key in ("remote", "branch"):
            # Passed to git as arguments: a leading '-' would read as an option.
            if key in git and not GIT_NAME.fullmatch(git[key]):
                raise self.fail(
                    git, key, f"git.{key} must be a plain {key} name (letters, digits, . _ / -)"
                )
        self.github(doc)
        self.workers(doc)

    def workers(self, doc: Any) -> None:
        node = doc.get("workers")
        if node is None:
            return
        if not isinstance(node, dict):
            raise self.fail(doc, "workers", "'workers' must be a mapping")
        self.keys(node, _WORKERS_KEYS, "workers")
        backend = node.get("backend")
        if backend is not None and backend not in WORKER_BACKENDS:
            raise self.fail(
                node, "backend", f"workers.backend must be one of {', '.join(WORKER_BACKENDS)}"
            )
        if backend == "actions" and not isinstance(doc.get("github"), dict):
            # The runs are dispatched and read through GitHub's API: without the section
            # there is no repository and no token to do it with.
            raise self.fail(
                node,
                "backend",
                "workers.backend: actions needs a 'github:' section (repo, token_env) — "
                "add one, or use backend: local",
            )

    def github(self, doc: Any) -> None:
        # No message here quotes a value: one could be a token put in the wrong place.
        node = doc.get("github")
        if node is None:
            return
        if not isinstance(node, dict):
            raise self.fail(doc, "github", "'github' must be a mapping")
        self.keys(node, _GITHUB_KEYS, "github")
        repo = node.get("repo")
        if repo is not None and not (isinstance(repo, str) and GITHUB_REPO.fullmatch(repo)):
            raise self.fail(node, "repo", "github.repo must be 'owner/name'")
        url = node.get("api_url")
        if url is not None and not (isinstance(url, str) and _plain_http_url(url)):
            raise self.fail(
                node,
                "api_url",
                "github.api_url must be an http(s) URL without credentials, like "
                f"{GITHUB_API} or https://ghe.example.com/api/v3",
            )
        env = node.get("token_env")
        if env is not None:
            if isinstance(env, str) and _TOKEN_SHAPE.match(env):
                raise self.fail(
                    node,
                    "token_env",
                    "github.token_env looks like a token itself — put the token in an "
                    "environment variable and name that variable here (remove it from the file)",
                )
            if not (isinstance(env, str) and _ENV_VAR.fullmatch(env)):
                raise self.fail(
                    node,
                    "token_env",
                    "github.token_env must be the name of an environment variable (letters, "
                    "digits, _), like GITHUB_TOKEN",
                )
        mention = node.get("mention")
        if mention is not None and not (
            isinstance(mention, str) and _GITHUB_LOGIN.fullmatch(mention)
        ):
            raise self.fail(
                node,
                "mention",
                "github.mention must be a GitHub login (letters, digits, -), like "
                f"{DEFAULT_MENTION} — the sensor reports comments that @-mention it",
            )
        for key in _GITHUB_SWITCHES:
            if node.get(key) is not None and not isinstance(node[key], bool):
                raise self.fail(node, key, f"github.{key} must be true or false")

    def runner(self, parent: Any, name: Any, spec: Any) -> None:
        if not isinstance(spec, dict):
            raise self.fail(parent, name, f"runners.{name} must be a mapping (tick, worker, cost)")
        self.keys(spec, _RUNNER_KEYS, f"runners.{name}")
        for key in ("tick", "worker"):
            if key in spec and not (isinstance(spec[key], str) and spec[key].strip()):
                raise self.fail(spec, key, f"runners.{name}.{key} must be a command string")
        retries = spec.get("retries")
        if "retries" in spec and not (
            isinstance(retries, int)
            and not isinstance(retries, bool)
            and 0 <= retries <= MAX_RETRIES
        ):
            raise self.fail(spec, "retries", f"runners.{name}.retries must be 0..{MAX_RETRIES}")
        sleep = spec.get("retry_sleep")
        if "retry_sleep" in spec and not (
            isinstance(sleep, int | float)
            and not isinstance(sleep, bool)
            and 0 <= sleep <= MAX_RETRY_SLEEP
        ):
            raise self.fail(
                spec, "retry_sleep", f"runners.{name}.retry_sleep must be 0..{MAX_RETRY_SLEEP:g} s"
            )
        if "retry_match" in spec:
            pattern = spec["retry_match"]
            if not isinstance(pattern, str) or not pattern:
                raise self.fail(spec, "retry_match", f"runners.{name}.retry_match must be a regex")
            try:
                re.compile(pattern)
            except re.error as exc:
                raise self.fail(
                    spec, "retry_match", f"runners.{name}.retry_match is not a regex: {exc}"
                ) from None
        if "cost" in spec and spec["cost"] is not None:
            cost = spec["cost"]
            if not isinstance(cost, dict):
                raise self.fail(spec, "cost", "cost must be {type, pointer, mode}")
            self.keys(cost, _COST_KEYS, f"runners.{name}.cost")
            pointer = cost.get("pointer")
            if not isinstance(pointer, str) or not pointer.startswith("/"):
                raise self.fail(cost, "pointer", "cost.pointer must be a JSON pointer like /a/b")
            if cost.get("mode", "total") not in ("sum", "total"):
                raise self.fail(cost, "mode", "cost.mode must be 'sum' or 'total'")
            if "type" in cost and not isinstance(cost["type"], str):
                raise self.fail(cost, "type", "cost.type must be an event type string")

    def section(self, doc: Any, name: str, fields: dict[str, type]) -> None:
        node = doc.get(name)
        if node is None:
            return
        if not isinstance(node, dict):
            raise self.fail(doc, name, f"'{name}' must be a mapping")
        self.keys(node, tuple(fields), name)
        for key, kind in fields.items():
            if node.get(key) is not None and not isinstance(node[key], kind):
                raise self.fail(node, key, f"{name}.{key} must be a {kind.__name__}")


def key_line(text: str, *keys: str) -> int:
    """The line of a nested key (`git`, `push`) in valid looopbot.yaml text; 1 if absent."""
    from ruamel.yaml import YAML

    node: Any = YAML(typ="rt").load(text)
    for key in keys[:-1]:
        if not isinstance(node, dict) or not isinstance(node.get(key), dict):
            return 1
        node = node[key]
    return _line(node, keys[-1]) if isinstance(node, dict) and keys[-1] in node else 1


def _line(node: Any, key: Any) -> int:
    lc = getattr(node, "lc", None)
    if lc is None:
        return 1
    try:
        return int(lc.key(key)[0]) + 1
    except (KeyError, TypeError, AttributeError, IndexError):
        return int(getattr(lc, "line", 0)) + 1


def _finite(value: Any) -> bool:
    """A real, finite number: NaN, ±inf (`.nan` in YAML, `nan` in the environment) and
    integers too big for a float would slip past a `> 0` check or crash float()."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def coerce_limit(name: str, value: Any) -> Any:
    """Check one limit's value; raises ValueError saying what is expected."""
    kind, _default = LIMITS[name]
    if kind == "seconds?" and value is None:
        return None
    if kind in ("seconds", "seconds?"):
        if not _finite(value) or value <= 0:
            raise ValueError(f"expected a number of seconds > 0, got {value!r}")
        return float(value)
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"expected a whole number >= 0, got {value!r}")
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise ValueError(f"expected true or false, got {value!r}")
        return value
    if kind == "usd":
        if value is None:
            return None
        if not _finite(value) or value < 0:
            raise ValueError(f"expected an amount in USD >= 0, got {value!r}")
        return float(value)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError("expected a list of action names")
    unknown = [v for v in value if v not in ACTIONS]
    if unknown:
        raise ValueError(f"unknown action(s) {', '.join(unknown)} (valid: {', '.join(ACTIONS)})")
    return frozenset(value)


def _env_limit(name: str, text: str) -> Any:
    """Parse LOOOPBOT_<NAME>; YAML-ish scalars so `true`, `30`, `a,b` all work."""
    kind, _ = LIMITS[name]
    text = text.strip()
    value: Any
    if kind == "actions":
        value = [p.strip() for p in text.split(",") if p.strip()]
    elif kind == "bool":
        lowered = text.lower()
        value = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
        value = value.get(lowered, text)
    elif kind in ("usd", "seconds?") and text.lower() in ("", "null", "none"):
        value = None
    else:
        try:
            value = int(text)
        except ValueError:
            try:
                value = float(text)
            except ValueError:
                value = text
    return coerce_limit(name, value)


def _build(plain: Mapping[str, Any], env: Mapping[str, str]) -> Config:
    values: dict[str, Any] = {}
    limits_raw = plain.get("limits") or {}
    for name, (_kind, default) in LIMITS.items():
        value = coerce_limit(name, limits_raw[name]) if name in limits_raw else None
        if name not in limits_raw:
            value = coerce_limit(name, default) if default is not None else None
        var = f"LOOOPBOT_{name.upper()}"
        if var in env:
            try:
                value = _env_limit(name, env[var])
            except ValueError as exc:
                raise LooopbotError(f"${var}: {exc} — fix or unset it") from None
        values[name] = value
    name = env.get("LOOOPBOT_RUNNER") or plain.get("runner") or "example"
    runners = plain.get("runners") or {}
    if name not in runners and name not in PRESETS:
        raise LooopbotError(f"unknown runner '{name}' (known: {', '.join(sorted(PRESETS))})")
    spec = {**PRESETS.get(name, {}), **(runners.get(name) or {})}
    cost = spec.get("cost")
    runner = Runner(
        name=name,
        tick=env.get("LOOOPBOT_TICK_COMMAND") or spec.get("tick") or "",
        worker=env.get("LOOOPBOT_WORKER_COMMAND") or spec.get("worker") or "",
        cost=CostSpec(cost["pointer"], cost.get("mode", "total"), cost.get("type"))
        if cost
        else None,
        retries=int(spec.get("retries", 2)),
        retry_match=str(spec.get("retry_match") or RETRY_MATCH),
        retry_sleep=float(spec.get("retry_sleep", 10.0)),
    )
    if not runner.tick.strip():
        raise LooopbotError(f"runner '{name}' has no tick command — set runners.{name}.tick")
    git = plain.get("git") or {}
    push = _env_switch("LOOOPBOT_PUSH", env.get("LOOOPBOT_PUSH", ""))
    workers = {
        other: str({**PRESETS.get(other, {}), **(runners.get(other) or {})}.get("worker") or "")
        for other in {*PRESETS, *runners}
    }
    workers[name] = runner.worker
    return Config(
        worker_commands=workers,
        runner=runner,
        limits=Limits(**values),
        notify_command=(plain.get("notify") or {}).get("command"),
        author=git.get("author") or DEFAULT_AUTHOR,
        push=bool(git.get("push")) if push is None else push,
        remote=git.get("remote") or None,
        branch=git.get("branch") or None,
        github=_github(plain.get("github")),
        workers_backend=(plain.get("workers") or {}).get("backend") or "local",
    )


def _github(node: Mapping[str, Any] | None) -> GitHubSettings | None:
    if node is None:
        return None
    return GitHubSettings(
        repo=node.get("repo") or None,
        api_url=(node.get("api_url") or GITHUB_API).rstrip("/"),
        token_env=node.get("token_env") or "GITHUB_TOKEN",
        sensor=bool(node.get("sensor")),
        dashboard=bool(node.get("dashboard")),
        pull_requests=bool(node.get("pull_requests")),
        mention=(node.get("mention") or DEFAULT_MENTION).removeprefix("@"),
    )


def _plain_http_url(text: str) -> bool:
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(text)
    except ValueError:
        return False
    # Credentials in the URL would be printed with every error that names it.
    return parts.scheme in ("http", "https") and bool(parts.hostname) and "@" not in parts.netloc


def _env_switch(var: str, text: str) -> bool | None:
    """An on/off variable: None when unset or empty; anything unexpected is an error, never
    a silent "off" (LOOOPBOT_PUSH=ture must not quietly keep commits local)."""
    word = text.strip().lower()
    if not word:
        return None
    if word in ("1", "true", "yes"):
        return True
    if word in ("0", "false", "no"):
        return False
    raise LooopbotError(
        f"${var}: expected 1/0, true/false or yes/no, got {text!r} — fix or unset it"
    )


def unknown_env(env: Mapping[str, str]) -> list[str]:
    """One message per LOOOPBOT_* variable looopbot does not know, naming the closest known."""
    out = []
    for name in sorted(env):
        if not name.upper().startswith(_ENV_PREFIX) or name in ENV_NAMES:
            continue
        import difflib  # only for a typo: an unchanged beat must not pay for it

        close = difflib.get_close_matches(name.upper(), sorted(ENV_NAMES), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        out.append(f"unknown environment variable {name}{hint}")
    return out


def env_problems(plain: Mapping[str, Any] | None, env: Mapping[str, str]) -> list[str]:
    """What is wrong with the LOOOPBOT_* environment (for `validate`): unknown names and
    values that do not parse — checked against `plain`, the parsed looopbot.yaml
    (LOOOPBOT_RUNNER must name one of its runners)."""
    out = unknown_env(env)
    if plain is None:
        return out  # looopbot.yaml itself is broken: that is the problem to report first
    try:
        _build(plain, env)
    except LooopbotError as exc:
        out.append(exc.message)
    return out


def _parse_author(text: str) -> tuple[str, str] | None:
    text = text.strip()
    if not text.endswith(">") or "<" not in text:
        return None
    name, _, email = text[:-1].partition("<")
    if not name.strip() or "@" not in email:
        return None
    return name.strip(), email.strip()


def author_identity(text: str) -> tuple[str, str]:
    parsed = _parse_author(text)
    if parsed is None:
        raise LooopbotError(f"git.author {text!r} must look like 'Name <email>'")
    return parsed
