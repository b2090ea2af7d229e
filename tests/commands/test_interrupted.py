"""A beat killed with -9 at a chosen point, and what the next beat makes of it (DESIGN §1,
§6, §9): an executed move always reaches the journal ("interrupted: … — it may have run",
exactly once), what the move wrote is committed, a runner left behind is ended and its late
decision never executed, and the killed beat's temporary files are cleaned.

The points are chosen deterministically, with no timing:
- `kill -9 $PPID` inside a run_shell: bash's parent is looopbot, killed mid-ACT;
- a FIFO where looopbot is about to write a file atomically (`.<name>.<pid>.tmp` beside
  it): opening a FIFO for writing blocks until a reader comes, so the beat stops exactly
  there, and is killed there. Nothing of looopbot is replaced; it is the file system.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from conftest import NOOP, Repo, end_workers, is_dead, task, wait_dead, wait_state
from test_robustness import end_leftovers, marked, popen, runner_started, wait_for

INTERRUPTED = "interrupted: "
MAY_HAVE_RUN = " — it may have run"


def texts(journal: str) -> list[str]:
    """The journal's lines without their `- YYYY-MM-DD HH:MM ` stamp."""
    return [line.split(" ", 3)[3] for line in journal.splitlines() if line.startswith("- ")]


def head_journal(repo: Repo) -> list[str]:
    return texts(repo.git("show", "HEAD:journal.md"))


def interrupted_lines(repo: Repo, action: str) -> list[str]:
    return [
        t
        for t in head_journal(repo)
        if t.startswith(f"{INTERRUPTED}{action} ") and t.endswith(MAY_HAVE_RUN)
    ]


def pause_before_writing(repo: Repo, rel: str, beat: subprocess.Popen[str]) -> Path:
    """Make the beat stop when it atomically writes `rel`: a FIFO at its temporary name."""
    target = repo.root / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    fifo = target.with_name(f".{target.name}.{beat.pid}.tmp")
    os.mkfifo(fifo)
    return fifo


OPENAT = {"x86_64": "257", "aarch64": "56"}.get(os.uname().machine)


def blocked(beat: subprocess.Popen[str]) -> bool:
    """The beat waits, in open(2), for a reader of a FIFO."""
    proc = Path(f"/proc/{beat.pid}")
    try:
        if (proc / "wchan").read_text() == "wait_for_partner":
            return True
        # A kernel that hides wchan: the same openat(2) call, still there a moment later.
        first = (proc / "syscall").read_text()
        if first.split(" ", 1)[0] != OPENAT:
            return False
        time.sleep(0.2)
        return (proc / "syscall").read_text() == first
    except OSError:
        return False


def kill_when_paused(beat: subprocess.Popen[str]) -> None:
    wait_for("the beat to reach the paused write", lambda: blocked(beat) or beat.poll() is not None)
    assert beat.poll() is None, f"the beat ended instead of pausing: {beat.communicate()}"
    beat.send_signal(signal.SIGKILL)
    beat.communicate()
    assert beat.returncode == -signal.SIGKILL


def tmp_litter(repo: Repo) -> list[str]:
    """Temporary files of atomic writes, or copies of the index, left anywhere."""
    found = [p for p in repo.root.rglob("*.tmp")]
    found += list((repo.root / ".git").glob("looopbot-index.*"))
    return sorted(str(p.relative_to(repo.root)) for p in found)


def settle(repo: Repo) -> None:
    """One beat so the snapshots are committed and the next ones start from quiet."""
    repo.decide({**NOOP, "journal": "settle"})
    assert repo.tick().json()["outcome"] == "decided"
    assert repo.status_porcelain() == ""


# --- an executed move always reaches the journal -------------------------------------------


def test_a_write_goal_killed_before_its_record_is_journaled_and_its_goal_committed(
    repo: Repo,
) -> None:
    settle(repo)
    body = "goal: ship the release\n"
    repo.decide({"action": "write_goal", "id": "ship", "body": body, "journal": "wrote ship"})
    beat = popen(repo, "tick", "--force")
    # After the move, the beat rewrites the sys-goals snapshot (the goal was just acted on):
    # it stops there — the goal is written, its journal line is not.
    fifo = pause_before_writing(repo, "snapshots/sys-goals.json", beat)
    kill_when_paused(beat)
    assert repo.read("goals/ship.md") == body, "the move ran"
    assert "wrote ship" not in repo.read("journal.md")
    assert "goals/ship.md" not in repo.git("ls-tree", "-r", "--name-only", "HEAD")

    repo.decide({**NOOP, "journal": "the next beat"})
    r = repo.tick("--force")
    assert r.code == 0 and r.json()["outcome"] == "decided", r.out + r.err
    lines = interrupted_lines(repo, "write_goal")
    assert lines == [f"{INTERRUPTED}write_goal wrote ship{MAY_HAVE_RUN}"], head_journal(repo)
    assert sum("wrote ship" in t for t in head_journal(repo)) == 1
    assert repo.git("show", "HEAD:goals/ship.md") == body, "what the move wrote is committed"
    assert not fifo.exists() and tmp_litter(repo) == []
    assert repo.status_porcelain() == ""
    # ... and only once: the beat after does not journal it again.
    repo.decide({**NOOP, "journal": "and the one after"})
    assert repo.tick("--force").json()["outcome"] == "decided"
    assert len(interrupted_lines(repo, "write_goal")) == 1


def test_a_run_shell_that_kills_looopbot_is_journaled_as_interrupted_once(
    repo: Repo, tmp_path: Path
) -> None:
    settle(repo)
    ran = tmp_path / "ran"
    cmd = f"echo yes > {ran}; kill -9 $PPID"  # bash -c's parent is looopbot itself
    repo.decide({"action": "run_shell", "cmd": cmd, "reason": "r", "journal": "the fatal shell"})
    killed = repo.tick("--force")
    assert killed.code == -signal.SIGKILL, killed
    assert ran.read_text() == "yes\n"
    repo.decide({**NOOP, "journal": "after the shell"})
    r = repo.tick("--force")
    assert r.code == 0 and r.json()["outcome"] == "decided", r.out + r.err
    assert interrupted_lines(repo, "run_shell") == [
        f"{INTERRUPTED}run_shell the fatal shell{MAY_HAVE_RUN}"
    ]
    assert sum("the fatal shell" in t for t in head_journal(repo)) == 1
    assert "after the shell" in head_journal(repo)
    assert repo.status_porcelain() == ""
    repo.decide(NOOP)
    assert repo.tick("--force").json()["outcome"] == "decided"
    assert len(interrupted_lines(repo, "run_shell")) == 1


def test_an_interrupted_move_survives_a_second_killed_beat(repo: Repo, tmp_path: Path) -> None:
    """The beat that takes a killed move over can be killed too, before it journals it: the
    move must still reach the journal, once, on the beat after."""
    settle(repo)
    cmd = f"echo yes > {tmp_path / 'ran'}; kill -9 $PPID"
    repo.decide({"action": "run_shell", "cmd": cmd, "reason": "r", "journal": "first victim"})
    assert repo.tick("--force").code == -signal.SIGKILL
    # The second beat gets as far as its runner and is killed there. A human's new goal
    # changes the sys-goals snapshot, so it has written a pending record of its own by then.
    repo.write("goals/nudge.md", "goal: something new\n")
    tag = f"{tmp_path.name}-second"
    repo.queue({"stdout": json.dumps({**NOOP, "journal": "second victim"}), "sleep": 30})
    second = popen(repo, "tick", "--force", env={"LB_TEST_TAG": tag})
    try:
        wait_for("the second beat's runner", runner_started(repo, 3))
        second.send_signal(signal.SIGKILL)
        second.communicate()
    finally:
        if second.poll() is None:
            second.kill()
            second.wait()
        end_leftovers(tag)
    repo.decide({**NOOP, "journal": "third time lucky"})
    r = repo.tick("--force")
    assert r.code == 0 and r.json()["outcome"] == "decided", r.out + r.err
    journal = head_journal(repo)
    assert interrupted_lines(repo, "run_shell") == [
        f"{INTERRUPTED}run_shell first victim{MAY_HAVE_RUN}"
    ], journal
    assert sum("first victim" in t for t in journal) == 1
    assert not any("second victim" in t for t in journal), "that move never ran"
    assert repo.status_porcelain() == "?? goals/nudge.md\n"


def test_a_start_worker_killed_before_its_record_is_journaled(wrepo: Repo) -> None:
    repo = wrepo
    settle(repo)
    repo.decide(
        {
            "action": "start_worker",
            "id": "w1",
            "prompt": task("w1", hang=True),
            "journal": "started w1",
        }
    )
    beat = popen(repo, "tick", "--force")
    # The worker runs; then the beat rewrites the sys-workers snapshot, and stops there.
    fifo = pause_before_writing(repo, "snapshots/sys-workers.json", beat)
    try:
        kill_when_paused(beat)
        assert wait_state(repo, "w1", "running")["state"] == "running"
        repo.decide({**NOOP, "journal": "after the start"})
        r = repo.tick("--force")
        assert r.code == 0 and r.json()["outcome"] == "decided", r.out + r.err
        assert interrupted_lines(repo, "start_worker") == [
            f"{INTERRUPTED}start_worker started w1{MAY_HAVE_RUN}"
        ], head_journal(repo)
        workers = json.loads(repo.git("show", "HEAD:snapshots/sys-workers.json"))["signal"]
        assert [(w["id"], w["state"]) for w in workers] == [("w1", "running")]
        assert not fifo.exists() and tmp_litter(repo) == []
        assert repo.status_porcelain() == ""
    finally:
        if beat.poll() is None:
            beat.kill()
            beat.wait()
        end_workers(repo)


def test_a_beat_killed_after_its_journal_line_commits_it_without_an_interrupted_line(
    repo: Repo,
) -> None:
    settle(repo)
    repo.decide({"action": "write_goal", "id": "g", "body": "goal: g\n", "journal": "wrote g"})
    beat = popen(repo, "tick", "--force")
    # RECORD: the journal line is appended, then the state file is written atomically.
    fifo = pause_before_writing(repo, ".looopbot/state.json", beat)
    kill_when_paused(beat)
    assert texts(repo.read("journal.md"))[-1] == "wrote g"
    repo.decide({**NOOP, "journal": "next"})
    r = repo.tick("--force")
    assert r.code == 0 and r.json()["outcome"] == "decided", r.out + r.err
    journal = head_journal(repo)
    assert journal.count("wrote g") == 1
    assert not any(t.startswith(INTERRUPTED) for t in journal), journal
    assert repo.git("show", "HEAD:goals/g.md") == "goal: g\n"
    assert not fifo.exists() and tmp_litter(repo) == []
    assert repo.status_porcelain() == ""


def test_a_refused_move_by_hand_is_not_journaled_later_as_interrupted(repo: Repo) -> None:
    """A move refused with a message was not interrupted: the next beat must not say it
    "may have run"."""
    repo.write("goals/setup.md", "goal: my own edit\n")
    r = repo.run("goal", "write", "setup", "goal: by hand")
    assert r.code == 1 and "refused" in r.err, r.err
    repo.decide({**NOOP, "journal": "next"})
    assert repo.tick().json()["outcome"] == "decided"
    journal = head_journal(repo)
    assert not any(t.startswith(INTERRUPTED) for t in journal), journal
    assert repo.read("goals/setup.md") == "goal: my own edit\n"


def test_a_beat_killed_while_moving_head_leaves_no_lock_in_the_next_beats_way(repo: Repo) -> None:
    """Killed inside dulwich's compare-and-swap of the branch: its `<ref>.lock` is held, still
    empty (the new id sits in a write buffer until the lock is closed). The next beat —
    at once, not seconds later — must clear it and commit what the killed one wrote."""
    settle(repo)
    branch = repo.git("symbolic-ref", "HEAD").strip()
    reflog = repo.root / ".git" / "logs" / branch
    kept = reflog.read_bytes()
    head = repo.head()
    repo.decide({"action": "write_goal", "id": "g", "body": "goal: g\n", "journal": "wrote g"})
    beat = popen(repo, "tick", "--force")
    # dulwich appends to the branch's reflog while it holds the ref's lock: stop it there.
    reflog.unlink()
    os.mkfifo(reflog)
    try:
        kill_when_paused(beat)
    finally:
        reflog.unlink()
        reflog.write_bytes(kept)
    lock = repo.root / ".git" / f"{branch}.lock"
    assert lock.exists() and lock.read_bytes() == b"", "killed holding the empty ref lock"
    assert repo.head() == head
    repo.decide({**NOOP, "journal": "next"})
    r = repo.tick("--force")
    assert r.code == 0 and r.json()["outcome"] == "decided", r.out + r.err
    assert not lock.exists()
    journal = head_journal(repo)
    assert journal.count("wrote g") == 1 and "next" in journal, journal
    assert repo.git("show", "HEAD:goals/g.md") == "goal: g\n"
    assert repo.status_porcelain() == ""


def test_a_beat_killed_while_preparing_the_index_loses_nothing(repo: Repo, tmp_path: Path) -> None:
    """Killed while git prepares the new index (just before HEAD moves, so that the index
    follows HEAD at once): the commit did not land; the next beat makes it, with its own
    writes, each journal line once. (A kill after HEAD moved: test_record.py.)"""
    settle(repo)
    armed = tmp_path / "armed"
    # A user's git hook, run by the `git update-index` that prepares the index copy: it
    # kills looopbot, git's parent.
    hook = repo.root / ".git" / "hooks" / "post-index-change"
    hook.write_text(
        "#!/bin/sh\n"
        f'case "$GIT_INDEX_FILE" in *looopbot-index.*) [ -e {armed} ] && rm {armed} && '
        "kill -9 $(cut -d' ' -f4 /proc/$PPID/stat) ;; esac\nexit 0\n"
    )
    hook.chmod(0o755)
    armed.touch()
    before = repo.head()
    repo.decide({"action": "write_goal", "id": "g", "body": "goal: g\n", "journal": "wrote g"})
    killed = repo.tick("--force")
    assert killed.code == -signal.SIGKILL, killed
    assert not armed.exists()
    assert repo.head() == before, "HEAD moves only once the index is ready"
    repo.decide({**NOOP, "journal": "next"})
    r = repo.tick("--force")
    assert r.code == 0 and r.json()["outcome"] == "decided", r.out + r.err
    assert r.json()["commit"] == repo.head() != before
    journal = head_journal(repo)
    assert journal.count("wrote g") == 1 and journal.count("next") == 1, journal
    assert repo.git("show", "HEAD:goals/g.md") == "goal: g\n"
    assert repo.status_porcelain() == ""


def test_a_runner_left_by_a_killed_beat_is_ended_and_its_late_decision_never_runs(
    repo: Repo, tmp_path: Path
) -> None:
    settle(repo)
    late = {"action": "write_goal", "id": "late", "body": "goal: late\n", "journal": "LATE"}
    escaped = tmp_path / "escaped.pid"
    # The killed beat's runner sleeps, then writes its decision file. A grandchild that left
    # its process group (setsid) writes one too, after the next beat has begun: it outlives
    # any group kill, so what protects us is where it writes — its own run's folder.
    spawn = (
        "setsid bash -c 'echo $$ > "
        + str(escaped)
        + '; sleep 1; printf %s "$LATE" > "$LOOOPBOT_DECISION_FILE"\''
        + " </dev/null >/dev/null 2>&1 &"
    )
    repo.queue(
        {
            "spawn": spawn,
            "sleep": 30,
            "decision_file": json.dumps(late),
            "stdout": json.dumps(late),
        }
    )
    tag = tmp_path.name
    beat = popen(repo, "tick", "--force", env={"LB_TEST_TAG": tag, "LATE": json.dumps(late)})
    try:
        wait_for("the runner", runner_started(repo, 2))
        wait_for("the escaped writer", lambda: escaped.exists() and escaped.read_text() != "")
        beat.send_signal(signal.SIGKILL)
        beat.communicate()
        writer = int(escaped.read_text())
        group = [p for p in marked(tag) if os.getpgid(p) != writer]
        assert group, "the killed beat's runner is still running"

        repo.decide({**NOOP, "journal": "after the kill"})
        r = repo.tick("--force")
        assert r.code == 0 and r.json()["outcome"] == "decided", r.out + r.err
        assert wait_dead(group) == [], "the next beat ended the runner's whole group"
        journal = head_journal(repo)
        ended = [t for t in journal if t.startswith("ended the runner of an interrupted beat")]
        assert len(ended) == 1, journal

        # The escaped writer does write its decision (into the killed run's folder).
        def written() -> list[Path]:
            found = (repo.root / ".looopbot").rglob("decision.json")
            return [p for p in found if "LATE" in p.read_text()]

        wait_for("the late decision", lambda: bool(written()) and is_dead(writer))
        assert len(written()) == 1
        for n in range(2):
            repo.decide({**NOOP, "journal": f"beat {n} after the late decision"})
            r = repo.tick("--force")
            assert r.code == 0 and r.json()["outcome"] == "decided", r.out + r.err
            assert r.json()["action"] == "noop"
    finally:
        if beat.poll() is None:
            beat.kill()
            beat.wait()
        end_leftovers(tag)
    assert not (repo.root / "goals" / "late.md").exists()
    assert "goals/late.md" not in repo.git("log", "--all", "--name-only", "--format=")
    assert not any("LATE" in t for t in head_journal(repo))
    assert repo.status_porcelain() == ""


# --- the temporary files of a killed beat ---------------------------------------------------


def test_a_write_playbook_killed_inside_its_atomic_write_leaves_no_litter(repo: Repo) -> None:
    settle(repo)
    playbook = repo.read("PLAYBOOK.md")
    repo.decide({"action": "write_playbook", "body": "# new rules\n", "journal": "new rules"})
    beat = popen(repo, "tick", "--force")
    fifo = pause_before_writing(repo, "PLAYBOOK.md", beat)
    kill_when_paused(beat)
    assert fifo.exists() and repo.read("PLAYBOOK.md") == playbook
    repo.decide({**NOOP, "journal": "after"})
    r = repo.tick("--force")
    assert r.code == 0 and r.json()["outcome"] == "decided", r.out + r.err
    assert not fifo.exists() and tmp_litter(repo) == []
    # It never wrote: "may have run" is all that can be said, and the file is as it was.
    assert interrupted_lines(repo, "write_playbook") == [
        f"{INTERRUPTED}write_playbook new rules{MAY_HAVE_RUN}"
    ]
    assert repo.git("show", "HEAD:PLAYBOOK.md") == playbook
    assert repo.status_porcelain() == ""


def test_a_beat_killed_writing_its_first_pending_record_leaves_no_litter(repo: Repo) -> None:
    settle(repo)
    repo.write("goals/nudge.md", "goal: a change to snapshot\n")
    repo.decide({**NOOP, "journal": "never asked"})
    beat = popen(repo, "tick")
    fifo = pause_before_writing(repo, ".looopbot/pending.json", beat)
    kill_when_paused(beat)
    assert repo.calls() == 1, "killed before its runner"
    r = repo.tick()
    assert r.code == 0 and r.json()["outcome"] == "decided", r.out + r.err
    assert not fifo.exists() and tmp_litter(repo) == []
    assert repo.status_porcelain() == "?? goals/nudge.md\n"


def test_a_beat_killed_keeping_the_runners_decision_leaves_no_litter(repo: Repo) -> None:
    settle(repo)
    runs = repo.root / ".looopbot" / "runs"
    before = set(runs.iterdir())
    repo.queue({"stdout": json.dumps({**NOOP, "journal": "kept"}), "sleep": 1})
    beat = popen(repo, "tick", "--force")
    # The decision printed on stdout is kept as the run's decision.json: stop it there.
    wait_for("the run folder", lambda: bool(set(runs.iterdir()) - before))
    (run,) = set(runs.iterdir()) - before
    fifo = pause_before_writing(repo, str((run / "decision.json").relative_to(repo.root)), beat)
    kill_when_paused(beat)
    repo.decide({**NOOP, "journal": "next"})
    r = repo.tick("--force")
    assert r.code == 0 and r.json()["outcome"] == "decided", r.out + r.err
    assert not fifo.exists() and tmp_litter(repo) == []


def test_a_live_writers_temp_file_is_left_alone(repo: Repo) -> None:
    """Any command writes scratch under .looopbot/: a temp file whose writer still runs may
    be renamed any moment, and is not litter."""
    settle(repo)
    live = repo.root / ".looopbot" / f".config-cache.json.{os.getpid()}.tmp"
    live.write_text("{}")
    repo.write("goals/nudge.md", "goal: wake up\n")
    repo.decide(NOOP)
    assert repo.tick().json()["outcome"] == "decided"
    assert live.read_text() == "{}"


def test_a_killed_commits_leftovers_in_git_are_cleaned_by_the_next_beat(repo: Repo) -> None:
    settle(repo)
    git_dir = repo.root / ".git"
    dead = subprocess.Popen(["true"])
    dead.wait()  # a pid that is gone
    index_copy = git_dir / f"looopbot-index.{dead.pid}"
    index_copy.write_bytes((git_dir / "index").read_bytes())
    # dulwich writes a loose object through `<sha>.lock`; one a killed beat was writing.
    old_lock = git_dir / "objects" / "ab" / ("c" * 38 + ".lock")
    old_lock.parent.mkdir(exist_ok=True)
    old_lock.write_bytes(b"x\x9c half an object")
    # ... left behind by a beat that was killed while committing: its record is pending.
    repo.decide({"action": "write_goal", "id": "g", "body": "goal: g\n", "journal": "wrote g"})
    beat = popen(repo, "tick", "--force")
    pause_before_writing(repo, ".looopbot/state.json", beat)
    kill_when_paused(beat)
    long_ago = time.time() - 60
    os.utime(old_lock, (long_ago, long_ago))
    repo.decide({**NOOP, "journal": "next"})
    r = repo.tick("--force")
    assert r.code == 0 and r.json()["outcome"] == "decided", r.out + r.err
    assert not index_copy.exists()
    assert not old_lock.exists()
    assert sorted(str(p.relative_to(git_dir)) for p in git_dir.rglob("*.lock")) == []
    garbage = repo.git("count-objects", "-v")
    assert "garbage: 0" in garbage, garbage
    assert tmp_litter(repo) == []
    assert repo.status_porcelain() == ""


def test_a_fresh_object_lock_of_another_writer_is_left_alone(repo: Repo) -> None:
    """Only what a killed record abandoned is ours to remove: a lock younger than the beat
    that takes a killed record over may belong to a live writer (a claim)."""
    settle(repo)
    repo.decide({"action": "write_goal", "id": "g", "body": "goal: g\n", "journal": "wrote g"})
    beat = popen(repo, "tick", "--force")
    pause_before_writing(repo, ".looopbot/state.json", beat)
    kill_when_paused(beat)
    repo.decide({**NOOP, "journal": "next"})
    # Made while the next beat runs (its sensor does it): after that beat began.
    live_lock = repo.root / ".git" / "objects" / "cd" / ("e" * 38 + ".lock")
    repo.sensor(
        "writer",
        f"#!/usr/bin/env bash\nmkdir -p {live_lock.parent}; : > {live_lock}\necho 1\n",
    )
    r = repo.tick("--force")
    assert r.code == 0 and r.json()["outcome"] == "decided", r.out + r.err
    assert live_lock.exists()
    live_lock.unlink()
