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
