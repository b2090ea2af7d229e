"""looopbot.yaml validation with line numbers, and LOOOPBOT_* overrides (DESIGN §6, §12).

`config.parse` (text -> plain data) and `config._build` (plain data + an env mapping -> Config)
are pure, so every case here is a string in, an error or a value out.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from looopbot import config
from looopbot.config import ConfigProblem, parse
from looopbot.errors import LooopbotError


def problem(text: str) -> ConfigProblem:
    with pytest.raises(ConfigProblem) as exc:
        parse(text)
    assert isinstance(exc.value, LooopbotError)
    return exc.value


def line_of(text: str, needle: str) -> int:
    """1-based line number of the first line containing `needle`."""
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def assert_at(text: str, needle: str, *words: str) -> str:
    err = problem(text)
    want = line_of(text, needle)
    assert err.message.startswith(f"looopbot.yaml:{want}: "), err.message
    assert err.line == want
    for w in words:
        assert w in err.message, err.message
    assert "\n" not in err.message
    return err.message


# --- errors carry the right line ---------------------------------------------------------------


def test_yaml_syntax_error_bad_indent() -> None:
    text = "runner: example\nlimits:\n  interval: 5\n bad: indent\n"
    assert_at(text, " bad: indent", "invalid YAML")


def test_yaml_syntax_error_tab() -> None:
    text = "# a comment\nrunner: example\n\tlimits: {}\n"
    assert_at(text, "\tlimits", "invalid YAML")


def test_yaml_syntax_error_mapping_in_a_scalar() -> None:
    text = "runner: example\n\n\nnotify:\n  command: a: b\n"
    assert_at(text, "command: a: b", "invalid YAML")


def test_yaml_duplicate_key() -> None:
    text = "runner: example\nlimits: {}\nrunner: claude\n"
    assert_at(text, "runner: claude", "invalid YAML", "duplicate")


def test_unknown_top_level_key() -> None:
    text = "runner: example\n\n# the loop\nlimitz:\n  interval: 5\n"
    assert_at(text, "limitz", "'limitz'", "runner", "limits", "github")


def test_unknown_limit() -> None:
    text = "runner: example\nlimits:\n  interval: 30\n  max_daily_dollars: 5\n"
    assert_at(text, "max_daily_dollars", "'max_daily_dollars'", "max_daily_usd", "noop_ttl")


@pytest.mark.parametrize(
    ("entry", "words"),
    [
        ("interval: fast", ["limits.interval", "seconds", "'fast'"]),
        ("interval: 0", ["limits.interval", "> 0"]),
        ("interval: -5", ["limits.interval"]),
        ("interval: true", ["limits.interval"]),
        ("sensor_max_bytes: 1.5", ["limits.sensor_max_bytes", "whole number"]),
        ("max_workers: many", ["limits.max_workers"]),
        ("max_workers: -1", ["limits.max_workers"]),
        ("allow_dangerous_shell: yes please", ["limits.allow_dangerous_shell", "true or false"]),
        ("allow_dangerous_shell: 1", ["limits.allow_dangerous_shell"]),
        ("max_daily_usd: -1", ["limits.max_daily_usd", "USD"]),
        ("max_daily_usd: lots", ["limits.max_daily_usd"]),
        ("allowed_actions: noop", ["limits.allowed_actions", "list"]),
        ("allowed_actions: [noop, rm_rf]", ["limits.allowed_actions", "rm_rf", "write_goal"]),
    ],
)
def test_wrong_limit_type(entry: str, words: list[str]) -> None:
    text = f"runner: example\nlimits:\n  noop_ttl: 60\n  {entry}\n  flap_streak: 3\n"
    assert_at(text, entry, *words)


def test_limits_not_a_mapping() -> None:
    text = "runner: example\nlimits: 5\n"
    assert_at(text, "limits: 5", "'limits' must be a mapping")


def test_unknown_runner() -> None:
    text = "# config\nlimits: {}\nrunner: nosuch\n"
    assert_at(text, "runner: nosuch", "'nosuch'", "claude", "codex", "example")


def test_runner_without_tick() -> None:
    text = "runner: mine\nrunners:\n  mine:\n    worker: do-work {prompt_file}\n"
    assert_at(text, "runner: mine", "'mine'", "tick")


def test_runner_tick_must_be_a_command_string() -> None:
    text = "runner: mine\nrunners:\n  mine:\n    worker: w\n    tick: 5\n"
    assert_at(text, "tick: 5", "runners.mine.tick")
    text = "runner: mine\nrunners:\n  mine:\n    tick: '  '\n"
    assert_at(text, "tick: '  '", "runners.mine.tick")


def test_unknown_runner_key() -> None:
    text = "runner: mine\nrunners:\n  mine:\n    tick: t\n    tock: t\n"
    assert_at(text, "tock", "'tock'", "runners.mine", "tick, worker, cost")


def test_runner_spec_not_a_mapping() -> None:
    text = "runner: example\nrunners:\n  mine: run-me\n"
    assert_at(text, "mine: run-me", "runners.mine")


COST_HEAD = "runner: mine\nrunners:\n  mine:\n    tick: t\n    cost:\n"


@pytest.mark.parametrize(
    ("body", "needle", "words"),
    [
        ("      pointer: total_cost_usd\n", "pointer", ["cost.pointer", "/a/b"]),
        ("      type: result\n", "cost:", ["cost.pointer"]),
        ("      pointer: /x\n      mode: avg\n", "mode: avg", ["cost.mode", "sum", "total"]),
        ("      pointer: /x\n      type: 3\n", "type: 3", ["cost.type"]),
        ("      pointer: /x\n      unit: usd\n", "unit: usd", ["'unit'", "pointer"]),
    ],
)
def test_bad_cost_spec(body: str, needle: str, words: list[str]) -> None:
    text = COST_HEAD + body
    if needle == "cost:":
        # a cost block without a pointer: the error points into the cost block
        err = problem(text)
        assert err.line in (line_of(text, "cost:"), line_of(text, "type: result"))
        assert all(w in err.message for w in words)
        return
    assert_at(text, needle, *words)


def test_cost_not_a_mapping() -> None:
    assert_at("runner: mine\nrunners:\n  mine:\n    tick: t\n    cost: 5\n", "cost: 5", "cost")


@pytest.mark.parametrize(
    "author", ["nobody", "Name", "<a@b>", "Name <no-at-sign>", "Name a@b.c", "'Name <a@b'"]
)
def test_bad_git_author(author: str) -> None:
    text = f"runner: example\ngit:\n  push: false\n  author: {author}\n"
    assert_at(text, "author:", "git.author", "Name <email>")


def test_git_push_must_be_a_bool() -> None:
    assert_at("git:\n  push: sometimes\n", "push: sometimes", "git.push")


def test_notify_command_must_be_a_string() -> None:
    assert_at("notify:\n  command: [a, b]\n", "command:", "notify.command")


def test_top_level_must_be_a_mapping() -> None:
    assert problem("- a\n- b\n").message.startswith("looopbot.yaml:1: ")


def test_a_good_config_parses_to_plain_data() -> None:
    text = """# my loop
runner: mine
runners:
  mine:
    tick: my-llm --json   # comments are fine
    worker: my-llm --work {prompt_file}
    cost: {type: result, pointer: /total_cost_usd, mode: total}
limits:
  interval: 30
  max_daily_usd: 2.5
  allowed_actions: [noop, write_goal]
git:
  author: Bot <bot@example.com>
  push: true
notify:
  command: notify-send {message}
github: {repo: me/loop}
"""
    plain = parse(text)
    assert plain["runners"]["mine"]["cost"] == {
        "type": "result",
        "pointer": "/total_cost_usd",
        "mode": "total",
    }
    c = config._build(plain, {})
    assert c.runner.name == "mine" and c.runner.tick == "my-llm --json"
    assert c.runner.cost == config.CostSpec("/total_cost_usd", "total", "result")
    assert c.limits.interval == 30.0 and c.limits.max_daily_usd == 2.5
    assert c.limits.allowed_actions == frozenset({"noop", "write_goal"})
    assert c.author == "Bot <bot@example.com>" and c.push is True
    assert c.notify_command == "notify-send {message}"


def test_empty_file_is_the_example_runner_with_defaults() -> None:
    c = config._build(parse(""), {})
    assert c.runner.name == "example"
    assert c.author == "looopbot <looopbot@users.noreply.github.com>"
    assert c.push is False


def test_defaults_match_the_design_limits_table() -> None:
    lim = config._build({}, {}).limits
    assert (lim.interval, lim.sensor_timeout, lim.sensor_max_bytes) == (60, 60, 8192)
    assert (lim.sensor_concurrency, lim.tick_timeout, lim.shell_timeout) == (8, 1800, 300)
    assert lim.allow_dangerous_shell is False
    assert lim.max_decides_per_hour == 120 and lim.max_daily_usd is None
    assert (lim.noop_ttl, lim.flap_streak) == (21600, 5)
    assert (lim.max_workers, lim.worker_ttl, lim.verify_timeout) == (8, 259200, 60)
    assert (lim.runs_keep, lim.push_retries) == (50, 5)
    assert lim.allowed_actions == frozenset(config.ACTIONS)


@pytest.mark.parametrize("preset", ["claude", "codex", "gemini", "pi", "example"])
def test_every_preset_is_a_known_runner(preset: str) -> None:
    c = config._build(parse(f"runner: {preset}\n"), {})
    assert c.runner.name == preset and c.runner.tick.strip()


# --- environment overrides ---------------------------------------------------------------------


def build_env(env: dict[str, str], plain: dict[str, Any] | None = None) -> config.Config:
    return config._build(plain or {}, env)


def env_error(var: str, value: str) -> str:
    with pytest.raises(LooopbotError) as exc:
        build_env({var: value})
    return exc.value.message


def test_env_overrides_ints_and_floats() -> None:
    plain = {"limits": {"sensor_timeout": 60, "max_workers": 8}}
    c = build_env({"LOOOPBOT_SENSOR_TIMEOUT": "5", "LOOOPBOT_MAX_WORKERS": " 2 "}, plain)
    assert c.limits.sensor_timeout == 5.0 and c.limits.max_workers == 2
    assert build_env({"LOOOPBOT_SENSOR_TIMEOUT": "0.5"}).limits.sensor_timeout == 0.5
    assert build_env({"LOOOPBOT_MAX_DAILY_USD": "1.25"}).limits.max_daily_usd == 1.25
    assert build_env({"LOOOPBOT_MAX_DAILY_USD": "3"}).limits.max_daily_usd == 3.0


def test_env_can_unset_a_budget() -> None:
    plain = {"limits": {"max_daily_usd": 5}}
    for off in ("", "null", "none", "NULL"):
        assert build_env({"LOOOPBOT_MAX_DAILY_USD": off}, plain).limits.max_daily_usd is None


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("true", True),
        ("1", True),
        ("yes", True),
        ("TRUE", True),
        ("false", False),
        ("0", False),
        ("no", False),
        ("No", False),
    ],
)
def test_env_overrides_bools(text: str, value: bool) -> None:
    plain = {"limits": {"allow_dangerous_shell": not value}}
    c = build_env({"LOOOPBOT_ALLOW_DANGEROUS_SHELL": text}, plain)
    assert c.limits.allow_dangerous_shell is value


def test_env_overrides_lists() -> None:
    c = build_env({"LOOOPBOT_ALLOWED_ACTIONS": "noop, write_goal,send_notification"})
    assert c.limits.allowed_actions == frozenset({"noop", "write_goal", "send_notification"})


@pytest.mark.parametrize(
    ("var", "value", "words"),
    [
        ("LOOOPBOT_SENSOR_TIMEOUT", "fast", ["seconds"]),
        ("LOOOPBOT_SENSOR_TIMEOUT", "-1", ["> 0"]),
        ("LOOOPBOT_SENSOR_TIMEOUT", "", []),
        ("LOOOPBOT_MAX_WORKERS", "2.5", ["whole number"]),
        ("LOOOPBOT_MAX_WORKERS", "eight", []),
        ("LOOOPBOT_ALLOW_DANGEROUS_SHELL", "maybe", ["true or false"]),
        ("LOOOPBOT_MAX_DAILY_USD", "$5", ["USD"]),
        ("LOOOPBOT_ALLOWED_ACTIONS", "noop,rm_rf", ["rm_rf"]),
    ],
)
def test_a_bad_env_value_names_the_variable(var: str, value: str, words: list[str]) -> None:
    msg = env_error(var, value)
    assert msg.startswith(f"${var}: "), msg
    assert "fix or unset it" in msg
    for w in words:
        assert w in msg


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "1e999", "1" + "0" * 400])
def test_non_finite_seconds_from_env_are_refused(value: str) -> None:
    msg = env_error("LOOOPBOT_SHELL_TIMEOUT", value)
    assert msg.startswith("$LOOOPBOT_SHELL_TIMEOUT: ")


@pytest.mark.parametrize("value", ["nan", "inf", "1" + "0" * 400])
def test_non_finite_budget_from_env_is_refused(value: str) -> None:
    assert env_error("LOOOPBOT_MAX_DAILY_USD", value).startswith("$LOOOPBOT_MAX_DAILY_USD: ")


@pytest.mark.parametrize("entry", ["interval: .nan", "interval: .inf", "max_daily_usd: .nan"])
def test_non_finite_limits_in_yaml_are_refused_with_a_line(entry: str) -> None:
    text = f"runner: example\nlimits:\n  {entry}\n"
    assert_at(text, entry, "limits.")


@given(st.text(max_size=12))
def test_any_env_text_gives_a_valid_limit_or_a_named_error(text: str) -> None:
    try:
        c = build_env({"LOOOPBOT_TICK_TIMEOUT": text, "LOOOPBOT_RUNS_KEEP": text})
    except LooopbotError as exc:
        assert exc.message.startswith(("$LOOOPBOT_TICK_TIMEOUT: ", "$LOOOPBOT_RUNS_KEEP: "))
        return
    assert math.isfinite(c.limits.tick_timeout) and c.limits.tick_timeout > 0
    assert isinstance(c.limits.runs_keep, int) and c.limits.runs_keep >= 0


def test_env_beats_the_file_and_other_limits_keep_their_file_values() -> None:
    plain = {"limits": {"interval": 120, "noop_ttl": 60}}
    c = build_env({"LOOOPBOT_INTERVAL": "7"}, plain)
    assert c.limits.interval == 7.0 and c.limits.noop_ttl == 60.0


def test_tick_command_override() -> None:
    plain = {"runner": "mine", "runners": {"mine": {"tick": "from-file", "worker": "w"}}}
    c = build_env({"LOOOPBOT_TICK_COMMAND": "python fake.py"}, plain)
    assert c.runner.tick == "python fake.py"
    assert c.runner.worker == "w"
    assert build_env({}, plain).runner.tick == "from-file"
    # also over a preset
    assert build_env({"LOOOPBOT_TICK_COMMAND": "x"}, {"runner": "claude"}).runner.tick == "x"


def test_tick_command_override_rescues_a_runner_without_tick() -> None:
    plain = {"runner": "mine", "runners": {"mine": {"worker": "w"}}}
    assert build_env({"LOOOPBOT_TICK_COMMAND": "t"}, plain).runner.tick == "t"
    with pytest.raises(LooopbotError, match="no tick command"):
        build_env({}, plain)


def test_worker_command_and_runner_overrides() -> None:
    c = build_env({"LOOOPBOT_WORKER_COMMAND": "ww {prompt_file}", "LOOOPBOT_RUNNER": "pi"})
    assert c.runner.name == "pi" and c.runner.worker == "ww {prompt_file}"
    assert c.runner.cost == config.CostSpec("/message/usage/cost/total", "sum", "message_end")
    with pytest.raises(LooopbotError, match="unknown runner 'nope'"):
        build_env({"LOOOPBOT_RUNNER": "nope"})


def test_push_from_env() -> None:
    assert build_env({"LOOOPBOT_PUSH": "1"}).push is True
    assert build_env({"LOOOPBOT_PUSH": "true"}).push is True
    assert build_env({"LOOOPBOT_PUSH": "0"}).push is False
    assert build_env({}).push is False


@pytest.mark.parametrize(
    ("text", "want"),
    [("1", True), ("TRUE", True), ("Yes", True), ("0", False), ("false", False), ("NO", False)],
)
def test_push_from_env_overrides_git_push(text: str, want: bool) -> None:
    for yaml_push in (True, False):
        c = build_env({"LOOOPBOT_PUSH": f" {text} "}, {"git": {"push": yaml_push}})
        assert c.push is want


def test_an_empty_push_variable_is_unset() -> None:
    assert build_env({"LOOOPBOT_PUSH": ""}, {"git": {"push": True}}).push is True
    assert build_env({"LOOOPBOT_PUSH": "  "}).push is False


@pytest.mark.parametrize("text", ["maybe", "on", "2", "ture", "yes please"])
def test_an_unparsable_push_variable_is_an_error_naming_it(text: str) -> None:
    message = env_error("LOOOPBOT_PUSH", text)
    assert message.startswith("$LOOOPBOT_PUSH: ") and repr(text) in message
    assert "yes/no" in message and "fix or unset it" in message


# --- unknown LOOOPBOT_* names ------------------------------------------------------------------


def test_a_misspelled_variable_is_named_with_the_closest_known_one() -> None:
    env = {
        "LOOOPBOT_SENSOR_TIMOUT": "5",
        "LOOOPBOT_MAX_DAILY_USD": "1",
        "looopbot_push": "1",
        "LOOOPBOT_ZZZZZZZZZZZZZZZZZZ": "x",
        "PATH": "/bin",
    }
    assert config.unknown_env(env) == [
        "unknown environment variable LOOOPBOT_SENSOR_TIMOUT "
        "(did you mean LOOOPBOT_SENSOR_TIMEOUT?)",
        "unknown environment variable LOOOPBOT_ZZZZZZZZZZZZZZZZZZ",
        "unknown environment variable looopbot_push (did you mean LOOOPBOT_PUSH?)",
    ]


def test_every_literal_looopbot_name_in_the_package_is_known() -> None:
    """A name the code reads or sets but the list lacks would warn on every worker's call."""
    package = Path(config.__file__).parent
    used = {
        m
        for path in package.rglob("*.py")
        for m in re.findall(r"LOOOPBOT_[A-Z][A-Z_]*[A-Z]", path.read_text())
    }
    assert used and used <= config.ENV_NAMES, used - config.ENV_NAMES


def test_env_problems_for_validate() -> None:
    env = {"LOOOPBOT_SENSOR_TIMOUT": "5", "LOOOPBOT_PUSH": "1", "LOOOPBOT_RUNNER": "mine"}
    assert config.env_problems({"runners": {"mine": {"tick": "t"}}}, env) == [
        "unknown environment variable LOOOPBOT_SENSOR_TIMOUT "
        "(did you mean LOOOPBOT_SENSOR_TIMEOUT?)",
    ]
    bad = config.env_problems({}, {"LOOOPBOT_PUSH": "maybe"})
    assert len(bad) == 1 and bad[0].startswith("$LOOOPBOT_PUSH: expected")
    assert config.env_problems({}, {"LOOOPBOT_RUNNER": "mine"}) == [
        "unknown runner 'mine' (known: claude, codex, example, gemini, opencode, pi)"
    ]
    # a broken looopbot.yaml: only what the environment alone says
    assert config.env_problems(None, {"LOOOPBOT_RUNNER": "mine"}) == []
    assert config.env_problems({}, {}) == []


def test_key_line_finds_a_nested_key() -> None:
    text = "runner: example\n# a comment\ngit:\n  author: A <a@b.c>\n  push: true\n"
    assert config.key_line(text, "git", "push") == 5
    assert config.key_line(text, "git", "nope") == 1
    assert config.key_line(text, "limits", "push") == 1


# --- github: -----------------------------------------------------------------------------------


def test_github_section_defaults() -> None:
    gh = config._build(parse("github: {}\n"), {}).github
    assert gh == config.GitHubSettings(
        repo=None,
        api_url="https://api.github.com",
        token_env="GITHUB_TOKEN",
        sensor=False,
        dashboard=False,
        pull_requests=False,
        mention="looopbot",
    )
    assert config._build(parse(""), {}).github is None


def test_github_section_values() -> None:
    text = (
        "github:\n  repo: me/loop\n  api_url: https://ghe.example.com/api/v3/\n"
        "  token_env: LOOP_GH\n  sensor: true\n  pull_requests: true\n  mention: '@ops-bot'\n"
    )
    gh = config._build(parse(text), {}).github
    assert gh is not None
    assert gh.repo == "me/loop" and gh.api_url == "https://ghe.example.com/api/v3"
    assert gh.token_env == "LOOP_GH"
    assert (gh.sensor, gh.dashboard, gh.pull_requests) == (True, False, True)
    assert gh.mention == "ops-bot"


@pytest.mark.parametrize(
    ("entry", "needle", "words"),
    [
        ("  repoz: me/loop", "repoz", ("unknown key 'repoz' in github", "token_env")),
        ("  repo: just-a-name", "repo:", ("github.repo", "owner/name")),
        ("  repo: [a, b]", "repo:", ("github.repo",)),
        ("  api_url: ftp://x", "api_url", ("github.api_url", "http(s)")),
        ("  api_url: https://me:pw@ghe.example.com", "api_url", ("without credentials",)),
        ("  token_env: MY-TOKEN", "token_env", ("name of an environment variable",)),
        ("  sensor: yes please", "sensor", ("github.sensor must be true or false",)),
        ("  dashboard: 1", "dashboard", ("github.dashboard must be true or false",)),
        ("  mention: two words", "mention", ("github.mention must be a GitHub login",)),
        ("  mention: 7", "mention", ("github.mention must be a GitHub login",)),
        ("  mention: -dash", "mention", ("github.mention",)),
    ],
)
def test_github_section_errors_carry_the_line(
    entry: str, needle: str, words: tuple[str, ...]
) -> None:
    text = f"runner: example\n\ngithub:\n  pull_requests: false\n{entry}\n"
    assert_at(text, needle, *words)


def test_github_not_a_mapping() -> None:
    assert_at("runner: example\ngithub: me/loop\n", "github:", "'github' must be a mapping")


def test_a_token_in_token_env_is_refused_without_echoing_it() -> None:
    token = "ghp_" + "Z" * 36
    message = assert_at(f"github:\n  token_env: {token}\n", "token_env", "looks like a token")
    assert token not in message and "ZZZZ" not in message
    # Nor in any other github message: a token pasted as the repo or the URL.
    for key in ("repo", "api_url", "sensor", "mention"):
        message = assert_at(f"github:\n  {key}: {token}\n", f"{key}:", f"github.{key}")
        assert "ZZZZ" not in message
