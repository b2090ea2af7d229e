"""A worker's deliverable as a draft pull request (github.pull_requests: true), end to end:
real workers under their supervisors, started by the CLI, a bare remote for their branches
and the fake GitHub for the PRs."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    FAKE_WORKER,
    NOOP,
    Repo,
    end_workers,
    git,
    task,
    wait_lines,
    wait_state,
    worker_record,
)
from fakegithub import FakeGitHub
from gitops import clone, published

from looopbot.workers.identity import Identity, alive

TOKEN = "ghp_" + "W0rk3rPR" * 4
GH = "octocat/Hello-World"
PULLS = f"/repos/{GH}/pulls"


@pytest.fixture
def fake() -> Iterator[FakeGitHub]:
    with FakeGitHub() as server:
        server.repo(GH)
        yield server


def wire(repo: Repo, fake: FakeGitHub) -> None:
    repo.env.update(LOOOPBOT_WORKER_COMMAND=FAKE_WORKER, GITHUB_TOKEN=TOKEN)


def github_on(tmp_path: Path, fake: FakeGitHub) -> tuple[Repo, Path]:
    repo, remote = published(tmp_path)
    text = repo.read("looopbot.yaml") + (
        f"\ngithub:\n  repo: {GH}\n  api_url: {fake.base_url}\n  pull_requests: true\n"
    )
    repo.write("looopbot.yaml", text)
    repo.git("commit", "-qam", "github: pull requests on")
    repo.git("push", "-q")
    wire(repo, fake)
    return repo, remote


def run_worker(
    repo: Repo,
    wid: str,
    *,
    verify: str | None = None,
    env: dict[str, str] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    """Start worker `wid` scripted by `spec` and wait until it has ended; its record."""
    args = ["worker", "start", wid, "-"] + (["--verify", verify] if verify else [])
    started = repo.run(*args, input=task(wid, **spec), env=env)
    assert started.code == 0, started.err
    return wait_state(repo, wid, "exited", "killed", within=60)


def pr_record(repo: Repo, wid: str) -> dict[str, Any] | None:
    path = repo.root / ".looopbot" / "workers" / wid / "pr.json"
    return json.loads(path.read_text()) if path.exists() else None


def worker_signal(repo: Repo, wid: str) -> dict[str, Any]:
    snap = json.loads(repo.read("snapshots/sys-workers.json"))
    found: dict[str, Any] = next(w for w in snap["signal"] if w["id"] == wid)
    return found


def creates(fake: FakeGitHub) -> list[int]:
    return [r.status for r in fake.log if r.method == "POST" and r.path == PULLS]


def token_nowhere(repo: Repo, fake: FakeGitHub) -> None:
    assert TOKEN not in repo.git("log", "-p", "--all")
    for path in repo.root.rglob("*"):
        # The brief is the user's own words, kept where only the worker reads them.
        if path.is_file() and ".git" not in path.parts and path.name != "brief.md":
            assert TOKEN not in path.read_text(errors="replace"), path
    assert TOKEN not in json.dumps([r.body for r in fake.log])
    assert TOKEN not in json.dumps(list(fake.repo(GH).pulls.values()))


def tick(repo: Repo) -> dict[str, Any]:
    run = repo.tick()
    assert run.code == 0, run.err
    doc: dict[str, Any] = run.json()
    return doc


def test_a_finished_worker_gets_one_draft_pr_and_its_next_run_updates_it(
    tmp_path: Path, fake: FakeGitHub
) -> None:
    repo, remote = github_on(tmp_path, fake)
    base = repo.git("branch", "--show-current").strip()
    try:
        # The brief carries a secret by mistake: it must not reach GitHub.
        prompt_secret = {"commit": "first draft", "note": f"use {TOKEN}"}
        rec = run_worker(repo, "w1", verify="test -f reports/w1.md", **prompt_secret)
        assert (rec["state"], rec["exit_code"], rec["verdict"]) == ("exited", 0, "pass")
        [pull] = fake.repo(GH).pulls.values()
        assert pull["draft"] is True and pull["state"] == "open"
        assert pull["head"]["ref"] == "looopbot/worker/w1" and pull["base"]["ref"] == base
        assert pull["title"] == "w1: Work for w1."
        sha = repo.git("rev-parse", "--short", "looopbot/worker/w1").strip()
        body = pull["body"]
        assert "<!-- looopbot-worker: w1 -->" in body and f"`{sha}` first draft" in body
        assert "**pass** — `test -f reports/w1.md`" in body and "Work for w1." in body
        assert "[redacted]" in body
        # Pushed for the PR although the loop's own push is off.
        branch = "refs/heads/looopbot/worker/w1"
        assert git(remote, "rev-parse", branch) == repo.git("rev-parse", branch)
        assert (
            f"draft pull request #{pull['number']} opened" in repo.run("worker", "logs", "w1").out
        )
        assert pr_record(repo, "w1")["state"] == "open"  # type: ignore[index]

        repo.decide(NOOP)
        tick(repo)
        assert worker_signal(repo, "w1")["pr"] == {"state": "open", "number": pull["number"]}
        [row] = repo.run("worker", "list", "--json").json()["workers"]
        assert row["pr"]["url"].endswith(f"/pull/{pull['number']}")
        assert f"pr #{pull['number']} open" in repo.run("worker", "list").out

        # The same worker again: the same PR, brought up to date; no second one.
        rec = run_worker(repo, "w1", verify="test -f reports/w1.md", commit="second pass")
        assert rec["state"] == "exited"
        assert list(fake.repo(GH).pulls) == [pull["number"]] and creates(fake) == [201]
        assert (
            f"draft pull request #{pull['number']} updated" in repo.run("worker", "logs", "w1").out
        )
        body = fake.repo(GH).pulls[pull["number"]]["body"]
        assert "first draft" in body and "second pass" in body
        assert git(remote, "rev-parse", branch) == repo.git("rev-parse", branch)

        # A human merges it: the loop sees `merged` (its approval gate) at the next beat.
        fake.repo(GH).merge_pull(pull["number"])
        repo.decide(NOOP)
        tick(repo)
        assert worker_signal(repo, "w1")["pr"] == {"state": "merged", "number": pull["number"]}
        asked = len(fake.log)
        assert tick(repo)["outcome"] == "unchanged"  # a merged PR is not asked about again
        assert len(fake.log) == asked
        assert not [r for r in fake.log if r.method == "PUT" or r.path.endswith("/merge")]
        token_nowhere(repo, fake)
    finally:
        end_workers(repo)


def test_a_fresh_clone_updates_the_pr_another_clone_opened(
    tmp_path: Path, fake: FakeGitHub
) -> None:
    repo, remote = github_on(tmp_path, fake)
    other = clone(tmp_path, remote, "other")
    wire(other, fake)
    try:
        run_worker(repo, "w1", commit="from the first clone")
        [number] = fake.repo(GH).pulls
        # The other clone carries on with the worker's branch as the remote has it.
        other.git("fetch", "-q", "origin", "looopbot/worker/w1:looopbot/worker/w1")
        rec = run_worker(other, "w1", commit="from the second clone")
        assert rec["state"] == "exited"
        assert list(fake.repo(GH).pulls) == [number]
        assert creates(fake) == [201, 422]  # GitHub's refusal led to the open PR
        assert f"draft pull request #{number} updated" in other.run("worker", "logs", "w1").out
        body = fake.repo(GH).pulls[number]["body"]
        assert "from the first clone" in body and "from the second clone" in body
        assert pr_record(other, "w1") == pr_record(repo, "w1") | {"etag": ""}  # type: ignore[operator]
    finally:
        end_workers(repo)
        end_workers(other)


def test_no_pr_without_commits_after_a_failed_verify_a_failed_exit_or_a_stop(
    tmp_path: Path, fake: FakeGitHub
) -> None:
    repo, remote = github_on(tmp_path, fake)
    try:
        assert run_worker(repo, "empty")["exit_code"] == 0
        assert run_worker(repo, "refuted", verify="false", commit="x")["verdict"] == "fail"
        assert run_worker(repo, "failed", commit="x", exit=1)["exit_code"] == 1
        started = repo.run(
            "worker", "start", "stopped", "-", input=task("stopped", commit="x", hang=True)
        )
        assert started.code == 0, started.err
        wait_lines(repo.root / ".looopbot" / "worktrees" / "stopped" / "reports" / "stopped.md", 1)
        assert repo.run("worker", "stop", "stopped").code == 0
        assert wait_state(repo, "stopped", "killed")["state"] == "killed"
        assert fake.log == [] and fake.repo(GH).pulls == {}
        assert all(pr_record(repo, w) is None for w in ("empty", "refuted", "failed", "stopped"))
        # Their commits stay on their branches, nothing went to the remote for a PR.
        assert git(remote, "branch", "--list", "looopbot/*").strip() == ""
        repo.decide(NOOP)
        tick(repo)
        assert fake.log == []
        assert all("pr" not in worker_signal(repo, w) for w in ("refuted", "failed", "stopped"))
    finally:
        end_workers(repo)


@pytest.mark.parametrize("failure", ["500", "401", "no token"])
def test_github_failing_keeps_the_result_and_a_later_beat_opens_the_pr(
    tmp_path: Path, fake: FakeGitHub, failure: str
) -> None:
    repo, _remote = github_on(tmp_path, fake)
    env = {"GITHUB_TOKEN": ""} if failure == "no token" else None
    if failure != "no token":
        # The supervisor's request and the retries of the next two beats fail.
        fake.fail_next(int(failure), "Bad credentials" if failure == "401" else "", times=3)
    try:
        rec = run_worker(repo, "w1", env=env, verify="true", commit="the work")
        assert (rec["state"], rec["exit_code"], rec["verdict"]) == ("exited", 0, "pass")
        pending = pr_record(repo, "w1")
        assert pending is not None and pending["state"] == "pending" and pending["error"]
        logs = repo.run("worker", "logs", "w1").out
        assert "pull request pending (a later beat retries)" in logs
        assert fake.repo(GH).pulls == {}

        if failure == "no token":
            repo.env["GITHUB_TOKEN"] = ""
        repo.decide(NOOP)
        tick(repo)  # still failing: said once in the journal, the worker still exited
        assert worker_signal(repo, "w1") == {
            "id": "w1",
            "state": "exited",
            "exit_code": 0,
            "verify": "pass",
            "pr": {"state": "pending"},
        }
        journal = repo.read("journal.md")
        assert journal.count("worker w1: pull request pending") == 1
        # Failing the same way again: retried, but not said again — a quiet beat stays quiet.
        head, asked = repo.head(), len(fake.log)
        assert tick(repo)["outcome"] == "unchanged"
        assert repo.head() == head and repo.read("journal.md") == journal
        assert len(fake.log) == asked + (0 if failure == "no token" else 1)
        repo.env["GITHUB_TOKEN"] = TOKEN

        repo.decide(NOOP)
        tick(repo)
        [pull] = fake.repo(GH).pulls.values()
        assert pull["draft"] is True and "the work" in pull["body"]
        assert worker_signal(repo, "w1")["pr"] == {"state": "open", "number": pull["number"]}
        assert f"worker w1: draft pull request #{pull['number']} opened" in repo.read("journal.md")
        assert repo.read("journal.md").count("worker w1: pull request pending") == 1
        token_nowhere(repo, fake)
    finally:
        end_workers(repo)


def test_an_unreadable_pr_record_is_ignored_never_a_crash(tmp_path: Path, fake: FakeGitHub) -> None:
    repo, _remote = github_on(tmp_path, fake)
    try:
        run_worker(repo, "w1", commit="the work")
        (repo.root / ".looopbot" / "workers" / "w1" / "pr.json").write_text("{nonsense")
        repo.decide(NOOP)
        assert tick(repo)["outcome"] == "decided"
        assert "pr" not in worker_signal(repo, "w1")
    finally:
        end_workers(repo)


def test_a_supervisor_killed_in_the_pr_step_leaves_a_retry_and_one_pr(
    tmp_path: Path, fake: FakeGitHub
) -> None:
    repo, _remote = github_on(tmp_path, fake)
    fake.slow_next(8)  # the supervisor's request hangs; it dies waiting for the answer
    try:
        started = repo.run("worker", "start", "w1", "-", input=task("w1", commit="the work"))
        assert started.code == 0, started.err
        pr_file = repo.root / ".looopbot" / "workers" / "w1" / "pr.json"
        wait_lines(pr_file, 1)
        sup = worker_record(repo, "w1")["supervisor"]
        assert alive(Identity(sup["pid"], sup["start"]))
        os.kill(sup["pid"], signal.SIGKILL)
        # Written before the request went out: the retry is owed whatever became of it.
        assert json.loads(pr_file.read_text())["state"] == "pending"
        repo.decide(NOOP)
        tick(repo)
        # The retry and the late answer to the dead supervisor's request meet at GitHub:
        # one open PR per head, whichever came first.
        [pull] = fake.repo(GH).pulls.values()
        assert pull["draft"] is True and "the work" in pull["body"]
        assert worker_signal(repo, "w1")["pr"] == {"state": "open", "number": pull["number"]}
    finally:
        end_workers(repo)


def test_a_new_run_voids_the_pending_pr_of_the_last_and_a_stopped_run_gets_none(
    tmp_path: Path, fake: FakeGitHub
) -> None:
    repo, _remote = github_on(tmp_path, fake)
    fake.fail_next(500)
    try:
        run_worker(repo, "w1", commit="first run")
        assert pr_record(repo, "w1")["state"] == "pending"  # type: ignore[index]
        started = repo.run("worker", "start", "w1", "-", input=task("w1", hang=True))
        assert started.code == 0, started.err
        assert pr_record(repo, "w1") is None
        assert repo.run("worker", "stop", "w1").code == 0
        repo.decide(NOOP)
        tick(repo)
        assert fake.repo(GH).pulls == {} and "pr" not in worker_signal(repo, "w1")
    finally:
        end_workers(repo)
