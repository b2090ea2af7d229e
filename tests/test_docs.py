"""Every command is documented, and the README's two set-up commands are what CI runs."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from conftest import BIN

from looopbot.cli import COMMANDS

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_has_help_and_a_readme_entry(name: str) -> None:
    out = subprocess.run([str(BIN), name, "--help"], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert COMMANDS[name][1] in out.stdout  # the one-line help is shown
    assert re.search(rf"^\| `{re.escape(name)}\b", README, re.MULTILINE), (
        f"README's command table has no row for `{name}`"
    )


def _fenced_commands() -> list[str]:
    return re.findall(r"```sh\n(.+?)\n```", README)


def test_the_readmes_two_commands_are_exactly_what_ci_runs() -> None:
    quick_start, test_command = _fenced_commands()[:2]
    ci = (ROOT / ".ci" / "run").read_text()
    assert quick_start in ci.splitlines()
    assert any(line.startswith(test_command) for line in ci.splitlines())
    assert "pytest" in test_command


def test_every_limit_is_in_the_readme() -> None:
    from looopbot.config import LIMITS

    for name in LIMITS:
        assert f"`{name}`" in README, name
