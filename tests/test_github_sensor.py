"""The `github` sensor's data (DESIGN §3, §10): identity in signal, words in detail, ETag
reuse, and a failing API that keeps the last snapshot. Real github3.py, fake GitHub.
(Checks, reviews, mergeability and mentions: test_github_checks.py.)"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import NOOP, make_repo
from fakegithub import FakeGitHub, fixture
from fakegithub import client_for as connected
from githubworld import ISSUES, World, check_run, comment, sha

from looopbot.github import sensor
from looopbot.github.client import GitHubClient

TOKEN = "ghp_" + "S3cr3t" * 6


def pages() -> list[list[dict[str, Any]]]:
    return [fixture("issues_list_page1.json"), fixture("issues_list_page2.json")]


@pytest.fixture
def fake() -> Iterator[FakeGitHub]:
    with FakeGitHub() as server:
        World(server)  # the whole world the sensor reads, served
        yield server


def client_for(fake: FakeGitHub) -> GitHubClient:
    return connected(fake, "octocat/Hello-World", TOKEN)


def open_items() -> list[dict[str, Any]]:
    return [i for page in pages() for i in page if i["state"] == "open"]


def test_signal_holds_identity_and_detail_the_words(fake: FakeGitHub, tmp_path: Path) -> None:
    snap = sensor.snapshot(client_for(fake), tmp_path / "etags.json", None)
    want = open_items()
    signal = snap["signal"]
    assert len(signal["issues"]) + len(signal["pull_requests"]) == len(want)
    assert len(signal["pull_requests"]) == sum("pull_request" in i for i in want) > 0
    first = want[0]
    kind = "pull_requests" if "pull_request" in first else "issues"
    ident = next(i for i in signal[kind] if i["number"] == first["number"])
    assert ident["author_association"] == first["author_association"]
    assert first["title"] not in json.dumps(signal)
    words = snap["detail"]["items"][str(first["number"])]
    assert words["title"] == first["title"] and words["url"] == first["html_url"]
    assert words["updated_at"] == first["updated_at"]
    assert all(p["draft"] is False for p in signal["pull_requests"])
    assert TOKEN not in json.dumps(snap)


def test_a_title_edit_does_not_wake_but_a_label_or_a_new_issue_does(
    fake: FakeGitHub, tmp_path: Path
) -> None:
    client = client_for(fake)
    before = sensor.snapshot(client, tmp_path / "etags.json", None)

    def serve_changed(change: Any) -> dict[str, Any]:
        changed = pages()
        change(changed[0])
        fake.serve(ISSUES, *changed)
        return sensor.snapshot(client, tmp_path / "etags.json", before)

    def retitle(page: list[dict[str, Any]]) -> None:
        next(i for i in page if i["state"] == "open")["title"] = "a better title"

    def label(page: list[dict[str, Any]]) -> None:
        item = next(i for i in page if i["state"] == "open")
        item["labels"] = [{**fixture("issue_label_example.json"), "name": "urgent"}]

    def new_issue(page: list[dict[str, Any]]) -> None:
        item = copy.deepcopy(next(i for i in page if i["state"] == "open"))
        item.pop("pull_request", None)
        page.insert(0, {**item, "number": 99999, "state": "open"})

    retitled = serve_changed(retitle)
    assert retitled["signal"] == before["signal"] and retitled["detail"] != before["detail"]
    assert serve_changed(label)["signal"] != before["signal"]
    assert serve_changed(new_issue)["signal"] != before["signal"]


def test_an_unchanged_world_costs_only_304s(fake: FakeGitHub, tmp_path: Path) -> None:
    client = client_for(fake)
    etags = tmp_path / "scratch" / "github-etags.json"
    first = sensor.snapshot(client, etags, None)
    assert [r.query.get("page", "1") for r in fake.requests(ISSUES)] == ["1", "2"]
    assert etags.exists() and TOKEN not in etags.read_text()
    asked = [(r.path, r.query) for r in fake.log]
    assert {r.status for r in fake.log} == {200}
    before = len(fake.log)
    again = sensor.snapshot(client, etags, first)
    assert again == first
    # Every URL asked again, each with its ETag, each a bodiless 304 — and nothing else.
    second = fake.log[before:]
    assert [(r.path, r.query) for r in second] == asked
    assert all((r.status, r.sent) == (304, 0) for r in second)
    assert all("if-none-match" in r.headers for r in second)
    issues = fake.requests(ISSUES)[-1]
    assert issues.query["sort"] == "updated" and issues.query["direction"] == "desc"
    # A 304 reuses what that URL said last time, whatever snapshot is on disk: with none.
    assert sensor.snapshot(client, etags, None) == first


def test_a_damaged_or_older_cache_asks_in_full(fake: FakeGitHub, tmp_path: Path) -> None:
    client = client_for(fake)
    etags = tmp_path / "etags.json"
    first = sensor.snapshot(client, etags, None)
    older = json.loads(etags.read_text())
    older["version"] -= 1  # what an older looopbot kept may mean something else
    for damage in ("{not json", '{"version": 1, "urls": []}', json.dumps(older)):
        etags.write_text(damage)
        before = len(fake.log)
        assert sensor.snapshot(client, etags, first) == first
        assert {r.status for r in fake.log[before:]} == {200}


def test_a_failing_api_keeps_the_last_snapshot_marked(fake: FakeGitHub, tmp_path: Path) -> None:
    client = client_for(fake)
    etags = tmp_path / "etags.json"
    good = sensor.snapshot(client, etags, None)
    fake.fail_next(502, "Bad Gateway")
    kept = sensor.snapshot(client, etags, good)
    assert kept["signal"] == good["signal"]
    assert kept["detail"]["unavailable"]["kind"] == "server"
    assert "502" in kept["detail"]["unavailable"]["message"]
    # The next good answer (a 304 here) drops the mark.
    assert sensor.snapshot(client, etags, kept) == good


def test_a_failing_api_without_a_last_snapshot_is_a_stable_error(
    fake: FakeGitHub, tmp_path: Path
) -> None:
    client = client_for(fake)
    fake.fail_next(401, "Bad credentials", times=2)
    first = sensor.snapshot(client, tmp_path / "etags.json", None)
    second = sensor.snapshot(client, tmp_path / "etags.json", first)
    assert first["signal"] == second["signal"] == {"error": "github-auth"}
    assert "$GITHUB_TOKEN" in first["detail"]["unavailable"]["message"]
    assert TOKEN not in json.dumps(first)


def test_an_answer_read_for_another_snapshot_is_still_true(
    fake: FakeGitHub, tmp_path: Path
) -> None:
    """A dry run (or a beat that failed before committing) read a newer world than the
    snapshot on disk: the cache holds that answer's data with its ETag, so the 304 for it
    yields the newer world, never the older snapshot."""
    client = client_for(fake)
    etags = tmp_path / "etags.json"
    on_disk = sensor.snapshot(client, etags, None)
    changed = pages()
    item = copy.deepcopy(next(i for i in changed[0] if i["state"] == "open"))
    item.pop("pull_request", None)
    changed[0].insert(0, {**item, "number": 99999})
    fake.serve(ISSUES, *changed)
    newer = sensor.snapshot(client, etags, on_disk)  # its snapshot never reached the disk
    assert newer != on_disk
    assert sensor.snapshot(client, etags, on_disk) == newer
    assert fake.requests(ISSUES)[-2].status == 304


def test_a_beat_senses_github_and_an_unchanged_one_costs_only_304s(
    fake: FakeGitHub, tmp_path: Path
) -> None:
    world = World(fake)
    world.branch_runs[0].append(check_run("lint", "failure", sha("main"), run_id=7))
    world.comments.append(comment(5, f"@looopbot please look (token {TOKEN})"))
    world.serve()
    repo = make_repo(tmp_path)
    text = repo.read("looopbot.yaml") + (
        f"\ngithub:\n  repo: octocat/Hello-World\n  api_url: {fake.base_url}\n  sensor: true\n"
    )
    repo.write("looopbot.yaml", text)
    repo.git("commit", "-qam", "github on")
    with_token = {"GITHUB_TOKEN": TOKEN}

    repo.decide(NOOP)
    run = repo.tick(env=with_token)
    assert run.code == 0 and run.json()["outcome"] == "decided", run.err
    snap = json.loads(repo.read("snapshots/sys-github.json"))
    signal = snap["signal"]
    assert len(signal["issues"]) + len(signal["pull_requests"]) == len(open_items())
    assert signal["default_branch"]["failing"] == [
        {"kind": "check", "name": "lint", "state": "failure"}
    ]
    assert signal["mentions"] == [5]
    assert "snapshots/sys-github.json" in repo.prompts()[-1]

    head, asked = repo.head(), [r.path for r in fake.log]
    run = repo.tick(env=with_token)
    assert run.code == 0 and run.json()["outcome"] == "unchanged", run.err
    assert repo.head() == head
    # The same URLs again, every one a 304: nothing counted against the rate limit.
    again = fake.log[len(asked) :]
    assert [r.path for r in again] == asked
    assert {r.status for r in again} == {304}

    # No token: the beat goes on, the last snapshot is kept, and the reason is one line.
    repo.decide(NOOP)
    run = repo.tick("--force", env={"GITHUB_TOKEN": ""})
    assert run.code == 0, run.err
    kept = json.loads(repo.read("snapshots/sys-github.json"))
    assert kept["signal"] == signal
    assert "$GITHUB_TOKEN is not set" in kept["detail"]["unavailable"]["message"]

    # The token is nowhere: not in history, not in local scratch, not in any output.
    assert TOKEN not in repo.git("log", "-p", "--all")
    for path in repo.root.rglob("*"):
        if path.is_file() and ".git" not in path.parts:
            assert TOKEN not in path.read_text(errors="replace"), path
    assert TOKEN not in run.out + run.err
