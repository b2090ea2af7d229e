"""Every command through the installed CLI: init, reading commands, steering by hand,
validate, dry runs, usage errors."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import time
from pathlib import Path

import pytest
from conftest import BIN, NOOP, Repo, git

JOURNAL_LINE = re.compile(r"^- \d{4}-\d{2}-\d{2} \d{2}:\d{2} .+")
STARTER = (
    ".gitattributes",
    ".gitignore",
    "PLAYBOOK.md",
    "goals/setup.md",
    "looopbot.yaml",
    "sensors/today.sh",
)


def cli(
    *args: str, cwd: Path | None = None, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN), *args], cwd=cwd, input=input, capture_output=True, text=True, check=False
    )


def tree(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under root (outside .git) with its bytes and mode: 'nothing was written'."""
    out: dict[str, tuple[bytes, int]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != ".git"]
        for name in filenames:
            p = Path(dirpath) / name
            out[str(p.relative_to(root))] = (p.read_bytes(), p.stat().st_mode)
    return out


def no_traceback(*texts: str) -> None:
    for t in texts:
        assert "Traceback" not in t


# --- init -------------------------------------------------------------------------------


def test_init_fresh_dir_makes_a_repo_with_one_commit_and_every_starter_file(
    tmp_path: Path,
) -> None:
    target = tmp_path / "fresh"
    r = cli("init", str(target))
    assert r.returncode == 0, r.stderr
    assert (target / ".git").is_dir()
    assert git(target, "rev-list", "--count", "HEAD").strip() == "1"
    tracked = set(git(target, "ls-files").split())
    assert set(STARTER) <= tracked
    for rel in STARTER:
        assert (target / rel).is_file(), rel
    assert os.stat(target / "sensors/today.sh").st_mode & stat.S_IXUSR
    assert "100755" in git(target, "ls-tree", "HEAD", "sensors/today.sh")
    assert (target / "goals/setup.md").read_text().startswith("goal:")
    assert "runner: example" in (target / "looopbot.yaml").read_text()
    ignore = (target / ".gitignore").read_text().splitlines()
    for rule in (".looopbot/*", "!.looopbot/state.json", "!.looopbot/cost.jsonl"):
        assert rule in ignore
    attrs = (target / ".gitattributes").read_text().splitlines()
    assert "journal.md merge=union" in attrs and "*.jsonl merge=union" in attrs
    # ... and git reads them that way
    assert git(target, "check-attr", "merge", "journal.md").strip().endswith("union")
    assert git(target, "check-attr", "merge", ".looopbot/cost.jsonl").strip().endswith("union")
    assert git(
        target, "check-ignore", ".looopbot/lock", ".looopbot/runs/x/decision.json"
    ).split() == [
        ".looopbot/lock",
        ".looopbot/runs/x/decision.json",
    ]
    assert git(target, "check-ignore", ".looopbot/state.json", check=False) == ""
    assert git(target, "log", "-1", "--format=%an").strip() == "looopbot"
    assert git(target, "status", "--porcelain") == ""


def test_init_again_never_overwrites_an_edited_file(tmp_path: Path) -> None:
    target = tmp_path / "d"
    assert cli("init", str(target)).returncode == 0
    yaml_text = (target / "looopbot.yaml").read_text() + "# my comment\n"
    (target / "looopbot.yaml").write_text(yaml_text)
    git(target, "commit", "-qam", "human: tune config")
    (target / "PLAYBOOK.md").write_text("my own playbook, not committed\n")
    head = git(target, "rev-parse", "HEAD")
    r = cli("init", str(target), "--runner", "example")
    assert r.returncode == 0, r.stderr
    assert (target / "PLAYBOOK.md").read_text() == "my own playbook, not committed\n"
    assert (target / "looopbot.yaml").read_text() == yaml_text
    assert git(target, "rev-parse", "HEAD") == head, "nothing new: no commit"
    assert git(target, "status", "--porcelain") == " M PLAYBOOK.md\n"


def test_init_with_an_unknown_runner_exits_1_and_creates_nothing(tmp_path: Path) -> None:
    r = cli("init", str(tmp_path / "d"), "--runner", "nosuchllm")
    assert r.returncode == 1
    assert r.stderr.startswith("looopbot: ") and "nosuchllm" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    no_traceback(r.stdout, r.stderr)
    assert not (tmp_path / "d").exists()


def test_init_adopts_an_existing_repo_with_commits(tmp_path: Path) -> None:
    target = tmp_path / "existing"
    target.mkdir()
    git(target, "init", "-q")
    (target / "README").write_text("mine\n")
    git(target, "add", "README")
    git(target, "commit", "-qm", "human: first")
    first = git(target, "rev-parse", "HEAD").strip()
    r = cli("init", str(target))
    assert r.returncode == 0, r.stderr
    assert git(target, "rev-list", "--count", "HEAD").strip() == "2"
    assert git(target, "rev-parse", "HEAD^").strip() == first
    assert (target / "README").read_text() == "mine\n"
    assert set(STARTER) <= set(git(target, "ls-files").split())
    assert "README" in git(target, "ls-tree", "--name-only", "HEAD").split()
    assert git(target, "status", "--porcelain") == ""


def test_init_adopting_a_repo_with_its_own_gitignore_still_ignores_scratch(
    tmp_path: Path,
) -> None:
    target = tmp_path / "existing"
    target.mkdir()
    git(target, "init", "-q")
    (target / ".gitignore").write_text("node_modules/\n")
    git(target, "add", ".gitignore")
    git(target, "commit", "-qm", "human: first")
    assert cli("init", str(target)).returncode == 0
    assert (target / ".gitignore").read_text().startswith("node_modules/\n")
    repo = Repo(target, tmp_path / "fake", env={"LOOOPBOT_TICK_COMMAND": "false"})
    (target / "sensors/today.sh").unlink()
    repo.git("commit", "-qam", "human: no date sensor")
    repo.tick()  # a failed beat still leaves its run folder, lock and caches
    assert (target / ".looopbot/lock").exists()
    assert repo.status_porcelain() == "", "looopbot's local scratch must never show up"


# --- reading commands -------------------------------------------------------------------


def test_status_json_reports_the_last_beat_and_guards(repo: Repo) -> None:
    repo.decide({**NOOP, "journal": "first look"})
    beat = repo.tick().json()
    r = repo.run("status", "--json")
    assert r.code == 0, r.err
    doc = r.json()
    for key in (
        "data_dir",
        "runner",
        "last_beat",
        "world_hash",
        "failures",
        "backoff_until",
        "spent_today_usd",
        "max_daily_usd",
        "goals",
        "workers",
        "claims",
    ):
        assert key in doc, key
    assert doc["data_dir"] == str(repo.root)
    assert doc["last_beat"]["outcome"] == "decided"
    assert doc["world_hash"] == beat["world_hash"]
    assert doc["goals"] == ["setup"]
    assert doc["failures"] == 0 and doc["backoff_until"] is None
    assert doc["workers"] == [] and doc["claims"] == []
    # after a failed beat the backoff shows
    repo.write("goals/next.md", "goal: next\n")
    repo.queue({"stdout": "no decision here"})
    assert repo.tick().code == 1
    doc = repo.run("status", "--json").json()
    assert doc["failures"] == 1
    assert doc["backoff_until"] > time.time()
    assert doc["last_beat"]["outcome"] == "failed"


def test_journal_tail_prints_the_last_lines(repo: Repo) -> None:
    for i in range(3):
        repo.write(f"goals/g{i}.md", f"goal: g{i}\n")
        repo.decide({**NOOP, "journal": f"beat number {i}"})
        assert repo.tick().code == 0
    r = repo.run("journal", "--tail", "2")
    assert r.code == 0
    lines = r.out.splitlines()
    assert len(lines) == 2
    assert lines == repo.read("journal.md").splitlines()[-2:]
    assert "beat number 1" in lines[0] and "beat number 2" in lines[1]
    assert all(JOURNAL_LINE.match(line) for line in lines)
    full = repo.run("journal")
    assert full.out == repo.read("journal.md")


def test_history_json_reads_beats_from_trailers(repo: Repo) -> None:
    repo.decide(NOOP)
    repo.tick()
    repo.write("goals/ship.md", "goal: ship\n")
    repo.decide({"action": "archive_goal", "id": "ship", "journal": "not now"})
    assert repo.tick().code == 0
    r = repo.run("history", "-n", "2", "--json")
    assert r.code == 0, r.err
    beats = r.json()["beats"]
    assert len(beats) == 2
    assert [b["commit"] for b in beats] == [repo.head(), repo.git("rev-parse", "HEAD^").strip()]
    for b, rev in zip(beats, ("HEAD", "HEAD^"), strict=True):
        t = repo.trailers(rev)
        assert b["outcome"] == t["Looopbot-Outcome"] == "decided"
        assert b["action"] == t["Looopbot-Action"]
        assert b["world"] == t["Looopbot-World"]
        assert b["run"] == t["Looopbot-Run"]
    assert [b["action"] for b in beats] == ["archive_goal", "noop"]
    text = repo.run("history", "-n", "1")
    assert text.code == 0 and len(text.out.splitlines()) == 1
    assert "decided" in text.out and repo.head()[:10] in text.out


def test_prompt_prints_without_running_sensors_or_writing(repo: Repo) -> None:
    marker = repo.root.parent / "sensor-ran"
    repo.sensor("probe", f"#!/usr/bin/env bash\necho run >> {marker}\necho '{{\"v\": 42}}'\n")
    repo.decide(NOOP)
    assert repo.tick().code == 0
    assert marker.read_text() == "run\n"
    before, head = tree(repo.root), repo.head()
    r = repo.run("prompt")
    assert r.code == 0, r.err
    assert "=== PLAYBOOK ===" in r.out and "=== GOALS ===" in r.out
    assert "--- goals/setup.md" in r.out
    assert "--- snapshots/sensor-probe.json" in r.out and "42" in r.out
    assert marker.read_text() == "run\n", "prompt must not run sensors"
    assert tree(repo.root) == before
    assert repo.head() == head
    assert repo.calls() == 1


# --- cost -------------------------------------------------------------------------------

METERED = """
runner: fake
runners:
  fake:
    tick: "false"
    cost: {type: result, pointer: /total_cost_usd, mode: total}
"""


def claude_result(decision: dict[str, object], cost: float) -> dict[str, str]:
    event = {
        "type": "result",
        "subtype": "success",
        "is_error": False,
        "total_cost_usd": cost,
        "result": json.dumps(decision),
    }
    return {"stdout": json.dumps(event) + "\n"}


def test_cost_after_metered_runs(repo: Repo) -> None:
    text = repo.read("looopbot.yaml").replace("runner: example\n", "")
    repo.write("looopbot.yaml", text + METERED)
    repo.git("commit", "-qam", "human: metered runner")
    repo.queue(claude_result(NOOP, 0.25), claude_result(NOOP, 0.5))
    first = repo.tick()
    assert first.code == 0, first.err
    assert first.json()["cost_usd"] == 0.25
    assert repo.trailers()["Looopbot-Cost-USD"] == "0.250000"
    assert repo.tick("--force").json()["cost_usd"] == 0.5
    r = repo.run("cost", "--json")
    assert r.code == 0, r.err
    doc = r.json()
    assert doc["total_usd"] == pytest.approx(0.75)
    today = time.strftime("%Y-%m-%d")
    assert [(d["day"], d["runner"], d["runs"]) for d in doc["days"]] == [(today, "fake", 2)]
    assert doc["days"][0]["cost_usd"] == pytest.approx(0.75)
    rows = [json.loads(line) for line in repo.read(".looopbot/cost.jsonl").splitlines()]
    assert [row["cost_usd"] for row in rows] == [0.25, 0.5]
    assert repo.git("show", "HEAD:.looopbot/cost.jsonl") == repo.read(".looopbot/cost.jsonl")
    t = repo.run("cost", "today")
    assert t.code == 0
    assert "$0.7500" in t.out and "fake" in t.out and today in t.out
    assert repo.run("cost", "today", "--json").json()["total_usd"] == pytest.approx(0.75)


# --- steering by hand -------------------------------------------------------------------


def assert_manual_commit(repo: Repo, action: str, *paths: str) -> None:
    t = repo.trailers()
    assert t["Looopbot-Outcome"] == "manual"
    assert t["Looopbot-Action"] == action
    changed = set(repo.git("show", "--no-renames", "--name-only", "--format=", "HEAD").split())
    assert {"journal.md", *paths} <= changed
    last = repo.read("journal.md").splitlines()[-1]
    assert JOURNAL_LINE.match(last) and "by hand" in last
    assert repo.git("show", "HEAD:journal.md") == repo.read("journal.md")
    assert repo.status_porcelain() == ""


def test_goal_list_json(repo: Repo) -> None:
    repo.write("goals/ship.md", "goal: ship the thing\nmore\n")
    repo.write("goals/archive/old.md", "goal: old\n")
    r = repo.run("goal", "list", "--json")
    assert r.code == 0, r.err
    assert r.json() == {
        "goals": [
            {"id": "setup", "goal": "get this loop doing useful work"},
            {"id": "ship", "goal": "ship the thing"},
        ]
    }


def test_goal_write_archive_by_hand(repo: Repo) -> None:
    n = repo.commits()
    r = repo.run("goal", "write", "ship", "goal: ship it")
    assert r.code == 0, r.err
    assert repo.read("goals/ship.md") == "goal: ship it\n"
    assert_manual_commit(repo, "write_goal", "goals/ship.md")
    assert repo.commits() == n + 1

    r = repo.run("goal", "write", "docs", "-", input="goal: write docs\n\nfrom stdin\n")
    assert r.code == 0, r.err
    assert repo.read("goals/docs.md") == "goal: write docs\n\nfrom stdin\n"
    assert_manual_commit(repo, "write_goal", "goals/docs.md")

    r = repo.run("goal", "archive", "ship")
    assert r.code == 0, r.err
    assert not (repo.root / "goals/ship.md").exists()
    assert repo.read("goals/archive/ship.md") == "goal: ship it\n"
    assert_manual_commit(repo, "archive_goal", "goals/ship.md", "goals/archive/ship.md")
    assert repo.git("ls-tree", "--name-only", "HEAD", "goals/ship.md") == ""
    assert repo.commits() == n + 3
    assert [g["id"] for g in repo.run("goal", "list", "--json").json()["goals"]] == [
        "docs",
        "setup",
    ]


def test_playbook_write_by_stdin_and_empty_is_refused(repo: Repo) -> None:
    original, head = repo.read("PLAYBOOK.md"), repo.head()
    for empty in ("", "\n  \n"):
        r = repo.run("playbook", "write", "-", input=empty)
        assert r.code == 1, (empty, r.out)
        assert r.err.startswith("looopbot: ")
        no_traceback(r.out, r.err)
        assert repo.read("PLAYBOOK.md") == original
        assert repo.head() == head
        assert repo.status_porcelain() == ""
    r = repo.run("playbook", "write", "-", input="# Playbook\n\nBe careful.")
    assert r.code == 0, r.err
    assert repo.read("PLAYBOOK.md") == "# Playbook\n\nBe careful.\n"
    assert_manual_commit(repo, "write_playbook", "PLAYBOOK.md")
    assert repo.git("show", "HEAD^:PLAYBOOK.md") == original, "the old one stays in history"


def test_sensor_write_by_stdin_is_executable_and_committed(repo: Repo) -> None:
    script = "#!/usr/bin/env bash\necho '{\"ok\": true}'\n"
    r = repo.run("sensor", "write", "probe", "-", input=script)
    assert r.code == 0, r.err
    path = repo.root / "sensors/probe.sh"
    assert path.read_text() == script
    assert path.stat().st_mode & 0o777 == 0o755
    assert repo.git("ls-tree", "HEAD", "sensors/probe.sh").startswith("100755 ")
    assert_manual_commit(repo, "write_sensor", "sensors/probe.sh")
    listed = repo.run("sensor", "list", "--json").json()["sensors"]
    assert [s["name"] for s in listed] == ["probe"]
    ran = repo.run("sensor", "run", "probe")
    assert ran.code == 0 and json.loads(ran.out) == {"sensor-probe": {"ok": True}}


@pytest.mark.parametrize(
    "args",
    [
        ("goal", "write", "../x", "goal: escape"),
        ("goal", "write", "/abs", "goal: escape"),
        ("goal", "write", ".hidden", "goal: hidden"),
        ("goal", "write", "a/b", "goal: nested"),
        ("goal", "write", "has space", "goal: spaced"),
        ("goal", "write", "x" * 200, "goal: long"),
        ("goal", "archive", "../setup"),
        ("sensor", "write", "../evil", "#!/bin/sh\necho 1\n"),
        ("sensor", "write", "a/b", "#!/bin/sh\necho 1\n"),
    ],
)
def test_unsafe_ids_by_hand_write_nothing(repo: Repo, args: tuple[str, ...]) -> None:
    everything = repo.root.parent
    before, head = tree(everything), repo.head()
    r = repo.run(*args)
    assert r.code == 1, r.out
    assert r.err.startswith("looopbot: ") and len(r.err.strip().splitlines()) == 1
    no_traceback(r.out, r.err)
    assert tree(everything) == before
    assert repo.head() == head
    assert repo.status_porcelain() == ""


# --- validate ---------------------------------------------------------------------------


def test_validate_clean_repo(repo: Repo) -> None:
    r = repo.run("validate")
    assert r.code == 0, r.out
    assert repo.run("validate", "--json").json() == {"ok": True, "problems": []}


def test_validate_reports_path_line_message(repo: Repo) -> None:
    repo.write("goals/bad.md", "no goal line here\n")
    repo.write("goals/bad name.md", "goal: fine text, bad name\n")
    repo.sensor("broken", "#!/usr/bin/env bash\necho hi\nif then\nfi\n")
    repo.sensor("plain", "echo '{}'\n\n\ndone\n", executable=False)
    before = tree(repo.root)
    r = repo.run("validate")
    assert r.code == 1
    no_traceback(r.out, r.err)
    lines = r.out.splitlines()
    assert all(re.match(r"^[^:]+:\d+: .+", line) for line in lines), lines
    assert any(line.startswith("goals/bad.md:1: ") and "goal:" in line for line in lines)
    assert any(line.startswith("goals/bad name.md:1: ") for line in lines)
    assert any(line.startswith("sensors/broken.sh:3: ") for line in lines)
    assert any(line.startswith("sensors/plain.sh:4: ") for line in lines)
    assert len(lines) == 4
    doc = repo.run("validate", "--json")
    assert doc.code == 1
    problems = doc.json()["problems"]
    assert doc.json()["ok"] is False
    assert {(p["path"], p["line"]) for p in problems} == {
        ("goals/bad.md", 1),
        ("goals/bad name.md", 1),
        ("sensors/broken.sh", 3),
        ("sensors/plain.sh", 4),
    }
    assert all(isinstance(p["message"], str) and p["message"] for p in problems)
    assert tree(repo.root) == before, "validate writes nothing"


# --- tick --dry-run, usage, data dir --------------------------------------------------


def test_tick_dry_run_prints_the_prompt_and_changes_nothing(repo: Repo) -> None:
    repo.sensor("probe", "#!/usr/bin/env bash\necho '{\"v\": 7}'\n")
    before, head, status = tree(repo.root), repo.head(), repo.status_porcelain()
    r = repo.run("tick", "--dry-run")
    assert r.code == 0, r.err
    assert "=== PLAYBOOK ===" in r.out and "=== SENSOR READINGS ===" in r.out
    assert "--- snapshots/sensor-probe.json" in r.out
    assert "dry run" in r.out
    assert repo.calls() == 0
    assert repo.head() == head
    assert not (repo.root / "snapshots").exists()
    assert not (repo.root / ".looopbot/state.json").exists()
    # the config cache is local scratch (gitignored), an accelerator that may be written
    cache = ".looopbot/config-cache.json"
    assert {k: v for k, v in tree(repo.root).items() if k != cache} == {
        k: v for k, v in before.items() if k != cache
    }
    assert repo.status_porcelain() == status == "?? sensors/\n"
    doc = repo.run("tick", "--dry-run", "--json")
    assert doc.code == 0
    assert doc.json()["outcome"] == "dry-run" and "=== GOALS ===" in doc.json()["prompt"]
    assert doc.json()["commit"] is None
    assert repo.calls() == 0 and repo.head() == head


@pytest.mark.parametrize(
    "args",
    [
        (),
        ("bogus",),
        ("tick", "--nope"),
        ("history", "-n", "many"),
        ("goal",),
        ("goal", "write"),
        ("cost", "weekly"),
        ("run", "--max-beats", "x"),
    ],
)
def test_usage_errors_exit_2(repo: Repo, args: tuple[str, ...]) -> None:
    head = repo.head()
    r = subprocess.run(
        [str(BIN), "-C", str(repo.root), *args], capture_output=True, text=True, check=False
    )
    assert r.returncode == 2, (args, r.stdout, r.stderr)
    assert "usage:" in r.stderr
    no_traceback(r.stderr)
    assert repo.head() == head


@pytest.mark.parametrize("command", ["tick", "status", "prompt", "journal", "validate"])
def test_a_dir_without_config_exits_1_with_a_hint(tmp_path: Path, command: str) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    r = cli("-C", str(empty), command)
    assert r.returncode == 1
    assert r.stderr.startswith("looopbot: ") and "looopbot init" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    no_traceback(r.stdout, r.stderr)
    assert list(empty.iterdir()) == []


def test_run_json_prints_one_json_line_per_beat(repo: Repo) -> None:
    repo.decide({**NOOP, "journal": "looked around"})
    r = repo.run("run", "--json", "--max-beats", "2", "--interval", "0.1")
    assert r.code == 0, r.err
    first, second = (json.loads(line) for line in r.out.splitlines())
    assert first["outcome"] == "decided" and first["journal"] == "looked around"
    assert first["commit"] == repo.head() and first["push"] is None
    assert second["outcome"] == "unchanged" and second["commit"] is None
    assert all(doc["time"][:4].isdigit() for doc in (first, second))


def test_run_json_reports_a_broken_setup_as_a_line_too(repo: Repo) -> None:
    repo.git("checkout", "-q", "--detach")
    r = repo.run("run", "--json", "--max-beats", "1")
    (doc,) = (json.loads(line) for line in r.out.splitlines())
    assert doc["outcome"] == "error" and "detached" in doc["error"]
    assert repo.calls() == 0
