"""Flapping end to end (DESIGN §5): a sensor's streak counts the beats in a row on which its
signal changed; a beat on which it did not change resets it — whatever woke that beat
(quiet, forced, follow-up, an aged noop, a goal edit) — and FLAPPING SENSORS appears in the
prompt only while a streak is at least `flap_streak`."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from conftest import NOOP, Repo, end_workers, task
from test_sensors import section

STREAK = 3
ENV = {"LOOOPBOT_FLAP_STREAK": str(STREAK)}
TITLE = "FLAPPING SENSORS"


class Flapper:
    """A sensor whose reading changes on every run while `on`, and holds still while not;
    beside it, a sensor that never changes."""

    def __init__(self, repo: Repo, tmp_path: Path) -> None:
        self.repo = repo
        self.switch = tmp_path / "flapping"
        counter = tmp_path / "n"
        counter.write_text("0")
        repo.sensor(
            "flap",
            "#!/usr/bin/env bash\n"
            f"[ -e {self.switch} ] && echo $(( $(cat {counter}) + 1 )) > {counter}\n"
            f'echo "{{\\"n\\": $(cat {counter})}}"\n',
        )
        repo.sensor("calm", "#!/usr/bin/env bash\necho '{\"n\": 0}'\n")
        repo.git("add", "sensors")
        repo.git("commit", "-qm", "human: sensors")

    def on(self) -> None:
        self.switch.touch()

    def off(self) -> None:
        self.switch.unlink(missing_ok=True)


def beat(repo: Repo, *args: str, decision: dict[str, Any] | None = None, **env: str) -> str:
    """One decided beat; the prompt it got."""
    calls = repo.calls()
    repo.decide(decision or NOOP)
    r = repo.tick(*args, env={**ENV, **env})
    assert r.code == 0 and r.json()["outcome"] == "decided", r.out + r.err
    assert repo.calls() == calls + 1
    return repo.prompts()[-1]


def flapping(prompt: str) -> list[str]:
    found = section(prompt, TITLE)
    return [] if found is None else [ln[2:] for ln in found.splitlines() if ln.startswith("- ")]


def flap_until_listed(repo: Repo, sensor: Flapper, last: dict[str, Any] | None = None) -> None:
    """From a reset streak, STREAK changing beats: listed on the last, not before."""
    sensor.on()
    for i in range(STREAK):
        prompt = beat(repo, decision=last if i == STREAK - 1 else None)
        want = ["sensor-flap"] if i == STREAK - 1 else []
        assert flapping(prompt) == want, (i, section(prompt, TITLE))
    sensor.off()


def test_a_flapping_sensor_is_listed_and_any_beat_without_a_change_resets_it(
    repo: Repo, tmp_path: Path
) -> None:
    sensor = Flapper(repo, tmp_path)
    sensor.on()
    first = beat(repo)  # the first reading of everything
    assert flapping(first) == []
    flap_until_listed(repo, sensor)

    # A forced beat on which the reading held still: no longer flapping.
    assert flapping(beat(repo, "--force")) == []

    # A follow-up asked for by the last decision, due after the reading went still.
    flap_until_listed(repo, sensor, last={**NOOP, "next_interval_s": 5})
    quiet = repo.tick(env=ENV)
    assert quiet.json()["outcome"] == "unchanged", quiet.out
    time.sleep(5.1)
    assert flapping(beat(repo)) == [], "follow-up beat"

    # A human's goal edit.
    flap_until_listed(repo, sensor)
    repo.write("goals/new.md", "goal: a human's new goal\n")
    assert flapping(beat(repo)) == [], "goal-edit beat"

    # A noop grown older than limits.noop_ttl.
    flap_until_listed(repo, sensor)
    time.sleep(1.1)
    assert flapping(beat(repo, LOOOPBOT_NOOP_TTL="1")) == [], "noop-TTL beat"

    # Quiet beats (no runner call) between changes break the streak too.
    sensor.on()
    for _ in range(STREAK - 1):
        assert flapping(beat(repo)) == []
    sensor.off()
    assert repo.tick(env=ENV).json()["outcome"] == "unchanged"
    sensor.on()
    assert flapping(beat(repo)) == [], "a streak broken by a quiet beat starts again"
    sensor.off()

    # The steady sensor was never listed; the flapping one was, STREAK beats at a time.
    listed = [flapping(p) for p in repo.prompts()]
    assert all(names in ([], ["sensor-flap"]) for names in listed), listed
    assert sum(names == ["sensor-flap"] for names in listed) == 4


def test_the_loops_own_move_is_no_signal_change(wrepo: Repo) -> None:
    """The worker a decision starts changes sys-workers: that is the move's own doing, not a
    change — the next quiet beat makes no commit, and no streak counts it."""
    repo = wrepo
    try:
        beat(repo)
        start = {"action": "start_worker", "id": "w1", "prompt": task("w1", hang=True)}
        beat(repo, "--force", decision=start)
        state = json.loads(repo.git("show", "HEAD:.looopbot/state.json"))
        head = repo.head()
        for _ in range(2):
            r = repo.tick(env=ENV)
            assert r.json()["outcome"] == "unchanged" and r.json()["commit"] is None, r.out
        assert repo.head() == head, repo.git("show", "--stat", "HEAD")
        assert repo.state() == state
        assert repo.status_porcelain() == ""
    finally:
        end_workers(repo)
