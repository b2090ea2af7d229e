"""Secrets never enter a commit (DESIGN §9): env-named secrets and token shapes are redacted."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from looopbot.redact import MARK, head, redact, redact_value, redactor, tail

GHP = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
PAT = "github_pat_" + "11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz"
SK = "sk-" + "proj-abcdefghijklmnopqrstuvwxyz012345"
AKIA = "AKIA" + "IOSFODNN7EXAMPLE"


@pytest.mark.parametrize(
    "name",
    [
        "GITHUB_TOKEN",
        "MY_API_KEY",
        "AWS_SECRET_ACCESS_KEY",
        "DB_PASSWORD",
        "CLIENT_SECRET",
        "SLACK_BOT_TOKEN",
        "github_token",
        "KEYRING_PASS",
        "XAPIKEYX",
    ],
)
def test_values_of_secret_named_variables_are_redacted(name: str) -> None:
    value = "s3cr3t-value-42"
    out = redact(f"connecting with {value}; again:{value}!", {name: value})
    assert value not in out
    assert out == f"connecting with {MARK}; again:{MARK}!"


def test_values_of_ordinary_variables_are_kept() -> None:
    env = {"HOME": "/home/someone", "PATH": "/usr/bin:/bin", "EDITOR": "vim-editor"}
    text = "home is /home/someone, path /usr/bin:/bin, editor vim-editor"
    assert redact(text, env) == text


@pytest.mark.parametrize("short", ["1", "true", "abc", "1234567"])
def test_short_values_are_not_redacted(short: str) -> None:
    """`NO_TOKEN=1` must not turn every "1" in a snapshot into [redacted]."""
    text = f"count: {short} of {short}"
    assert redact(text, {"SOME_TOKEN": short}) == text


def test_an_eight_char_secret_is_redacted() -> None:
    assert redact("pw=abcdefgh.", {"PASSWORD": "abcdefgh"}) == f"pw={MARK}."


def test_regex_characters_in_a_secret_are_literal() -> None:
    secret = "a.b*c+d?(e)[f]$^|\\"
    out = redact(f"x {secret} y axbxc", {"API_KEY": secret})
    assert out == f"x {MARK} y axbxc"


def test_a_longer_secret_containing_a_shorter_one_is_redacted_whole() -> None:
    env = {"A_TOKEN": "abcdefgh", "B_TOKEN": "abcdefgh-and-more"}
    assert redact("v=abcdefgh-and-more;w=abcdefgh", env) == f"v={MARK};w={MARK}"


@pytest.mark.parametrize("token", [GHP, PAT, SK, AKIA, "gho_" + "x" * 36, "xoxb-1234-5678-abcdef"])
def test_token_shapes_are_redacted_without_any_env(token: str) -> None:
    out = redact(f"Authorization: token {token}\n", {})
    assert token not in out
    assert out == f"Authorization: token {MARK}\n"
    for glued in (f"KEY={token}", f'"{token}"', f"key:{token}", f"({token})"):
        assert token not in redact(glued, {}), glued


@pytest.mark.parametrize(
    "text",
    [
        "ghp_short",
        "sk-short",
        "AKIA1234",
        # "sk-" ending a word is not a key prefix
        "risk-assessment-document-for-the-quarter",
        "disk-usage-report-for-server-01-and-02",
        "task-runner_configuration_file_v2",
        "the task-list",
        "github_pat_",
    ],
)
def test_short_or_partial_shapes_are_kept(text: str) -> None:
    assert redact(text, {}) == text


def test_redact_value_walks_nested_json() -> None:
    env = {"DEPLOY_KEY": "very-secret-deploy-key"}
    value = {
        "signal": {"ok": True, "count": 3, "auth": "Bearer very-secret-deploy-key"},
        "detail": [
            {"stderr": f"push failed for {GHP}"},
            ["nested", ["deeper", SK]],
            None,
            1.5,
        ],
        f"key-{AKIA}": "keys are scrubbed too",
    }
    original = copy.deepcopy(value)
    out = redact_value(value, redactor(env))
    assert value == original  # not mutated
    dumped = json.dumps(out)
    for secret in ("very-secret-deploy-key", GHP, SK, AKIA):
        assert secret not in dumped
    assert out["signal"] == {"ok": True, "count": 3, "auth": f"Bearer {MARK}"}
    assert out["detail"][0] == {"stderr": f"push failed for {MARK}"}
    assert out["detail"][1] == ["nested", ["deeper", MARK]]
    assert out["detail"][2:] == [None, 1.5]
    assert out[f"key-{MARK}"] == "keys are scrubbed too"


def test_redact_value_keeps_non_strings_and_types() -> None:
    scrub = redactor({"X_TOKEN": "12345678"})
    # A number that spells the secret is redacted (secrets never enter a commit); others stay.
    assert redact_value(12345678, scrub) == MARK
    assert redact_value(912345678, scrub) == MARK
    assert redact_value(42, scrub) == 42 and redact_value(1.5, scrub) == 1.5
    assert redact_value(True, scrub) is True
    assert redact_value(None, scrub) is None
    assert redact_value("id 12345678", scrub) == f"id {MARK}"


def test_redaction_applies_to_the_string_not_its_json_escaping() -> None:
    secret = 'pa"ss\\word-123'
    value = {"out": f"using {secret}"}
    assert redact_value(value, redactor({"PASSWORD": secret})) == {"out": f"using {MARK}"}


json_tree = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda kids: (
        st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=8), kids, max_size=3)
    ),
    max_leaves=12,
)
alnum = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
    min_size=8,
    max_size=24,
)


@given(json_tree, alnum)
def test_a_secret_planted_anywhere_in_json_never_survives(tree: Any, secret: str) -> None:
    planted = {"a": [tree, f"x{secret}y"], f"k{secret}": {"deep": [secret]}}
    out = redact_value(planted, redactor({"SERVICE_TOKEN": secret}))
    assert secret not in json.dumps(out, ensure_ascii=False)


@given(st.text(max_size=60), alnum)
def test_redact_is_idempotent(text: str, secret: str) -> None:
    scrub = redactor({"SERVICE_TOKEN": secret})
    once = scrub(text + secret + text)
    assert secret not in once
    assert scrub(once) == once


SECRET = "s3cr3t-value-of-forty-characters-abcdefg"


@pytest.mark.parametrize("at", range(-len(SECRET), 1))
def test_a_tail_cut_through_a_secret_leaves_none_of_it(at: int) -> None:
    # The secret ends `at` characters before the cut point of a 1024-character tail.
    text = ("x" * 5000 + SECRET + "y" * (1024 + at)).encode()
    shown = tail(text, 1024, redactor({"API_TOKEN": SECRET}))
    assert len(shown) == 1024
    assert not any(SECRET[i : i + 8] in shown for i in range(len(SECRET) - 7))


@pytest.mark.parametrize("at", range(0, len(SECRET) + 1))
def test_a_head_cut_through_a_secret_leaves_none_of_it(at: int) -> None:
    text = ("x" * (1024 - at) + SECRET + "y" * 5000).encode()
    shown = head(text, 1024, redactor({"API_TOKEN": SECRET}))
    assert len(shown) == 1024
    assert not any(SECRET[i : i + 8] in shown for i in range(len(SECRET) - 7))


def test_credentials_in_a_url_are_redacted() -> None:
    text = "fatal: could not read from https://x-access-token:hunter2secret@github.com/o/r.git"
    assert redact(text, {}) == ("fatal: could not read from https://[redacted]@github.com/o/r.git")
    # A URL without credentials, and an ordinary "a:b@c", are left alone.
    assert redact("see https://github.com/o/r and mail a:b@c", {}) == (
        "see https://github.com/o/r and mail a:b@c"
    )
