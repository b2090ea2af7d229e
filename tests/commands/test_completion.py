"""Shell completions (issue 9): generated from the parser, and they really complete — the
bash script run by bash, and typed into a real terminal (tmux) with a TAB."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from conftest import BIN, installed


def script(shell: str) -> str:
    done = subprocess.run([str(BIN), "completion", shell], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()
    return done.stdout


def bash_complete(tmp_path: Path, *words: str) -> list[str]:
    """COMPREPLY for the command line `words` (the last one being completed)."""
    path = tmp_path / "looopbot.bash"
    path.write_text(script("bash"))
    line = " ".join(words)
    probe = (
        f"source {path}\n"
        f"COMP_WORDS=({line}); COMP_CWORD={len(words) - 1}; COMP_LINE='{line}'; "
        "COMP_POINT=${#COMP_LINE}\n"
        '_shtab_looopbot looopbot "${COMP_WORDS[-1]}" "${COMP_WORDS[-2]}"\n'
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    done = subprocess.run(["bash", "--norc", "--noprofile", "-c", probe], capture_output=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.decode().split()


def test_bash_completes_commands_and_their_verbs(tmp_path: Path) -> None:
    assert bash_complete(tmp_path, "looopbot", "wo") == ["worker"]
    assert bash_complete(tmp_path, "looopbot", "worker", "st") == ["start", "stop"]
    assert "--force" in bash_complete(tmp_path, "looopbot", "tick", "--f")


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_zsh_and_fish_scripts_name_every_command(shell: str) -> None:
    text = script(shell)
    for command in ("tick", "worker", "goal", "completion", "github"):
        assert command in text
    interpreter = shutil.which(shell)
    if interpreter is not None:  # syntax-checked where the shell is installed
        flag = ["-n"] if shell == "zsh" else ["--no-execute"]
        checked = subprocess.run([interpreter, *flag], input=text.encode(), capture_output=True)
        assert checked.returncode == 0, checked.stderr


def test_an_unknown_shell_is_a_usage_error() -> None:
    done = subprocess.run([str(BIN), "completion", "tcsh"], capture_output=True, text=True)
    assert done.returncode == 2 and "invalid choice" in done.stderr


def test_a_tab_in_a_real_terminal_completes_wo_to_worker(tmp_path: Path) -> None:
    installed("tmux", shutil.which("tmux"))
    path = tmp_path / "looopbot.bash"
    path.write_text(script("bash"))
    sock = str(tmp_path / "tmux.sock")
    env = {
        "PATH": f"{BIN.parent}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "TERM": "xterm",
        "PS1": "$ ",
    }

    def tmux(*args: str) -> str:
        done = subprocess.run(["tmux", "-S", sock, *args], capture_output=True, env=env)
        assert done.returncode == 0, done.stderr
        return done.stdout.decode()

    tmux("new-session", "-d", "-x", "120", "-y", "20", "bash --norc --noprofile")
    try:
        tmux("send-keys", f"source {path}; PS1='$ '", "Enter")
        tmux("send-keys", "looopbot wo", "Tab")
        deadline = time.monotonic() + 10
        while "looopbot worker" not in (pane := tmux("capture-pane", "-p")):
            assert time.monotonic() < deadline, pane
            time.sleep(0.05)
    finally:
        subprocess.run(["tmux", "-S", sock, "kill-server"], capture_output=True)
