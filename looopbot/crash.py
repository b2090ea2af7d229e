"""The crash log is a bug report (DESIGN §11): an unexpected error leaves
`.looopbot/crash.log` holding what a maintainer asks for first — the versions of looopbot,
Python, git, the git libraries and the OS, the command line, then the traceback.

It is overwritten each time (the last crash is the one being reported) and redacted as a
whole: the command line and the traceback may quote a secret, and the file is meant to be
pasted into a public issue.
"""

from __future__ import annotations

import platform
import sys
from pathlib import Path

from looopbot import __version__

GIT_VERSION_TIMEOUT_S = 5.0  # a crash report must not hang on a wedged git


def report(command_line: str, traceback_text: str) -> str:
    """The whole crash report, redacted."""
    from looopbot.redact import redactor

    lines = [
        "looopbot crashed — please attach this file to a bug report",
        "",
        "### versions",
        f"looopbot: {__version__}",
        f"python: {' '.join(sys.version.split())}",
        f"git: {_git_version()}",
        f"dulwich: {_distribution('dulwich')}",
        f"GitPython: {_distribution('GitPython')}",
        f"os: {platform.platform()}",
        "",
        "### command line",
        command_line,
        "",
        "### traceback",
        traceback_text.rstrip("\n"),
        "",
    ]
    return redactor()("\n".join(lines))


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")  # overwritten: the last crash is the report


def _git_version() -> str:
    try:
        from looopbot import proc

        result = proc.run(
            proc.Spec(["git", "--version"], Path("/"), proc.child_env(), GIT_VERSION_TIMEOUT_S)
        )
    except Exception as exc:  # whatever broke, the report goes on without it
        return f"unknown ({type(exc).__name__}: {exc})"
    if result.spawn_error is not None:
        return f"unknown ({result.spawn_error})"
    if result.timed_out:
        return f"unknown (git --version took over {GIT_VERSION_TIMEOUT_S:g}s)"
    text = result.stdout.decode(errors="replace").strip()
    return text.removeprefix("git version ") if result.exit_code == 0 and text else "unknown"


def _distribution(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"
