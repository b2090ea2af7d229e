"""The dashboard thread of a worker on GitHub Actions, attacked: comments GitHub cannot
react to, authors whose permission GitHub will not say, a busy thread longer than a page,
comments edited after the run saw them, a rate limit in the middle of the run's end, a
cancelled run. The real CLI (`looopbot worker run`) against the fake GitHub, as in
test_actions_thread."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import NOOP, Repo, git
from fakegithub import FakeGitHub
from fakerepo import BOT
from test_actions_thread import (
    ACTIONS_BOT,
    NAME,
    RUN_TOKEN,
    checkout,
    comments,
    dashboard_issue,
    fake,
    finish,
    gh,
    lines,
    reactions,
    repo,
    start,
    until,
)
from test_actions_thread import worker_run as _worker_run

__all__ = ["fake", "repo"]  # the fixtures, used by name

_started: list[subprocess.Popen[str]] = []


@pytest.fixture(autouse=True)
def _no_run_left() -> Iterator[None]:
    """A failing test must not leave its `worker run` listening for ever."""
    yield
    while _started:
        proc = _started.pop()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # the run ends its worker's group
            proc.communicate(timeout=60)


def worker_run(work: Path, run_id: int, **extra: str) -> subprocess.Popen[str]:
    proc = _worker_run(work, run_id, **extra)
    _started.append(proc)
    return proc


def _listed(fake: FakeGitHub, number: int) -> int:
    """How many reads of the dashboard's comments GitHub has answered."""
    return len(fake.requests(f"/repos/{NAME}/issues/{number}/comments"))


def _after_two_more_reads(fake: FakeGitHub, number: int, proc: object) -> None:
    """Until the run has read the thread twice more: the second read began after now."""
    seen = _listed(fake, number)
    until("two more reads", lambda: _listed(fake, number) >= seen + 2, proc)  # type: ignore[arg-type]


def test_a_comment_github_cannot_react_to_does_not_deafen_the_run(
    tmp_path: Path, fake: FakeGitHub, repo: Repo
) -> None:
    """A comment deleted between its delivery and the 👍 (GitHub: 404): the reaction is
    dropped, and what is said after it is still heard."""
    number = dashboard_issue(fake)
    heard = tmp_path / "heard"
    run_id = start(repo, fake, {"read": 2, "echo": str(heard)})
    proc = worker_run(checkout(tmp_path, repo), run_id)
    until("listening", lambda: _listed(fake, number), proc)
    with gh(fake).lock:  # the next comment's id, aimed at before the run can see it
        cid = gh(fake)._ids + 1
        gone = f"/repos/{NAME}/issues/comments/{cid}/reactions"
        fake.fail_next(404, times=10_000, path=gone)
        first = gh(fake).comment(number, "/answer w1 one", user="alice", association="OWNER")
    assert first["id"] == cid
    until("the first delivered", lambda: lines(heard), proc)
    second = gh(fake).comment(number, "/answer w1 two", user="alice", association="OWNER")
    code, out, err = finish(proc)
    assert code == 0, out + err
    assert lines(heard) == ["one", "two"]
    assert reactions(fake, second) == [(ACTIONS_BOT, "+1")]
    assert "dropped" in out, out


def test_an_author_github_has_no_permission_for_is_refused_and_the_rest_heard(
    tmp_path: Path, fake: FakeGitHub, repo: Repo
) -> None:
    """The permission endpoint says 404 for an author (a deleted account, a mannequin):
    not a writer — refused, not asked about forever ahead of everyone after them."""
    number = dashboard_issue(fake)
    heard = tmp_path / "heard"
    run_id = start(repo, fake, {"read": 1, "echo": str(heard)})
    fake.fail_next(404, times=10_000, path=f"/repos/{NAME}/collaborators/ghost/permission")
    proc = worker_run(checkout(tmp_path, repo), run_id)
    until("listening", lambda: _listed(fake, number), proc)
    ghost = gh(fake).comment(number, "/answer w1 evil", user="ghost", association="MEMBER")
    gh(fake).comment(number, "/answer w1 good", user="alice", association="COLLABORATOR")
    code, out, err = finish(proc)
    assert code == 0, out + err
    assert lines(heard) == ["good"]
    assert reactions(fake, ghost) == [(ACTIONS_BOT, "confused")]


def test_a_permission_check_github_fails_is_asked_again_and_delivered_once(
    tmp_path: Path, fake: FakeGitHub, repo: Repo
) -> None:
    number = dashboard_issue(fake)
    heard = tmp_path / "heard"
    run_id = start(repo, fake, {"read": 2, "echo": str(heard)})
    proc = worker_run(checkout(tmp_path, repo), run_id)
    until("listening", lambda: _listed(fake, number), proc)
    path = f"/repos/{NAME}/collaborators/alice/permission"
    fake.fail_next(502, times=3, path=path)
    said = gh(fake).comment(number, "/answer w1 once", user="alice", association="COLLABORATOR")
    until("delivered", lambda: lines(heard), proc)
    gh(fake).comment(number, "/answer w1 last", user="alice", association="COLLABORATOR")
    code, out, err = finish(proc)
    assert code == 0, out + err
    assert lines(heard) == ["once", "last"]
    assert reactions(fake, said) == [(ACTIONS_BOT, "+1")]
    assert [r.status for r in fake.requests(path)][:3] == [502, 502, 502]


def test_a_thread_longer_than_a_page_still_hears_whats_new(
    tmp_path: Path, fake: FakeGitHub, repo: Repo
) -> None:
    """Over 100 comments since the run began: the newest are on page 2, and page 1 alone
    answering 304 must not hide them."""
    number = dashboard_issue(fake)
    heard = tmp_path / "heard"
    run_id = start(repo, fake, {"read": 1, "echo": str(heard)})
    proc = worker_run(checkout(tmp_path, repo), run_id)
    until("listening", lambda: _listed(fake, number), proc)
    for n in range(101):
        gh(fake).comment(number, f"chatter {n}", user="alice", association="COLLABORATOR")
    path = f"/repos/{NAME}/issues/{number}/comments"

    def page_two() -> bool:
        return any(r.query.get("page") == "2" and r.status == 200 for r in fake.requests(path))

    until("page 2 read", page_two, proc)
    gh(fake).comment(number, "/answer w1 found", user="alice", association="COLLABORATOR")
    code, out, err = finish(proc)
    assert code == 0, out + err
    assert lines(heard) == ["found"]


def test_a_comment_edited_into_an_answer_is_heard_and_an_answer_edited_is_not_again(
    tmp_path: Path, fake: FakeGitHub, repo: Repo
) -> None:
    """As a beat does for a local worker: a remark edited into `/answer` counts when the
    edit is seen; an answer already judged is never judged again, however edited."""
    number = dashboard_issue(fake)
    heard = tmp_path / "heard"
    run_id = start(repo, fake, {"read": 3, "echo": str(heard)})
    proc = worker_run(checkout(tmp_path, repo), run_id)
    until("listening", lambda: _listed(fake, number), proc)
    remark = gh(fake).comment(number, "let me think", user="alice", association="COLLABORATOR")
    _after_two_more_reads(fake, number, proc)  # the run has seen the remark
    gh(fake).edit_comment(remark["id"], "/answer w1 thought")
    until("the edit heard", lambda: lines(heard), proc)
    gh(fake).edit_comment(remark["id"], "/answer w1 thought again")
    _after_two_more_reads(fake, number, proc)
    gh(fake).comment(number, "/answer w1 two", user="alice", association="COLLABORATOR")
    gh(fake).comment(number, "/answer w1 three", user="alice", association="COLLABORATOR")
    code, out, err = finish(proc)
    assert code == 0, out + err
    assert lines(heard) == ["thought", "two", "three"]
    assert reactions(fake, remark) == [(ACTIONS_BOT, "+1")]


def _waiting_worker(tmp_path: Path) -> tuple[str, Path, Path]:
    """A worker command that waits for a file, with a helper in its group; its pgid file."""
    go, pgid = tmp_path / "go", tmp_path / "pgid"
    command = (
        f"ps -o pgid= $$ | tr -d ' ' > {pgid}; sleep 1000 & "
        f"while [ ! -e {go} ]; do sleep 0.05; done"
    )
    return command, go, pgid


def _group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def test_a_rate_limit_wait_does_not_hold_the_runs_end(
    tmp_path: Path, fake: FakeGitHub, repo: Repo
) -> None:
    """GitHub asks the thread's reader to wait 55 s (secondary limit): the worker ending
    meanwhile ends the run now — the commit is not 55 s late, or killed by the runner."""
    number = dashboard_issue(fake)
    run_id = start(repo, fake, {})
    path = f"/repos/{NAME}/issues/{number}/comments"
    fake.fail_next(
        403,
        "You have exceeded a secondary rate limit",
        headers={"Retry-After": "55"},
        times=99,
        path=path,
    )
    command, go, _ = _waiting_worker(tmp_path)
    work = checkout(tmp_path, repo)
    proc = worker_run(work, run_id, LOOOPBOT_WORKER_COMMAND=command)
    until("told to wait", lambda: any(r.status == 403 for r in fake.requests(path)), proc)
    go.touch()
    code, out, err = finish(proc)  # within WAIT_S (30 s), not after the 55 s wait
    assert code == 0, out + err
    assert "rate limit" in out, out


def test_a_cancelled_run_ends_the_workers_whole_group_mid_rate_limit(
    tmp_path: Path, fake: FakeGitHub, repo: Repo
) -> None:
    """SIGTERM (a cancelled run) while the thread's reader waits out a rate limit: the
    worker's group ends, the run exits 143 at once, nothing of the worker is left."""
    number = dashboard_issue(fake)
    run_id = start(repo, fake, {})
    path = f"/repos/{NAME}/issues/{number}/comments"
    fake.fail_next(403, "secondary rate limit", headers={"Retry-After": "55"}, times=99, path=path)
    command, _, pgid_file = _waiting_worker(tmp_path)
    work = checkout(tmp_path, repo)
    proc = worker_run(work, run_id, LOOOPBOT_WORKER_COMMAND=command)
    until("the worker up", lambda: pgid_file.exists() and pgid_file.read_text().strip(), proc)
    until("told to wait", lambda: any(r.status == 403 for r in fake.requests(path)), proc)
    pgid = int(pgid_file.read_text())
    proc.send_signal(signal.SIGTERM)
    code, out, err = finish(proc)
    assert code == 143, out + err
    # SIGKILL is delivered at once and reaped by init a moment later.
    until("nothing of the worker left", lambda: _group_gone(pgid))
    assert "stopped: the worker's process group was ended" in out


def test_the_loop_says_nothing_when_github_fails_mid_post(
    tmp_path: Path, fake: FakeGitHub, repo: Repo
) -> None:
    number = dashboard_issue(fake)
    start(repo, fake, {})
    gh(fake).start_run(max(gh(fake).runs))
    head = repo.head()
    fake.fail_on("POST", f"/repos/{NAME}/issues/{number}/comments", 502)
    r = repo.run("answer", "w1", "yes")
    # A 502 to a POST: GitHub may have made the comment, so "not heard" would be a guess.
    assert r.code == 1 and "may or may not hear it" in r.err and "502" in r.err, r.err
    assert f"look at the dashboard (issue #{number})" in r.err
    assert len(r.err.strip().splitlines()) == 1, r.err
    assert comments(fake, number) == [] and repo.head() == head
    # Refused before anything is posted (the run's state unreadable): certainly not heard.
    fake.fail_next(502, path=f"/repos/{NAME}/actions/workflows/looopbot-worker.yml/runs")
    r = repo.run("answer", "w1", "yes")
    assert r.code == 1 and "did not hear it" in r.err, r.err
    assert comments(fake, number) == [] and repo.head() == head


def test_the_loop_does_not_post_to_a_closed_dashboard(
    tmp_path: Path, fake: FakeGitHub, repo: Repo
) -> None:
    number = dashboard_issue(fake)
    start(repo, fake, {})
    gh(fake).start_run(max(gh(fake).runs))
    gh(fake).edit_issue(number, state="closed")
    head = repo.head()
    r = repo.run("answer", "w1", "yes")
    assert r.code == 1 and "no dashboard issue" in r.err, r.err
    assert comments(fake, number) == [] and repo.head() == head


def test_a_run_github_will_not_show_keeps_trying_and_hears_nothing_old(
    tmp_path: Path, fake: FakeGitHub, repo: Repo
) -> None:
    """The run's own record (its start, from when comments count) refused: the thread is
    not read at all until it is known — never with a guessed start that lets old comments
    in — and one line says why."""
    number = dashboard_issue(fake)
    heard = tmp_path / "heard"
    old = gh(fake).comment(number, "/answer w1 stale", user="alice", association="COLLABORATOR")
    run_id = start(repo, fake, {"read": 1, "echo": str(heard)})  # dispatched after it
    runs = f"/repos/{NAME}/actions/runs/{run_id}"
    fake.fail_next(404, times=10_000, path=runs)
    proc = worker_run(checkout(tmp_path, repo), run_id)
    until("asked twice", lambda: len(fake.requests(runs)) >= 2, proc)
    assert _listed(fake, number) == 0
    fake.heal()
    until("listening", lambda: _listed(fake, number), proc)
    gh(fake).comment(number, "/answer w1 fresh", user="alice", association="COLLABORATOR")
    code, out, err = finish(proc)
    assert code == 0, out + err
    assert lines(heard) == ["fresh"] and reactions(fake, old) == []
    assert len([x for x in out.splitlines() if "404" in x]) == 1, out


def test_the_runs_token_is_never_posted_logged_or_committed(
    tmp_path: Path, fake: FakeGitHub, repo: Repo
) -> None:
    """A worker that got hold of the job's token (actions/checkout leaves it to git) and
    puts it in its question: the flag comment on the public thread is scrubbed, and the
    run's local record (its output.log) is never committed to the branch."""
    number = dashboard_issue(fake)
    run_id = start(repo, fake, {})
    answer = tmp_path / "answer"
    command = f'"$LOOOPBOT_BIN" ask w1 "is {RUN_TOKEN} the token?" > {answer}'
    work = checkout(tmp_path, repo)
    proc = worker_run(work, run_id, LOOOPBOT_WORKER_COMMAND=command)

    def flag() -> list[dict[str, object]]:
        return [c for c in comments(fake, number) if "looopbot:flag w1" in str(c["body"])]

    (posted,) = until("the question posted", flag, proc)
    assert RUN_TOKEN not in str(posted["body"]) and "the token?" in str(posted["body"])
    gh(fake).comment(number, "/answer w1 no", user="alice", association="COLLABORATOR")
    code, out, err = finish(proc)
    assert code == 0, out + err
    assert "no" in answer.read_text()
    assert RUN_TOKEN not in out + err
    tracked = git(work, "ls-tree", "-r", "--name-only", "HEAD")
    assert ".looopbot/workers/" not in tracked
    assert RUN_TOKEN not in git(work, "log", "-p", "--all")


def test_an_answer_to_a_worker_whose_run_is_over_is_refused_by_the_beat(
    tmp_path: Path, fake: FakeGitHub, repo: Repo
) -> None:
    """Its run gone, no ear hears the thread: the beat answers instead of recording it
    `to-run` for nobody. What was said while the run ran stays the run's."""
    number = dashboard_issue(fake)
    run_id = start(repo, fake, {})
    gh(fake).start_run(run_id)
    during = gh(fake).comment(number, "/answer w1 early", user="alice", association="OWNER")
    gh(fake).finish_run(run_id, "success")
    late = gh(fake).comment(number, "/answer w1 late", user="alice", association="OWNER")
    stranger = gh(fake).comment(number, "/answer w1 hi", user="mallory", association="NONE")
    repo.decide(NOOP)
    t = repo.tick()
    assert t.code == 0, t.err
    rows = [json.loads(x) for x in repo.read(".looopbot/github.jsonl").splitlines()]
    result = {r["comment"]: r["result"] for r in rows if r.get("kind") == "answer"}
    assert result == {during["id"]: "to-run", late["id"]: "refused", stranger["id"]: "refused"}
    assert reactions(fake, late) == [(BOT, "confused")] and reactions(fake, during) == []
    (reply,) = [c for c in comments(fake, number) if "was not delivered" in c["body"]]
    assert "@alice" in reply["body"] and "its run is over" in reply["body"]
    assert "@mallory" not in reply["body"]


def test_a_dashboard_closed_and_replaced_mid_run_is_followed(
    tmp_path: Path, fake: FakeGitHub, repo: Repo
) -> None:
    """A human closes the dashboard; a new one is opened (the next beat does): what the
    loop says on the new one reaches the run, and its open question is asked there too."""
    old = dashboard_issue(fake)
    heard = tmp_path / "heard"
    run_id = start(repo, fake, {"read": 1, "echo": str(heard)})
    gh(fake).start_run(run_id)
    proc = worker_run(checkout(tmp_path, repo), run_id)
    until("listening", lambda: _listed(fake, old), proc)
    gh(fake).edit_issue(old, state="closed")
    new = dashboard_issue(fake)
    said = repo.run("answer", "w1", "over here")
    assert said.code == 0, said.err
    assert [c["body"] for c in comments(fake, new)] == ["/answer w1 over here"]
    code, out, err = finish(proc)
    assert code == 0, out + err
    assert lines(heard) == ["over here"]
    assert f"the dashboard moved: listening on issue #{new}" in out


def test_only_the_real_actions_bot_is_trusted_without_a_permission_check(
    tmp_path: Path, fake: FakeGitHub, repo: Repo
) -> None:
    """A user spelt like the bot but not a Bot, another app's bot, an OWNER association
    GitHub's permission endpoint contradicts: each refused; a writer after them heard."""
    number = dashboard_issue(fake)
    heard = tmp_path / "heard"
    run_id = start(repo, fake, {"read": 1, "echo": str(heard)})
    gh(fake).set_permission("carol", "read")
    proc = worker_run(checkout(tmp_path, repo), run_id)
    until("listening", lambda: _listed(fake, number), proc)
    with gh(fake).lock:  # made and disguised before the run can read it
        fake_bot = gh(fake).comment(number, "/answer w1 a", user=ACTIONS_BOT, association="NONE")
        gh(fake).comments[fake_bot["id"]]["user"]["type"] = "User"
    app = gh(fake).comment(number, "/answer w1 b", user="evil-app[bot]", association="MEMBER")
    owner = gh(fake).comment(number, "/answer w1 c", user="carol", association="OWNER")
    until("the three refused", lambda: all(reactions(fake, c) for c in (fake_bot, app, owner)))
    gh(fake).comment(number, "/answer w1 real", user="alice", association="COLLABORATOR")
    code, out, err = finish(proc)
    assert code == 0, out + err
    assert lines(heard) == ["real"]
    for c in (fake_bot, app, owner):
        assert reactions(fake, c) == [(ACTIONS_BOT, "confused")]


def test_keys_c_c_from_the_thread_interrupts_the_worker(
    tmp_path: Path, fake: FakeGitHub, repo: Repo
) -> None:
    number = dashboard_issue(fake)
    run_id = start(repo, fake, {"read": 1})
    work = checkout(tmp_path, repo)
    proc = worker_run(work, run_id)
    until("listening", lambda: _listed(fake, number), proc)
    keys = gh(fake).comment(number, "/keys w1 C-c", user="alice", association="COLLABORATOR")
    code, out, err = finish(proc)
    assert code == 130, out + err  # the fake worker's group took SIGINT
    assert reactions(fake, keys) == [(ACTIONS_BOT, "+1")]
    assert (work / ".looopbot" / "worker-brief.md").exists()  # a failed worker keeps it


def test_what_only_looks_like_an_answer_is_no_command() -> None:
    """Quoted, fenced, fullwidth or zero-width-prefixed: not a command (a reply quoting an
    answer must not deliver it again); odd ids and empty answers are refused, not guessed."""
    from looopbot.github import answers

    for body in (
        "> /answer w1 yes",
        "```\n/answer w1 yes\n```",
        "\uff0fanswer w1 yes",  # fullwidth solidus
        "\u200b/answer w1 yes",  # zero-width space first
        "\u202e/answer w1 yes",  # right-to-left override first
        "see /answer w1 yes",
        "/answers w1 yes",
    ):
        assert answers.parse(body) is None, body
    for body in ("/answer w1", "/answer w1    \n  ", "/answer w1\u200b yes"):
        assert isinstance(answers.parse(body), answers.Refusal), body
    assert isinstance(answers.parse("/answer w1 " + "x" * 100_000), answers.Refusal)
    # Ids are case-sensitive: W1 is another worker (a beat says there is none), not w1.
    assert answers.parse("/answer W1 yes") == answers.Parsed("W1", "yes")
    assert answers.parse("/keys w1 C-c C-d") == answers.Parsed("w1", "C-c C-d", "keys")
