"""A worker on GitHub Actions and its dashboard thread: `looopbot worker run` (the real CLI,
as the workflow runs it, in a checkout of the worker's branch) posts the worker's question
on the dashboard, and hands `/answer` and `/keys` comments addressed to it — from someone
with write access — to the worker's stdin once; the loop's `answer`, steer_session and
send_key post such comments. Real git, a bare remote, the real github3.py against the fake
GitHub, the scripted worker as the agent."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import BIN, FAKE_WORKER, NOOP, Repo, git
from fakegithub import FakeGitHub
from fakerepo import BOT, FakeRepo
from gitops import published

TOKEN = "ghp_" + "L00pT0k3n" * 4  # the loop's (a person's token: BOT)
RUN_TOKEN = "ghs_" + "RunT0k3n" * 4  # the worker's job's: github-actions[bot]
ACTIONS_BOT = "github-actions[bot]"
WF = "looopbot-worker.yml"
NAME = "octo/data"
BRANCH = "looopbot/worker/w1"
WAIT_S = 30.0


@pytest.fixture
def fake() -> Iterator[FakeGitHub]:
    with FakeGitHub() as server:
        gh = server.repo(NAME)
        gh.workflows.add(WF)
        gh.set_permission("alice", "write")
        gh.set_permission("mallory", "read")
        server.users[RUN_TOKEN] = ACTIONS_BOT
        yield server


def gh(fake: FakeGitHub) -> FakeRepo:
    return fake.repo(NAME)


def setup(tmp_path: Path, fake: FakeGitHub, *, dashboard: bool = True) -> Repo:
    repo, _ = published(tmp_path)
    repo.write(
        "looopbot.yaml",
        repo.read("looopbot.yaml")
        + f"\ngithub:\n  repo: {NAME}\n  api_url: {fake.base_url}\n"
        + f"  dashboard: {'true' if dashboard else 'false'}\n"
        + "workers:\n  backend: actions\n",
    )
    repo.git("commit", "-qam", "workers on GitHub Actions, steered from the dashboard")
    repo.git("push", "-q")
    repo.env["GITHUB_TOKEN"] = TOKEN
    return repo


def dashboard_issue(fake: FakeGitHub) -> int:
    """The dashboard as a beat with github.dashboard on opens it."""
    issue = gh(fake).open_issue("looopbot dashboard", "…", labels=("looopbot",), user=BOT)
    return int(issue["number"])


def start(repo: Repo, fake: FakeGitHub, spec: dict[str, Any]) -> int:
    """Start worker w1 on Actions with a scripted brief; its run's id."""
    r = repo.run("worker", "start", "w1", f"do the work\nFAKE {json.dumps(spec)}")
    assert r.code == 0, r.err
    return max(gh(fake).runs)


def checkout(tmp_path: Path, repo: Repo, name: str = "runner") -> Path:
    """What actions/checkout makes of the dispatched ref."""
    remote = repo.git("remote", "get-url", "origin").strip()
    work = tmp_path / name
    subprocess.run(
        ["git", "clone", "-q", "--depth", "1", "-b", BRANCH, f"file://{remote}", str(work)],
        check=True,
    )
    return work


def worker_run(work: Path, run_id: int, **extra: str) -> subprocess.Popen[str]:
    """`looopbot worker run w1` as the workflow's Work step runs it."""
    env = {
        **os.environ,
        "GITHUB_TOKEN": RUN_TOKEN,
        "GITHUB_RUN_ID": str(run_id),
        "LOOOPBOT_WORKER_COMMAND": FAKE_WORKER,
        "LOOOPBOT_THREAD_POLL": "0.1",
        **extra,
    }
    return subprocess.Popen(
        [str(BIN), "-C", str(work), "worker", "run", "w1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def until(what: str, check: Callable[[], Any], proc: subprocess.Popen[str] | None = None) -> Any:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"the run ended before {what}: {out}\n{err}")
        time.sleep(0.05)
    raise AssertionError(f"never: {what}")


def finish(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=WAIT_S)
    return proc.returncode, out, err


def comments(fake: FakeGitHub, number: int) -> list[dict[str, Any]]:
    return gh(fake).comments_on(number)


def reactions(fake: FakeGitHub, comment: dict[str, Any]) -> list[tuple[str, str]]:
    with gh(fake).lock:
        found = gh(fake).reactions.get(int(comment["id"]), [])
        return [(r["user"]["login"], r["content"]) for r in found]


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


@pytest.fixture
def repo(tmp_path: Path, fake: FakeGitHub) -> Repo:
    return setup(tmp_path, fake)


# --- the whole conversation ---------------------------------------------------------------


def test_a_question_goes_up_and_only_a_writers_answer_comes_down_once(
    tmp_path: Path, fake: FakeGitHub, repo: Repo
) -> None:
    number = dashboard_issue(fake)
    asked, heard = tmp_path / "asked", tmp_path / "heard"
    spec = {
        "ask": {"question": "deploy to prod?", "options": "yes,no", "out": str(asked)},
        "read": 2,
        "echo": str(heard),
    }
    # Said before the worker's run was dispatched: not for this run.
    early = gh(fake).comment(number, "/answer w1 no", user="alice", association="COLLABORATOR")
    run_id = start(repo, fake, spec)
    work = checkout(tmp_path, repo)
    proc = worker_run(work, run_id)

    def flag() -> dict[str, Any] | None:
        return next((c for c in comments(fake, number) if "looopbot:flag w1" in c["body"]), None)

    posted = until("the question is on the dashboard", flag, proc)
    # Edited now, the comment made before the run still is not for it.
    gh(fake).edit_comment(early["id"], "/answer w1 yes")
    assert "deploy to prod?" in posted["body"] and "`yes` / `no`" in posted["body"]
    assert posted["user"]["login"] == ACTIONS_BOT
    stranger = gh(fake).comment(number, "/answer w1 yes", user="mallory", association="NONE")
    reader = gh(fake).comment(
        number, "/answer w1 yes", user="bob", association="MEMBER"
    )  # an org member without write access to this repository
    other = gh(fake).comment(number, "/answer w2 yes", user="alice", association="COLLABORATOR")
    wrong = gh(fake).comment(number, "/answer w1 maybe", user="alice", association="COLLABORATOR")
    until("the stranger refused", lambda: reactions(fake, stranger), proc)
    until("the wrong option refused", lambda: reactions(fake, wrong), proc)
    assert reactions(fake, stranger) == [(ACTIONS_BOT, "confused")]
    assert reactions(fake, wrong) == [(ACTIONS_BOT, "confused")]
    until("the member refused", lambda: reactions(fake, reader), proc)
    refusal = until(
        "a reply naming the options",
        lambda: [c for c in comments(fake, number) if "did not reach worker" in c["body"]],
        proc,
    )
    assert len(refusal) == 1 and "yes, no" in refusal[0]["body"] and "@alice" in refusal[0]["body"]
    assert not lines(asked)  # nothing was delivered
    good = gh(fake).comment(number, "/answer w1 YES", user="alice", association="COLLABORATOR")
    until("the answer is delivered", lambda: lines(asked), proc)
    assert lines(asked) == ["w1#1", "yes", "exit 0"]  # the option as it is spelt
    assert reactions(fake, good) == [(ACTIONS_BOT, "+1")]
    assert reactions(fake, other) == [] and reactions(fake, early) == []
    until("the answer on stdin too", lambda: lines(heard), proc)
    # The loop, on its own machine, says more: posted as a comment its run hears.
    said = repo.run("answer", "w1", "ship it now")
    assert said.code == 0, said.err
    relay = comments(fake, number)[-1]
    assert relay["body"] == "/answer w1 ship it now" and relay["user"]["login"] == BOT
    code, out, err = finish(proc)
    assert code == 0, err
    assert lines(heard) == ["yes", "ship it now"]
    assert reactions(fake, relay) == [(ACTIONS_BOT, "+1")]
    assert "fake worker w1" in out  # the worker's output is in the job's log
    assert "dashboard: answered w1 from the dashboard (@alice): YES" in out
    assert "refused @mallory's comment" in out
    # Each comment was judged once: one reaction each, one reply in all.
    for c in (stranger, wrong, good, relay):
        assert len(reactions(fake, c)) == 1
    assert git(work, "status", "--porcelain") == ""
    assert not (work / ".looopbot" / "worker-brief.md").exists()
    assert TOKEN not in out + err and RUN_TOKEN not in out + err


def test_the_loops_beat_leaves_answers_for_a_worker_on_actions_to_its_run(
    tmp_path: Path, fake: FakeGitHub, repo: Repo
) -> None:
    number = dashboard_issue(fake)
    start(repo, fake, {"read": 1, "echo": str(tmp_path / "heard")})
    said = gh(fake).comment(number, "/answer w1 go", user="alice", association="COLLABORATOR")
    repo.decide(NOOP)
    t = repo.tick()
    assert t.code == 0, t.err
    rows = [json.loads(x) for x in repo.read(".looopbot/github.jsonl").splitlines()]
    assert [r["result"] for r in rows if r.get("comment") == said["id"]] == ["to-run"]
    assert reactions(fake, said) == []  # its run reacts when it delivers
    # The dashboard lists it among the live workers, as the last beat read its run.
    assert "- `w1` queued on GitHub Actions" in gh(fake).issues[number]["body"]
    assert not [c for c in comments(fake, number) if "not delivered" in c["body"]]
    # A second beat does not judge it again.
    repo.decide(NOOP)
    assert repo.tick("--force").code == 0
    rows = [json.loads(x) for x in repo.read(".looopbot/github.jsonl").splitlines()]
    assert len([r for r in rows if r.get("comment") == said["id"]]) == 1


def test_steer_session_and_send_key_from_the_decider_reach_the_run(
    tmp_path: Path, fake: FakeGitHub, repo: Repo
) -> None:
    number = dashboard_issue(fake)
    heard = tmp_path / "heard"
    run_id = start(repo, fake, {"read": 5, "echo": str(heard)})
    work = checkout(tmp_path, repo)
    proc = worker_run(work, run_id)
    until("listening", lambda: (work / ".looopbot/workers/w1/state.json").exists(), proc)
    repo.decide({"action": "steer_session", "id": "w1", "input": "first, the tests"})
    t = repo.tick("--force")
    assert t.json()["outcome"] == "decided", t.out + t.err
    until("steered", lambda: lines(heard), proc)
    repo.decide({"action": "send_key", "id": "w1", "keys": ["C-d"]})
    t = repo.tick("--force")
    assert t.json()["outcome"] == "decided", t.out + t.err
    code, _, err = finish(proc)  # stdin closed: the worker stops reading and ends
    assert code == 0, err
    assert lines(heard) == ["first, the tests"]
    bodies = [c["body"] for c in comments(fake, number)]
    assert bodies == ["/answer w1 first, the tests", "/keys w1 C-d"]
    assert "steer_session" in repo.git("log", "-2", "--format=%B")


def test_a_rerun_does_not_hear_what_was_said_to_the_attempt_before(
    tmp_path: Path, fake: FakeGitHub, repo: Repo
) -> None:
    number = dashboard_issue(fake)
    heard = tmp_path / "heard"
    run_id = start(repo, fake, {"read": 1, "echo": str(heard), "exit": 1})
    old = gh(fake).comment(number, "/answer w1 first", user="alice", association="COLLABORATOR")
    code, _, err = finish(worker_run(checkout(tmp_path, repo), run_id))
    assert code == 1, err
    assert lines(heard) == ["first"] and reactions(fake, old) == [(ACTIONS_BOT, "+1")]
    gh(fake).finish_run(run_id, "failure")
    gh(fake).rerun(run_id)
    heard.unlink()
    proc = worker_run(checkout(tmp_path, repo, "rerun"), run_id)
    until("the re-run listens", lambda: (tmp_path / "rerun/.looopbot/workers/w1").exists(), proc)
    time.sleep(0.5)  # several polls
    assert not lines(heard)
    gh(fake).comment(number, "/answer w1 second", user="alice", association="COLLABORATOR")
    code, _, err = finish(proc)
    assert code == 1, err
    assert lines(heard) == ["second"]


def test_the_loop_says_nothing_to_a_run_that_is_over(
    tmp_path: Path, fake: FakeGitHub, repo: Repo
) -> None:
    number = dashboard_issue(fake)
    run_id = start(repo, fake, {})
    gh(fake).finish_run(run_id, "success")
    head = repo.head()
    r = repo.run("answer", "w1", "too late")
    assert r.code == 1 and "not running on GitHub Actions (its run is over)" in r.err, r.err
    assert comments(fake, number) == [] and repo.head() == head


def test_without_the_dashboard_the_loop_says_how_to_reach_the_worker(
    tmp_path: Path, fake: FakeGitHub
) -> None:
    repo = setup(tmp_path, fake, dashboard=False)
    r = repo.run("worker", "start", "w1", "x")
    assert r.code == 0, r.err
    r = repo.run("answer", "w1", "yes")
    assert r.code == 1 and "github.dashboard is off" in r.err, r.err
    assert len(r.err.strip().splitlines()) == 1


def test_a_run_without_a_dashboard_issue_still_works_and_says_so(
    tmp_path: Path, fake: FakeGitHub, repo: Repo
) -> None:
    run_id = start(repo, fake, {"report": True})
    work = checkout(tmp_path, repo)
    code, out, err = finish(worker_run(work, run_id))
    assert code == 0, err
    assert "there is no dashboard issue yet" in out
    assert (work / "reports" / "w1.md").exists()


def test_a_failing_github_never_stops_the_worker(
    tmp_path: Path, fake: FakeGitHub, repo: Repo
) -> None:
    number = dashboard_issue(fake)
    asked = tmp_path / "asked"
    run_id = start(repo, fake, {"ask": {"question": "ok?", "out": str(asked)}})
    fake.fail_next(502, times=10_000, path=f"/repos/{NAME}/issues/{number}/comments")
    work = checkout(tmp_path, repo)
    proc = worker_run(work, run_id)
    until("the failure logged", lambda: b"502" in _log(work), proc)
    assert not [c for c in comments(fake, number) if "looopbot:flag" in c["body"]]
    fake.heal()
    until("the question posted once healed", lambda: comments(fake, number), proc)
    gh(fake).comment(number, "/answer w1 sure", user="alice", association="COLLABORATOR")
    code, out, err = finish(proc)
    assert code == 0, err
    assert lines(asked) == ["w1#1", "sure", "exit 0"]
    # One line for a failing API, not one per poll.
    assert len([x for x in out.splitlines() if "502" in x]) == 1, out


def _log(work: Path) -> bytes:
    try:
        return (work / ".looopbot/workers/w1/output.log").read_bytes()
    except FileNotFoundError:
        return b""


def test_the_worker_never_sees_the_token(tmp_path: Path, fake: FakeGitHub, repo: Repo) -> None:
    dashboard_issue(fake)
    run_id = start(repo, fake, {})
    work = checkout(tmp_path, repo)
    probe = tmp_path / "env"
    code, _, err = finish(worker_run(work, run_id, LOOOPBOT_WORKER_COMMAND=f"env > {probe}"))
    assert code == 0, err
    seen = probe.read_text()
    assert RUN_TOKEN not in seen and "GITHUB_TOKEN=" not in seen
    assert "LOOOPBOT_SESSION_ID=w1" in seen


def test_what_its_run_would_refuse_is_never_posted(
    tmp_path: Path, fake: FakeGitHub, repo: Repo
) -> None:
    number = dashboard_issue(fake)
    start(repo, fake, {})
    head = repo.head()
    r = repo.run("answer", "w1", "bell\x07ring")
    assert r.code == 1 and "control characters" in r.err, r.err
    r = repo.run("answer", "w1", "x" * 5000)
    assert r.code == 1 and "cap" in r.err, r.err
    assert comments(fake, number) == [] and repo.head() == head


def test_an_answer_behind_a_full_first_page_is_still_heard(
    tmp_path: Path, fake: FakeGitHub, repo: Repo
) -> None:
    """A `304` speaks for page 1 only: with more than a page of comments since the run
    began, a new one lands on a later page — the run must still hear it."""
    number = dashboard_issue(fake)
    heard = tmp_path / "heard"
    run_id = start(repo, fake, {"read": 1, "echo": str(heard)})
    proc = worker_run(checkout(tmp_path, repo), run_id)
    path = f"/repos/{NAME}/issues/{number}/comments"
    until("listening", lambda: fake.requests(path), proc)
    for n in range(130):
        gh(fake).comment(number, f"chatter {n}", user="alice", association="COLLABORATOR")
    read = len(fake.requests(path))
    until("the chatter read", lambda: len(fake.requests(path)) > read + 2, proc)
    gh(fake).comment(number, "/answer w1 still here", user="alice", association="COLLABORATOR")
    code, _, err = finish(proc)
    assert code == 0, err
    assert lines(heard) == ["still here"]


def test_git_variables_set_as_in_a_hook_do_not_redirect_the_run(
    tmp_path: Path, fake: FakeGitHub, repo: Repo
) -> None:
    """`worker run` started with GIT_DIR and GIT_INDEX_FILE pointing at another repository
    (as inside a hook): the worker's work and the run's commits land in the checkout."""
    dashboard_issue(fake)
    run_id = start(repo, fake, {"report": True})
    work = checkout(tmp_path, repo)
    other_head = repo.head()
    hooked = {
        "GIT_DIR": str(repo.root / ".git"),
        "GIT_INDEX_FILE": str(repo.root / ".git" / "index"),
        "GIT_WORK_TREE": str(repo.root),
    }
    code, _, err = finish(worker_run(work, run_id, **hooked))
    assert code == 0, err
    assert repo.head() == other_head and repo.status_porcelain() == ""
    assert (work / "reports" / "w1.md").exists()
    assert "report from w1" in git(work, "log", "--format=%s")
    assert git(work, "status", "--porcelain") == ""
    assert not (work / ".looopbot" / "worker-brief.md").exists()
