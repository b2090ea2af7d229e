"""The dashboard issue (DESIGN §10): created once, found again after a fresh clone, written
only after a beat that called the runner; its boxes force a beat and pause the loop; the
notifications are comments on it. Real CLI, real github3.py, the fake GitHub."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import NOOP, Repo, make_repo
from fakegithub import FakeGitHub
from fakerepo import FakeRepo

from looopbot import record
from looopbot.config import load
from looopbot.datadir import locate
from looopbot.github import dashboard, loop

TOKEN = "ghp_" + "D4shb0ard" * 4
ENV = {"GITHUB_TOKEN": TOKEN}
NAME = "octocat/Hello-World"


@pytest.fixture
def fake() -> Iterator[FakeGitHub]:
    with FakeGitHub() as server:
        server.repo(NAME)
        yield server


def wire(repo: Repo, fake: FakeGitHub) -> Repo:
    text = repo.read("looopbot.yaml") + (
        f"\ngithub:\n  repo: {NAME}\n  api_url: {fake.base_url}\n  dashboard: true\n"
    )
    repo.write("looopbot.yaml", text)
    repo.git("commit", "-qam", "github on")
    return repo


def boards(gh: FakeRepo) -> list[dict[str, Any]]:
    return [i for i in gh.issues.values() if i["title"] == dashboard.TITLE]


def board(gh: FakeRepo) -> dict[str, Any]:
    found = boards(gh)
    assert len(found) == 1, [i["number"] for i in found]
    return found[0]


def writes(fake: FakeGitHub, since: int) -> list[tuple[str, str]]:
    return [(r.method, r.path) for r in fake.log[since:] if r.method != "GET"]


def tick_box(gh: FakeRepo, label: str, on: bool = True) -> None:
    """A human ticks (or unticks) a box in the browser: GitHub rewrites the body, CRLF."""
    issue = board(gh)
    old, new = ("[ ]", "[x]") if on else ("[x]", "[ ]")
    body = issue["body"].replace(f"- {old} {label}", f"- {new} {label}")
    assert body != issue["body"]
    gh.edit_issue(issue["number"], body=body.replace("\r\n", "\n").replace("\n", "\r\n"))


def fresh_clone(repo: Repo, tmp_path: Path) -> Repo:
    root = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(repo.root), str(root)], check=True)
    return Repo(root, repo.fake, env=dict(repo.env))


def test_render_and_ticks_round_trip() -> None:
    view = dashboard.View(
        goals=[("ship", "ship <b>it</b> @everyone")],
        workers=[dashboard.Worker("w1", "running", "- [x] pause the loop <!-- looopbot:pause -->")],
        journal=["- 2026-12-06 10:00 noop ```x```"],
        spent=0.25,
        budget=5.0,
        last=dashboard.Last("decided", "noop", "all quiet", "a" * 40, 0.0),
    )
    body = dashboard.render(view, dashboard.Ticks(run_now=True), "https://github.com/o/n")
    assert dashboard.ticks(body) == dashboard.Ticks(run_now=True, paused=False)
    # A question quoting a box (or a marker) is no box, and pings nobody.
    assert "&lt;!-- looopbot:pause" in body and "&#64;everyone" in body
    assert "[aaaaaaaaaa](https://github.com/o/n/commit/" + "a" * 40 + ")" in body
    assert "$0.25 of $5.00" in body
    assert "````text" in body  # the journal's backticks cannot close its block
    ticked = body.replace("- [ ] pause", "- [x] pause").replace("\n", "\r\n")
    assert dashboard.ticks(ticked) == dashboard.Ticks(run_now=True, paused=True)
    assert dashboard.ticks("- [x] pause the loop <!-- looopbot:pause -->") == dashboard.Ticks()


def test_created_once_found_after_a_fresh_clone_and_written_only_when_decided(
    fake: FakeGitHub, tmp_path: Path
) -> None:
    repo = wire(make_repo(tmp_path), fake)
    gh = fake.repo(NAME)
    repo.decide(NOOP)
    run = repo.tick(env=ENV)
    assert run.code == 0 and run.json()["outcome"] == "decided", run.err
    issue = board(gh)
    assert [lb["name"] for lb in issue["labels"]] == ["looopbot"]
    body = issue["body"]
    assert f"https://github.com/{NAME}/commit/{repo.head()}" in body
    assert "**decided** `noop`" in body and "- [ ] run a beat now" in body
    assert "- `setup`" in body  # the seeded goal

    asked = len(fake.log)
    run = repo.tick(env=ENV)
    assert run.code == 0 and run.json()["outcome"] == "unchanged", run.err
    assert writes(fake, asked) == []  # an unchanged beat writes nothing on GitHub
    asked = len(fake.log)
    repo.tick(env=ENV)
    assert writes(fake, asked) == []
    assert {r.status for r in fake.log[asked:]} == {304}  # and reads for free

    # A fresh clone (no scratch) finds the same issue by label and title.
    clone = fresh_clone(repo, tmp_path)
    clone.decide(NOOP)
    run = clone.tick("--force", env=ENV)
    assert run.code == 0 and run.json()["outcome"] == "decided", run.err
    issue = board(gh)
    assert f"/commit/{clone.head()}" in issue["body"]
    assert ("POST", f"/repos/{NAME}/issues") not in writes(fake, asked)

    # A dashboard a human closed is not written to: a new one is opened.
    gh.edit_issue(issue["number"], state="closed")
    repo.decide(NOOP)
    run = repo.tick("--force", env=ENV)
    assert run.code == 0, run.err
    assert len([i for i in boards(gh) if i["state"] == "open"]) == 1
    assert TOKEN not in repo.git("log", "-p", "--all") + run.out + run.err


def test_run_a_beat_now_forces_one_beat_and_is_cleared(fake: FakeGitHub, tmp_path: Path) -> None:
    repo = wire(make_repo(tmp_path), fake)
    gh = fake.repo(NAME)
    repo.decide(NOOP)
    assert repo.tick(env=ENV).json()["outcome"] == "decided"
    tick_box(gh, "run a beat now")
    repo.decide(NOOP, NOOP)
    run = repo.tick(env=ENV)
    assert run.code == 0 and run.json()["outcome"] == "decided", run.err
    assert repo.calls() == 2
    assert dashboard.ticks(board(gh)["body"]) == dashboard.Ticks()  # cleared
    run = repo.tick(env=ENV)
    assert run.json()["outcome"] == "unchanged" and repo.calls() == 2


def test_a_tick_acted_on_is_not_acted_on_twice_when_clearing_it_failed(
    fake: FakeGitHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The runner was called for the tick, then GitHub failed the write that clears it
    (or the beat was killed): the next beat must not force a second call, and clears it."""
    repo = wire(make_repo(tmp_path), fake)
    gh = fake.repo(NAME)
    repo.decide(NOOP)
    assert repo.tick(env=ENV).json()["outcome"] == "decided"
    tick_box(gh, "run a beat now")
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    dd = locate(str(repo.root))
    config = load(dd)
    changes = record.start(dd)
    assert loop.before(dd, config, changes, time.time()).run_now  # as a beat reads it
    loop.consume(dd, config)  # and acts on it
    fake.fail_next(500, times=5)
    said = loop.after(dd, config, outcome="decided", action="noop", text="", commit=None, now=0)
    assert said is not None and "retried next beat" in said
    fake.heal()
    asked = len(fake.log)
    run = repo.tick(env=ENV)
    assert run.code == 0 and run.json()["outcome"] == "unchanged", run.err
    assert repo.calls() == 1
    assert writes(fake, asked) == [("PATCH", f"/repos/{NAME}/issues/{board(gh)['number']}")]
    assert dashboard.ticks(board(gh)["body"]) == dashboard.Ticks()


def test_a_body_that_is_already_current_is_not_written_again(
    fake: FakeGitHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = wire(make_repo(tmp_path), fake)
    repo.decide(NOOP)
    assert repo.tick(env=ENV).json()["outcome"] == "decided"
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    dd = locate(str(repo.root))
    config = load(dd)
    same = {"outcome": "decided", "action": "noop", "text": "x", "commit": "a" * 40, "now": 9.0}
    assert loop.after(dd, config, **same) is None
    asked = len(fake.log)
    assert loop.after(dd, config, **same) is None  # e.g. a retry of a write that landed
    assert writes(fake, asked) == []


def test_pause_holds_every_runner_call_while_sensors_run(fake: FakeGitHub, tmp_path: Path) -> None:
    repo = wire(make_repo(tmp_path), fake)
    gh = fake.repo(NAME)
    repo.decide(NOOP)
    assert repo.tick(env=ENV).json()["outcome"] == "decided"
    tick_box(gh, "pause the loop")
    tick_box(gh, "run a beat now")
    repo.sensor("counter", 'echo "{\\"n\\": $(date +%s%N)}"\n')
    run = repo.tick(env=ENV)
    assert run.code == 0 and run.json()["outcome"] == "paused", run.err
    run = repo.tick("--force", env=ENV)
    assert run.json()["outcome"] == "paused"
    assert repo.calls() == 1  # no runner call, not even a forced one
    assert (repo.root / "snapshots" / "sensor-counter.json").exists()  # sensors still run
    assert "paused from the GitHub dashboard" in repo.read("journal.md")
    status = repo.run("status", env=ENV)
    assert "paused from the GitHub dashboard" in status.out, status.out
    dry = repo.run("tick", "--dry-run", "--force", env=ENV)
    assert "would hold: paused from the GitHub dashboard" in dry.out, dry.out
    # A paused beat did not act on "run a beat now": the box waits for the loop to resume.
    assert dashboard.ticks(board(gh)["body"]) == dashboard.Ticks(run_now=True, paused=True)
    # GitHub unreachable: the pause last read still holds.
    fake.fail_next(500, times=10)
    run = repo.tick(env=ENV)
    assert run.code == 0 and run.json()["outcome"] == "paused", run.err
    fake.heal()

    tick_box(gh, "pause the loop", on=False)
    repo.decide(NOOP)
    run = repo.tick(env=ENV)
    assert run.json()["outcome"] == "decided" and repo.calls() == 2
    assert dashboard.ticks(board(gh)["body"]) == dashboard.Ticks()
    assert "resumed" in repo.read("journal.md")


def test_notifications_are_comments_on_the_dashboard(fake: FakeGitHub, tmp_path: Path) -> None:
    repo = wire(make_repo(tmp_path), fake)
    gh = fake.repo(NAME)
    repo.decide({"action": "send_notification", "message": "the build is red @team", "id": "ci"})
    run = repo.tick(env=ENV)
    assert run.code == 0 and run.json()["action"] == "send_notification", run.err
    said = [c["body"] for c in gh.comments_on(board(gh)["number"])]
    assert len(said) == 1 and "the build is red &#64;team" in said[0] and "`ci`" in said[0]

    # GitHub down while acting: the notification waits in the outbox, posted next beat.
    repo.decide({"action": "send_notification", "message": "second", "id": "ci"})
    fake.fail_next(502, "Bad Gateway", times=3)  # the reads, and the notification's post
    run = repo.tick("--force", env=ENV)
    assert run.code == 0, run.err
    assert len(gh.comments_on(board(gh)["number"])) == 1
    run = repo.tick(env=ENV)
    said = [c["body"] for c in gh.comments_on(board(gh)["number"])]
    assert len(said) == 2 and "second" in said[1]


@pytest.mark.parametrize(
    ("status", "headers", "said"),
    [
        (500, {}, "GitHub is failing (500"),
        (401, {}, "GitHub refused the token in $GITHUB_TOKEN"),
        (403, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "4102444800"}, "rate limit"),
    ],
)
def test_a_failing_api_is_one_line_and_the_update_is_retried_alone(
    fake: FakeGitHub, tmp_path: Path, status: int, headers: dict[str, str], said: str
) -> None:
    repo = wire(make_repo(tmp_path), fake)
    gh = fake.repo(NAME)
    repo.decide(NOOP)
    assert repo.tick(env=ENV).json()["outcome"] == "decided"
    before = board(gh)["body"]
    repo.decide(NOOP)
    fake.fail_next(status, headers=headers, times=50)
    run = repo.tick("--force", env=ENV)
    assert run.code == 0 and run.json()["outcome"] == "decided", run.err
    lines = [line for line in run.err.splitlines() if "dashboard" in line]
    assert len(lines) == 1 and said in lines[0], run.err
    assert "Traceback" not in run.err and TOKEN not in run.err
    assert board(gh)["body"] == before
    commit = repo.head()

    fake.heal()  # GitHub is back
    asked = len(fake.log)
    run = repo.tick(env=ENV)
    assert run.code == 0 and run.json()["outcome"] == "unchanged", run.err
    assert writes(fake, asked) == [("PATCH", f"/repos/{NAME}/issues/{board(gh)['number']}")]
    assert f"/commit/{commit}" in board(gh)["body"]
    # The failure reached the journal with the next commit that is made anyway.
    asked = len(fake.log)
    repo.tick(env=ENV)
    assert writes(fake, asked) == []
    scratch = repo.root / ".looopbot"
    for path in [*scratch.rglob("*"), repo.root / "journal.md"]:
        if path.is_file():
            assert TOKEN not in path.read_text(errors="replace"), path
    assert json.loads((scratch / "github-dashboard.json").read_text())["owed"] is False
