"""Runner retries and the prompt by file (issue 9): a transient failure (a rate limit, an
overload) is tried again within the beat and every call is metered; any other failure is
not retried; `{prompt_file}` hands the prompt over as a file."""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import FAKE_RUNNER, NOOP, Repo
from test_actions_e2e import assert_failed, decided

RATE_LIMITED = {
    "stderr": 'API Error: 429 {"type":"error","error":{"type":"rate_limit_error"}}\n',
    "exit": 1,
}
OVERLOADED = {"stdout": '{"type":"result","is_error":true,"result":"529 Overloaded"}\n', "exit": 1}


def runners(repo: Repo, settings: str) -> None:
    """Give the example runner these settings (the tick command stays the scripted runner,
    through $LOOOPBOT_TICK_COMMAND), committed as a human would."""
    text = repo.read("looopbot.yaml") + f"runners:\n  example:\n{settings}"
    repo.write("looopbot.yaml", text)
    repo.git("commit", "-qam", "runner settings")


def ledger(repo: Repo) -> list[dict[str, Any]]:
    lines = repo.read(".looopbot/cost.jsonl").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def test_two_rate_limits_then_an_answer_make_one_decided_beat(repo: Repo) -> None:
    runners(repo, "    retries: 2\n    retry_sleep: 0\n")
    repo.queue(RATE_LIMITED, OVERLOADED, {"stdout": json.dumps(NOOP)})
    doc = decided(repo.tick(), "noop")
    assert repo.calls() == 3
    rows = [r for r in ledger(repo) if r["id"] == repo.trailers()["Looopbot-Run"]]
    assert len(rows) == 3 and {r["kind"] for r in rows} == {"tick"}
    run_dir = repo.root / ".looopbot" / "runs" / repo.trailers()["Looopbot-Run"]
    log = (run_dir / "output.log").read_text()
    assert "attempt 2 of 3" in log and "attempt 3 of 3" in log
    assert doc["error"] is None


def test_another_error_is_not_retried(repo: Repo) -> None:
    runners(repo, "    retries: 2\n    retry_sleep: 0\n")
    repo.queue({"stderr": "Error: invalid prompt format\n", "exit": 2}, {"stdout": "{}"})
    assert_failed(repo.tick(), "exited with code 2", "invalid prompt format")
    assert repo.calls() == 1


def test_a_timeout_is_not_retried_even_if_it_said_rate_limit(repo: Repo) -> None:
    runners(repo, "    retries: 2\n    retry_sleep: 0\n")
    text = repo.read("looopbot.yaml").replace("limits:\n", "limits:\n  tick_timeout: 1\n", 1)
    repo.write("looopbot.yaml", text)
    repo.git("commit", "-qam", "short timeout")
    repo.queue({"stderr": "rate limit\n", "sleep": 30}, {"stdout": json.dumps(NOOP)})
    assert_failed(repo.tick(), "timed out")
    assert repo.calls() == 1


def test_retries_run_out_into_a_failed_beat_that_counts_every_call(repo: Repo) -> None:
    runners(repo, "    retries: 1\n    retry_sleep: 0\n")
    repo.queue(RATE_LIMITED, RATE_LIMITED, {"stdout": json.dumps(NOOP)})
    assert_failed(repo.tick(), "429", "after 2 attempts")
    assert repo.calls() == 2
    assert len(ledger(repo)) == 2


def test_retry_match_is_the_runners_own(repo: Repo) -> None:
    runners(repo, "    retries: 1\n    retry_sleep: 0\n    retry_match: 'try again later'\n")
    repo.queue({"stderr": "busy, try again later\n", "exit": 1}, {"stdout": json.dumps(NOOP)})
    decided(repo.tick(), "noop")
    repo.queue(RATE_LIMITED, {"stdout": json.dumps(NOOP)})
    assert_failed(repo.tick("--force"), "429")  # not this runner's transient error
    assert repo.calls() == 3


def test_a_failed_attempts_decision_file_is_never_read(repo: Repo) -> None:
    runners(repo, "    retries: 1\n    retry_sleep: 0\n")
    shell = {"action": "run_shell", "cmd": "touch pwned", "reason": "x"}
    repo.queue({**RATE_LIMITED, "decision_file": json.dumps(shell)}, {"stdout": json.dumps(NOOP)})
    decided(repo.tick(), "noop")
    assert not (repo.root / "pwned").exists()


def test_the_prompt_by_file(repo: Repo) -> None:
    repo.env["LOOOPBOT_TICK_COMMAND"] = f"{FAKE_RUNNER} < {{prompt_file}}"
    repo.decide(NOOP)
    decided(repo.tick(), "noop")
    (prompt,) = repo.prompts()
    run = repo.trailers()["Looopbot-Run"]
    assert prompt == (repo.root / ".looopbot" / "runs" / run / "prompt.md").read_text()
    assert "You are the decider of looopbot" in prompt


def test_the_prompt_file_is_quoted_for_the_shell(tmp_path: Any) -> None:
    from conftest import make_repo

    spaced = make_repo(tmp_path / "with space; $(touch pwned)")
    spaced.env["LOOOPBOT_TICK_COMMAND"] = f"{FAKE_RUNNER} < {{prompt_file}}"
    spaced.decide(NOOP)
    decided(spaced.tick(), "noop")
    assert "You are the decider" in spaced.prompts()[0]
    assert not any(tmp_path.rglob("pwned"))


@pytest.mark.parametrize(
    ("setting", "needle"),
    [
        ("    retries: -1\n", "retries must be 0..10"),
        ("    retries: true\n", "retries must be 0..10"),
        ("    retry_sleep: forever\n", "retry_sleep must be 0..600"),
        ("    retry_match: '(unclosed'\n", "retry_match is not a regex"),
    ],
)
def test_bad_retry_settings_name_the_line(repo: Repo, setting: str, needle: str) -> None:
    runners(repo, setting)
    done = repo.run("validate")
    assert done.code == 1 and needle in done.out + done.err
    line = len(repo.read("looopbot.yaml").splitlines())
    assert f"looopbot.yaml:{line}" in done.out + done.err
