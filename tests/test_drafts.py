"""Draft pull requests, GitHub's half (looopbot.github.drafts): opened once as a draft,
found again and updated, a human's PR left alone, the state read back with an ETag — and
never a merge. Real github3.py against the fake GitHub."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakegithub import FakeGitHub
from fakegithub import client_for as connected

from looopbot.github import drafts
from looopbot.github.client import GitHubClient, GitHubUnavailable

TOKEN = "ghp_" + "Pu11s3cr3t" * 3
REPO = "octocat/Hello-World"
PULLS = f"/repos/{REPO}/pulls"
BRANCH = "looopbot/worker/w1"
RUN = drafts.Verdict(0, "pytest -q", "pass")


@pytest.fixture
def fake() -> Iterator[FakeGitHub]:
    with FakeGitHub() as server:
        server.repo(REPO)
        yield server


def client_for(fake: FakeGitHub) -> GitHubClient:
    return connected(fake, REPO, TOKEN)


def draft(text: str = "first") -> drafts.Draft:
    return drafts.compose("w1", BRANCH, f"Write the report.\n{text}", RUN, ["abc1234 report"])


def calls(fake: FakeGitHub, since: int = 0) -> list[tuple[str, str, int]]:
    return [(r.method, r.path, r.status) for r in fake.log[since:]]


def test_compose_names_the_worker_and_holds_brief_verdict_and_commits() -> None:
    task = "Fix the flaky build " + "x" * 200 + "\n~~~~ a fence in the brief\nmore"
    got = drafts.compose("w1", BRANCH, task, RUN, ["abc1234 first", "def5678 second"], more=3)
    assert got.title.startswith("w1: Fix the flaky build") and len(got.title) == drafts.TITLE_CAP
    assert got.body.startswith("<!-- looopbot-worker: w1 -->")
    assert "**pass** — `pytest -q`" in got.body
    assert "- `abc1234` first\n- `def5678` second\n- … and 3 more" in got.body
    # The brief cannot close its own fence: the fence is longer than any run of ~ in it.
    assert "\n~~~~~text\n" in got.body and "~~~~ a fence in the brief" in got.body
    unjudged = drafts.compose("w2", "looopbot/worker/w2", "", drafts.Verdict(0, None, None), [])
    assert unjudged.title == "looopbot worker w2" and "none declared" in unjudged.body


def test_opened_once_as_a_draft_then_updated_in_place(fake: FakeGitHub) -> None:
    client = client_for(fake)
    first = drafts.publish(client, "w1", BRANCH, "main", draft(), known=None)
    made = fake.repo(REPO).pulls[first.number]
    assert made["draft"] is True and made["head"]["ref"] == BRANCH and made["base"]["ref"] == "main"
    assert made["title"] == "w1: Write the report." and first.state == "open" and first.ours
    posted = [r for r in fake.log if r.method == "POST" and r.path == PULLS]
    assert len(posted) == 1 and posted[0].body["draft"] is True

    asked = len(fake.log)
    again = drafts.publish(client, "w1", BRANCH, "main", draft("second"), known=first.number)
    assert again.number == first.number and len(fake.repo(REPO).pulls) == 1
    assert "second" in fake.repo(REPO).pulls[first.number]["body"]
    assert calls(fake, asked) == [
        ("GET", f"{PULLS}/{first.number}", 200),
        ("PATCH", f"{PULLS}/{first.number}", 200),
    ]
    # Nothing new to say: no write at all.
    asked = len(fake.log)
    drafts.publish(client, "w1", BRANCH, "main", draft("second"), known=first.number)
    assert calls(fake, asked) == [("GET", f"{PULLS}/{first.number}", 200)]


def test_already_exists_is_found_by_head_and_updated(fake: FakeGitHub) -> None:
    client = client_for(fake)
    first = drafts.publish(client, "w1", BRANCH, "main", draft(), known=None)
    asked = len(fake.log)
    # A fresh clone knows no number: its POST meets GitHub's 422, which leads to the PR.
    again = drafts.publish(client, "w1", BRANCH, "main", draft("from a clone"), known=None)
    assert again.number == first.number and len(fake.repo(REPO).pulls) == 1
    assert [(m, s) for m, _p, s in calls(fake, asked)] == [
        ("POST", 422),
        ("GET", 200),
        ("PATCH", 200),
    ]
    assert fake.log[asked + 1].query["head"] == f"octocat:{BRANCH}"
    assert "from a clone" in fake.repo(REPO).pulls[first.number]["body"]


def test_a_humans_pr_on_the_branch_is_left_as_it_is(fake: FakeGitHub) -> None:
    client = client_for(fake)
    base = client.session.post(
        f"{fake.base_url}{PULLS}",
        json={"title": "mine", "body": "my words", "head": BRANCH, "base": "main"},
    )
    assert base.status_code == 201
    found = drafts.publish(client, "w1", BRANCH, "main", draft(), known=None)
    assert not found.ours and found.number == base.json()["number"]
    assert fake.repo(REPO).pulls[found.number]["body"] == "my words"
    assert not [r for r in fake.log if r.method == "PATCH"]


def test_a_merged_pr_is_not_reused_and_its_state_is_read_back(fake: FakeGitHub) -> None:
    client = client_for(fake)
    first = drafts.publish(client, "w1", BRANCH, "main", draft(), known=None)
    got = drafts.refresh(client, first.number, "w1", None)
    assert got is not None and got[0].state == "open"
    asked = len(fake.log)
    # Unchanged: a conditional request, answered 304 (free of rate limit).
    assert drafts.refresh(client, first.number, "w1", got[1]) is None
    assert calls(fake, asked) == [("GET", f"{PULLS}/{first.number}", 304)]

    fake.repo(REPO).merge_pull(first.number)
    merged = drafts.refresh(client, first.number, "w1", got[1])
    assert merged is not None and merged[0].state == "merged"
    # A later run of the worker after the merge: a new PR, not an edit of the merged one.
    second = drafts.publish(client, "w1", BRANCH, "main", draft("more"), known=first.number)
    assert second.number != first.number and second.state == "open"
    assert fake.repo(REPO).pulls[first.number]["body"] == draft().body


def test_failures_are_one_line_and_never_show_the_token(fake: FakeGitHub) -> None:
    client = client_for(fake)
    for status, kind in ((401, "auth"), (500, "server"), (404, "not-found")):
        fake.fail_next(status)
        with pytest.raises(GitHubUnavailable) as caught:
            drafts.publish(client, "w1", BRANCH, "main", draft(), known=None)
        assert caught.value.kind == kind and "\n" not in caught.value.message
        assert TOKEN not in caught.value.message
    fake.fail_next(422, "Validation Failed", errors=[{"message": "No commits between main and x"}])
    with pytest.raises(GitHubUnavailable) as caught:
        drafts.publish(client, "w1", BRANCH, "main", draft(), known=None)
    assert caught.value.kind == "empty"
    assert not fake.repo(REPO).pulls


def test_nothing_in_looopbot_can_merge_a_pull_request() -> None:
    """Merging is a human's approval: no merge endpoint, no github3 `.merge(` anywhere —
    but in run_shell's deny-list, which names the endpoint to refuse it."""
    package = Path(drafts.__file__).parents[1]
    merge_call = re.compile(r"/merge\b|\.merge\(|merge_pull|create_merge")
    found = [
        f"{path}:{n}"
        for path in package.rglob("*.py")
        if path.parent.name != "shell"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if merge_call.search(line)
    ]
    assert found == []


def test_an_answer_that_is_no_pull_request_is_a_failure_not_a_crash(fake: FakeGitHub) -> None:
    client = client_for(fake)
    first = drafts.publish(client, "w1", BRANCH, "main", draft(), known=None)
    fake.serve(f"{PULLS}/{first.number}", {"message": "a proxy's idea of an answer"})
    with pytest.raises(GitHubUnavailable) as caught:
        drafts.refresh(client, first.number, "w1", None)
    assert caught.value.kind == "broken" and "without a pull request" in caught.value.message
