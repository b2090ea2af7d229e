"""Bad input gets a clear error and loses nothing, end to end through the installed CLI:
a mangled ledger row, misspelled or unparsable environment, push asked of a version without
it, and the crash log of an internal error."""

from __future__ import annotations

import pytest
from conftest import NOOP, Repo

BUDGET = {"LOOOPBOT_MAX_DAILY_USD": "5"}


def nudge(repo: Repo, text: str) -> None:
    """A human edits a goal by hand: a changed world, so the next beat wants to decide."""
    repo.write("goals/nudge.md", f"goal: {text}\n")


# --- a mangled ledger row fails the budget closed ---------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        "<<<<<<< HEAD",  # not JSON: a merge gone wrong
        '{"ts": 1, "kind": "tick"}',  # JSON missing fields
        '{"ts": 9e99, "kind": "tick", "id": "r", "runner": "x", "cost_usd": "a lot"}',
    ],
    ids=["not-json", "missing-fields", "cost-not-a-number"],
)
def test_a_mangled_ledger_row_holds_the_beat_until_it_is_fixed(repo: Repo, bad: str) -> None:
    repo.decide(NOOP)
    assert repo.tick(env=BUDGET).json()["outcome"] == "decided"
    ledger = repo.root / ".looopbot" / "cost.jsonl"
    good = ledger.read_text()
    assert len(good.splitlines()) == 1
    ledger.write_text(good + "\n" + bad + "\n")  # a blank line, then the bad row: line 3
    nudge(repo, "more work")
    repo.decide(NOOP)
    r = repo.tick(env=BUDGET)
    assert r.code == 0, r.err
    doc = r.json()
    assert doc["outcome"] == "budget", doc
    assert repo.calls() == 1  # no runner call
    assert repo.trailers()["Looopbot-Outcome"] == "budget"
    again = repo.run("tick", env=BUDGET)  # the plain report says why, and what to do
    assert again.code == 0 and again.out.startswith("budget: "), again
    assert ".looopbot/cost.jsonl:3: mangled ledger row" in again.out
    assert "fix or remove that line" in again.out
    assert repo.calls() == 1
    # without a budget the ledger is not the beat's business
    assert repo.tick().json()["outcome"] == "decided"
    assert repo.calls() == 2
    # the human removes the line: the budget opens again (blank lines are fine)
    ledger.write_text(ledger.read_text().replace(bad + "\n", "\n"))
    nudge(repo, "even more work")
    repo.decide(NOOP)
    assert repo.tick(env=BUDGET).json()["outcome"] == "decided"
    assert repo.calls() == 3


# --- the environment and push -----------------------------------------------------------------

TYPO = "LOOOPBOT_SENSOR_TIMOUT"
WARNING = (
    "looopbot: warning: unknown environment variable LOOOPBOT_SENSOR_TIMOUT "
    "(did you mean LOOOPBOT_SENSOR_TIMEOUT?)"
)
NO_REMOTE = (
    "looopbot: push to origin/{branch} failed: no remote named 'origin' — add it "
    "(git remote add origin URL) or name another in looopbot.yaml (git.remote)\n"
)


def test_a_misspelled_variable_is_warned_about_on_tick_and_reported_by_validate(
    repo: Repo,
) -> None:
    repo.decide(NOOP)
    r = repo.tick(env={TYPO: "5"})
    assert r.code == 0 and r.json()["outcome"] == "decided", r.err
    assert r.err == WARNING + "\n"
    run = repo.run("run", "--max-beats", "1", "--interval", "0.1", env={TYPO: "5"})
    assert run.code == 0 and run.err.startswith(WARNING + "\n"), run.err
    # validate: a problem, as text and as JSON
    v = repo.run("validate", env={TYPO: "5"})
    assert v.code == 1
    assert (
        "environment: unknown environment variable LOOOPBOT_SENSOR_TIMOUT "
        "(did you mean LOOOPBOT_SENSOR_TIMEOUT?)"
    ) in v.out.splitlines()
    doc = repo.run("validate", "--json", env={TYPO: "5"}).json()
    assert doc["ok"] is False
    assert {
        "path": "environment",
        "line": 0,
        "message": "unknown environment variable LOOOPBOT_SENSOR_TIMOUT "
        "(did you mean LOOOPBOT_SENSOR_TIMEOUT?)",
    } in doc["problems"]
    # the names looopbot sets for what it starts are no typo
    known = {"LOOOPBOT_SESSION_ID": "w1", "LOOOPBOT_RUN_ID": "r", "LOOOPBOT_BIN": "x"}
    assert repo.run("validate", env=known).code == 0
    assert "warning" not in repo.tick(env=known).err


def test_an_unparsable_push_variable_is_an_error_naming_it(repo: Repo) -> None:
    head = repo.head()
    for args in (("tick",), ("run", "--max-beats", "1"), ("status",)):
        r = repo.run(*args, env={"LOOOPBOT_PUSH": "maybe"})
        assert r.code == 1, (args, r.err)
        assert r.err.startswith("looopbot: $LOOOPBOT_PUSH: expected 1/0, true/false or yes/no")
        assert "'maybe'" in r.err and len(r.err.splitlines()) == 1
    v = repo.run("validate", "--json", env={"LOOOPBOT_PUSH": "maybe"})
    assert v.code == 1 and any(
        p["message"].startswith("$LOOOPBOT_PUSH: expected") for p in v.json()["problems"]
    )
    assert repo.head() == head and repo.calls() == 0
    # empty is unset; case does not matter
    repo.decide(NOOP, NOOP)
    assert repo.tick(env={"LOOOPBOT_PUSH": ""}).code == 0
    assert repo.tick("--force", env={"LOOOPBOT_PUSH": "No"}).code == 0


def asks_for_push(repo: Repo, how: str) -> dict[str, str]:
    if how == "yaml":
        text = repo.read("looopbot.yaml").replace("git:\n", "git:\n  push: true\n", 1)
        assert "push: true" in text
        repo.write("looopbot.yaml", text)
        repo.git("commit", "-qam", "push, please")
        return {}
    return {"LOOOPBOT_PUSH": "1"}


@pytest.mark.parametrize("how", ["yaml", "env"])
def test_push_asked_for_anywhere_with_no_remote_says_so_and_keeps_the_commit(
    repo: Repo, how: str
) -> None:
    branch = repo.git("branch", "--show-current").strip()
    want = NO_REMOTE.format(branch=branch)
    repo.decide(NOOP)
    flag = repo.run("tick", "--push")
    assert flag.code == 1 and flag.err == want, flag.err
    env = asks_for_push(repo, how)
    repo.decide(NOOP)
    r = repo.run("tick", "--json", "--force", env=env)
    assert (r.code, r.err) == (1, want), r.err
    doc = r.json()
    assert doc["outcome"] == "decided" and doc["commit"] == repo.head()
    assert doc["push"]["kind"] == "missing" and doc["push"]["result"] == "failed"
    # a dry run changes nothing and needs no remote
    dry = repo.run("tick", "--dry-run", env=env)
    assert dry.code == 0, dry.err
    # reading commands still work, and validate does not object to push itself
    assert repo.run("status", "--json", env=env).code == 0
    v = repo.run("validate", "--json", env=env)
    assert not [p for p in v.json()["problems"] if "push" in p["message"]]
    # switched off by the environment, the beat runs without a word about the remote
    repo.decide(NOOP)
    off = repo.tick("--force", env={"LOOOPBOT_PUSH": "0"})
    assert off.code == 0 and off.json()["push"] is None, off.err


def test_status_shows_a_mangled_ledger_as_a_problem_and_still_reads(repo: Repo) -> None:
    ledger = repo.root / ".looopbot" / "cost.jsonl"
    ledger.parent.mkdir(exist_ok=True)
    ledger.write_text("garbage\n")
    doc = repo.run("status", "--json").json()
    assert doc["spent_today_usd"] is None
    assert (
        doc["problem"]
        == ".looopbot/cost.jsonl:1: mangled ledger row (not JSON) — fix or remove that line"
    )
    text = repo.run("status", env=BUDGET)
    assert text.code == 0, text.err
    assert "spend      unknown today of $5.00" in text.out
    assert "problem    .looopbot/cost.jsonl:1: mangled ledger row" in text.out
