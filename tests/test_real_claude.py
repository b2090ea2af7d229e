"""The real claude CLI, not logged in, wired through the claude preset.

It exits 1 after printing `{"type":"result","is_error":true,"result":"Not logged in ·
Please run /login",…}`; that must be a failed beat whose error names the runner's message
and arms backoff — never a silent "no decision". The CLI is installed by the README's test
command (npm, into .tools/); this test fails rather than skips without it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from conftest import Repo

TOOLS = Path(__file__).resolve().parent.parent / ".tools" / "node_modules" / ".bin"


def claude_bin() -> Path:
    found = TOOLS / "claude"
    if found.exists():
        return found
    on_path = shutil.which("claude")
    assert on_path, (
        "the claude CLI is missing: run the README's test command, which installs "
        "@anthropic-ai/claude-code into .tools/"
    )
    return Path(on_path)


def test_not_logged_in_claude_fails_the_beat_with_its_own_message(repo: Repo) -> None:
    claude = claude_bin()
    (repo.root / "looopbot.yaml").write_text(
        repo.read("looopbot.yaml").replace("runner: example", "runner: claude")
    )
    env = {
        # the real preset command, found on PATH, with a HOME that has no login in it
        "PATH": f"{claude.parent}{os.pathsep}{os.environ['PATH']}",
        "LOOOPBOT_TICK_COMMAND": "",
    }
    repo.env.pop("LOOOPBOT_TICK_COMMAND")
    r = repo.tick(env=env, timeout=120)
    assert r.code == 1, (r.out, r.err)
    doc = r.json()
    assert doc["outcome"] == "failed"
    assert "Not logged in · Please run /login" in doc["error"]
    assert "claude" in doc["error"]
    assert "looopbot: beat failed:" in r.err and "Traceback" not in r.err
    state = repo.state()
    assert state["failures"] == 1
    assert repo.trailers()["Looopbot-Outcome"] == "failed"
    # backoff is armed: the next beat does not call claude again
    again = repo.tick(env=env, timeout=120)
    assert again.code == 0 and again.json()["outcome"] == "backoff"
