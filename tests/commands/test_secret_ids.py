"""Secrets never enter git through ids and names (DESIGN §6, §9): an id that holds a secret
is refused through every door — a decision, the command line — before anything is written,
and the refusal itself names no piece of the secret."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import NOOP, Repo, Run

SECRET = "hunter2hunter2xyz"
# 60 characters with no repeated 8-character window; longer than the old 40-character cut.
LONG = "Xk7pQ2mV9rT4wL6nB8cF3hJ5dG1sA0zYe4uR7iO2aS5dF8gH1jK3lZ6xC9vB0"[:60]
ENV = {"MY_API_TOKEN": SECRET, "DEPLOY_PASSWORD": LONG}


def pieces(secret: str, n: int = 8) -> list[str]:
    return [secret[i : i + n] for i in range(len(secret) - n + 1)]


def names_under(root: Path) -> str:
    """Every path in the data dir except the runs' scratch (which holds the raw decision)."""
    return "\n".join(
        str(p.relative_to(root)) for p in root.rglob("*") if ".looopbot/runs" not in str(p)
    )


def read_or_empty(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def assert_nowhere(repo: Repo, run: Run, *secrets: str) -> None:
    """Not in history (any ref, any patch), the ref names, the journal, the state file, the
    file names, nor what the command printed."""
    seen = {
        "git log -p --all": repo.git("log", "-p", "--all"),
        "refs": repo.git("for-each-ref", "--format=%(refname)"),
        "journal.md": read_or_empty(repo.root / "journal.md"),
        "state.json": read_or_empty(repo.root / ".looopbot/state.json"),
        "file names": names_under(repo.root),
        "stderr": run.err,
        "stdout": run.out,
    }
    for where, text in seen.items():
        for secret in secrets:
            leaked = [p for p in pieces(secret) if p in text]
            assert not leaked, (where, leaked)


@pytest.mark.parametrize(
    "decision",
    [
        {"action": "write_goal", "id": SECRET, "body": "goal: leak it\n"},
        {"action": "write_goal", "id": f"ship-{SECRET}", "body": "goal: leak it\n"},
        # invalid AND secret: the old message quoted its first 40 characters
        {"action": "write_goal", "id": f"../{LONG}", "body": "goal: leak it\n"},
        {"action": "write_goal", "id": f"{LONG}/x", "body": "goal: leak it\n"},
        {"action": "write_sensor", "name": LONG, "script": "echo {}"},
        {"action": "start_worker", "id": SECRET, "prompt": "go"},
        {"action": "send_notification", "message": "hello", "id": SECRET},
    ],
    ids=[
        "goal",
        "goal-containing",
        "goal-invalid-long",
        "goal-long-slash",
        "sensor",
        "worker",
        "notification",
    ],
)
def test_a_decision_whose_id_holds_a_secret_fails_and_writes_nothing(
    repo: Repo, decision: dict[str, str]
) -> None:
    repo.env.update(ENV)
    repo.decide(NOOP)
    assert repo.tick().code == 0
    goals = sorted(p.name for p in (repo.root / "goals").iterdir())
    sensors = sorted(p.name for p in (repo.root / "sensors").iterdir())
    repo.write("goals/nudge.md", "goal: a new world\n")
    repo.decide(decision)
    r = repo.tick()
    assert r.code == 1, (r.out, r.err)
    doc = r.json()
    assert doc["outcome"] == "failed" and "contains a secret" in doc["error"], doc
    assert sorted(p.name for p in (repo.root / "goals").iterdir()) == sorted([*goals, "nudge.md"])
    assert sorted(p.name for p in (repo.root / "sensors").iterdir()) == sensors
    assert not (repo.root / ".looopbot/workers").exists()
    assert "contains a secret" in repo.read("journal.md").splitlines()[-1]
    assert_nowhere(repo, r, SECRET, LONG)


@pytest.mark.parametrize(
    "args",
    [
        ["claim", SECRET],
        ["claim", f"db-{SECRET}"],
        ["claim", f"../{LONG}"],
        ["claim", "db", "--session", SECRET],
        ["unclaim", SECRET],
        ["worker", "start", SECRET, "do the work"],
        ["worker", "start", f"{LONG}.", "do the work"],
        ["worker", "stop", SECRET],
        ["goal", "write", SECRET, "goal: leak it"],
        ["goal", "archive", SECRET],
        ["sensor", "write", LONG, "echo {}"],
    ],
    ids=lambda a: " ".join(a[:2]) if isinstance(a, list) else str(a),
)
def test_the_command_line_refuses_an_id_holding_a_secret(repo: Repo, args: list[str]) -> None:
    repo.env.update(ENV)
    repo.env["LOOOPBOT_WORKER_COMMAND"] = "sleep 30"
    head, refs = repo.head(), repo.git("for-each-ref")
    r = repo.run(*args)
    assert r.code == 1, (r.out, r.err)
    assert r.err.startswith("looopbot: ") and "contains a secret" in r.err, r.err
    assert len(r.err.splitlines()) == 1
    assert repo.head() == head and repo.git("for-each-ref") == refs
    assert not (repo.root / ".looopbot/workers").exists()
    assert not (repo.root / ".looopbot/worktrees").exists()
    assert_nowhere(repo, r, SECRET, LONG)


def test_output_cut_to_a_tail_or_head_never_keeps_a_piece_of_a_secret(repo: Repo) -> None:
    """A sensor's stderr tail, an invalid-JSON sensor's head and run_shell's output tail
    are each cut through the secret; no piece of it reaches a snapshot, the state or git."""
    secret = "hunter2hunter2hunter2hunter2xyz"
    env = {"MY_API_TOKEN": secret}
    half = len(secret) // 2
    # stderr's last 1024 characters start in the middle of the secret; stdout's first
    # 1024 end in the middle of another copy.
    repo.sensor(
        "noisy",
        "#!/usr/bin/env bash\n"
        f"printf '%s' \"$MY_API_TOKEN\" >&2; printf 'e%.0s' $(seq {1024 - half}) >&2\n"
        f"printf 'o%.0s' $(seq {1024 - half}); printf '%s' \"$MY_API_TOKEN\"\n",
    )
    repo.decide(
        {
            "action": "run_shell",
            "cmd": f'printf "%s" "$MY_API_TOKEN"; printf "z%.0s" $(seq {2048 - half})',
            "reason": "show the tail",
        }
    )
    assert repo.tick(env=env).code == 0
    snapshot = repo.read("snapshots/sensor-noisy.json")
    everything = snapshot + repo.read(".looopbot/state.json") + repo.git("log", "-p", "--all")
    pieces = [secret[i : i + 8] for i in range(len(secret) - 7)]
    assert not [p for p in pieces if p in everything]
