"""DECIDE end to end through the installed CLI: where a decision comes from, what a bad one
does (a failed beat that arms backoff), runner failures, and the guards that hold a beat back
before any runner call (DESIGN §5, §6)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import FAKE_RUNNER, NOOP, Repo, Run, wait_dead

# What `claude -p --output-format json` really prints for one turn (fields trimmed to the
# shape; the values are made up).
CLAUDE_SESSION = "7c1e4b8a-2f6d-4c1b-9a55-0d2e8f1a3b77"


def claude_result(text: str, cost: float | None = 0.0123, *, is_error: bool = False) -> str:
    event: dict[str, Any] = {
        "type": "result",
        "subtype": "success",
        "is_error": is_error,
        "duration_ms": 2310,
        "duration_api_ms": 2204,
        "num_turns": 1,
        "result": text,
        "session_id": CLAUDE_SESSION,
        "usage": {
            "input_tokens": 4,
            "cache_creation_input_tokens": 5120,
            "cache_read_input_tokens": 0,
            "output_tokens": 61,
            "server_tool_use": {"web_search_requests": 0},
            "service_tier": "standard",
        },
        "permission_denials": [],
        "uuid": "0b9a7f0e-53a4-4d52-8d0e-3c3f5b0f6e21",
    }
    if cost is not None:
        event["total_cost_usd"] = cost
    return json.dumps(event) + "\n"


CLAUDE_YAML = """
runners:
  claude:
    tick: claude -p --output-format json
    cost: {type: result, pointer: /total_cost_usd, mode: total}
"""


def use_claude(repo: Repo, runners: str = CLAUDE_YAML) -> None:
    """Switch the data repo to a claude runner (the tick command stays the fake runner,
    through $LOOOPBOT_TICK_COMMAND), committed like a human would."""
    text = repo.read("looopbot.yaml")
    assert "\nrunner: example\n" in text
    text = text.replace("\nrunner: example\n", "\nrunner: claude\n", 1) + runners
    repo.write("looopbot.yaml", text)
    repo.git("commit", "-qam", "use claude")


def fenced(decision: dict[str, Any]) -> str:
    return "```json\n" + json.dumps(decision, indent=2) + "\n```"


def assert_failed(r: Run, *needles: str) -> str:
    """A failed beat: exit 1, outcome failed, one `looopbot:` line on stderr, no traceback."""
    assert r.code == 1, (r.code, r.out, r.err)
    doc = r.json()
    assert doc["outcome"] == "failed", doc
    error = doc["error"]
    assert isinstance(error, str) and error
    for needle in needles:
        assert needle in error, error
    lines = r.err.strip().splitlines()
    assert len(lines) == 1, r.err
    assert lines[0].startswith("looopbot:"), r.err
    assert "Traceback" not in r.err
    assert set(doc) == {
        "outcome",
        "action",
        "journal",
        "world_hash",
        "commit",
        "cost_usd",
        "error",
        "push",
    }
    assert doc["push"] is None  # push is off
    return error


def assert_backoff_armed(repo: Repo, failures: int = 1) -> None:
    """state.json counts the failure and the next beat holds back without a runner call."""
    st = repo.state()
    assert st["failures"] == failures, st
    assert st["failure"]
    calls = repo.calls()
    r = repo.tick()
    assert r.code == 0, r.err
    assert r.json()["outcome"] == "backoff", r.json()
    assert repo.calls() == calls
    assert repo.state()["failures"] == failures


def nudge(repo: Repo, text: str) -> None:
    """A human edits a goal by hand (not through looopbot)."""
    repo.write("goals/nudge.md", f"goal: {text}\n")


# --- where the decision comes from -----------------------------------------------------------


def test_decision_printed_bare_after_chatter(repo: Repo) -> None:
    decision = {"action": "write_goal", "id": "bare", "body": "goal: bare\n"}
    repo.queue({"stdout": "Reading the prompt...\nDone.\n" + json.dumps(decision) + "\n"})
    r = repo.tick()
    assert r.code == 0, r.err
    assert r.json()["action"] == "write_goal"
    assert repo.read("goals/bare.md") == "goal: bare\n"


def test_decision_inside_json_fences_amid_prose(repo: Repo) -> None:
    decision = {"action": "write_goal", "id": "fenced", "body": "goal: fenced\n", "journal": "f"}
    prose = (
        "Looking at the {goals} and the readings, the best single move is to note a goal.\n\n"
        f"{fenced(decision)}\n\nLet me know if you want something else {{or not}}.\n"
    )
    repo.queue({"stdout": prose})
    r = repo.tick()
    assert r.code == 0, r.err
    assert r.json()["action"] == "write_goal"
    assert r.json()["journal"] == "f"
    assert repo.read("goals/fenced.md") == "goal: fenced\n"


def test_decision_inside_claude_result_event_and_its_cost_is_recorded(repo: Repo) -> None:
    use_claude(repo)
    decision = {"action": "write_goal", "id": "viaclaude", "body": "goal: from claude\n"}
    text = "I will add a goal.\n\n" + fenced(decision)
    repo.queue({"stdout": claude_result(text, 0.0123)})
    r = repo.tick()
    assert r.code == 0, r.err
    doc = r.json()
    assert doc["outcome"] == "decided" and doc["action"] == "write_goal"
    assert doc["cost_usd"] == pytest.approx(0.0123)
    assert repo.read("goals/viaclaude.md") == "goal: from claude\n"
    trailers = repo.trailers()
    assert float(trailers["Looopbot-Cost-USD"]) == pytest.approx(0.0123)
    rows = [json.loads(line) for line in repo.read(".looopbot/cost.jsonl").splitlines()]
    assert len(rows) == 1
    row = rows[0]
    assert set(row) == {"ts", "kind", "id", "runner", "cost_usd"}
    assert row["kind"] == "tick" and row["runner"] == "claude"
    assert row["id"] == trailers["Looopbot-Run"]
    assert row["cost_usd"] == pytest.approx(0.0123)
    assert abs(row["ts"] - time.time()) < 600
    # the ledger row is committed with the beat
    assert ".looopbot/cost.jsonl" in repo.git("show", "--name-only", "--format=", "HEAD")


def test_claude_preset_reads_total_cost_usd(repo: Repo) -> None:
    """The built-in claude preset meters cost without any `cost:` spec in looopbot.yaml."""
    use_claude(repo, runners="")
    repo.queue({"stdout": claude_result(json.dumps(NOOP), 0.5)})
    r = repo.tick()
    assert r.code == 0, r.err
    assert r.json()["cost_usd"] == pytest.approx(0.5)


def test_decision_inside_claude_stream_json_events(repo: Repo) -> None:
    use_claude(repo)
    decision = {"action": "write_goal", "id": "streamed", "body": "goal: streamed\n"}
    events = [
        {"type": "system", "subtype": "init", "session_id": CLAUDE_SESSION, "tools": []},
        {
            "type": "assistant",
            "message": {
                "role": "assistant",
                "content": [{"type": "text", "text": "Thinking about it."}],
            },
        },
    ]
    out = "".join(json.dumps(e) + "\n" for e in events) + claude_result(fenced(decision), 0.03)
    repo.queue({"stdout": out})
    r = repo.tick()
    assert r.code == 0, r.err
    assert r.json()["action"] == "write_goal"
    assert r.json()["cost_usd"] == pytest.approx(0.03)
    assert repo.read("goals/streamed.md") == "goal: streamed\n"


def test_decision_inside_codex_exec_json_events(repo: Repo) -> None:
    decision = {"action": "write_goal", "id": "viacodex", "body": "goal: from codex"}
    events = [
        {"type": "thread.started", "thread_id": "0199a213-81c0-7800-8aa1-bbab2a035a53"},
        {"type": "turn.started"},
        {
            "type": "item.completed",
            "item": {
                "id": "item_0",
                "type": "reasoning",
                "text": "**Choosing one move** — a noop would be "
                '{"action": "noop", "reason": "draft"} but a goal is better.',
            },
        },
        {
            "type": "item.completed",
            "item": {"id": "item_1", "type": "agent_message", "text": fenced(decision)},
        },
        {
            "type": "turn.completed",
            "usage": {"input_tokens": 3120, "cached_input_tokens": 2048, "output_tokens": 88},
        },
    ]
    repo.queue({"stdout": "".join(json.dumps(e) + "\n" for e in events)})
    r = repo.tick()
    assert r.code == 0, r.err
    assert r.json()["action"] == "write_goal"
    # trailing newline ensured
    assert repo.read("goals/viacodex.md") == "goal: from codex\n"


def test_decision_file_wins_over_stdout(repo: Repo) -> None:
    repo.queue(
        {
            "decision_file": json.dumps(
                {"action": "write_goal", "id": "fromfile", "body": "goal: file\n"}
            ),
            "stdout": json.dumps({"action": "write_goal", "id": "fromstdout", "body": "goal: x\n"}),
        }
    )
    r = repo.tick()
    assert r.code == 0, r.err
    assert r.json()["action"] == "write_goal"
    assert (repo.root / "goals/fromfile.md").is_file()
    assert not (repo.root / "goals/fromstdout.md").exists()
    # It stays in its own run's folder, the record of what was decided, and nowhere else.
    [kept] = (repo.root / ".looopbot/runs").glob("*/decision.json")
    assert json.loads(kept.read_text())["id"] == "fromfile"
    assert not (repo.root / ".decision.json").exists()
    assert repo.status_porcelain() == ""


def test_last_decision_shaped_object_in_stdout_wins(repo: Repo) -> None:
    first = {"action": "write_goal", "id": "first", "body": "goal: first\n"}
    last = {"action": "write_goal", "id": "last", "body": "goal: last\n"}
    out = (
        json.dumps(first)
        + "\nOn reflection:\n"
        + json.dumps(last)
        + "\n"
        + json.dumps({"type": "stats", "tokens": 12})  # not decision-shaped: ignored
        + "\n"
    )
    repo.queue({"stdout": out})
    r = repo.tick()
    assert r.code == 0, r.err
    assert (repo.root / "goals/last.md").is_file()
    assert not (repo.root / "goals/first.md").exists()


# --- a stale decision file ---------------------------------------------------------------------

STALE = {"action": "write_goal", "id": "stale", "body": "goal: from a crashed beat\n"}


def _plant_stale(repo: Repo) -> list[Path]:
    """A decision where a killed beat's late runner, or an old looopbot, could have left one:
    the old fixed location, and an earlier run's folder."""
    old_run = repo.root / ".looopbot/runs/20000101T000000Z-dead00"
    old_run.mkdir(parents=True)
    planted = [repo.root / ".decision.json", old_run / "decision.json"]
    for path in planted:
        path.write_text(json.dumps(STALE))
    return planted


def test_stale_decision_file_is_never_executed_when_runner_writes_nothing(repo: Repo) -> None:
    _plant_stale(repo)
    repo.queue({"stdout": ""})
    r = repo.tick()
    assert_failed(r, "no decision")
    assert repo.calls() == 1
    assert not (repo.root / "goals/stale.md").exists()
    assert "goals/stale.md" not in repo.git("log", "--all", "--name-only", "--format=")
    assert_backoff_armed(repo)


def test_stale_decision_file_loses_to_the_runners_stdout(repo: Repo) -> None:
    _plant_stale(repo)
    repo.decide(NOOP)
    r = repo.tick()
    assert r.code == 0, r.err
    assert r.json()["action"] == "noop"
    assert not (repo.root / "goals/stale.md").exists()


def test_the_decision_file_is_per_run_and_named_in_the_prompt(repo: Repo) -> None:
    repo.decide(NOOP)
    assert repo.tick().code == 0
    [run] = (repo.root / ".looopbot/runs").iterdir()
    assert (
        f".looopbot/runs/{run.name}/decision.json" in repo.prompts()[0]
        or str(run / "decision.json") in repo.prompts()[0]
    )


# --- malformed decisions: a failed beat that arms backoff --------------------------------------

MALFORMED: list[tuple[str, dict[str, Any], tuple[str, ...]]] = [
    ("not-json", {"stdout": "I think we should wait for the build.\n"}, ("no decision",)),
    (
        "truncated-json",
        {"stdout": '{"action": "noop", "reason": "cut off'},
        ("no decision",),
    ),
    (
        "unknown-action",
        {"stdout": json.dumps({"action": "launch_rockets", "reason": "why not"})},
        ("launch_rockets", "noop", "write_goal", "run_shell", "send_notification"),
    ),
    (
        "missing-field",
        {"stdout": json.dumps({"action": "write_goal", "id": "half"})},
        ("write_goal", "body"),
    ),
    (
        "missing-reason",
        {"stdout": json.dumps({"action": "noop"})},
        ("noop", "reason"),
    ),
    (
        "wrong-type-body",
        {"stdout": json.dumps({"action": "write_goal", "id": "typed", "body": 42})},
        ("write_goal.body", "string"),
    ),
    (
        "wrong-type-id",
        {"stdout": json.dumps({"action": "archive_goal", "id": ["setup"]})},
        ("archive_goal.id",),
    ),
    (
        "wrong-type-journal",
        {"stdout": json.dumps({**NOOP, "journal": ["a", "b"]})},
        ("journal", "string"),
    ),
    (
        "wrong-type-next-interval",
        {"stdout": json.dumps({**NOOP, "next_interval_s": "soon"})},
        ("next_interval_s", "number"),
    ),
    (
        "decision-file-invalid-json",
        {"decision_file": '{"action": "noop", reason: nope}'},
        ("decision file", "not valid JSON"),
    ),
    (
        "decision-file-list",
        {"decision_file": json.dumps([NOOP])},
        ("decision file", "JSON object"),
    ),
    (
        "decision-file-action-not-string",
        {"decision_file": json.dumps({"action": 7, "reason": "x"})},
        ("action", "noop", "write_goal"),
    ),
]


@pytest.mark.parametrize(
    ("step", "needles"), [(s, n) for _, s, n in MALFORMED], ids=[i for i, _, _ in MALFORMED]
)
def test_malformed_decision_fails_the_beat_and_arms_backoff(
    repo: Repo, step: dict[str, Any], needles: tuple[str, ...]
) -> None:
    goals_before = sorted(p.name for p in (repo.root / "goals").iterdir())
    repo.queue(step)
    r = repo.tick()
    error = assert_failed(r, *needles)
    assert r.json()["commit"] == repo.head(), "a failed beat is recorded in git"
    assert repo.trailers()["Looopbot-Outcome"] == "failed"
    assert "failed: " in repo.read("journal.md").splitlines()[-1]
    assert error[:60] in repo.read("journal.md")
    assert sorted(p.name for p in (repo.root / "goals").iterdir()) == goals_before
    assert_backoff_armed(repo)


def test_unknown_action_message_lists_every_valid_action(repo: Repo) -> None:
    repo.decide({"action": "deploy", "reason": "ship"})
    error = assert_failed(repo.tick(), "deploy")
    for name in (
        "noop",
        "run_shell",
        "write_goal",
        "archive_goal",
        "write_sensor",
        "write_playbook",
        "send_notification",
    ):
        assert name in error, (name, error)


def test_backoff_is_cleared_only_by_a_successful_decision(repo: Repo) -> None:
    repo.decide({"action": "nope"})
    assert_failed(repo.tick(), "nope")
    assert repo.state()["failures"] == 1
    # a goal edit cuts the wait short, but another failure counts on
    nudge(repo, "one")
    repo.decide({"action": "nope"})
    assert_failed(repo.tick(), "nope")
    assert repo.calls() == 2
    assert_backoff_armed(repo, failures=2)
    nudge(repo, "two")
    repo.decide(NOOP)
    r = repo.tick()
    assert r.code == 0 and r.json()["outcome"] == "decided", r.out
    st = repo.state()
    assert st["failures"] == 0
    assert st["failure"] is None and st["failed_at"] is None
    assert repo.calls() == 3


def test_goal_edit_by_hand_cuts_backoff_short(repo: Repo) -> None:
    repo.decide({"action": "write_goal", "id": "x"})
    assert_failed(repo.tick(), "body")
    assert repo.tick().json()["outcome"] == "backoff"
    assert repo.calls() == 1
    nudge(repo, "try again")
    repo.decide(NOOP)
    r = repo.tick()
    assert r.json()["outcome"] == "decided", r.out
    assert repo.calls() == 2


def test_playbook_edit_by_hand_cuts_backoff_short(repo: Repo) -> None:
    repo.decide({"action": "write_goal", "id": "x"})
    assert_failed(repo.tick(), "body")
    repo.write("PLAYBOOK.md", repo.read("PLAYBOOK.md") + "\nBe careful with goals.\n")
    repo.decide(NOOP)
    assert repo.tick().json()["outcome"] == "decided"
    assert repo.calls() == 2


def test_last_failure_section_appears_in_the_next_prompt(repo: Repo) -> None:
    repo.decide({"action": "write_goal", "id": "x", "body": 42})
    error = assert_failed(repo.tick())
    assert "=== LAST FAILURE ===" not in repo.prompts()[0]
    # `looopbot prompt` shows what the next decision would get
    shown = repo.run("prompt")
    assert shown.code == 0, shown.err
    assert "=== LAST FAILURE ===" in shown.out
    nudge(repo, "retry")
    repo.decide(NOOP)
    assert repo.tick().json()["outcome"] == "decided"
    prompt = repo.prompts()[1]
    assert prompt.count("=== LAST FAILURE ===") == 1
    section = prompt.split("=== LAST FAILURE ===", 1)[1].split("\n=== ", 1)[0]
    assert "write_goal.body" in section and error[:40] in section
    # the success cleared it: the prompt after that has no failure section
    nudge(repo, "again")
    repo.decide(NOOP)
    assert repo.tick().json()["outcome"] == "decided"
    assert "=== LAST FAILURE ===" not in repo.prompts()[2]


# --- runner failures ---------------------------------------------------------------------------


def test_runner_exiting_non_zero_fails_with_its_stderr_tail(repo: Repo) -> None:
    repo.queue(
        {
            "stdout": json.dumps(NOOP),  # a decision printed before dying is not taken
            "stderr": "starting\nwarming up\nError: model not found (404)\n",
            "exit": 3,
        }
    )
    error = assert_failed(repo.tick(), "code 3", "model not found (404)")
    assert "code 3" in error
    assert repo.state()["decided_action"] is None
    assert_backoff_armed(repo)


RECORDED = Path(__file__).parent.parent / "fixtures" / "runners"


@pytest.mark.parametrize(
    ("recording", "exit_code"),
    [
        ("claude-2.1.197-nologin.stdout", 0),
        ("claude-2.1.330-nologin.stdout", 0),
        ("claude-2.1.330-nologin.stdout", 1),
    ],
)
def test_claude_not_logged_in_is_a_failed_beat_naming_the_message(
    repo: Repo, recording: str, exit_code: int
) -> None:
    """The real CLI's output with no login: an error result event, which is no decision."""
    use_claude(repo)
    out = (RECORDED / recording).read_text()
    assert '"is_error":true' in out
    repo.queue({"stdout": out, "exit": exit_code})
    r = repo.tick()
    error = assert_failed(r, "Not logged in · Please run /login")
    assert "no decision" not in error
    assert "Not logged in · Please run /login" in r.err
    assert_backoff_armed(repo)


def test_codex_turn_failed_is_a_failed_beat_naming_the_error(repo: Repo) -> None:
    out = (RECORDED / "codex-json-401.stdout").read_text()
    repo.queue({"stdout": out, "exit": 1})
    assert_failed(repo.tick(), "401 Unauthorized")
    assert_backoff_armed(repo)


def test_recorded_codex_answer_is_decided(repo: Repo) -> None:
    repo.queue({"stdout": (RECORDED / "codex-json-ok.stdout").read_text()})
    r = repo.tick()
    assert r.code == 0, r.err
    assert r.json()["outcome"] == "decided" and r.json()["action"] == "noop"
    assert r.json()["journal"] == "noop: hi"


def test_runner_timeout_kills_the_whole_group(repo: Repo, tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild.pid"
    repo.queue(
        {
            "spawn": f"sleep 300 & echo $! > {pidfile}",
            "sleep": 30,
            "decision_file": json.dumps(
                {"action": "write_goal", "id": "late", "body": "goal: too late\n"}
            ),
        }
    )
    # the 20 s cap is far below the runner's 30 s nap: the beat did not wait it out
    r = repo.tick(env={"LOOOPBOT_TICK_TIMEOUT": "1"}, timeout=20)
    assert_failed(r, "timed out", "1s", "tick_timeout")
    pid = int(pidfile.read_text())
    if wait_dead([pid]):
        os.kill(pid, 9)
        raise AssertionError(f"the runner's grandchild {pid} survived the timeout")
    assert not (repo.root / "goals/late.md").exists()
    assert not (repo.root / ".decision.json").exists()
    assert_backoff_armed(repo)


# --- guards ------------------------------------------------------------------------------------


def test_decides_per_hour_cap_holds_without_a_runner_call(repo: Repo) -> None:
    env = {"LOOOPBOT_MAX_DECIDES_PER_HOUR": "1"}
    repo.decide(NOOP)
    assert repo.tick(env=env).json()["outcome"] == "decided"
    nudge(repo, "new work")
    r = repo.tick(env=env)
    assert r.code == 0, r.err
    assert r.json()["outcome"] == "capped", r.json()
    assert repo.calls() == 1
    assert repo.trailers()["Looopbot-Outcome"] == "capped"
    # the cap lifted (by config), the same world change is decided
    repo.decide(NOOP)
    assert repo.tick(env={"LOOOPBOT_MAX_DECIDES_PER_HOUR": "2"}).json()["outcome"] == "decided"
    assert repo.calls() == 2


def test_daily_budget_stops_runner_calls_once_reached(repo: Repo) -> None:
    use_claude(repo)
    env = {"LOOOPBOT_MAX_DAILY_USD": "0.01"}
    repo.queue({"stdout": claude_result(json.dumps(NOOP), 0.02)})
    r = repo.tick(env=env)
    assert r.json()["outcome"] == "decided" and r.json()["cost_usd"] == pytest.approx(0.02)
    nudge(repo, "more work")
    r = repo.tick(env=env)
    assert r.code == 0, r.err
    assert r.json()["outcome"] == "budget", r.json()
    assert repo.calls() == 1
    assert repo.trailers()["Looopbot-Outcome"] == "budget"
    # a bigger budget lets the same world through
    repo.queue({"stdout": claude_result(json.dumps(NOOP), 0.001)})
    assert repo.tick(env={"LOOOPBOT_MAX_DAILY_USD": "1"}).json()["outcome"] == "decided"
    assert repo.calls() == 2


def test_budget_fails_closed_when_cost_cannot_be_read(repo: Repo) -> None:
    env = {"LOOOPBOT_MAX_DAILY_USD": "5"}
    for i in range(3):
        repo.decide(NOOP)  # a plain runner: no cost anywhere in its output
        nudge(repo, f"step {i}")
        r = repo.tick(env=env)
        assert r.json()["outcome"] == "decided", r.out
        assert r.json()["cost_usd"] is None
    assert repo.state()["cost_unknown"] == 3
    nudge(repo, "step 3")
    r = repo.tick(env=env)
    assert r.code == 0, r.err
    assert r.json()["outcome"] == "budget", r.json()
    assert repo.calls() == 3
    # still closed on the next change
    nudge(repo, "step 4")
    assert repo.tick(env=env).json()["outcome"] == "budget"
    assert repo.calls() == 3
    # new runner wiring re-opens it
    repo.decide(NOOP)
    r = repo.tick(env={**env, "LOOOPBOT_TICK_COMMAND": f"env RUNNER_V=2 {FAKE_RUNNER}"})
    assert r.json()["outcome"] == "decided", r.json()
    assert repo.calls() == 4
