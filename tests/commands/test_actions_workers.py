"""Workers on GitHub Actions (`workers.backend: actions`): the start pushes the worker's
branch with its brief and dispatches looopbot-worker.yml; sys-workers reads the run's state;
`worker stop` cancels it; a failed dispatch leaves nothing behind; `worker run` is the
worker's side on the runner. The real CLI, real git with a bare remote, real github3.py
against the fake GitHub."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import FAKE_WORKER, NOOP, Repo, git
from fakegithub import FakeGitHub
from fakerepo import FakeRepo
from gitops import published

TOKEN = "ghp_" + "W0rk3r" * 6
WF = "looopbot-worker.yml"
NAME = "octo/data"
BRANCH = "looopbot/worker/w1"
RUNS = f"/repos/{NAME}/actions/workflows/{WF}/runs"
DISPATCHES = f"/repos/{NAME}/actions/workflows/{WF}/dispatches"


@pytest.fixture
def fake() -> Iterator[FakeGitHub]:
    with FakeGitHub() as server:
        server.repo(NAME).workflows.add(WF)
        yield server


def gh(fake: FakeGitHub) -> FakeRepo:
    return fake.repo(NAME)


def on_actions(tmp_path: Path, fake: FakeGitHub) -> tuple[Repo, Path]:
    repo, remote = published(tmp_path)
    repo.write(
        "looopbot.yaml",
        repo.read("looopbot.yaml")
        + f"\ngithub:\n  repo: {NAME}\n  api_url: {fake.base_url}\n"
        + "workers:\n  backend: actions\n",
    )
    repo.git("commit", "-qam", "workers on GitHub Actions")
    repo.env["GITHUB_TOKEN"] = TOKEN
    return repo, remote


def remote_tip(remote: Path, branch: str = BRANCH) -> str | None:
    out = git(remote, "rev-parse", "-q", "--verify", f"refs/heads/{branch}", check=False).strip()
    return out or None


def start(repo: Repo, wid: str = "w1", prompt: str = "write the weekly report") -> None:
    r = repo.run("worker", "start", wid, prompt)
    assert r.code == 0, r.err


def workers_signal(repo: Repo) -> list[dict[str, Any]]:
    signal: list[dict[str, Any]] = json.loads(repo.read("snapshots/sys-workers.json"))["signal"]
    return signal


def beat(repo: Repo, *, decides: bool = True) -> dict[str, Any]:
    if decides:
        repo.decide(NOOP)
    t = repo.tick()
    assert t.code == 0, t.err
    out: dict[str, Any] = t.json()
    return out


def no_token_anywhere(repo: Repo, remote: Path, fake: FakeGitHub) -> None:
    for where in (repo.root, remote):
        assert TOKEN not in git(where, "log", "-p", "--all", "--format=%B")
    for logged in fake.log:
        assert TOKEN not in json.dumps([logged.path, logged.query, logged.body])
    for path in repo.root.rglob("*"):
        if path.is_file() and ".git" not in path.parts:
            assert TOKEN.encode() not in path.read_bytes(), path


# --- start ------------------------------------------------------------------------------------


def test_a_start_pushes_the_brief_on_the_branch_and_dispatches_the_worker(
    tmp_path: Path, fake: FakeGitHub
) -> None:
    repo, remote = on_actions(tmp_path, fake)
    forked_from = repo.head()
    start(repo)
    assert gh(fake).dispatches == [{"workflow": WF, "ref": BRANCH, "inputs": {"worker": "w1"}}]
    (sent,) = [r for r in fake.log if r.method == "POST"]
    assert sent.path == DISPATCHES and sent.status == 204
    assert sent.body == {"ref": BRANCH, "inputs": {"worker": "w1"}}
    assert sent.headers["authorization"] == f"token {TOKEN}"  # authenticated, in the header only
    # The branch on the remote: the data repo's HEAD plus one commit holding the brief.
    tip = remote_tip(remote)
    assert tip is not None
    assert git(remote, "rev-parse", f"{tip}^").strip() == forked_from
    brief = git(remote, "show", f"{tip}:.looopbot/worker-brief.md")
    assert "write the weekly report" in brief
    assert git(remote, "show", "-s", "--format=%(trailers:key=Looopbot-Brief,valueonly)", tip)
    assert repo.git("rev-parse", f"refs/heads/{BRANCH}").strip() == tip
    # The record is committed with the move, so a fresh clone finds the worker.
    assert "workers/w1.json" in repo.git("show", "--name-only", "--format=", "HEAD").split()
    rec = json.loads(repo.read("workers/w1.json"))
    assert rec["backend"] == "actions" and rec["branch"] == BRANCH
    assert rec["brief_commit"] == tip and rec["base"] == forked_from and rec["after_run"] == 0
    assert repo.status_porcelain() == ""
    # No local process, no worktree.
    assert not (repo.root / ".looopbot" / "worktrees" / "w1").exists()
    assert not (repo.root / ".looopbot" / "workers" / "w1").exists()
    no_token_anywhere(repo, remote, fake)


def test_a_second_start_of_a_live_worker_is_refused(tmp_path: Path, fake: FakeGitHub) -> None:
    repo, remote = on_actions(tmp_path, fake)
    start(repo)
    tip, head = remote_tip(remote), repo.head()
    again = repo.run("worker", "start", "w1", "something else")
    assert again.code == 1 and "already queued" in again.err, again.err
    assert len(gh(fake).dispatches) == 1
    assert remote_tip(remote) == tip and repo.head() == head


def test_a_start_after_the_run_ended_continues_the_branch(tmp_path: Path, fake: FakeGitHub) -> None:
    repo, remote = on_actions(tmp_path, fake)
    start(repo)
    first = remote_tip(remote)
    (run_id,) = gh(fake).runs
    gh(fake).finish_run(run_id, "failure")
    start(repo, prompt="try again")
    tip = remote_tip(remote)
    assert tip is not None and git(remote, "rev-parse", f"{tip}^").strip() == first
    assert json.loads(repo.read("workers/w1.json"))["after_run"] == run_id
    assert len(gh(fake).dispatches) == 2


# --- a failed dispatch ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "said"),
    [
        (404, "looopbot github install"),
        (422, "422"),
        (500, "500"),
        (401, "GITHUB_TOKEN"),
    ],
)
def test_a_failed_dispatch_says_so_in_one_line_and_leaves_nothing_behind(
    tmp_path: Path, fake: FakeGitHub, status: int, said: str
) -> None:
    repo, remote = on_actions(tmp_path, fake)
    if status == 404:
        gh(fake).workflows.clear()  # the workflow is not on the default branch
    else:
        body = {"message": f"HTTP {status}", "errors": [{"field": "inputs", "code": "invalid"}]}
        gh(fake).dispatch_failures.append((status, body))
    head = repo.head()
    r = repo.run("worker", "start", "w1", "write the weekly report")
    assert r.code == 1
    assert len(r.err.strip().splitlines()) == 1 and "Traceback" not in r.err
    assert "was not started" in r.err and said in r.err, r.err
    # The lease is released: the branch is gone from the remote and from here, no record.
    assert remote_tip(remote) is None
    assert repo.git("branch", "--list", BRANCH).strip() == ""
    assert not (repo.root / "workers" / "w1.json").exists()
    assert repo.head() == head and repo.status_porcelain() == ""
    assert gh(fake).dispatches == [] and gh(fake).runs == {}
    no_token_anywhere(repo, remote, fake)
    # The id is free again.
    gh(fake).workflows.add(WF)
    start(repo)
    assert remote_tip(remote) is not None and len(gh(fake).dispatches) == 1


def test_a_failed_dispatch_puts_an_existing_branch_back(tmp_path: Path, fake: FakeGitHub) -> None:
    repo, remote = on_actions(tmp_path, fake)
    start(repo)
    (run_id,) = gh(fake).runs
    gh(fake).finish_run(run_id)
    before, record = remote_tip(remote), repo.read("workers/w1.json")
    gh(fake).dispatch_failures.append((500, {"message": "boom"}))
    r = repo.run("worker", "start", "w1", "again")
    assert r.code == 1 and "was not started" in r.err
    assert remote_tip(remote) == before
    assert repo.git("rev-parse", f"refs/heads/{BRANCH}").strip() == before
    assert repo.read("workers/w1.json") == record


def test_an_api_refusing_the_token_stops_the_start_before_any_push(
    tmp_path: Path, fake: FakeGitHub
) -> None:
    repo, remote = on_actions(tmp_path, fake)
    fake.fail_next(401, "Bad credentials")
    r = repo.run("worker", "start", "w1", "write the weekly report")
    assert r.code == 1 and "GITHUB_TOKEN" in r.err and TOKEN not in r.err
    assert remote_tip(remote) is None and gh(fake).dispatches == []


def test_no_token_is_a_clear_error(tmp_path: Path, fake: FakeGitHub) -> None:
    repo, remote = on_actions(tmp_path, fake)
    r = repo.run("worker", "start", "w1", "x", env={"GITHUB_TOKEN": ""})
    assert r.code == 1 and "$GITHUB_TOKEN is not set" in r.err
    assert remote_tip(remote) is None and fake.log == []


# --- the run's state in sys-workers ------------------------------------------------------------


def push_work(tmp_path: Path, remote: Path) -> None:
    """What the worker's run does at its end: a commit on the branch, pushed."""
    work = tmp_path / "runner-clone"
    subprocess.run(["git", "clone", "-q", "-b", BRANCH, str(remote), str(work)], check=True)
    (work / "reports").mkdir(exist_ok=True)
    (work / "reports" / "w1.md").write_text("# done\n")
    git(work, "add", "reports")
    git(work, "commit", "-qm", "the report")
    git(work, "push", "-q", "origin", BRANCH)


def test_the_runs_state_is_read_into_sys_workers_and_only_a_change_wakes(
    tmp_path: Path, fake: FakeGitHub
) -> None:
    repo, remote = on_actions(tmp_path, fake)
    start(repo)
    (run_id,) = gh(fake).runs
    item = {"id": "w1", "backend": "actions", "exit_code": None}
    beat(repo)
    assert workers_signal(repo) == [{**item, "state": "queued", "conclusion": None}]
    detail = json.loads(repo.read("snapshots/sys-workers.json"))["detail"]["workers"]["w1"]
    assert detail["run"] == run_id and detail["branch"] == BRANCH and detail["ahead"] == 0
    # Nothing changed: no decision, no commit, and the run list cost a 304.
    head = repo.head()
    again = beat(repo, decides=False)
    assert again["outcome"] == "unchanged" and repo.head() == head
    assert fake.requests(RUNS)[-1].status == 304
    gh(fake).start_run(run_id)
    assert beat(repo)["outcome"] == "decided"
    assert workers_signal(repo) == [{**item, "state": "in_progress", "conclusion": None}]
    push_work(tmp_path, remote)
    gh(fake).finish_run(run_id, "success")
    assert beat(repo)["outcome"] == "decided"
    assert workers_signal(repo) == [{**item, "state": "completed", "conclusion": "success"}]
    detail = json.loads(repo.read("snapshots/sys-workers.json"))["detail"]["workers"]["w1"]
    assert detail["ahead"] == 1  # the report; the brief's commit is not the worker's work
    # A finished worker costs no request at all.
    asked = len(fake.log)
    assert beat(repo, decides=False)["outcome"] == "unchanged"
    assert len(fake.log) == asked
    no_token_anywhere(repo, remote, fake)


def test_a_failed_run_shows_as_failure(tmp_path: Path, fake: FakeGitHub) -> None:
    repo, _ = on_actions(tmp_path, fake)
    start(repo)
    (run_id,) = gh(fake).runs
    gh(fake).finish_run(run_id, "failure")
    beat(repo)
    (item,) = workers_signal(repo)
    assert (item["state"], item["conclusion"]) == ("completed", "failure")


def test_a_failing_api_keeps_the_last_known_state_marked(tmp_path: Path, fake: FakeGitHub) -> None:
    repo, _ = on_actions(tmp_path, fake)
    start(repo)
    (run_id,) = gh(fake).runs
    beat(repo)
    known = workers_signal(repo)
    gh(fake).start_run(run_id)
    fake.fail_next(502, "Bad Gateway")
    t = beat(repo, decides=False)
    assert t["outcome"] == "unchanged" and t["error"] is None
    assert workers_signal(repo) == known
    detail = json.loads(repo.read("snapshots/sys-workers.json"))["detail"]["workers"]["w1"]
    assert "502" in detail["unavailable"]
    # GitHub answers again: the change is seen, and the mark is gone.
    beat(repo)
    assert workers_signal(repo)[0]["state"] == "in_progress"
    detail = json.loads(repo.read("snapshots/sys-workers.json"))["detail"]["workers"]["w1"]
    assert "unavailable" not in detail


def test_a_fresh_clone_finds_the_worker_and_its_run(tmp_path: Path, fake: FakeGitHub) -> None:
    from gitops import clone

    repo, remote = on_actions(tmp_path, fake)
    start(repo)
    repo.git("push", "-q", "origin", "HEAD")
    (run_id,) = gh(fake).runs
    gh(fake).start_run(run_id)
    other = clone(tmp_path, remote, "elsewhere", depth=1)
    other.env["GITHUB_TOKEN"] = TOKEN
    beat(other)
    assert workers_signal(other)[0]["state"] == "in_progress"


# --- stop, steer, answer ------------------------------------------------------------------------


def test_worker_stop_cancels_the_run(tmp_path: Path, fake: FakeGitHub) -> None:
    repo, _ = on_actions(tmp_path, fake)
    start(repo)
    (run_id,) = gh(fake).runs
    r = repo.run("worker", "stop", "w1")
    assert r.code == 0, r.err
    assert gh(fake).cancelled == [run_id]
    assert f"cancelled its run {run_id}" in repo.read("journal.md").splitlines()[-1]
    # Already completed: nothing to cancel, and that is fine.
    again = repo.run("worker", "stop", "w1")
    assert again.code == 0, again.err
    assert "already completed" in again.out and gh(fake).cancelled == [run_id]
    beat(repo)
    (item,) = workers_signal(repo)
    assert (item["state"], item["conclusion"]) == ("completed", "cancelled")


def test_steer_and_answer_point_to_the_dashboard(tmp_path: Path, fake: FakeGitHub) -> None:
    repo, _ = on_actions(tmp_path, fake)
    start(repo)
    head = repo.head()
    for args in (("answer", "w1", "yes"), ("flag", "w1", "merge?")):
        r = repo.run(*args)
        assert r.code == 1 and "runs on GitHub Actions" in r.err, r.err
        assert "dashboard" in r.err and len(r.err.strip().splitlines()) == 1
    logs = repo.run("worker", "logs", "w1")
    assert logs.code == 1 and "run's log on GitHub" in logs.err
    repo.decide({"action": "steer_session", "id": "w1", "input": "go on"})
    t = repo.tick("--force")
    assert t.json()["outcome"] == "failed" and "runs on GitHub Actions" in t.json()["error"]
    assert repo.head() != head  # the failed beat is on record


# --- the worker's side, on the runner -------------------------------------------------------------


def runner_checkout(tmp_path: Path, remote: Path) -> Path:
    """What actions/checkout makes of the dispatched ref: the worker's branch, checked out."""
    work = tmp_path / "runner"
    subprocess.run(
        ["git", "clone", "-q", "--depth", "1", "-b", BRANCH, f"file://{remote}", str(work)],
        check=True,
    )
    return work


def worker_run(work: Path, repo: Repo) -> subprocess.CompletedProcess[str]:
    from conftest import BIN

    env = {**repo.env, "LOOOPBOT_WORKER_COMMAND": FAKE_WORKER}
    import os

    return subprocess.run(
        [str(BIN), "-C", str(work), "worker", "run", "w1"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **env},
    )


def test_worker_run_does_the_work_and_drops_the_brief(tmp_path: Path, fake: FakeGitHub) -> None:
    repo, remote = on_actions(tmp_path, fake)
    start(repo, prompt='write it\nFAKE {"report": true}')
    brief_commit = remote_tip(remote)
    work = runner_checkout(tmp_path, remote)
    done = worker_run(work, repo)
    assert done.returncode == 0, done.stderr
    assert "fake worker w1" in done.stdout  # the worker's output is in the job's log
    assert not (work / ".looopbot" / "worker-brief.md").exists()
    assert git(work, "status", "--porcelain") == ""
    git(work, "push", "-q", "origin", f"HEAD:refs/heads/{BRANCH}")  # the workflow's last step
    changed = git(remote, "diff", "--name-only", f"{brief_commit}^", BRANCH).split()
    assert changed == ["reports/w1.md"]  # the work alone: the brief came and went
    (run_id,) = gh(fake).runs
    gh(fake).finish_run(run_id)
    beat(repo)
    detail = json.loads(repo.read("snapshots/sys-workers.json"))["detail"]["workers"]["w1"]
    assert detail["ahead"] == 1


def test_a_failing_worker_keeps_its_brief_and_its_exit_code(
    tmp_path: Path, fake: FakeGitHub
) -> None:
    repo, remote = on_actions(tmp_path, fake)
    start(repo, prompt='fail\nFAKE {"exit": 3}')
    work = runner_checkout(tmp_path, remote)
    (work / "notes.txt").write_text("left behind\n")
    done = worker_run(work, repo)
    assert done.returncode == 3
    assert (work / ".looopbot" / "worker-brief.md").exists()  # a re-run needs it
    assert "notes.txt" in git(work, "show", "--name-only", "--format=", "HEAD")
    assert git(work, "status", "--porcelain") == ""


def test_worker_run_refuses_another_branch(tmp_path: Path, fake: FakeGitHub) -> None:
    repo, _ = on_actions(tmp_path, fake)
    r = repo.run("worker", "run", "w1")
    assert r.code == 1 and "check that out first" in r.err


def test_until_the_new_run_is_listed_the_old_one_is_not_taken_for_it(
    tmp_path: Path, fake: FakeGitHub
) -> None:
    repo, _ = on_actions(tmp_path, fake)
    start(repo)
    (run_id,) = gh(fake).runs
    gh(fake).finish_run(run_id, "failure")
    beat(repo)
    # GitHub accepted the dispatch (204) but lists no run for it yet.
    gh(fake).dispatch_failures.append((204, None))
    start(repo, prompt="again")
    beat(repo)
    (item,) = workers_signal(repo)
    assert (item["state"], item["conclusion"]) == ("dispatched", None)
    # …and a stop says to wait, rather than cancelling nothing.
    r = repo.run("worker", "stop", "w1")
    assert r.code == 1 and "has not shown up" in r.err


def test_a_branch_taken_on_the_remote_meanwhile_is_never_overwritten(
    tmp_path: Path, fake: FakeGitHub
) -> None:
    """The lease: another clone starts the same id between our look and our push."""
    repo, remote = on_actions(tmp_path, fake)
    other = repo.head()
    hook = remote / "hooks" / "pre-receive"
    hook.write_text(
        "#!/bin/sh\n"
        f'[ -e "$GIT_DIR/taken" ] || {{ touch "$GIT_DIR/taken"; '
        # (a hook may not move refs inside receive-pack's quarantine: step out of it)
        f"env -u GIT_QUARANTINE_PATH git update-ref refs/heads/{BRANCH} {other}; }}\n"
    )
    hook.chmod(0o755)
    r = repo.run("worker", "start", "w1", "write the weekly report")
    assert r.code == 1 and "Traceback" not in r.err
    assert BRANCH in r.err and "nothing was dispatched" in r.err, r.err
    assert remote_tip(remote) == other  # theirs, as they left it
    assert gh(fake).dispatches == []
    assert not (repo.root / "workers" / "w1.json").exists()


def test_worker_list_shows_them_as_the_last_beat_read_them(
    tmp_path: Path, fake: FakeGitHub
) -> None:
    repo, _ = on_actions(tmp_path, fake)
    start(repo)
    (run_id,) = gh(fake).runs
    listed = repo.run("worker", "list", "--json").json()["workers"]
    assert [(w["id"], w["backend"], w["state"]) for w in listed] == [
        ("w1", "actions", "dispatched")
    ]
    gh(fake).finish_run(run_id, "failure")
    beat(repo)
    asked = len(fake.log)
    (row,) = repo.run("worker", "list", "--json").json()["workers"]
    assert (row["state"], row["conclusion"], row["ahead"]) == ("completed", "failure", 0)
    assert row["url"].endswith(f"/actions/runs/{run_id}")
    text = repo.run("worker", "list").out
    assert "w1\tcompleted (failure)" in text and "on GitHub Actions" in text
    assert len(fake.log) == asked  # listing asks GitHub nothing


def test_max_workers_counts_workers_on_actions(tmp_path: Path, fake: FakeGitHub) -> None:
    repo, remote = on_actions(tmp_path, fake)
    repo.write(
        "looopbot.yaml", repo.read("looopbot.yaml").replace("limits:", "limits:\n  max_workers: 1")
    )
    repo.git("commit", "-qam", "one at a time")
    start(repo)
    r = repo.run("worker", "start", "w2", "another")
    assert r.code == 1 and "limits.max_workers" in r.err, r.err
    assert remote_tip(remote, "looopbot/worker/w2") is None
    (run_id,) = gh(fake).runs
    gh(fake).finish_run(run_id)
    beat(repo)  # the loop has seen it finish: the slot is free
    start(repo, "w2")


def test_a_beats_start_worker_dispatches_and_commits_the_record_with_the_beat(
    tmp_path: Path, fake: FakeGitHub
) -> None:
    repo, remote = on_actions(tmp_path, fake)
    repo.decide({"action": "start_worker", "id": "w1", "prompt": "write the weekly report"})
    t = repo.tick("--push")
    assert t.code == 0 and t.json()["outcome"] == "decided", t.err
    assert gh(fake).dispatches == [{"workflow": WF, "ref": BRANCH, "inputs": {"worker": "w1"}}]
    assert repo.trailers()["Looopbot-Action"] == "start_worker"
    assert "workers/w1.json" in repo.git("show", "--name-only", "--format=", "HEAD").split()
    # Pushed with the beat: a fresh clone on another machine knows the worker.
    assert "workers/w1.json" in git(remote, "ls-tree", "-r", "--name-only", "HEAD").split()
    no_token_anywhere(repo, remote, fake)


def test_a_mangled_scratch_file_is_asked_past(tmp_path: Path, fake: FakeGitHub) -> None:
    repo, _ = on_actions(tmp_path, fake)
    start(repo)
    (run_id,) = gh(fake).runs
    beat(repo)
    scratch = repo.root / ".looopbot" / "actions-runs.json"
    saved = json.loads(scratch.read_text())
    saved["w1"]["run"] = {"id": "not a run"}
    scratch.write_text(json.dumps(saved))
    gh(fake).start_run(run_id)
    asked = len(fake.requests(RUNS))
    beat(repo)
    (item,) = workers_signal(repo)
    assert item["state"] == "in_progress"
    assert "if-none-match" not in fake.requests(RUNS)[asked].headers
    assert (
        "unavailable"
        not in json.loads(repo.read("snapshots/sys-workers.json"))["detail"]["workers"]["w1"]
    )


def test_a_secret_in_the_prompt_never_reaches_the_pushed_brief(
    tmp_path: Path, fake: FakeGitHub
) -> None:
    repo, remote = on_actions(tmp_path, fake)
    key = "sk-" + "Pr0mptS3cr3t" * 3
    start(repo, prompt=f"deploy with the key {key}")
    brief = git(remote, "show", f"{BRANCH}:.looopbot/worker-brief.md")
    assert key not in brief and "[redacted]" in brief
    no_token_anywhere(repo, remote, fake)
    assert key not in git(remote, "log", "-p", "--all")


@pytest.mark.parametrize(("check", "code"), [("test -s reports/w1.md", 0), ("false", 1)])
def test_a_declared_verify_judges_the_run(
    tmp_path: Path, fake: FakeGitHub, check: str, code: int
) -> None:
    repo, remote = on_actions(tmp_path, fake)
    r = repo.run("worker", "start", "w1", 'write it\nFAKE {"report": true}', "--verify", check)
    assert r.code == 0, r.err
    assert git(remote, "show", f"{BRANCH}:.looopbot/worker-verify").strip() == check
    work = runner_checkout(tmp_path, remote)
    done = worker_run(work, repo)
    assert done.returncode == code, done.stderr
    assert ("verify: pass" if code == 0 else "verify: fail") in done.stderr
    # Passed: the brief and the verify go; failed: both stay for a re-run.
    kept = {(work / ".looopbot" / n).exists() for n in ("worker-brief.md", "worker-verify")}
    assert kept == {code != 0}


def test_a_restart_without_verify_drops_the_earlier_one(tmp_path: Path, fake: FakeGitHub) -> None:
    repo, remote = on_actions(tmp_path, fake)
    assert repo.run("worker", "start", "w1", "one", "--verify", "false").code == 0
    (run_id,) = gh(fake).runs
    gh(fake).finish_run(run_id, "failure")
    start(repo, prompt="two")
    listed = git(remote, "ls-tree", "-r", "--name-only", BRANCH).split()
    assert ".looopbot/worker-brief.md" in listed and ".looopbot/worker-verify" not in listed


# --- draft pull requests (github.pull_requests) --------------------------------------------


def test_a_run_that_succeeded_with_commits_gets_one_draft_pr_watched_until_merged(
    tmp_path: Path, fake: FakeGitHub
) -> None:
    """No supervisor ends a worker on Actions here: the beat that reads the run's end opens
    the draft PR, then reads it conditionally each beat until a human merges it."""
    repo, remote = on_actions(tmp_path, fake)
    repo.write(
        "looopbot.yaml",
        repo.read("looopbot.yaml").replace("  api_url:", "  pull_requests: true\n  api_url:"),
    )
    repo.git("commit", "-qam", "draft PRs")
    start(repo, prompt='write the weekly report\nFAKE {"report": true}')
    (run_id,) = gh(fake).runs
    beat(repo)
    assert gh(fake).pulls == {}  # running: nothing to deliver yet
    work = runner_checkout(tmp_path, remote)
    assert worker_run(work, repo).returncode == 0
    git(work, "push", "-q", "origin", f"HEAD:refs/heads/{BRANCH}")  # the workflow's step
    gh(fake).finish_run(run_id, "success")
    # GitHub fails the beat's tries (the one before its move, the one after).
    fake.fail_next(502, path=f"/repos/{NAME}/pulls", times=2)
    beat(repo)
    (item,) = workers_signal(repo)
    assert item["pr"] == {"state": "pending"} and gh(fake).pulls == {}
    detail = json.loads(repo.read("snapshots/sys-workers.json"))["detail"]["workers"]["w1"]
    assert "502" in detail["pr_error"]
    beat(repo)  # the next beat tries again
    [pull] = gh(fake).pulls.values()
    mine = repo.git("symbolic-ref", "--short", "HEAD").strip()
    assert pull["draft"] and pull["head"]["ref"] == BRANCH and pull["base"]["ref"] == mine
    assert "write the weekly report" in pull["body"] and "report from w1" in pull["body"]
    assert "brief for worker" not in pull["body"]  # the brief's own commits are not the work
    (item,) = workers_signal(repo)
    assert item["pr"] == {"state": "open", "number": pull["number"]}
    assert f"pr #{pull['number']} open" in repo.run("worker", "list").out
    assert repo.run("worker", "prune", "--all").out.strip() == "nothing to prune"  # PR open
    # Open and unchanged: one conditional read a beat, a 304, and no wake.
    head = repo.head()
    assert beat(repo, decides=False)["outcome"] == "unchanged" and repo.head() == head
    assert fake.requests(f"/repos/{NAME}/pulls/{pull['number']}")[-1].status == 304
    assert len(gh(fake).pulls) == 1
    gh(fake).merge_pull(pull["number"])
    assert beat(repo)["outcome"] == "decided"  # merged: the approval gate wakes the loop
    (item,) = workers_signal(repo)
    assert item["pr"] == {"state": "merged", "number": pull["number"]}
    asked = len(fake.log)
    assert beat(repo, decides=False)["outcome"] == "unchanged"
    assert len(fake.log) == asked  # merged and ended: never asked about again
    no_token_anywhere(repo, remote, fake)
    # Merged and over: `worker prune --all` forgets it, in a commit; its branch stays.
    pruned = repo.run("worker", "prune", "--all")
    assert pruned.code == 0, pruned.err
    assert "pruned w1: workers/w1.json removed" in pruned.out
    assert not (repo.root / "workers" / "w1.json").exists()
    assert "workers/w1.json" in repo.git("show", "--name-only", "--format=", "HEAD").split()
    assert "by hand: worker prune: forgot w1" in repo.read("journal.md")
    assert remote_tip(remote) is not None
    assert "w1" not in repo.run("worker", "list").out


@pytest.mark.parametrize("conclusion", ["failure", "cancelled"])
def test_no_pr_for_a_run_that_did_not_succeed(
    tmp_path: Path, fake: FakeGitHub, conclusion: str
) -> None:
    repo, remote = on_actions(tmp_path, fake)
    repo.write(
        "looopbot.yaml",
        repo.read("looopbot.yaml").replace("  api_url:", "  pull_requests: true\n  api_url:"),
    )
    repo.git("commit", "-qam", "draft PRs")
    start(repo)
    (run_id,) = gh(fake).runs
    push_work(tmp_path, remote)
    gh(fake).finish_run(run_id, conclusion)
    beat(repo)
    (item,) = workers_signal(repo)
    assert item["conclusion"] == conclusion and "pr" not in item
    assert gh(fake).pulls == {} and not fake.requests(f"/repos/{NAME}/pulls")


def test_prune_forgets_only_workers_whose_run_is_over(tmp_path: Path, fake: FakeGitHub) -> None:
    repo, remote = on_actions(tmp_path, fake)
    start(repo)
    (run_id,) = gh(fake).runs
    beat(repo)
    head = repo.head()
    assert repo.run("worker", "prune", "--all").out.strip() == "nothing to prune"  # queued
    gh(fake).finish_run(run_id, "failure")
    beat(repo)
    head = repo.head()
    # Over, but younger than limits.worker_ttl: kept without --all.
    assert repo.run("worker", "prune").out.strip() == "nothing to prune"
    assert repo.head() == head
    pruned = repo.run("worker", "prune", "--all")
    assert pruned.code == 0 and "pruned w1" in pruned.out, pruned.err
    assert repo.head() != head and repo.status_porcelain() == ""
    assert remote_tip(remote) is not None  # the run's work stays on the remote
    # The id is free again: a new start continues the branch.
    start(repo, prompt="again")
    assert json.loads(repo.read("workers/w1.json"))["after_run"] == run_id
