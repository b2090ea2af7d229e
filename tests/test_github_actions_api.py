"""The Actions REST calls github3.py lacks (looopbot.github.actions), through the client's
session against the fake GitHub: what is sent, what is read, and how failures come out."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fakegithub import FakeGitHub
from fakegithub import client_for as connected

from looopbot.github import actions
from looopbot.github.client import GitHubClient, GitHubUnavailable

TOKEN = "ghp_" + "Act10n" * 6
NAME = "octo/data"
WF = "looopbot-worker.yml"
RUNS = f"/repos/{NAME}/actions/workflows/{WF}/runs"


@pytest.fixture
def fake() -> Iterator[FakeGitHub]:
    with FakeGitHub() as server:
        server.repo(NAME).workflows.add(WF)
        yield server


def client_for(fake: FakeGitHub) -> GitHubClient:
    return connected(fake, NAME, TOKEN)


def test_dispatch_then_the_newest_run_then_cancel(fake: FakeGitHub) -> None:
    client = client_for(fake)
    assert actions.newest_run(client, WF, "looopbot/worker/a").run is None
    actions.dispatch(client, WF, "looopbot/worker/a", {"worker": "a"})
    listed = actions.newest_run(client, WF, "looopbot/worker/a")
    assert listed.run is not None and listed.run.status == "queued" and listed.etag
    assert fake.requests(RUNS)[-1].query == {
        "branch": "looopbot/worker/a",
        "event": "workflow_dispatch",
        "per_page": "1",
    }
    again = actions.newest_run(client, WF, "looopbot/worker/a", etag=listed.etag)
    assert again.unchanged and fake.requests(RUNS)[-1].status == 304
    assert actions.cancel(client, listed.run.id) is True
    assert fake.repo(NAME).cancelled == [listed.run.id]
    # Completed now: GitHub's 409 is an answer, not a failure.
    assert actions.cancel(client, listed.run.id) is False
    assert fake.log[-1].status == 409


@pytest.mark.parametrize(
    ("status", "kind"), [(401, "auth"), (404, "not-found"), (422, "invalid"), (503, "server")]
)
def test_failures_are_one_unavailable_without_the_token(
    fake: FakeGitHub, status: int, kind: str
) -> None:
    fake.fail_next(status, f"HTTP {status}")
    with pytest.raises(GitHubUnavailable) as caught:
        actions.dispatch(client_for(fake), WF, "looopbot/worker/a", {"worker": "a"})
    assert caught.value.kind == kind
    assert "dispatch looopbot-worker.yml" in caught.value.message
    assert TOKEN not in caught.value.message and "\n" not in caught.value.message


def test_an_unreachable_github_is_unavailable(fake: FakeGitHub) -> None:
    client = client_for(fake)
    fake.stop()
    with pytest.raises(GitHubUnavailable) as caught:
        actions.newest_run(client, WF, "looopbot/worker/a")
    assert caught.value.kind == "unreachable"


@pytest.mark.parametrize(
    "payload",
    [
        {"total_count": 1},
        {"workflow_runs": "many"},
        {"workflow_runs": [{"id": "12", "status": "queued"}]},
        {"workflow_runs": [{"id": True, "status": "queued"}]},
        {"workflow_runs": [{"id": 12, "status": "exploded"}]},
        {"workflow_runs": [{"id": 12, "status": "completed", "conclusion": ["x"]}]},
        {"workflow_runs": [[]]},
    ],
)
def test_a_payload_that_is_not_what_github_documents_is_broken(
    fake: FakeGitHub, payload: Any
) -> None:
    fake.serve(RUNS, payload)
    with pytest.raises(GitHubUnavailable) as caught:
        actions.newest_run(client_for(fake), WF, "looopbot/worker/a")
    assert caught.value.kind == "broken"


def test_only_the_fields_used_are_kept() -> None:
    run = actions.parse_run(
        {"id": 7, "status": "in_progress", "conclusion": "success", "html_url": "javascript:x"}
    )
    # A conclusion means nothing before completion; a URL that is not http(s) is dropped.
    assert run == actions.Run(7, "in_progress", None, "")
