"""Push on against remotes and setups that do not behave (issue 7's adversarial pass): a
remote whose history was rewritten or whose branch was deleted, an empty one, one with
unrelated history, odd upstream configuration, a claim ref that holds no claim, a pre-push
hook that never returns, a human's `git commit` holding the index lock, two clones whose
first beats both create the journal. Nothing is lost, nothing is forced, and what looopbot
cannot settle is one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import NOOP, git
from gitops import clone, fsck, human, published, show


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


# --- a deleted, empty or unrelated remote -------------------------------------------------


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
