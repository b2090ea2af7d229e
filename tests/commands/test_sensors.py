"""SENSE end to end through the installed CLI (DESIGN §3): sensors, their failure shapes,
cadence, system snapshots, and what the decider is shown.

Parallelism and kills are proven by evidence the sensors leave behind (timestamps, pids),
never by how long a beat took.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import NOOP, Repo, wait_dead

# --- helpers --------------------------------------------------------------------------------


def snapshot(repo: Repo, name: str) -> Any:
    return json.loads(repo.read(f"snapshots/{name}.json"))


def reading(prompt: str, name: str) -> str:
    """The text the prompt shows under `--- snapshots/<name>.json`."""
    head = f"--- snapshots/{name}.json\n"
    assert head in prompt, f"{name} missing from the prompt"
    rest = prompt.split(head, 1)[1]
    return re.split(r"\n--- snapshots/|\n\n=== ", rest, maxsplit=1)[0]


def shown(prompt: str, name: str) -> Any:
    """The snapshot value as the decider saw it (parsed back from the prompt)."""
    return json.loads(reading(prompt, name))


def section(prompt: str, title: str) -> str | None:
    end = r"(?=\n\n=== |\n\nCurrent local time)"
    m = re.search(rf"^=== {re.escape(title)} ===\n(.*?){end}", prompt, re.S | re.M)
    return m.group(1) if m else None


def committed(repo: Repo, rel: str) -> bool:
    return bool(repo.git("ls-tree", "--name-only", "HEAD", "--", rel).strip())


def counting(counter: Path, body: str = "") -> str:
    """A sensor script prefix that counts its runs in `counter`."""
    return (
        "#!/usr/bin/env bash\n"
        f"{body}"
        f"n=$(( $(cat {counter} 2>/dev/null || echo 0) + 1 )); echo $n > {counter}\n"
    )


def runs(counter: Path) -> int:
    return int(counter.read_text()) if counter.exists() else 0


# --- failure shapes -------------------------------------------------------------------------


@pytest.mark.parametrize("code", [1, 7])
def test_nonzero_exit_keeps_the_last_1024_bytes_of_stderr(repo: Repo, code: int) -> None:
    repo.sensor(
        "bad",
        "#!/usr/bin/env bash\n"
        "for i in $(seq 1 500); do printf 'line%04d\\n' $i >&2; done\n"
        f"echo '{{\"partial\": true}}'\nexit {code}\n",
    )
    stderr = b"".join(b"line%04d\n" % i for i in range(1, 501))
    assert len(stderr) > 4000
    repo.decide(NOOP)
    r = repo.tick()
    assert r.code == 0, r.err
    snap = snapshot(repo, "sensor-bad")
    assert snap["signal"] == {"error": True, "exit_code": code}
    assert set(snap["detail"]) == {"message", "stderr"}
    assert snap["detail"]["stderr"] == stderr[-1024:].decode()
    assert isinstance(snap["detail"]["message"], str) and str(code) in snap["detail"]["message"]
    assert set(snap) == {"signal", "detail"}
    assert committed(repo, "snapshots/sensor-bad.json")
    assert shown(repo.prompts()[0], "sensor-bad") == snap


def test_timeout_is_exit_124_and_kills_the_sensors_grandchildren(repo: Repo, pidfile: Path) -> None:
    repo.sensor(
        "hang",
        "#!/usr/bin/env bash\n"
        f"sleep 300 & echo $! >> {pidfile}\n"
        f"sleep 300 & echo $! >> {pidfile}\n"
        f"( sleep 300 & echo $! >> {pidfile}; wait ) &\n"
        "echo partial >&2\n"
        "wait\n",
    )
    repo.decide(NOOP)
    r = repo.tick(env={"LOOOPBOT_SENSOR_TIMEOUT": "1"})
    assert r.code == 0, r.err
    snap = snapshot(repo, "sensor-hang")
    assert snap["signal"] == {"error": True, "exit_code": 124}
    assert set(snap["detail"]) == {"message", "stderr"}
    message = snap["detail"]["message"]
    assert "timed out" in message and re.search(r"\b1(\.0)? ?s\b", message), message
    assert snap["detail"]["stderr"] == "partial\n"
    assert shown(repo.prompts()[0], "sensor-hang") == snap
    pids = [int(x) for x in pidfile.read_text().split()]
    assert len(pids) == 3
    assert wait_dead(pids) == []


def test_over_the_cap_is_too_large(repo: Repo) -> None:
    # One write of 500 bytes (under PIPE_BUF, so it arrives in one read).
    repo.sensor("big", "#!/usr/bin/env bash\nprintf '\"%0498d\"' 0\n")
    repo.decide(NOOP)
    r = repo.tick(env={"LOOOPBOT_SENSOR_MAX_BYTES": "100"})
    assert r.code == 0, r.err
    assert snapshot(repo, "sensor-big") == {
        "signal": {"error": "too-large", "cap": 100},
        "detail": {"bytes": 500},
    }
    assert shown(repo.prompts()[0], "sensor-big")["signal"] == {"error": "too-large", "cap": 100}


def test_endless_output_is_cut_at_the_default_cap_not_timed_out(repo: Repo) -> None:
    repo.sensor("yes", "#!/usr/bin/env bash\nyes\n")
    repo.decide(NOOP)
    r = repo.tick(env={"LOOOPBOT_SENSOR_TIMEOUT": "30"})
    assert r.code == 0, r.err
    snap = snapshot(repo, "sensor-yes")
    assert snap["signal"] == {"error": "too-large", "cap": 8192}
    assert set(snap["detail"]) == {"bytes"} and snap["detail"]["bytes"] > 8192


def test_invalid_json_keeps_the_first_1024_bytes(repo: Repo) -> None:
    repo.sensor("text", "#!/usr/bin/env bash\nprintf '0123456789%.0s' $(seq 1 300)\n")
    repo.decide(NOOP)
    assert repo.tick().code == 0
    assert snapshot(repo, "sensor-text") == {
        "signal": {"error": "invalid-json"},
        "detail": {"stdout": ("0123456789" * 300)[:1024]},
    }


def test_invalid_utf8_is_invalid_json(repo: Repo) -> None:
    repo.sensor("latin", '#!/usr/bin/env bash\nprintf \'{"a": "caf\\xe9"}\'\n')
    repo.decide(NOOP)
    assert repo.tick().code == 0
    snap = snapshot(repo, "sensor-latin")
    assert snap == {
        "signal": {"error": "invalid-json"},
        "detail": {"stdout": b'{"a": "caf\xe9"}'.decode("utf-8", errors="replace")},
    }


def test_empty_output_is_invalid_json(repo: Repo) -> None:
    repo.sensor("quiet", "#!/usr/bin/env bash\ntrue\n")
    repo.decide(NOOP)
    assert repo.tick().code == 0
    assert snapshot(repo, "sensor-quiet") == {
        "signal": {"error": "invalid-json"},
        "detail": {"stdout": ""},
    }


BASH_PROBE = 'echo "{\\"shell\\": \\"${BASH_VERSION:+bash}\\"}"\n'


def test_script_without_the_run_bit_runs_with_bash(repo: Repo) -> None:
    # Its shebang names python, but without the run bit bash runs it (the shebang is a comment).
    repo.sensor("pr", "#!/usr/bin/env python3\n" + BASH_PROBE, executable=False)
    assert not os.access(repo.root / "sensors" / "pr.sh", os.X_OK)
    repo.decide(NOOP)
    assert repo.tick().code == 0
    assert snapshot(repo, "sensor-pr") == {"shell": "bash"}


def test_executable_script_without_a_shebang_runs(repo: Repo) -> None:
    repo.sensor("bare", BASH_PROBE, executable=True)
    repo.decide(NOOP)
    assert repo.tick().code == 0
    assert snapshot(repo, "sensor-bare") == {"shell": "bash"}


def test_executable_script_with_a_shebang_runs_under_it(repo: Repo) -> None:
    repo.sensor(
        "py",
        "#!/usr/bin/env python3\nimport json, sys\n"
        'print(json.dumps({"py": sys.version_info[0]}))\n',
    )
    repo.decide(NOOP)
    assert repo.tick().code == 0
    assert snapshot(repo, "sensor-py") == {"py": 3}


# --- robustness and waking ------------------------------------------------------------------


def test_misbehaving_sensors_never_break_the_beat(repo: Repo, pidfile: Path) -> None:
    repo.sensor("a-crash", "#!/usr/bin/env bash\necho oops >&2; exit 9\n")
    repo.sensor("b-hang", f"#!/usr/bin/env bash\nsleep 300 & echo $! > {pidfile}; wait\n")
    repo.sensor("c-huge", "#!/usr/bin/env bash\nyes\n")
    repo.sensor("d-garbage", "#!/usr/bin/env bash\necho '{not json'\n")
    repo.sensor("e-nointerp", "#!/nonexistent/interpreter\necho '{}'\n")
    repo.sensor("f-good", "#!/usr/bin/env bash\necho '{\"ok\": true}'\n")
    repo.decide(NOOP)
    r = repo.tick(env={"LOOOPBOT_SENSOR_TIMEOUT": "1"})
    assert r.code == 0, r.err
    assert r.json()["outcome"] == "decided"
    assert snapshot(repo, "sensor-f-good") == {"ok": True}
    signals = {
        n: snapshot(repo, f"sensor-{n}")["signal"]
        for n in ("a-crash", "b-hang", "c-huge", "d-garbage", "e-nointerp")
    }
    assert signals == {
        "a-crash": {"error": True, "exit_code": 9},
        "b-hang": {"error": True, "exit_code": 124},
        "c-huge": {"error": "too-large", "cap": 8192},
        "d-garbage": {"error": "invalid-json"},
        "e-nointerp": {"error": True, "exit_code": 126},
    }
    for n in ("a-crash", "b-hang", "c-huge", "d-garbage", "e-nointerp", "f-good"):
        assert committed(repo, f"snapshots/sensor-{n}.json"), n
    assert shown(repo.prompts()[0], "sensor-f-good") == {"ok": True}
    assert "snapshots/" not in repo.status_porcelain()
    assert wait_dead([int(pidfile.read_text())]) == []


def test_a_steady_break_wakes_the_loop_once(repo: Repo) -> None:
    repo.sensor(
        "flaky",
        '#!/usr/bin/env bash\necho "boom at $(date +%s%N) pid $$" >&2\nexit 3\n',
    )
    repo.decide(NOOP)
    assert repo.tick().json()["outcome"] == "decided"
    first = snapshot(repo, "sensor-flaky")
    r = repo.tick()
    assert r.code == 0
    assert r.json()["outcome"] == "unchanged"
    second = snapshot(repo, "sensor-flaky")
    assert first["detail"]["stderr"] != second["detail"]["stderr"], "stderr should vary"
    assert first["signal"] == second["signal"] == {"error": True, "exit_code": 3}
    assert repo.calls() == 1


def test_sensors_run_in_parallel(repo: Repo, tmp_path: Path) -> None:
    stamps = tmp_path / "stamps"
    stamps.mkdir()
    for i in range(4):
        repo.sensor(
            f"slow{i}",
            "#!/usr/bin/env bash\n"
            f"date +%s.%N > {stamps}/{i}.start\nsleep 1\ndate +%s.%N > {stamps}/{i}.end\n"
            "echo '{}'\n",
        )
    repo.decide(NOOP)
    assert repo.tick().code == 0
    starts = [float((stamps / f"{i}.start").read_text()) for i in range(4)]
    ends = [float((stamps / f"{i}.end").read_text()) for i in range(4)]
    # Every sensor started before any finished: all four were running at once.
    assert max(starts) < min(ends), (starts, ends)


def test_sensor_concurrency_bounds_how_many_run_at_once(repo: Repo, tmp_path: Path) -> None:
    stamps = tmp_path / "stamps"
    stamps.mkdir()
    for i in range(5):
        repo.sensor(
            f"s{i}",
            "#!/usr/bin/env bash\n"
            f"date +%s.%N > {stamps}/{i}.start\nsleep 0.4\ndate +%s.%N > {stamps}/{i}.end\n"
            "echo '{}'\n",
        )
    repo.decide(NOOP)
    assert repo.tick(env={"LOOOPBOT_SENSOR_CONCURRENCY": "2"}).code == 0
    events = []
    for i in range(5):
        events.append((float((stamps / f"{i}.start").read_text()), 1))
        events.append((float((stamps / f"{i}.end").read_text()), -1))
    live = peak = 0
    for _, d in sorted(events):
        live += d
        peak = max(peak, live)
    assert peak == 2, events


# --- cadence --------------------------------------------------------------------------------


def test_interval_skips_reruns_until_due_or_changed(repo: Repo, tmp_path: Path) -> None:
    counter, stamp = tmp_path / "count", tmp_path / "ran-at"
    script = counting(counter, "# looopbot:interval=3\n") + (
        f"date +%s.%N > {stamp}\n"
        'echo "{\\"signal\\": {\\"up\\": true}, \\"detail\\": {\\"n\\": $n}}"\n'
    )
    repo.sensor("slow", script)
    # Declared below line 20: not honoured, it runs every beat.
    late = tmp_path / "late"
    repo.sensor("late", counting(late, "#\n" * 21 + "# looopbot:interval=3600\n") + "echo 1\n")
    repo.decide(NOOP)
    assert repo.tick().code == 0
    assert runs(counter) == 1 and runs(late) == 1

    r = repo.tick()  # within the interval, script unchanged: not re-run, snapshot kept
    assert r.code == 0 and r.json()["outcome"] == "unchanged"
    assert runs(counter) == 1
    assert snapshot(repo, "sensor-slow") == {"signal": {"up": True}, "detail": {"n": 1}}
    assert committed(repo, "snapshots/sensor-slow.json")
    assert runs(late) == 2

    repo.sensor("slow", script + "# edited\n")  # a changed script is re-run at once
    assert repo.tick().code == 0
    assert runs(counter) == 2
    assert snapshot(repo, "sensor-slow")["detail"] == {"n": 2}
    assert repo.tick().code == 0
    assert runs(counter) == 2

    time.sleep(max(0.0, float(stamp.read_text()) + 3.3 - time.time()))
    assert repo.tick().code == 0  # the interval has passed
    assert runs(counter) == 3
    assert snapshot(repo, "sensor-slow")["detail"] == {"n": 3}
    assert repo.calls() == 1


# --- snapshot files -------------------------------------------------------------------------


def test_a_removed_sensors_snapshot_is_removed_and_committed(repo: Repo) -> None:
    repo.sensor("gone", "#!/usr/bin/env bash\necho '{\"here\": 1}'\n")
    repo.sensor("stays", "#!/usr/bin/env bash\necho '{\"here\": 2}'\n")
    repo.decide(NOOP, NOOP)
    assert repo.tick().code == 0
    assert committed(repo, "snapshots/sensor-gone.json")
    (repo.root / "sensors" / "gone.sh").unlink()
    r = repo.tick()
    assert r.code == 0, r.err
    assert not (repo.root / "snapshots" / "sensor-gone.json").exists()
    assert not committed(repo, "snapshots/sensor-gone.json")
    assert "D\tsnapshots/sensor-gone.json" in repo.git("show", "--name-status", "--format=")
    assert committed(repo, "snapshots/sensor-stays.json")
    assert "snapshots/" not in repo.status_porcelain()
    # The decider is told the reading went away and no longer sees it.
    assert "--- snapshots/sensor-gone.json" not in repo.prompts()[-1]


def test_sensors_get_the_data_dir_as_env_and_cwd(repo: Repo) -> None:
    repo.sensor(
        "where",
        '#!/usr/bin/env bash\necho "{\\"env\\": \\"$LOOOPBOT_DATA_DIR\\", '
        '\\"cwd\\": \\"$(pwd -P)\\"}"\n',
    )
    repo.decide(NOOP)
    r = repo.run("tick", "--json")  # from the test's cwd, not the data dir
    assert r.code == 0, r.err
    snap = snapshot(repo, "sensor-where")
    assert Path(snap["env"]).resolve() == repo.root.resolve()
    assert Path(snap["cwd"]) == repo.root.resolve()


# --- flapping -------------------------------------------------------------------------------


def test_a_flapping_sensor_is_listed_after_flap_streak_beats(repo: Repo, tmp_path: Path) -> None:
    counter = tmp_path / "count"
    repo.sensor("flap", counting(counter) + 'echo "{\\"n\\": $n}"\n')
    repo.sensor("calm", "#!/usr/bin/env bash\necho '{\"n\": 0}'\n")
    repo.decide(NOOP, NOOP, NOOP)
    env = {"LOOOPBOT_FLAP_STREAK": "2"}
    for _ in range(3):
        r = repo.tick(env=env)
        assert r.json()["outcome"] == "decided", r.out + r.err
    p1, p2, p3 = repo.prompts()
    # beat 1: first reading; beat 2: changed once; beat 3: changed twice in a row.
    assert section(p1, "FLAPPING SENSORS") is None
    assert section(p2, "FLAPPING SENSORS") is None
    listed = section(p3, "FLAPPING SENSORS")
    assert listed is not None
    assert "- sensor-flap" in listed.splitlines()
    assert "sensor-calm" not in listed
    # The section sits where DESIGN §7 puts it: before the journal.
    assert p3.index("=== FLAPPING SENSORS ===") < p3.index("=== RECENT JOURNAL ===")


# --- system snapshots and a quiet git -------------------------------------------------------


def test_system_snapshots_have_the_design_shapes(repo: Repo) -> None:
    repo.decide(NOOP)
    assert repo.tick().code == 0
    goals = snapshot(repo, "sys-goals")
    assert goals == {"signal": {}, "detail": {"last_acted": {"setup": None}}}
    workers = snapshot(repo, "sys-workers")
    assert workers["signal"] == []
    assert isinstance(workers["detail"], dict) and "counts" in workers["detail"]
    assert snapshot(repo, "sys-claims")["signal"] == []
    for name in ("sys-goals", "sys-workers", "sys-claims"):
        assert committed(repo, f"snapshots/{name}.json"), name
    for name in ("sys-workers", "sys-claims"):
        assert shown(repo.prompts()[0], name) == snapshot(repo, name)
    assert "setup: never" in reading(repo.prompts()[0], "sys-goals")


def test_goal_last_acted_updates_and_an_idle_loop_is_silent(repo: Repo) -> None:
    repo.sensor(
        "steady", '#!/usr/bin/env bash\necho \'{"signal": {"a": 1}, "detail": {"b": 2}}\'\n'
    )
    repo.git("add", "sensors")
    repo.git("commit", "-qm", "a steady sensor")
    repo.decide({"action": "write_goal", "id": "ship", "body": "goal: ship it\n"})
    before = time.time()
    assert repo.tick().json()["outcome"] == "decided"
    after = time.time()
    acted = snapshot(repo, "sys-goals")["detail"]["last_acted"]
    assert acted["setup"] is None
    assert before <= acted["ship"] <= after
    assert committed(repo, "snapshots/sys-goals.json")
    assert '"ship"' in repo.git("show", "HEAD:snapshots/sys-goals.json")

    # Settle: the decider sees the world its own move made (a forced beat, so this test does
    # not depend on whether that new goal alone would wake the loop).
    repo.decide(NOOP)
    assert repo.tick("--force").json()["outcome"] == "decided"
    assert snapshot(repo, "sys-goals")["detail"]["last_acted"] == acted

    # Idle: unchanged readings make no commit at all, and no file changes.
    head, commits, state = repo.head(), repo.commits(), repo.read(".looopbot/state.json")
    time.sleep(1.1)  # let any stored age or "last seen" stamp tick over
    for _ in range(3):
        r = repo.tick()
        assert r.json()["outcome"] == "unchanged" and r.json()["commit"] is None
    assert repo.head() == head and repo.commits() == commits
    assert repo.read(".looopbot/state.json") == state
    assert repo.status_porcelain() == ""

    # Acting on the other goal stamps it, and leaves ship's time alone.
    repo.decide({"action": "write_goal", "id": "setup", "body": "goal: set up, edited\n"})
    assert repo.tick("--force").json()["outcome"] == "decided"
    again = snapshot(repo, "sys-goals")["detail"]["last_acted"]
    assert again["ship"] == acted["ship"]
    assert again["setup"] is not None and again["setup"] >= acted["ship"]
    ages = reading(repo.prompts()[-1], "sys-goals")
    assert "setup: never" in ages and re.search(r"ship: \S+ ago", ages), ages


# --- sensor run / list ----------------------------------------------------------------------


def tree_state(root: Path) -> dict[str, tuple[float, bytes]]:
    out = {}
    for p in root.rglob("*"):
        if p.is_file() and ".git" not in p.relative_to(root).parts:
            out[str(p.relative_to(root))] = (p.stat().st_mtime, p.read_bytes())
    return out


def test_sensor_run_prints_snapshots_and_writes_nothing(repo: Repo, tmp_path: Path) -> None:
    value = tmp_path / "value"
    value.write_text("1")
    a_runs, b_runs = tmp_path / "a", tmp_path / "b"
    repo.sensor("a", counting(a_runs) + f'echo "{{\\"v\\": $(cat {value})}}"\n')
    repo.sensor("b", counting(b_runs, "# looopbot:interval=3600\n") + "echo '{\"b\": true}'\n")
    repo.git("add", "sensors")
    repo.git("commit", "-qm", "sensors")
    repo.decide(NOOP)
    assert repo.tick().code == 0
    assert snapshot(repo, "sensor-a") == {"v": 1}
    value.write_text("2")
    head, before = repo.head(), tree_state(repo.root)

    r = repo.run("sensor", "run")
    assert r.code == 0, r.err
    printed = r.json()
    assert printed["sensor-a"] == {"v": 2}
    assert printed["sensor-b"] == {"b": True}  # run now, whatever its interval
    assert runs(a_runs) == 2 and runs(b_runs) == 2

    r = repo.run("sensor", "run", "a")
    assert r.code == 0, r.err
    assert r.json() == {"sensor-a": {"v": 2}}
    assert runs(a_runs) == 3 and runs(b_runs) == 2

    r = repo.run("sensor", "run", "nope")
    assert r.code == 1 and "nope" in r.err

    assert snapshot(repo, "sensor-a") == {"v": 1}
    assert tree_state(repo.root) == before
    assert repo.head() == head
    assert repo.status_porcelain() == ""
    assert repo.calls() == 1


def test_sensor_list_json(repo: Repo) -> None:
    repo.sensor("every", "#!/usr/bin/env bash\n# looopbot:interval=600\necho 1\n")
    repo.sensor("plain", "echo 1\n", executable=False)
    (repo.root / "sensors" / "README.md").write_text("not a sensor\n")
    r = repo.run("sensor", "list", "--json")
    assert r.code == 0, r.err
    assert r.json() == {
        "sensors": [
            {"name": "every", "path": "sensors/every.sh", "interval": 600, "executable": True},
            {"name": "plain", "path": "sensors/plain.sh", "interval": None, "executable": False},
        ]
    }
