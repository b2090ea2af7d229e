"""The fake GitHub itself: the stateful repository answers the real github3.py the way
GitHub does, so the tests built on it test looopbot, not a fake that agrees with anything."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import github3
import pytest
from fakegithub import FakeGitHub

from looopbot import config
from looopbot.github.client import GitHubClient, GitHubUnavailable

TOKEN = "ghp_" + "F4k3" * 9


@pytest.fixture
def fake() -> Iterator[FakeGitHub]:
    with FakeGitHub() as server:
        server.repo("octocat/Hello-World")
        yield server


def client(fake: FakeGitHub) -> GitHubClient:
    settings = config._build({"github": {"api_url": fake.base_url}}, {}).github
    assert settings is not None
    return GitHubClient(settings, "octocat/Hello-World", TOKEN, max_wait=0.0)


def test_issues_comments_labels_and_reactions_round_trip(fake: FakeGitHub) -> None:
    gh = client(fake).gh
    repo = gh.repository("octocat", "Hello-World")
    assert repo.default_branch == "main"
    issue = repo.create_issue("looopbot dashboard", "body", labels=["looopbot"])
    assert issue.number == 1 and [label.name for label in issue.labels()] == ["looopbot"]
    found = list(repo.issues(state="open", labels="looopbot"))
    assert [i.title for i in found] == ["looopbot dashboard"]
    assert list(repo.issues(state="open", labels="other")) == []

    issue.edit(body="new body")
    assert gh.issue("octocat", "Hello-World", 1).body == "new body"

    mine = issue.create_comment("hello from the bot")
    assert mine.user.login == "looopbot-bot"
    human = fake.repo().comment(1, "/answer w1 yes", user="alice", association="COLLABORATOR")
    comments = list(issue.comments())
    assert [c.body for c in comments] == ["hello from the bot", "/answer w1 yes"]
    assert comments[1].author_association == "COLLABORATOR"

    url = f"{fake.base_url}/repos/octocat/Hello-World/issues/comments/{human['id']}/reactions"
    made = gh.session.post(url, json={"content": "+1"})
    again = gh.session.post(url, json={"content": "+1"})
    assert (made.status_code, again.status_code) == (201, 200)
    assert [r["content"] for r in fake.repo().reactions[human["id"]]] == ["+1"]
    assert gh.session.post(url, json={"content": "thumbsup"}).status_code == 422


def test_permission_of_a_collaborator_and_a_stranger(fake: FakeGitHub) -> None:
    # github3 4 has no call for it: a raw GET on its session, as looopbot makes it.
    fake.repo().set_permission("alice", "write")
    session = client(fake).gh.session
    url = f"{fake.base_url}/repos/octocat/Hello-World/collaborators/%s/permission"
    assert session.get(url % "alice").json()["permission"] == "write"
    assert session.get(url % "mallory").json()["permission"] == "none"


def test_a_stateful_list_is_paged_and_conditional(fake: FakeGitHub) -> None:
    for n in range(105):
        fake.repo().open_issue(f"issue {n}")
    gh = client(fake).gh
    titles = [i.title for i in gh.repository("octocat", "Hello-World").issues(state="open")]
    assert len(titles) == 105 and titles[0] == "issue 104"  # newest first, 100 a page
    pages = [r for r in fake.requests("/repos/octocat/Hello-World/issues") if r.method == "GET"]
    assert [r.query.get("page", "1") for r in pages] == ["1", "2"]

    etag = fake.log[-2].headers.get("if-none-match")
    assert etag is None  # github3 asked without a tag: the first answer carried one
    first = gh.session.get(f"{fake.base_url}/repos/octocat/Hello-World/issues/1")
    again = gh.session.get(
        f"{fake.base_url}/repos/octocat/Hello-World/issues/1",
        headers={"If-None-Match": first.headers["ETag"]},
    )
    assert (first.status_code, again.status_code) == (200, 304)
    fake.repo().edit_issue(1, title="changed")
    changed = gh.session.get(
        f"{fake.base_url}/repos/octocat/Hello-World/issues/1",
        headers={"If-None-Match": first.headers["ETag"]},
    )
    assert changed.status_code == 200 and changed.json()["title"] == "changed"


def test_pull_requests_open_once_per_head_and_edit(fake: FakeGitHub) -> None:
    gh = client(fake).gh
    base = f"{fake.base_url}/repos/octocat/Hello-World/pulls"
    body: dict[str, Any] = {"title": "w1", "head": "looopbot/w1", "base": "main", "draft": True}
    made = gh.session.post(base, json=body)
    assert made.status_code == 201 and made.json()["draft"] is True
    assert gh.session.post(base, json=body).status_code == 422  # one open PR per head
    listed = list(gh.repository("octocat", "Hello-World").pull_requests(head="octocat:looopbot/w1"))
    assert [p.number for p in listed] == [made.json()["number"]]
    pull = gh.pull_request("octocat", "Hello-World", made.json()["number"])
    assert pull.update(body="second run") and pull.body == "second run"
    # A PR is an issue too: the sensor's issue list shows it with its pull_request key.
    assert fake.repo().issues[pull.number]["pull_request"]["url"].endswith(f"/{pull.number}")


def test_workflow_dispatch_runs_and_cancel(fake: FakeGitHub) -> None:
    fake.repo().workflows.add("looopbot-worker.yml")
    session = client(fake).gh.session
    api = f"{fake.base_url}/repos/octocat/Hello-World/actions"
    sent = session.post(
        f"{api}/workflows/looopbot-worker.yml/dispatches",
        json={"ref": "looopbot/w1", "inputs": {"worker": "w1"}},
    )
    assert sent.status_code == 204 and sent.content == b""
    assert fake.repo().dispatches == [
        {"workflow": "looopbot-worker.yml", "ref": "looopbot/w1", "inputs": {"worker": "w1"}}
    ]
    assert session.post(f"{api}/workflows/nope.yml/dispatches", json={"ref": "x"}).status_code == (
        404
    )
    listed = f"{api}/workflows/looopbot-worker.yml/runs"
    runs = session.get(listed, params={"branch": "looopbot/w1"})
    (run,) = runs.json()["workflow_runs"]
    assert (run["status"], run["event"]) == ("queued", "workflow_dispatch")
    fake.repo().start_run(run["id"])
    assert session.get(run["url"]).json()["status"] == "in_progress"
    assert session.post(run["cancel_url"]).status_code == 202
    assert session.get(run["url"]).json()["conclusion"] == "cancelled"
    assert session.post(run["cancel_url"]).status_code == 409


def test_errors_reach_github3_as_github_does(fake: FakeGitHub) -> None:
    gh = client(fake)
    with pytest.raises(GitHubUnavailable) as caught, gh.talking("read issue 9"):
        gh.gh.issue("octocat", "Hello-World", 9)
    assert caught.value.kind == "not-found"
    fake.fail_next(502)
    with pytest.raises(github3.exceptions.ServerError):
        gh.gh.repository("octocat", "Hello-World")
