"""A decision too deep or too large to parse is a failed beat, never a crash (DESIGN §6):
exit 1 with one clear line, outcome failed, journaled and committed, backoff armed — and no
exit 3 with a crash log. The runner is the one thing that speaks to us in bytes we do not
control; these are the shapes that used to take the whole beat down."""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import NOOP, Repo
from test_decisions import assert_backoff_armed, assert_failed

DEEP = 100_000  # far past any interpreter's recursion limit
MIB = 1024 * 1024


def nested_array(depth: int) -> str:
    return "[" * depth + "]" * depth


def nested_object(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


def noop_carrying(extra: str) -> str:
    """A valid noop decision with a nested value under an unknown (ignored) key."""
    return '{"action":"noop","reason":"x","x":' + extra + "}"


BAD: list[tuple[str, dict[str, Any], str]] = [
    ("file-deep-array", {"decision_file": nested_array(DEEP)}, "nested too deep to parse"),
    (
        "file-noop-with-deep-array",
        {"decision_file": noop_carrying(nested_array(DEEP))},
        "nested too deep to parse",
    ),
    ("file-deep-object", {"decision_file": nested_object(DEEP)}, "nested too deep to parse"),
    (
        # Under the cap in bytes, past the parser's depth: still not a crash.
        "file-noop-with-2000-deep-array",
        {"decision_file": noop_carrying(nested_array(2000))},
        "nested too deep to parse",
    ),
    (
        # A decision-shaped object in stdout that cannot be parsed is no decision at all.
        "stdout-noop-with-deep-array",
        {"stdout": "thinking…\n" + noop_carrying(nested_array(DEEP)) + "\n"},
        "the runner left no decision",
    ),
    (
        "file-2MiB",
        {"decision_file": json.dumps({**NOOP, "pad": "x" * (2 * MIB)})},
        f"over {MIB} bytes",
    ),
    (
        "stdout-2MiB",
        {"stdout": json.dumps({**NOOP, "pad": "x" * (2 * MIB)})},
        f"over {MIB} bytes",
    ),
]


@pytest.mark.parametrize(("step", "says"), [(s, m) for _, s, m in BAD], ids=[i for i, _, _ in BAD])
def test_a_decision_too_deep_or_too_large_is_a_failed_beat_not_a_crash(
    repo: Repo, step: dict[str, Any], says: str
) -> None:
    head = repo.head()
    repo.queue(step)
    r = repo.tick()
    error = assert_failed(r, says)
    assert not (repo.root / ".looopbot" / "crash.log").exists()
    assert "Traceback" not in r.out + r.err
    # Recorded like any failed beat: a commit whose journal line says why.
    assert r.json()["commit"] == repo.head() != head
    assert repo.trailers()["Looopbot-Outcome"] == "failed"
    last = repo.git("show", "HEAD:journal.md").splitlines()[-1]
    assert "failed: " in last and says in last, last
    assert error[:60] in last
    state = json.loads(repo.git("show", "HEAD:.looopbot/state.json"))
    assert state["failures"] == 1 and says in state["failure"], state
    assert repo.status_porcelain() == ""
    assert_backoff_armed(repo)
    # A human's goal edit cuts the backoff short; the next decision is read normally and
    # nothing of the bad one lingers.
    repo.write("goals/nudge.md", "goal: carry on\n")
    repo.decide({**NOOP, "journal": "back to normal"})
    again = repo.tick()
    assert again.json()["outcome"] == "decided", again.out + again.err
    assert repo.state()["failures"] == 0
