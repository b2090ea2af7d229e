"""The record step's recovery of a killed record, from the write-ahead file it left.

A kill -9 can land between HEAD moving and `.looopbot/pending.json` being removed; these tests
leave exactly that file behind (as the killed process would have) and run the next beat.
"""

from __future__ import annotations

import json

from conftest import NOOP, Repo


def _pending(repo: Repo, doc: dict[str, object]) -> None:
    (repo.root / ".looopbot/pending.json").write_text(json.dumps({"v": 2, **doc}))


def _journal_lines(repo: Repo, rev: str = "HEAD") -> list[str]:
    return repo.git("show", f"{rev}:journal.md").splitlines()


def test_a_landed_commit_is_not_committed_twice(repo: Repo) -> None:
    repo.decide({**NOOP, "journal": "the first move"})
    assert repo.tick().code == 0
    landed = repo.head()
    line = _journal_lines(repo)[-1]
    # Killed after HEAD moved, before the record was cleared: the file still lists the line.
    _pending(
        repo,
        {
            "paths": ["journal.md"],
            "appended": {"journal.md": [line]},
            "move": ["noop", "the first move"],
            "journaled": True,
            "commit": {
                "ref": repo.git("symbolic-ref", "HEAD").strip(),
                "old": repo.git("rev-parse", "HEAD^").strip(),
                "new": landed,
                "moves": [],
            },
        },
    )
    repo.decide({**NOOP, "journal": "the second move"})
    r = repo.tick("--force")
    assert r.code == 0, r.err
    lines = _journal_lines(repo)
    assert lines.count(line) == 1
    assert lines[-1].endswith("the second move")
    assert not any("recovered" in x or "interrupted" in x for x in lines)
    assert repo.read("journal.md").count("the first move") == 1
    assert not (repo.root / ".looopbot/pending.json").exists()
    assert repo.status_porcelain() == ""


def test_a_commit_that_never_landed_goes_into_the_next(repo: Repo) -> None:
    # Killed after appending its line, before HEAD moved: the line is only in the file.
    line = "- 2026-01-01 00:00 a move whose commit never happened"
    with (repo.root / "journal.md").open("a") as f:
        f.write(line + "\n")
    _pending(
        repo,
        {
            "paths": ["journal.md"],
            "appended": {"journal.md": [line]},
            "move": ["noop", "nothing"],
            "journaled": True,
            "commit": {
                "ref": repo.git("symbolic-ref", "HEAD").strip(),
                "old": repo.head(),
                "new": "f" * 40,
                "moves": [],
            },
        },
    )
    repo.decide({**NOOP, "journal": "next"})
    assert repo.tick("--force").code == 0
    lines = _journal_lines(repo)
    assert lines.count(line) == 1 and lines[-1].endswith("next")
    assert repo.read("journal.md").count(line) == 1
    assert repo.status_porcelain() == ""


def test_a_move_killed_before_its_journal_line_is_journaled_as_interrupted(repo: Repo) -> None:
    (repo.root / "goals/half.md").write_text("goal: written by a move that was then killed\n")
    _pending(
        repo,
        {
            "paths": ["goals/half.md"],
            "appended": {},
            "move": ["write_goal", "write goals/half.md"],
            "journaled": False,
            "commit": None,
        },
    )
    repo.decide({**NOOP, "journal": "after"})
    assert repo.tick("--force").code == 0
    lines = _journal_lines(repo)
    assert sum("interrupted: write_goal write goals/half.md" in x for x in lines) == 1
    assert repo.git("show", "HEAD:goals/half.md").startswith("goal: written by a move")
    assert repo.status_porcelain() == ""


def test_a_mangled_record_file_is_not_fatal(repo: Repo) -> None:
    (repo.root / ".looopbot/pending.json").write_text('{"paths": ["../../etc/passwd", 7], "v"')
    repo.decide(NOOP)
    assert repo.tick().code == 0
    assert repo.status_porcelain() == ""
