"""The `github` sensor beyond the issue list: failing checks on the default branch and on PR
heads, review decisions, mergeability that GitHub computes lazily, mentions of the bot, the
bound on work per beat, and a failure half-way that keeps the whole last snapshot. Real
github3.py against the fake GitHub; the world changes by serving changed payloads."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakegithub import FakeGitHub
from fakegithub import client_for as connected
from githubworld import (
    BRANCH_REF,
    COMMENTS,
    ISSUES,
    REPO,
    World,
    check_run,
    comment,
    review,
    sha,
    status,
)

from looopbot.github import conditional, mentions, pulls, sensor
from looopbot.github.client import GitHubClient

TOKEN = "ghp_" + "Ch3cks" * 6


@pytest.fixture
def world() -> Iterator[World]:
    with FakeGitHub() as fake:
        yield World(fake)


class Sensor:
    """The sensor as a beat runs it: each reading gets the last snapshot."""

    def __init__(self, world: World, cache: Path, **settings: Any) -> None:
        self.world = world
        self.cache = cache
        self.client = client_for(world.fake, **settings)
        self.last: dict[str, Any] | None = None

    def read(self) -> dict[str, Any]:
        self.world.serve()
        self.last = sensor.snapshot(self.client, self.cache, self.last)
        return self.last


def client_for(fake: FakeGitHub, **settings: Any) -> GitHubClient:
    return connected(fake, "octocat/Hello-World", TOKEN, **settings)


@pytest.fixture
def beat(world: World, tmp_path: Path) -> Sensor:
    return Sensor(world, tmp_path / "scratch" / "github-etags.json")


def pull_signal(snap: dict[str, Any], number: int) -> dict[str, Any]:
    return next(p for p in snap["signal"]["pull_requests"] if p["number"] == number)


def test_a_red_check_wakes_but_its_words_do_not(world: World, beat: Sensor) -> None:
    quiet = beat.read()
    assert quiet["signal"]["default_branch"] == {"name": "master", "failing": []}

    world.branch_runs[0].append(check_run("lint", "failure", sha("main"), run_id=7))
    red = beat.read()
    assert red["signal"] != quiet["signal"]
    assert red["signal"]["default_branch"]["failing"] == [
        {"kind": "check", "name": "lint", "state": "failure"}
    ]
    [said] = red["detail"]["default_branch"]["failing"]
    assert said["url"].endswith("/runs/7") and said["at"] and said["title"]
    assert "/runs/7" not in json.dumps(red["signal"])

    # A re-run that fails the same way: a new run, URL and time — the same news.
    rerun = check_run("lint", "failure", sha("main"), run_id=8)
    rerun.update(completed_at="2026-02-02T00:00:00Z")
    world.branch_runs[0][-1] = rerun
    again = beat.read()
    assert again["signal"] == red["signal"] and again["detail"] != red["detail"]

    # Failing another way, a failing status, a red PR head: each is news.
    world.branch_runs[0][-1] = check_run("lint", "timed_out", sha("main"), run_id=9)
    assert beat.read()["signal"] != again["signal"]
    world.branch_statuses.append(status("ci/legacy", "error"))
    before = beat.last
    assert before is not None
    after = beat.read()
    assert after["signal"]["default_branch"]["failing"][-1] == {
        "kind": "status",
        "name": "ci/legacy",
        "state": "error",
    }
    number = world.pull_numbers()[0]
    pull = world.pulls[number]
    pull.runs.append(check_run("test", "startup_failure", pull.head, run_id=10))
    head_red = beat.read()
    assert pull_signal(head_red, number)["failing"] == [
        {"kind": "check", "name": "test", "state": "startup_failure"}
    ]
    assert pull_signal(after, number)["failing"] == []
    assert head_red["detail"]["pull_requests"][str(number)]["head_sha"] == pull.head


@pytest.mark.parametrize(
    ("conclusion", "fails"),
    [
        ("failure", True),
        ("timed_out", True),
        ("cancelled", True),
        ("action_required", True),
        ("startup_failure", True),
        ("success", False),
        ("neutral", False),
        ("skipped", False),
        (None, False),  # still running
    ],
)
def test_which_check_runs_fail(world: World, beat: Sensor, conclusion: Any, fails: bool) -> None:
    world.branch_runs[0].append(check_run("ci", conclusion, sha("main"), run_id=5))
    failing = beat.read()["signal"]["default_branch"]["failing"]
    assert failing == ([{"kind": "check", "name": "ci", "state": conclusion}] if fails else [])


@pytest.mark.parametrize(
    ("state", "fails"), [("failure", True), ("error", True), ("pending", False), ("success", False)]
)
def test_which_statuses_fail(world: World, beat: Sensor, state: str, fails: bool) -> None:
    world.branch_statuses.append(status("ci/x", state))
    failing = beat.read()["signal"]["default_branch"]["failing"]
    assert failing == ([{"kind": "status", "name": "ci/x", "state": state}] if fails else [])


def test_check_runs_are_read_across_pages(world: World, beat: Sensor) -> None:
    world.branch_runs = [
        [check_run(f"job-{i}", "success", sha("main"), run_id=i) for i in range(3)],
        [check_run("late", "failure", sha("main"), run_id=99)],
    ]
    snap = beat.read()
    assert snap["signal"]["default_branch"]["failing"] == [
        {"kind": "check", "name": "late", "state": "failure"}
    ]
    path = f"{REPO}/commits/{BRANCH_REF}/check-runs"
    assert [r.query.get("page", "1") for r in world.fake.requests(path)] == ["1", "2"]
    # Unchanged, each page is a 304 of its own.
    before = len(world.fake.log)
    assert beat.read() == snap
    assert {r.status for r in world.fake.log[before:]} == {304}


def test_a_changed_review_decision_wakes(world: World, beat: Sensor) -> None:
    number = world.pull_numbers()[0]
    first = beat.read()
    assert pull_signal(first, number)["review_decision"] == "review_required"
    world.pulls[number].reviews = [review("alice", "APPROVED", 1)]
    approved = beat.read()
    assert pull_signal(approved, number)["review_decision"] == "approved"
    assert approved["signal"] != first["signal"]
    world.pulls[number].reviews.append(review("bob", "CHANGES_REQUESTED", 2))
    assert pull_signal(beat.read(), number)["review_decision"] == "changes_requested"
    # A later comment-only review does not lift a request for changes.
    world.pulls[number].reviews.append(review("bob", "COMMENTED", 3))
    assert pull_signal(beat.read(), number)["review_decision"] == "changes_requested"


@pytest.mark.parametrize(
    ("reviews", "decision"),
    [
        ([], "review_required"),
        ([("a", "COMMENTED")], "review_required"),
        ([("a", "APPROVED")], "approved"),
        ([("a", "APPROVED"), ("b", "CHANGES_REQUESTED")], "changes_requested"),
        # A reviewer's later word replaces their earlier one…
        ([("a", "CHANGES_REQUESTED"), ("a", "APPROVED")], "approved"),
        ([("a", "APPROVED"), ("a", "CHANGES_REQUESTED")], "changes_requested"),
        # …but a later comment does not lift a request for changes.
        ([("a", "CHANGES_REQUESTED"), ("a", "COMMENTED")], "changes_requested"),
        ([("a", "CHANGES_REQUESTED"), ("a", "DISMISSED"), ("b", "APPROVED")], "approved"),
        ([("a", "APPROVED"), ("a", "DISMISSED")], "review_required"),
    ],
)
def test_review_decision_from_reviews(reviews: list[tuple[str, str]], decision: str) -> None:
    assert pulls.decision([{"user": u, "state": s} for u, s in reviews]) == decision


def test_mergeability_still_being_computed_keeps_the_last_known_state(
    world: World, beat: Sensor
) -> None:
    number = world.pull_numbers()[0]
    clean = beat.read()
    assert pull_signal(clean, number)["mergeable_state"] == "clean"
    # A push to the PR: GitHub says unknown while it computes. No wake for that.
    world.pulls[number].mergeable_state = "unknown"
    computing = beat.read()
    assert computing["signal"] == clean["signal"]
    assert computing["detail"]["pull_requests"][str(number)]["mergeable_state_said"] == "unknown"
    # Computed: a real change shows.
    world.pulls[number].mergeable_state = "dirty"
    dirty = beat.read()
    assert pull_signal(dirty, number)["mergeable_state"] == "dirty"
    # A PR never seen known is unknown until GitHub knows.
    world.add_pull(4242)
    world.pulls[4242].mergeable_state = "unknown"
    assert pull_signal(beat.read(), 4242)["mergeable_state"] == "unknown"
    world.pulls[4242].mergeable_state = "blocked"
    assert pull_signal(beat.read(), 4242)["mergeable_state"] == "blocked"


def test_a_new_mention_wakes_and_other_comments_do_not(world: World, beat: Sensor) -> None:
    quiet = beat.read()
    assert quiet["signal"]["mentions"] == []
    world.comments.insert(0, comment(1, "thanks, looks good"))
    world.comments.insert(0, comment(2, "cc @looopbot-dev and mail looopbot@example.com"))
    world.comments.insert(0, comment(3, "note to self: @looopbot", author="looopbot"))
    assert beat.read()["signal"] == quiet["signal"]

    long_way_down = "x " * 2000 + "@LooopBot, what now?"
    world.comments.insert(0, comment(4, long_way_down, author="mona", issue=7))
    mentioned = beat.read()
    assert mentioned["signal"]["mentions"] == [4]
    said = mentioned["detail"]["mentions"]["4"]
    assert said["author"] == "mona" and said["issue"] == 7 and said["url"].endswith("-4")
    assert len(said["text"]) <= 500
    assert "mona" not in json.dumps(mentioned["signal"])
    # Time passing changes nothing: the same comments, the same signal.
    assert beat.read()["signal"] == mentioned["signal"]


def test_only_the_newest_mentions_are_kept(world: World, beat: Sensor) -> None:
    world.comments = [comment(i, f"@looopbot #{i}") for i in range(30, 0, -1)]
    signal = beat.read()["signal"]
    assert signal["mentions"] == list(range(30, 30 - mentions.KEEP, -1))
    request = world.fake.requests(COMMENTS)[-1]
    assert request.query == {
        "sort": "created",
        "direction": "desc",
        "per_page": "100",
    }


def test_the_mention_handle_is_a_setting(world: World, tmp_path: Path) -> None:
    world.comments = [comment(1, "@looopbot hi"), comment(2, "@ops-bot hi")]
    snap = Sensor(world, tmp_path / "c.json", mention="Ops-Bot").read()
    assert snap["signal"]["mentions"] == [2]


@pytest.mark.parametrize(
    ("text", "logins"),
    [
        ("@looopbot do it", ["looopbot"]),
        ("hey @LooopBot.", ["looopbot"]),
        ("(@a, @b-c)", ["a", "b-c"]),
        ("mail me@looopbot.io", []),
        ("see a/@looopbot", []),
        ("@looopbot[bot] ping", ["looopbot[bot]"]),
        ("@@looopbot", []),
    ],
)
def test_mentioned(text: str, logins: list[str]) -> None:
    assert mentions.mentioned(text) == logins


def test_a_failure_half_way_keeps_the_whole_last_snapshot(world: World, beat: Sensor) -> None:
    good = beat.read()
    # The world changes in the parts read before the failure and after it.
    number = world.pull_numbers()[-1]
    world.pages[0][0]["labels"] = []
    world.add_pull(4242)
    world.comments.insert(0, comment(9, "@looopbot look"))
    world.serve()
    head = world.pulls[number].head
    world.fake.fail_next(500, "Internal Server Error", path=f"{REPO}/commits/{head}/check-runs")
    kept = beat.read()
    assert kept["signal"] == good["signal"]
    assert {k: v for k, v in kept["detail"].items() if k != "unavailable"} == good["detail"]
    said = kept["detail"]["unavailable"]
    assert said["kind"] == "server" and f"#{number}" in said["message"]
    assert "500" in said["message"]
    # The next beat reads the whole new world (the answers before the failure were kept).
    fresh = beat.read()
    assert fresh["signal"]["mentions"] == [9] and pull_signal(fresh, 4242)
    assert "unavailable" not in fresh["detail"]


def test_a_failure_on_the_default_branch_keeps_the_last_snapshot(
    world: World, beat: Sensor
) -> None:
    good = beat.read()
    world.branch_runs[0].append(check_run("lint", "failure", sha("main"), run_id=7))
    world.serve()
    world.fake.fail_next(404, path=f"{REPO}/commits/{BRANCH_REF}/status")
    kept = beat.read()
    assert kept["signal"] == good["signal"]
    assert "master" in kept["detail"]["unavailable"]["message"]


def test_a_payload_not_shaped_like_github_keeps_the_last_snapshot(
    world: World, beat: Sensor
) -> None:
    good = beat.read()
    broken = check_run("lint", "failure", sha("main"), run_id=7)
    del broken["app"]  # github3.py refuses an incomplete object
    world.branch_runs[0].append(broken)
    kept = beat.read()
    assert kept["signal"] == good["signal"]
    assert kept["detail"]["unavailable"]["kind"] == "broken"
    # Not even the right kind of JSON: still one line of news, not a crashed beat.
    world.fake.serve(f"{REPO}/commits/{BRANCH_REF}/check-runs", [{"name": "lint"}])
    odd = sensor.snapshot(beat.client, beat.cache, good)
    assert odd["signal"] == good["signal"]
    assert odd["detail"]["unavailable"]["kind"] == "broken"
    assert "unexpected" in odd["detail"]["unavailable"]["message"]


def test_work_per_beat_is_bounded(world: World, beat: Sensor) -> None:
    open_pulls = len(world.pull_numbers())
    for extra in range(sensor.MAX_PULLS + 1 - open_pulls):
        world.add_pull(5000 + extra)
    snap = beat.read()
    prs = snap["signal"]["pull_requests"]
    assert len(prs) == sensor.MAX_PULLS + 1
    looked = [p for p in prs if "mergeable_state" in p]
    assert len(looked) == sensor.MAX_PULLS
    # The one left out is the least recently updated: the last in the list GitHub gave.
    [left] = [p["number"] for p in prs if "mergeable_state" not in p]
    newest_first = [i["number"] for i in world.open_items() if "pull_request" in i]
    assert left == newest_first[-1]
    assert not world.fake.requests(f"{REPO}/pulls/{left}")
    assert f"{sensor.MAX_PULLS} most recently updated" in snap["detail"]["capped"]


def test_lists_are_read_up_to_a_bound(world: World, beat: Sensor) -> None:
    runs = [[check_run(f"j{i}", "success", sha("main"), run_id=i)] for i in range(12)]
    runs[-1] = [check_run("beyond", "failure", sha("main"), run_id=99)]
    world.branch_runs = runs
    snap = beat.read()
    path = f"{REPO}/commits/{BRANCH_REF}/check-runs"
    assert len(world.fake.requests(path)) == conditional.MAX_PAGES
    assert snap["signal"]["default_branch"]["failing"] == []
    assert "check-runs" in snap["detail"]["truncated"]


def test_the_cache_holds_one_world(world: World, beat: Sensor) -> None:
    number = world.pull_numbers()[0]
    beat.read()
    cached = json.loads(beat.cache.read_text())["urls"]
    assert any(f"/pulls/{number}" in url for url in cached)
    world.pages = [[i for i in page if i["number"] != number] for page in world.pages]
    beat.read()
    cached = json.loads(beat.cache.read_text())["urls"]
    assert not any(f"/pulls/{number}" in url for url in cached)
    assert not any(ISSUES + "?" in url and "page=3" in url for url in cached)
    assert TOKEN not in beat.cache.read_text()
