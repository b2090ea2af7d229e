"""Push on against remotes and setups that do not behave (issue 7's adversarial pass): a
remote whose history was rewritten or whose branch was deleted, an empty one, one with
unrelated history, odd upstream configuration, a claim ref that holds no claim, a pre-push
hook that never returns, a human's `git commit` holding the index lock, two clones whose
first beats both create the journal. Nothing is lost, nothing is forced, and what looopbot
cannot settle is one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import NOOP, git, is_dead, make_repo
from gitops import bare, clone, fsck, human, human_push, not_mid_rebase, published, show

from looopbot.remote import MISSING, UNREACHABLE


def push_of(run_json: dict) -> dict:
    assert run_json["push"] is not None, run_json
    return run_json["push"]


def texts(journal: str) -> list[str]:
    return [line.split(" ", 3)[3] for line in journal.splitlines() if line.startswith("- ")]


def force_push(h: Path, rev: str) -> None:
    """A human rewrites the remote branch (reset, then a forced push)."""
    git(h, "fetch", "-q", "origin")
    git(h, "reset", "-q", "--hard", rev)
    git(h, "push", "-q", "--force", "origin", "HEAD")


# --- the journal and ledgers: a side without the file ----------------------------------------


def test_two_clones_whose_first_beats_both_create_the_journal_both_arrive(
    tmp_path: Path,
) -> None:
    """A new data repo has no journal.md and no cost ledger until its first beat: a local
    `run --push` and the first scheduled run both create them, and neither may be stuck."""
    seed, remote = published(tmp_path)
    assert not (seed.root / "journal.md").exists()
    a = clone(tmp_path, remote, "a")
    b = clone(tmp_path, remote, "b", depth=1)
    a.decide({**NOOP, "journal": "a's first"})
    b.decide({**NOOP, "journal": "b's first"})
    assert b.tick().code == 0  # b's first beat, committed before a's reaches the remote
    assert a.tick("--push").code == 0
    run = b.tick("--push")
    assert run.code == 0, run.err
    assert push_of(run.json())["result"] == "pushed"
    assert texts(show(remote, "journal.md")) == ["a's first", "b's first"]
    assert b.status_porcelain() == ""
    fsck(remote)


def test_a_journal_rotated_away_by_a_human_keeps_the_bots_new_lines(tmp_path: Path) -> None:
    repo, remote = published(tmp_path)
    repo.decide({**NOOP, "journal": "old news"})
    assert repo.tick("--push").code == 0
    h = human(tmp_path, remote)
    repo.decide({**NOOP, "journal": "fresh"})
    assert repo.tick("--force").code == 0  # not pushed yet
    git(h, "mv", "journal.md", "journal-2025.md")
    git(h, "commit", "-qm", "human: rotate the journal")
    git(h, "push", "-q")
    run = repo.tick("--push")
    assert run.code == 0, run.err
    assert texts(show(remote, "journal.md")) == ["fresh"]
    assert texts(show(remote, "journal-2025.md")) == ["old news"]
    assert repo.status_porcelain() == ""


# --- a rewritten remote ---------------------------------------------------------------------


def test_bot_commits_a_human_removed_with_a_force_push_stay_removed(tmp_path: Path) -> None:
    """A pushed beat leaked something; a human resets the branch and force-pushes. The
    bot's clone still has the commit — it must follow the rewrite, not push it back."""
    repo, remote = published(tmp_path)
    h = human(tmp_path, remote)
    good = git(h, "rev-parse", "HEAD").strip()
    repo.decide({"action": "write_goal", "id": "leak", "body": "goal: LEAKED", "journal": "LEAK"})
    assert repo.tick("--push").code == 0
    repo.decide({**NOOP, "journal": "unpushed, after the leak"})
    assert repo.tick("--force").code == 0
    force_push(h, good)

    repo.decide({**NOOP, "journal": "after the rewrite"})
    run = repo.tick("--push", "--force")
    assert run.code == 0, run.err
    assert push_of(run.json())["pulled"] == "followed a rewrite: dropped 1, rebased 1"
    journal = texts(show(remote, "journal.md"))
    assert journal == ["unpushed, after the leak", "after the rewrite"]
    assert "LEAKED" not in git(remote, "log", "-p", "--all")
    assert not (repo.root / "goals/leak.md").exists()
    assert git(remote, "merge-base", "--is-ancestor", good, "HEAD", check=False) == ""
    assert repo.status_porcelain() == ""
    fsck(repo.root)


def test_a_humans_commit_removed_by_a_rewrite_is_neither_restored_nor_dropped(
    tmp_path: Path,
) -> None:
    repo, remote = published(tmp_path)
    h = human(tmp_path, remote)
    before = git(h, "rev-parse", "HEAD").strip()
    human_push(h, {"goals/mine.md": "goal: the human's\n"}, "human: mine")
    repo.decide(NOOP)
    assert repo.tick("--push").code == 0  # the human's commit is in the bot's branch now
    head = repo.head()
    force_push(h, before)
    repo.decide({**NOOP, "journal": "after"})
    run = repo.tick("--push", "--force")
    assert run.code == 1
    push = push_of(run.json())
    assert "was rewritten" in push["error"] and "not looopbot's" in push["error"]
    assert git(repo.root, "merge-base", "--is-ancestor", head, "HEAD", check=False) == ""
    assert repo.read("goals/mine.md") == "goal: the human's\n"
    assert git(remote, "rev-parse", "HEAD").strip() == before  # nothing was pushed
    not_mid_rebase(repo.root)
    # It stays refused until a human settles it: on the next beat (whose fetch no longer
    # sees the remote move), and after a human's own `git fetch` here.
    again = repo.tick("--push")
    assert again.code == 1 and "was rewritten" in push_of(again.json())["error"]
    repo.git("fetch", "-q", "origin")
    third = repo.tick("--push")
    assert third.code == 1 and "was rewritten" in push_of(third.json())["error"]
    assert git(remote, "rev-parse", "HEAD").strip() == before  # still nothing pushed


def test_a_rewrite_met_by_a_beat_finishing_a_killed_beats_writes_is_followed(
    tmp_path: Path,
) -> None:
    """The pull waits while a killed beat's writes are uncommitted; once this beat has
    committed them, the remote comes in — and its rewrite is followed — before any push."""
    repo, remote = published(tmp_path)
    h = human(tmp_path, remote)
    good = git(h, "rev-parse", "HEAD").strip()
    repo.decide({"action": "write_goal", "id": "leak", "body": "goal: LEAKED", "journal": "LEAK"})
    assert repo.tick("--push").code == 0
    repo.decide({"action": "run_shell", "cmd": "kill -9 $PPID", "reason": "dies mid-move"})
    assert repo.tick("--force").code == -9  # its snapshots and records stay uncommitted
    force_push(h, good)
    repo.decide({**NOOP, "journal": "after the rewrite"})
    run = repo.tick("--push", "--force")
    assert run.code == 0, run.err
    assert "LEAKED" not in git(remote, "log", "-p", "--all")
    assert texts(show(remote, "journal.md"))[-1] == "after the rewrite"
    assert repo.status_porcelain() == ""


# --- a deleted, empty or unrelated remote -------------------------------------------------


def test_a_deleted_remote_branch_is_not_re_created(tmp_path: Path) -> None:
    """The branch was renamed on the remote (main -> trunk): pushing the old name again
    would split the loop from the branch people use."""
    repo, remote = published(tmp_path)
    branch = repo.git("branch", "--show-current").strip()
    git(remote, "branch", "-m", branch, "trunk")
    repo.decide({**NOOP, "journal": "after the rename"})
    run = repo.tick("--push", "--force")
    assert run.code == 1
    push = push_of(run.json())
    assert (push["result"], push["kind"]) == ("failed", MISSING)
    assert "is gone from the remote" in push["error"] and "git push -u" in push["error"]
    assert len(run.err.splitlines()) == 1
    by_hand = repo.run("goal", "write", "x", "goal: x", env={"LOOOPBOT_PUSH": "1"})
    assert by_hand.code == 1 and "is gone from the remote" in by_hand.err
    assert git(remote, "branch", "--format=%(refname:short)").split() == ["trunk"]
    # Pushed by hand, it is the loop's branch again.
    repo.git("push", "-q", "origin", branch)
    repo.decide(NOOP)
    again = repo.tick("--push")
    assert again.code == 0, again.err
    assert push_of(again.json())["result"] == "pushed"
    assert git(remote, "rev-parse", branch).strip() == repo.head()


def test_an_empty_remote_gets_the_branch(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    remote = bare(tmp_path)
    repo.git("remote", "add", "origin", str(remote))
    repo.decide({**NOOP, "journal": "first"})
    run = repo.tick("--push")
    assert run.code == 0, run.err
    assert push_of(run.json())["pulled"] == "new branch"
    assert git(remote, "rev-parse", "HEAD").strip() == repo.head()


@pytest.mark.parametrize("depth", [None, 1])
def test_a_remote_with_unrelated_history_is_left_to_a_human(
    tmp_path: Path, depth: int | None
) -> None:
    seed, remote = published(tmp_path)
    repo = clone(tmp_path, remote, "bot", depth=depth)
    other = tmp_path / "other"
    git(tmp_path, "init", "-q", str(other))
    (other / "x").write_text("x\n")
    git(other, "add", "x")
    git(other, "commit", "-qm", "another project")
    git(
        other,
        "push",
        "-q",
        "--force",
        str(remote),
        f"HEAD:{seed.git('branch', '--show-current').strip()}",
    )
    repo.decide({**NOOP, "journal": "after"})
    run = repo.tick("--push", "--force")
    assert run.code == 1
    assert "share no history" in push_of(run.json())["error"]
    assert repo.status_porcelain() == ""
    assert git(remote, "log", "--format=%s", "HEAD") == "another project\n"


@pytest.mark.parametrize("merge", ["refs/heads/", "refs/tags/v1", "refs/pull/1/head", "HEAD"])
def test_an_upstream_that_is_not_a_branch_falls_back_to_the_branchs_name(
    tmp_path: Path, merge: str
) -> None:
    repo, remote = published(tmp_path)
    branch = repo.git("branch", "--show-current").strip()
    repo.git("config", f"branch.{branch}.merge", merge)
    repo.decide({**NOOP, "journal": "after"})
    run = repo.tick("--push", "--force")
    assert run.code == 0, run.err
    assert push_of(run.json())["upstream"] == f"origin/{branch}"
    assert git(remote, "rev-parse", branch).strip() == repo.head()


# --- claims that are not claims -------------------------------------------------------------


@pytest.mark.parametrize("ref", ["db", "db/nested", "-odd"])
def test_a_claim_ref_that_holds_no_claim_breaks_no_beat(tmp_path: Path, ref: str) -> None:
    repo, remote = published(tmp_path)
    h = human(tmp_path, remote)
    git(h, "push", "-q", "origin", f"HEAD:refs/heads/looopbot/claim/{ref}")
    repo.decide({**NOOP, "journal": "after"})
    run = repo.tick("--push", "--force")
    assert run.code == 0, run.err
    if ref == "db":
        # Unreadable means stale: it never blocks a claim, which replaces it with a lease.
        taken = repo.run("claim", "db", "--session", "w1", env={"LOOOPBOT_PUSH": "1"})
        assert taken.code == 0, taken.err
        assert "w1" in git(remote, "show", "refs/heads/looopbot/claim/db:claim.json")


# --- a pre-push hook that never returns ------------------------------------------------------


def test_a_hung_pre_push_hook_is_ended_reported_and_not_retried(tmp_path: Path) -> None:
    repo, remote = published(tmp_path)
    calls = tmp_path / "hook-calls"
    hook = repo.root / ".git" / "hooks" / "pre-push"
    hook.write_text(f"#!/bin/sh\necho $$ >> {calls}\nsleep 600\n")
    hook.chmod(0o755)
    repo.decide({"action": "write_goal", "id": "g", "body": "goal: g", "journal": "held up"})
    run = repo.tick("--push", env={"LOOOPBOT_NETWORK_TIMEOUT": "2"}, timeout=60)
    assert run.code == 1
    push = push_of(run.json())
    assert (push["result"], push["kind"]) == ("failed", UNREACHABLE)
    assert "limits.network_timeout" in push["error"]
    assert len(run.err.splitlines()) == 1
    pids = [int(p) for p in calls.read_text().split()]
    assert len(pids) == 1  # not retried
    assert is_dead(pids[0])  # the hook's whole group was ended with the push
    assert run.json()["commit"] == repo.head()  # the local commit is intact
    hook.unlink()
    again = repo.tick("--push")
    assert again.code == 0, again.err
    assert "held up" in show(remote, "journal.md")


# --- the index lock ---------------------------------------------------------------------------


def test_a_held_index_lock_does_not_stop_a_push_beat_from_deciding(tmp_path: Path) -> None:
    """A human's `git commit` waits for its editor while the remote moved: the pull cannot
    move the branch, but the beat still decides — as it does without push — and the next
    beat commits, pulls and pushes what it wrote."""
    repo, remote = published(tmp_path)
    h = human(tmp_path, remote)
    human_push(h, {"goals/theirs.md": "goal: from the remote\n"}, "human: a goal")
    lock = repo.root / ".git" / "index.lock"
    lock.write_text("a human's git commit\n")
    repo.decide({"action": "write_goal", "id": "mine", "body": "goal: mine", "journal": "decided"})
    run = repo.tick("--push", "--force")
    assert run.code == 1 and "index.lock is held" in run.err
    assert repo.calls() == 1, "the beat decided"
    assert repo.read("goals/mine.md") == "goal: mine\n"
    lock.unlink()
    repo.decide(NOOP)
    again = repo.tick("--push")
    assert again.code == 0, again.err
    assert show(remote, "goals/mine.md") == "goal: mine\n"
    assert show(remote, "goals/theirs.md") == "goal: from the remote\n"
    assert "decided" in texts(show(remote, "journal.md"))
    assert repo.status_porcelain() == ""


def test_an_untracked_file_the_remote_would_overwrite_is_named_and_kept(tmp_path: Path) -> None:
    repo, remote = published(tmp_path)
    h = human(tmp_path, remote)
    human_push(h, {"goals/new.md": "goal: theirs\n"}, "human: new goal")
    repo.write("goals/new.md", "my draft, never added\n")
    repo.decide(NOOP)
    run = repo.tick("--push")
    assert run.code == 1
    error = push_of(run.json())["error"]
    assert "goals/new.md" in error and "commit or stash" in error
    assert repo.read("goals/new.md") == "my draft, never added\n"
