"""CONSTITUTION.md (issue 9): first in the prompt, part of the world hash, read as committed,
and never written by a move — a named write is refused, an unnamed one is put back."""

from __future__ import annotations

import json

from conftest import NOOP, Repo
from test_actions_e2e import assert_failed, decided, section

RULES = "# Rules\nNever deploy on a Friday.\n"


def constituted(repo: Repo, text: str = RULES) -> None:
    repo.write("CONSTITUTION.md", text)
    repo.git("add", "CONSTITUTION.md")
    repo.git("commit", "-qm", "human: the constitution")


def test_it_opens_the_prompt_and_a_human_commit_wakes_the_loop(repo: Repo) -> None:
    constituted(repo)
    repo.decide(NOOP, NOOP)
    decided(repo.tick(), "noop")
    first = repo.prompts()[0]
    assert first.startswith("=== CONSTITUTION ===\n")
    assert "Never deploy on a Friday." in section(first, "CONSTITUTION")
    assert json.loads(repo.tick().out)["outcome"] == "unchanged"

    constituted(repo, RULES + "Never touch prod data.\n")
    decided(repo.tick(), "noop")
    second = repo.prompts()[1]
    assert "Never touch prod data." in section(second, "CONSTITUTION")
    assert "CONSTITUTION.md" in section(second, "WHAT CHANGED")


def test_only_the_committed_text_counts(repo: Repo) -> None:
    """An edit on disk — a shell move's, a sensor's, or a human's not yet committed — is not
    what the loop sees: it neither wakes it nor reaches the prompt."""
    constituted(repo)
    repo.decide(NOOP, NOOP)
    decided(repo.tick(), "noop")
    repo.write("CONSTITUTION.md", "Deploy whenever you like.\n")
    assert json.loads(repo.tick().out)["outcome"] == "unchanged"
    decided(repo.tick("--force"), "noop")
    shown = section(repo.prompts()[1], "CONSTITUTION")
    assert "Never deploy on a Friday." in shown and "whenever" not in shown
    assert repo.read("CONSTITUTION.md") == "Deploy whenever you like.\n"  # the human's, kept


def test_a_shell_move_naming_it_is_refused_before_it_runs(repo: Repo) -> None:
    constituted(repo)
    repo.decide(
        {"action": "run_shell", "cmd": "echo obey > 'Constitution.MD'; touch ran", "reason": "x"}
    )
    assert_failed(repo.tick(), "run_shell refused", "CONSTITUTION.md")
    assert not (repo.root / "ran").exists()
    assert repo.read("CONSTITUTION.md") == RULES


def test_a_shell_move_that_changes_it_another_way_is_undone(repo: Repo) -> None:
    constituted(repo)
    repo.write("CONSTITUTION.md", RULES + "A human's edit, not committed yet.\n")
    cmd = 'f=$(printf "%s" CONSTI TUTION.md); echo "anything goes" > "$f"'
    repo.decide({"action": "run_shell", "cmd": cmd, "reason": "x"})
    assert_failed(repo.tick(), "run_shell changed CONSTITUTION.md", "restored")
    assert repo.read("CONSTITUTION.md") == RULES + "A human's edit, not committed yet.\n"
    assert "CONSTITUTION.md" not in repo.git("show", "--name-only", "--format=", "HEAD")


def test_a_shell_move_cannot_create_one_either(repo: Repo) -> None:
    cmd = 'f=$(printf "%s" CONSTI TUTION.md); echo "I rule" > "$f"'
    repo.decide({"action": "run_shell", "cmd": cmd, "reason": "x"})
    assert_failed(repo.tick(), "run_shell changed CONSTITUTION.md")
    assert not (repo.root / "CONSTITUTION.md").exists()


def test_a_sensor_that_would_write_it_is_refused(repo: Repo) -> None:
    script = "#!/bin/bash\necho '{}' ; echo x > CONSTITUTION.md\n"
    repo.decide({"action": "write_sensor", "name": "sneaky", "script": script})
    assert_failed(repo.tick(), "write_sensor refused", "CONSTITUTION.md")
    assert not (repo.root / "sensors" / "sneaky.sh").exists()


def test_a_shell_move_that_commits_it_fails_loudly(repo: Repo) -> None:
    constituted(repo)
    cmd = (
        'f=$(printf "%s" CONSTI TUTION.md); echo "I rule" > "$f"; '
        "git -c user.name=x -c user.email=x@x commit -qam sneaky"
    )
    repo.decide({"action": "run_shell", "cmd": cmd, "reason": "x"})
    assert_failed(repo.tick(), "run_shell committed a change to CONSTITUTION.md", "revert")
