"""Symlinks and special files a pull request (or a runner) can plant: looopbot never reads
through them into a prompt, never writes through them out of the data dir, never blocks."""

from __future__ import annotations

import json
import os
import subprocess

from conftest import NOOP, Repo


def test_a_goal_that_is_a_symlink_is_not_read_into_the_prompt(repo: Repo) -> None:
    outside = repo.root.parent / "outside-secret.txt"
    outside.write_text("goal: the contents of a file outside the data dir\n")
    os.symlink(outside, repo.root / "goals" / "leak.md")
    os.symlink("/proc/self/environ", repo.root / "goals" / "env.md")
    repo.git("add", "goals")
    repo.git("commit", "-qm", "a pull request adds links")
    repo.decide(NOOP)
    r = repo.tick("--force", env={"MY_API_TOKEN": "hunter2hunter2xyz"})
    assert r.code == 0, r.err
    prompt = repo.prompts()[-1]
    assert "outside the data dir" not in prompt
    assert "hunter2hunter2xyz" not in prompt and "MY_API_TOKEN" not in prompt


def test_a_secret_in_a_goal_is_redacted_from_the_prompt(repo: Repo) -> None:
    repo.write("goals/oops.md", "goal: use the key hunter2hunter2xyz\n")
    repo.decide(NOOP)
    assert repo.tick("--force", env={"MY_API_TOKEN": "hunter2hunter2xyz"}).code == 0
    assert "hunter2hunter2xyz" not in repo.prompts()[-1]


def test_a_journal_that_is_a_symlink_is_never_written_through(repo: Repo) -> None:
    outside = repo.root.parent / "bashrc"
    outside.write_text("# the user's shell setup\n")
    (repo.root / "journal.md").unlink(missing_ok=True)
    os.symlink(outside, repo.root / "journal.md")
    repo.git("add", "-A")
    repo.git("commit", "-qm", "journal is now a link")
    repo.decide({**NOOP, "journal": "appended where?"})
    r = repo.tick("--force")
    assert r.code == 1 and "journal.md is a symlink" in r.err, r.err
    assert outside.read_text() == "# the user's shell setup\n"
    assert repo.git("ls-tree", "HEAD", "journal.md").startswith("120000")


def test_a_decision_file_that_is_a_fifo_fails_the_beat_at_once(repo: Repo) -> None:
    repo.env["LOOOPBOT_TICK_COMMAND"] = 'mkfifo "$LOOOPBOT_DECISION_FILE"'
    r = repo.tick("--force", timeout=30)
    assert r.code == 1 and "not a regular file" in r.err, r.err


def test_a_decision_file_that_is_a_symlink_is_never_followed(repo: Repo) -> None:
    target = repo.root.parent / "decision.json"
    target.write_text(json.dumps({"action": "write_goal", "id": "o", "body": "goal: o\n"}))
    repo.env["LOOOPBOT_TICK_COMMAND"] = f'ln -s {target} "$LOOOPBOT_DECISION_FILE"'
    r = repo.tick("--force", timeout=30)
    assert r.code == 1 and "not a regular file" in r.err, r.err
    assert not (repo.root / "goals/o.md").exists()


def test_a_hand_made_record_file_cannot_make_us_commit_other_files(repo: Repo) -> None:
    (repo.root / "notes.txt").write_text("the user's untracked notes\n")
    doc = {"v": 2, "paths": [".git/config", "notes.txt", "sensors/../notes.txt"], "appended": {}}
    (repo.root / ".looopbot/pending.json").write_text(json.dumps(doc))
    repo.decide(NOOP)
    assert repo.tick("--force").code == 0
    tree = repo.git("ls-tree", "-r", "--name-only", "HEAD")
    assert "notes.txt" not in tree and ".git/config" not in tree


def test_a_hand_made_commit_intent_cannot_stage_anything(repo: Repo) -> None:
    proc = subprocess.run(
        ["git", "hash-object", "-w", "--stdin"],
        cwd=repo.root,
        input="planted\n",
        capture_output=True,
        text=True,
        check=True,
    )
    blob = proc.stdout.strip()
    branch = repo.git("symbolic-ref", "HEAD").strip()
    for moves in ([["evil.txt", None, [33188, blob]]], [["x", None, [1, "nothex"]]]):
        intent = {"ref": branch, "old": None, "new": repo.head(), "moves": moves}
        doc = {"v": 2, "paths": [], "appended": {}, "commit": intent}
        (repo.root / ".looopbot/pending.json").write_text(json.dumps(doc))
        repo.decide(NOOP)
        r = repo.tick("--force")
        assert r.code == 0, r.err
        assert "evil.txt" not in repo.status_porcelain()
        assert repo.status_porcelain() == ""


def test_bot_commits_go_through_the_users_clean_filters(repo: Repo) -> None:
    """A git-crypt-like filter: what is committed is what git itself would store."""
    repo.git("config", "filter.crypt.clean", "base64")
    repo.git("config", "filter.crypt.smudge", "base64 -d")
    repo.git("config", "filter.crypt.required", "true")
    with (repo.root / ".gitattributes").open("a") as f:
        f.write("goals/secret*.md filter=crypt\njournal.md filter=crypt\n")
    repo.git("add", ".gitattributes")
    repo.git("commit", "-qm", "encrypt secret goals and the journal")
    repo.decide(
        {"action": "write_goal", "id": "secret2", "body": "goal: bot secret plan\n"},
        {**NOOP, "journal": "a second line"},
    )
    assert repo.tick("--force").code == 0
    assert repo.tick("--force").code == 0
    stored = repo.git("cat-file", "-p", "HEAD:goals/secret2.md")
    assert "bot secret plan" not in stored
    assert repo.git("show", "HEAD:goals/secret2.md") == stored  # show does not smudge
    journal = subprocess.run(
        ["git", "cat-file", "--filters", "HEAD:journal.md"],
        cwd=repo.root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert journal.count("secret2") == 1 and journal.count("a second line") == 1
    assert "a second line" not in repo.git("cat-file", "-p", "HEAD:journal.md")
    assert repo.status_porcelain() == ""
