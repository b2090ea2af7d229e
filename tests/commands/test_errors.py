"""The error handler: expected failures exit 1 with one line; a bug exits 3 with a crash log."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from importlib import metadata

from conftest import BIN, NOOP, Repo, Run


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


def test_the_crash_log_is_a_redacted_bug_report_overwritten_each_time(repo: Repo) -> None:
    # The same unplanned state; the missing commit's id is ALSO a secret's value, so it is
    # in the traceback's last line, and the data dir named on the command line holds another.
    missing = "0123456789" * 4
    branch = repo.git("symbolic-ref", "HEAD").strip()
    (repo.root / ".git" / branch).write_text(missing + "\n")
    log_path = repo.root / ".looopbot" / "crash.log"
    log_path.write_text("an old crash that must not linger\n")
    env = {"CRASH_TOKEN": missing, "MY_API_TOKEN": "hunter2hunter2xyz"}
    (repo.root.parent / "hunter2hunter2xyz").mkdir()
    via = f"{repo.root.parent}/hunter2hunter2xyz/../{repo.root.name}"
    for journal in ("first", "second"):
        repo.decide({**NOOP, "journal": journal})
        full = {**os.environ, **repo.env, **env}
        done = subprocess.run(
            [str(BIN), "-C", via, "tick", "--force"], capture_output=True, text=True, env=full
        )
        r = Run(done.returncode, done.stdout, done.stderr)
        assert r.code == 3, (r.out, r.err)
        assert r.err.count("\n") == 1 and "internal error" in r.err and "crash.log" in r.err
    log = log_path.read_text()
    assert "an old crash" not in log and log.count("Traceback (most recent call last)") == 1
    fields = dict(
        line.split(": ", 1) for line in log.split("### versions\n")[1].split("\n\n")[0].splitlines()
    )
    assert list(fields) == ["looopbot", "python", "git", "dulwich", "GitPython", "os"]
    assert fields["looopbot"] == metadata.version("looopbot")
    assert fields["python"].startswith(platform.python_version())
    git_version = subprocess.run(["git", "--version"], capture_output=True, text=True).stdout
    assert fields["git"] == git_version.strip().removeprefix("git version ")
    assert fields["dulwich"] == metadata.version("dulwich")
    assert fields["GitPython"] == metadata.version("GitPython")
    assert fields["os"] == platform.platform()
    command = log.split("### command line\n")[1].split("\n", 1)[0]
    assert command == f"looopbot -C {repo.root.parent}/[redacted]/../{repo.root.name} tick --force"
    traceback = log.split("### traceback\n")[1]
    assert traceback.startswith("Traceback (most recent call last):")
    assert "KeyError: b'[redacted]'" in traceback
    for secret in env.values():
        assert secret not in log and secret not in r.err


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
