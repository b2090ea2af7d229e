"""The beat end to end through the installed CLI: decide, skip, wake."""

from __future__ import annotations

import json

import pytest
from conftest import NOOP, Repo


def test_first_beat_decides_and_commits_with_trailers(repo: Repo) -> None:
    repo.decide(
        {
            "action": "write_goal",
            "id": "ship",
            "body": "goal: ship it\n",
            "journal": "added the ship goal",
        }
    )
    before = repo.head()
    r = repo.tick()
    assert r.code == 0, r.err
    doc = r.json()
    assert doc["outcome"] == "decided" and doc["action"] == "write_goal"
    assert doc["journal"] == "added the ship goal"
    assert doc["commit"] == repo.head() != before
    t = repo.trailers()
    assert t["Looopbot-Outcome"] == "decided"
    assert t["Looopbot-Action"] == "write_goal"
    assert t["Looopbot-World"] == doc["world_hash"]
    assert t["Looopbot-Run"]
    assert repo.git("log", "-1", "--format=%an <%ae>").strip() == (
        "looopbot <looopbot@users.noreply.github.com>"
    )
    assert repo.git("log", "-1", "--format=%s").startswith(
        "looopbot: write_goal · added the ship goal"
    )
    assert repo.read("goals/ship.md") == "goal: ship it\n"
    assert "added the ship goal" in repo.read("journal.md").splitlines()[-1]
    # exactly what the beat wrote, nothing else
    changed = set(repo.git("show", "--name-only", "--format=", "HEAD").split())
    assert "goals/ship.md" in changed and "journal.md" in changed
    assert changed <= {
        "goals/ship.md",
        "journal.md",
        ".looopbot/state.json",
        ".looopbot/cost.jsonl",
        "snapshots/sys-goals.json",
        "snapshots/sys-claims.json",
        "snapshots/sys-workers.json",
        "snapshots/sys-schedules.json",
    }
    assert repo.status_porcelain() == ""


def test_unchanged_world_makes_no_runner_call_and_no_commit(repo: Repo) -> None:
    repo.decide(NOOP)
    assert repo.tick().code == 0
    head, calls = repo.head(), repo.calls()
    for _ in range(3):
        r = repo.tick()
        assert r.code == 0
        assert r.json()["outcome"] == "unchanged"
        assert r.json()["commit"] is None
    assert repo.calls() == calls == 1
    assert repo.head() == head
    assert repo.status_porcelain() == ""


def test_detail_only_change_does_not_wake_but_signal_change_does(repo: Repo) -> None:
    counter = repo.root.parent / "n"
    counter.write_text("0")
    repo.sensor(
        "build",
        f"""#!/usr/bin/env bash
n=$(( $(cat {counter}) + 1 )); echo $n > {counter}
status=$(cat {repo.root.parent}/status 2>/dev/null || echo green)
printf '{{"signal": {{"status": "%s"}}, "detail": {{"run": %d}}}}\\n' "$status" "$n"
""",
    )
    repo.decide(NOOP)
    assert repo.tick().json()["outcome"] == "decided"
    r = repo.tick()  # detail changed (run 2), signal did not
    assert r.json()["outcome"] == "unchanged"
    assert r.json()["commit"] is not None, "a detail change is a real change: committed"
    assert repo.trailers()["Looopbot-Outcome"] == "unchanged"
    assert repo.calls() == 1
    (repo.root.parent / "status").write_text("red")
    repo.decide(NOOP)
    r = repo.tick()
    assert r.json()["outcome"] == "decided"
    assert repo.calls() == 2
    assert '"green"' in repo.prompts()[-1] and '"red"' in repo.prompts()[-1]
    assert "snapshots/sensor-build.json: signal" in repo.prompts()[-1]


def test_force_decides_on_an_unchanged_world(repo: Repo) -> None:
    repo.decide(NOOP, NOOP)
    repo.tick()
    assert repo.tick().json()["outcome"] == "unchanged"
    assert repo.tick("--force").json()["outcome"] == "decided"
    assert repo.calls() == 2


def test_follow_up_wakes_when_due(repo: Repo) -> None:
    repo.decide({**NOOP, "next_interval_s": 1})  # clamped up to 5 s
    repo.tick()
    st = repo.state()
    assert 4.9 < st["follow_up_at"] - st["decided_at"] < 5.1
    assert repo.tick().json()["outcome"] == "unchanged"


def test_the_loops_own_move_does_not_wake_it_but_a_human_edit_does(repo: Repo) -> None:
    repo.decide({"action": "write_goal", "id": "ship", "body": "goal: ship it\n"})
    assert repo.tick().json()["outcome"] == "decided"
    assert repo.tick().json()["outcome"] == "unchanged"  # its own goal is not news
    assert repo.calls() == 1
    repo.write("goals/ship.md", "goal: ship it by Friday\n")  # a human edits it
    repo.decide(NOOP)
    assert repo.tick().json()["outcome"] == "decided"
    assert "goals/ship.md: edited" in repo.prompts()[-1]


def test_a_decider_that_wants_to_go_on_asks_for_a_follow_up(repo: Repo) -> None:
    repo.decide(
        {"action": "write_goal", "id": "ship", "body": "goal: ship\n", "next_interval_s": 5}
    )
    repo.tick()
    state = repo.state()
    assert state["follow_up_at"] == pytest.approx(state["decided_at"] + 5, abs=0.01)


def test_after_a_change_quiet_beats_commit_nothing(repo: Repo) -> None:
    reading = repo.root.parent / "reading"
    reading.write_text("1")
    repo.sensor("s", f'#!/usr/bin/env bash\necho "{{\\"v\\": $(cat {reading})}}"\n')
    repo.decide(NOOP, NOOP)
    assert repo.tick().json()["outcome"] == "decided"
    reading.write_text("2")
    assert repo.tick().json()["outcome"] == "decided"  # the change, committed
    head = repo.head()
    for _ in range(3):
        r = repo.tick()
        assert r.json()["outcome"] == "unchanged" and r.json()["commit"] is None, r.out
    assert repo.head() == head


def test_a_human_goal_edit_while_the_decider_thinks_still_wakes_the_next_beat(
    repo: Repo,
) -> None:
    repo.write("goals/other.md", "goal: other\n")
    repo.decide(NOOP)
    repo.tick()
    # During the decision, a human edits goals/other.md; the move writes goals/ship.md.
    repo.queue(
        {
            "spawn": f"echo 'goal: other, by Friday' > {repo.root / 'goals/other.md'}",
            "stdout": json.dumps({"action": "write_goal", "id": "ship", "body": "goal: ship\n"}),
        }
    )
    assert repo.tick("--force").json()["action"] == "write_goal"
    repo.decide(NOOP)
    r = repo.tick()
    assert r.json()["outcome"] == "decided", r.out
    changed = repo.prompts()[-1].split("=== WHAT CHANGED ===")[1]
    assert "goals/other.md: edited" in changed and "goals/ship.md" not in changed.split("===")[0]
