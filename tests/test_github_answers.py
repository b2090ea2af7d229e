"""Questions and answers on the dashboard (DESIGN §10): a worker's flag posted once, and an
`/answer` from someone with write access delivered to its stdin exactly once — across beats,
lost scratch and a fresh clone — while anyone else's is refused and journaled. Real CLI,
real workers (tests/fake_worker.py), real github3.py against the fake GitHub."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import (
    FAKE_WORKER,
    NOOP,
    Repo,
    end_workers,
    make_repo,
    task,
    wait_lines,
    wait_state,
)
from fakegithub import FakeGitHub
from fakerepo import BOT, FakeRepo
from test_github_dashboard import ENV, NAME, TOKEN, board, fresh_clone, wire

from looopbot.github import answers

LEDGER = ".looopbot/github.jsonl"


@pytest.fixture
def fake() -> Iterator[FakeGitHub]:
    with FakeGitHub() as server:
        server.repo(NAME)
        yield server


@pytest.fixture
def wrepo(tmp_path: Path, fake: FakeGitHub) -> Iterator[Repo]:
    repo = wire(make_repo(tmp_path), fake)
    repo.env["LOOOPBOT_WORKER_COMMAND"] = FAKE_WORKER
    yield repo
    end_workers(repo)


def wait_for(path: Path, within: float = 30) -> None:
    end = time.monotonic() + within
    while not path.exists() and time.monotonic() < end:
        time.sleep(0.02)
    assert path.exists(), path


def flagged_worker(repo: Repo, echo: Path, wid: str = "w1") -> None:
    """A worker that asks a question and then reads two answers."""
    spec = task(wid, flag="Deploy to production now?", read=2, echo=str(echo))
    assert repo.run("worker", "start", wid, spec).code == 0
    wait_for(repo.root / ".looopbot" / "workers" / wid / "flag")


def bot_said(gh: FakeRepo) -> list[str]:
    return [c["body"] for c in gh.comments.values() if c["user"]["login"] == BOT]


def reactions(gh: FakeRepo, cid: int) -> list[str]:
    return [r["content"] for r in gh.reactions.get(cid, [])]


def test_rows_and_commands_parse_strictly() -> None:
    assert answers.parse("thanks!") is None
    assert answers.parse("/answerw1 yes") is None
    assert answers.parse("/answer w1 yes, go") == answers.Parsed("w1", "yes, go")
    assert answers.parse("/answer w1\r\nline one\r\nline two\r\n") == answers.Parsed(
        "w1", "line one\nline two"
    )
    assert isinstance(answers.parse("/answer ../x yes"), answers.Refusal)
    assert isinstance(answers.parse("/answer w1"), answers.Refusal)
    assert isinstance(answers.parse("/answer w1 a\x00b"), answers.Refusal)
    for hidden in ("\x85", "\x9b", "\u202e", "\u2067"):  # C1, an override, an isolate
        assert isinstance(answers.parse(f"/answer w1 yes{hidden}no"), answers.Refusal), hidden
    assert isinstance(answers.parse("/answer w1 " + "x" * 5000), answers.Refusal)
    # Named keys, and an answer that names its ask.
    assert answers.parse("/keys w1 Enter  C-c") == answers.Parsed("w1", "Enter C-c", "keys")
    assert isinstance(answers.parse("/keys w1 Enter rm"), answers.Refusal)
    assert isinstance(answers.parse("/keys w1#2 Enter"), answers.Refusal)
    assert answers.parse("/keysw1 Enter") is None
    named = answers.parse("/answer w1#2 yes")
    assert named == answers.Parsed("w1", "yes", "answer", "w1#2") and named.target == "w1#2"
    assert isinstance(answers.parse("/answer w1#x yes"), answers.Refusal)


def test_a_flag_is_posted_once_and_a_collaborators_answer_delivered_once(
    wrepo: Repo, fake: FakeGitHub, tmp_path: Path
) -> None:
    gh = fake.repo(NAME)
    echo = tmp_path / "echo"
    flagged_worker(wrepo, echo)
    wrepo.decide(NOOP, NOOP, NOOP)
    assert wrepo.tick(env=ENV).code == 0
    number = board(gh)["number"]
    posted = bot_said(gh)
    assert len(posted) == 1
    assert "Deploy to production now?" in posted[0] and "`/answer w1 <your answer>`" in posted[0]
    assert "/answer w1" in board(gh)["body"]  # a pending question on the dashboard too
    for _ in range(2):
        assert wrepo.tick("--force", env=ENV).code == 0
    assert len(bot_said(gh)) == 1  # posted once, across beats

    gh.set_permission("alice", "write")
    said = gh.comment(number, "/answer w1 yes, deploy", user="alice", association="COLLABORATOR")
    wrepo.decide(NOOP)  # the question is down: news for the loop
    run = wrepo.tick(env=ENV)
    assert run.code == 0, run.err
    assert wait_lines(echo, 1) == ["yes, deploy"]
    assert reactions(gh, said["id"]) == ["+1"]
    assert "answered w1 from the GitHub dashboard (@alice): yes, deploy" in wrepo.read("journal.md")
    rows = [json.loads(line) for line in wrepo.read(LEDGER).splitlines()]
    assert [r["result"] for r in rows if r["kind"] == "answer"] == ["taken", "delivered"]
    assert LEDGER in wrepo.git("ls-files")  # in git: a fresh clone knows it too

    # Lost scratch (an Actions run without cache) reads every comment again: not re-delivered.
    (wrepo.root / ".looopbot" / "github-dashboard.json").unlink()
    wrepo.decide(NOOP)
    assert wrepo.tick("--force", env=ENV).code == 0
    # Nor by a fresh clone, which has no such worker and must not call the answer refused.
    clone = fresh_clone(wrepo, tmp_path)
    clone.decide(NOOP)
    assert clone.tick("--force", env=ENV).code == 0
    assert reactions(gh, said["id"]) == ["+1"]
    assert len(bot_said(gh)) == 1
    # A marker answered by hand arrives right behind the first: nothing came in between.
    assert wrepo.run("answer", "w1", "marker").code == 0
    assert wait_lines(echo, 2) == ["yes, deploy", "marker"]

    # The worker has read its two lines and ended: a late answer is refused, with a reply.
    wait_state(wrepo, "w1", "exited")
    late = gh.comment(number, "/answer w1 too late", user="alice", association="COLLABORATOR")
    wrepo.decide(NOOP)
    assert wrepo.tick(env=ENV).code == 0
    assert reactions(gh, late["id"]) == ["confused"]
    assert "worker `w1` is not running (it is exited)" in bot_said(gh)[-1]
    assert TOKEN not in wrepo.git("log", "-p", "--all") + clone.git("log", "-p", "--all")


@pytest.mark.parametrize("association", ["NONE", "CONTRIBUTOR", "MEMBER"])
def test_an_answer_from_someone_without_write_access_is_refused_and_journaled(
    wrepo: Repo, fake: FakeGitHub, tmp_path: Path, association: str
) -> None:
    gh = fake.repo(NAME)
    echo = tmp_path / "echo"
    flagged_worker(wrepo, echo)
    wrepo.decide(NOOP, NOOP)
    assert wrepo.tick(env=ENV).code == 0
    gh.set_permission("mallory", "read")  # an org MEMBER without write access to this repo
    said = gh.comment(
        board(gh)["number"], "/answer w1 rm -rf it all", user="mallory", association=association
    )
    reacting = f"/repos/{NAME}/issues/comments/{said['id']}/reactions"
    fake.fail_on("POST", reacting, 502)  # the reaction waits for the next beat
    run = wrepo.tick(env=ENV)
    assert run.code == 0, run.err
    assert reactions(gh, said["id"]) == []
    run = wrepo.tick(env=ENV)
    assert reactions(gh, said["id"]) == ["confused"]
    # Only a writer's association is worth a permission request: a stranger costs none.
    asked = fake.requests(f"/repos/{NAME}/collaborators/mallory/permission")
    assert len(asked) == (1 if association == "MEMBER" else 0)
    journal = wrepo.read("journal.md")
    assert (
        f"refused an /answer from @mallory on the GitHub dashboard (comment {said['id']}" in journal
    )
    assert len(bot_said(gh)) == 1  # no reply to a stranger: only the flag
    assert wrepo.run("answer", "w1", "marker").code == 0
    assert wait_lines(echo, 1) == ["marker"]  # the refused text never reached the worker
    assert wrepo.tick("--force", env=ENV).code == 0
    assert journal.count("refused an /answer") == wrepo.read("journal.md").count(
        "refused an /answer"
    )


def test_an_answer_for_an_unknown_or_finished_worker_is_refused_with_a_reply(
    wrepo: Repo, fake: FakeGitHub
) -> None:
    gh = fake.repo(NAME)
    wrepo.decide(NOOP)
    assert wrepo.tick(env=ENV).code == 0
    number = board(gh)["number"]
    said = gh.comment(number, "/answer ghost hello", user="octocat", association="OWNER")
    bad = gh.comment(number, "/answer", user="octocat", association="OWNER")
    gh.set_permission("octocat", "admin")
    run = wrepo.tick(env=ENV)
    assert run.code == 0, run.err
    assert reactions(gh, said["id"]) == ["confused"] and reactions(gh, bad["id"]) == ["confused"]
    replies = bot_said(gh)
    assert len(replies) == 2
    assert "there is no worker `ghost` here" in replies[0]
    assert "write `/answer <worker> <text>`" in replies[1]
    assert "refused an /answer from @octocat" in wrepo.read("journal.md")


def test_a_beat_killed_between_taking_and_delivering_never_delivers_twice(
    wrepo: Repo, fake: FakeGitHub, tmp_path: Path
) -> None:
    """The ledger says `taken` (written ahead) with no `delivered`: the next beat tells the
    human it may not have arrived, and does not deliver it again."""
    gh = fake.repo(NAME)
    echo = tmp_path / "echo"
    flagged_worker(wrepo, echo)
    wrepo.decide(NOOP, NOOP)
    assert wrepo.tick(env=ENV).code == 0
    said = gh.comment(board(gh)["number"], "/answer w1 go", association="OWNER")
    gh.set_permission("octocat", "admin")
    # As a killed beat leaves it: the row written ahead, then nothing.
    row = {"kind": "answer", "comment": said["id"], "worker": "w1", "result": "taken", "ts": 1}
    with open(wrepo.root / LEDGER, "a") as f:
        f.write(json.dumps(row) + "\n")
    wrepo.git("add", "-f", LEDGER)
    wrepo.git("commit", "-qm", "a killed beat's ledger row")
    run = wrepo.tick(env=ENV)
    assert run.code == 0, run.err
    assert reactions(gh, said["id"]) == ["confused"]
    assert "was killed while delivering" in bot_said(gh)[-1]
    assert "interrupted while being delivered" in wrepo.read("journal.md")
    assert wrepo.run("answer", "w1", "marker").code == 0
    assert wait_lines(echo, 1) == ["marker"]


def test_a_mangled_ledger_holds_answers_back(wrepo: Repo, fake: FakeGitHub, tmp_path: Path) -> None:
    gh = fake.repo(NAME)
    echo = tmp_path / "echo"
    flagged_worker(wrepo, echo)
    wrepo.decide(NOOP, NOOP)
    assert wrepo.tick(env=ENV).code == 0
    (wrepo.root / LEDGER).write_text("not json\n")
    said = gh.comment(board(gh)["number"], "/answer w1 go", association="OWNER")
    gh.set_permission("octocat", "admin")
    run = wrepo.tick(env=ENV)
    assert run.code == 0, run.err
    assert reactions(gh, said["id"]) == []
    assert wrepo.run("answer", "w1", "marker").code == 0
    assert wait_lines(echo, 1) == ["marker"]


def test_the_bots_own_comments_never_answer_a_worker(
    wrepo: Repo, fake: FakeGitHub, tmp_path: Path
) -> None:
    """The decider writes notifications and workers write flags: neither may pass for a
    writer's `/answer` (the bot's comments carry the repository's own association)."""
    gh = fake.repo(NAME)
    echo = tmp_path / "echo"
    spec = task("w1", flag="/answer w1 self-approved", read=2, echo=str(echo))
    assert wrepo.run("worker", "start", "w1", spec).code == 0
    wait_for(wrepo.root / ".looopbot" / "workers" / "w1" / "flag")
    wrepo.decide({"action": "send_notification", "message": "/answer w1 yes, approved"}, NOOP)
    assert wrepo.tick(env=ENV).code == 0
    assert len(bot_said(gh)) == 2
    wrepo.decide(NOOP, NOOP)
    assert wrepo.tick("--force", env=ENV).code == 0
    assert all(not reactions(gh, cid) for cid in gh.comments)
    assert wrepo.run("answer", "w1", "marker").code == 0
    assert wait_lines(echo, 1) == ["marker"]


def test_an_ask_with_options_takes_only_those_from_github(
    wrepo: Repo, fake: FakeGitHub, tmp_path: Path
) -> None:
    gh = fake.repo(NAME)
    out = tmp_path / "asked"
    spec = task("w1", ask={"question": "Ship it?", "options": "ship,hold", "out": str(out)})
    assert wrepo.run("worker", "start", "w1", spec).code == 0
    wait_for(wrepo.root / ".looopbot" / "workers" / "w1" / "flag")
    wrepo.decide(NOOP, NOOP, NOOP)
    assert wrepo.tick(env=ENV).code == 0
    (posted,) = bot_said(gh)
    assert "It takes one of: `ship` / `hold`." in posted
    number = board(gh)["number"]
    gh.set_permission("alice", "write")
    wrong = gh.comment(number, "/answer w1 maybe", user="alice", association="COLLABORATOR")
    assert wrepo.tick("--force", env=ENV).code == 0
    assert reactions(gh, wrong["id"]) == ["confused"]
    assert "choose one of: ship, hold" in bot_said(gh)[-1]
    right = gh.comment(number, "/answer w1 Hold", user="alice", association="COLLABORATOR")
    assert wrepo.tick("--force", env=ENV).code == 0
    assert reactions(gh, right["id"]) == ["+1"]
    assert wait_lines(out, 3) == ["w1#1", "hold", "exit 0"]


def test_keys_and_an_answer_naming_its_ask_reach_a_local_worker(
    wrepo: Repo, fake: FakeGitHub, tmp_path: Path
) -> None:
    """`/keys` and `/answer <worker>#<n>` on the dashboard do what `send_key` and
    `looopbot answer ID#n` do here; a stale ask id is refused with a reply."""
    gh = fake.repo(NAME)
    asked, echo = tmp_path / "asked", tmp_path / "echo"
    spec = task(
        "w1",
        ask={"question": "which?", "options": "a,b", "out": str(asked)},
        read=3,
        echo=str(echo),
    )
    assert wrepo.run("worker", "start", "w1", spec).code == 0
    wait_for(wrepo.root / ".looopbot" / "workers" / "w1" / "flag")
    wrepo.decide(NOOP, NOOP, NOOP)
    assert wrepo.tick(env=ENV).code == 0
    number = board(gh)["number"]
    gh.set_permission("alice", "write")
    stale = gh.comment(number, "/answer w1#7 a", user="alice", association="COLLABORATOR")
    named = gh.comment(number, "/answer w1#1 B", user="alice", association="COLLABORATOR")
    keys = gh.comment(number, "/keys w1 Enter", user="alice", association="COLLABORATOR")
    bad = gh.comment(number, "/keys w1 Enter Home", user="alice", association="COLLABORATOR")
    wrepo.decide(NOOP)
    assert wrepo.tick("--force", env=ENV).code == 0
    assert wait_lines(asked, 3) == ["w1#1", "b", "exit 0"]
    assert wait_lines(echo, 2) == ["b", ""]  # the answer, then the Enter key's empty line
    assert reactions(gh, named["id"]) == ["+1"] and reactions(gh, keys["id"]) == ["+1"]
    assert reactions(gh, stale["id"]) == ["confused"] and reactions(gh, bad["id"]) == ["confused"]
    replies = [b for b in bot_said(gh) if "was not delivered" in b]
    assert any("w1#7 is not pending" in b for b in replies), replies
    assert any("unknown key 'Home'" in b for b in replies), replies
    journal = wrepo.read("journal.md")
    assert "answered w1#1 from the GitHub dashboard (@alice): B" in journal
    assert "sent keys to w1 from the GitHub dashboard (@alice): Enter" in journal
