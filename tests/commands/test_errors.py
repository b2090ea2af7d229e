"""The error handler: expected failures exit 1 with one line; a bug exits 3 with a crash log."""

from __future__ import annotations

import shutil

from conftest import NOOP, Repo


def test_an_internal_error_exits_3_and_keeps_the_traceback(repo: Repo) -> None:
    # A repo whose branch points at a commit that does not exist: nothing we planned for.
    branch = repo.git("symbolic-ref", "HEAD").strip()
    (repo.root / ".git" / branch).write_text("0123456789" * 4 + "\n")
    repo.decide(NOOP)
    r = repo.run("tick")
    assert r.code == 3
    assert r.err.count("\n") == 1 and "internal error" in r.err and "crash.log" in r.err
    log = (repo.root / ".looopbot" / "crash.log").read_text()
    assert "Traceback (most recent call last)" in log and "0123456789" in log


def test_a_file_system_refusal_is_an_expected_failure(repo: Repo) -> None:
    shutil.rmtree(repo.root / ".looopbot")
    (repo.root / ".looopbot").write_text("not a folder")
    r = repo.run("tick")
    assert r.code == 1
    assert r.err.startswith("looopbot: cannot use") and ".looopbot" in r.err
    assert "Traceback" not in r.err
    assert repo.calls() == 0


def test_usage_errors_exit_2(repo: Repo) -> None:
    assert repo.run("tick", "--bogus").code == 2
    assert repo.run("no-such-command").code == 2
