"""Beat commits while other processes use the same repo (DESIGN §9): a held index.lock, one
left by a killed looopbot, humans committing in a loop, a branch moved without the index.

Nothing may be lost either way: a beat that cannot commit leaves its writes pending and the
next beat commits them, once; HEAD only ever moves by compare-and-swap, so no other
process's commit is overwritten; and the index follows every bot commit, so no human commit
reverts one.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from conftest import Repo, fsck

from looopbot.gitindex import LOCK_WAIT_S
from looopbot.workers import identity


def timed_tick(repo: Repo, *args: str) -> tuple[int, str, str, float]:
    start = time.monotonic()
    r = repo.tick(*args)
    return r.code, r.out, r.err, time.monotonic() - start


def goal(gid: str, journal: str) -> dict[str, str]:
    return {"action": "write_goal", "id": gid, "body": f"goal: {gid}\n", "journal": journal}


# --- a held index.lock ------------------------------------------------------------------------


def test_a_beat_waits_out_a_held_index_lock_then_leaves_its_writes_to_the_next(
    repo: Repo,
) -> None:
    lock = repo.root / ".git/index.lock"
    held = b"DIRC\x00\x00\x00\x02 the new index of a human's git commit, its editor open"
    lock.write_bytes(held)
    mtime = lock.stat().st_mtime_ns
    head, status = repo.head(), repo.status_porcelain()
    repo.decide(goal("held", "written while the index was locked"))
    code, out, err, took = timed_tick(repo)
    assert code == 1, out + err
    assert f"{lock} is held by another git process" in err, err
    assert LOCK_WAIT_S <= took < LOCK_WAIT_S + 10
    assert repo.head() == head, "a commit was made under someone else's index.lock"
    assert lock.read_bytes() == held and lock.stat().st_mtime_ns == mtime
    assert repo.read("goals/held.md") == "goal: held\n", "the move itself ran"
    assert repo.status_porcelain() != status  # its writes are pending, on disk
    lock.unlink()  # the human's commit is done; they note something and stage it all
    with open(repo.root / "journal.md", "a") as f:
        f.write("- the human's note\n")
    repo.git("add", "-A")
    code, out, err, _ = timed_tick(repo)
    assert code == 0, err
    assert json.loads(out)["outcome"] == "unchanged" and json.loads(out)["commit"] == repo.head()
    assert repo.calls() == 1
    assert repo.git("rev-parse", "HEAD^").strip() == head
    assert repo.git("show", "HEAD:goals/held.md") == "goal: held\n"
    assert "the human's note" not in repo.git("show", "HEAD:journal.md")
    assert repo.status_porcelain() == "M  journal.md\n"  # their note, staged
    repo.git("commit", "-qm", "human: a note")
    assert repo.git("show", "--name-only", "--format=", "HEAD").split() == ["journal.md"]
    journal = repo.git("show", "HEAD:journal.md")
    assert journal == repo.read("journal.md")
    assert journal.count("written while the index was locked") == 1, journal
    assert repo.status_porcelain() == ""
    assert not lock.exists()


def test_an_index_lock_is_cleared_only_once_the_looopbot_named_in_it_is_gone(
    repo: Repo,
) -> None:
    lock = repo.root / ".git/index.lock"
    holder = subprocess.Popen(["sleep", "60"])  # stands in for a looopbot mid-commit
    try:
        ident = identity.of(holder.pid)
        assert ident is not None
        note = f"looopbot-index-lock {ident.pid} {ident.start}\n".encode()
        lock.write_bytes(note)
        head = repo.head()
        repo.decide(goal("first", "while a live looopbot held the lock"))
        code, out, err, took = timed_tick(repo)
        assert code == 1 and "is held by another git process" in err, out + err
        assert took >= LOCK_WAIT_S
        assert repo.head() == head
        assert lock.read_bytes() == note, "the lock of a live holder was touched"
    finally:
        holder.kill()
        holder.wait()
    assert not identity.alive(ident)  # killed, as by kill -9: its lock stays behind
    assert lock.read_bytes() == note
    repo.decide(goal("second", "after it was killed"))
    code, out, err, took = timed_tick(repo, "--force")
    assert code == 0, err
    assert took < LOCK_WAIT_S, "the dead holder's lock was waited out, not cleared"
    assert not lock.exists()
    assert repo.git("rev-parse", "HEAD^").strip() == head
    committed = repo.git("show", "HEAD:journal.md")
    for text in ("while a live looopbot held the lock", "after it was killed"):
        assert committed.count(text) == 1, committed
    assert repo.git("show", "HEAD:goals/first.md") == "goal: first\n"
    assert repo.git("show", "HEAD:goals/second.md") == "goal: second\n"
    assert repo.status_porcelain() == ""


# --- others committing all along -------------------------------------------------------------

# A human at a terminal: edit their own file, `git add`, plain `git commit` (built from the
# index, so it would revert any bot commit the index missed; and it lets go of index.lock
# before it moves the branch, so only the compare-and-swap keeps a beat from overwriting
# it), retried while git is busy. The humans take turns (flock) so that one's `git add` is
# not swept into the other's commit.
HUMAN = r"""
import fcntl, pathlib, subprocess, sys, time
root, name, stop, out, turns = sys.argv[1:6]
def git(*args):
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
def retry(*args):
    for _ in range(2000):
        r = git(*args)
        if r.returncode == 0:
            return
        time.sleep(0.005)
    sys.exit(f"{name}: git {args[0]} kept failing: {r.stdout} {r.stderr}")
n = 0
while not pathlib.Path(stop).exists():
    n += 1
    msg = f"human {name} #{n}"
    with open(turns) as t:
        fcntl.flock(t, fcntl.LOCK_EX)
        pathlib.Path(root, f"{name}.txt").write_text(msg + "\n")
        retry("add", f"{name}.txt")
        retry("commit", "-qm", msg)
    with open(out, "a") as f:
        f.write(msg + "\n")
    time.sleep(0.01)
"""

# Another process that moves the branch without the index (a fetch into it, a tool using
# `git update-ref`): only a compare-and-swap on HEAD keeps its commits from being overwritten.
PLUMBER = r"""
import pathlib, subprocess, sys, time
root, branch, stop, out = sys.argv[1:5]
def git(*args):
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
n = 0
while not pathlib.Path(stop).exists():
    old = git("rev-parse", branch).stdout.strip()
    msg = f"plumber #{n + 1}"
    new = git("commit-tree", f"{old}^{{tree}}", "-p", old, "-m", msg).stdout.strip()
    if git("update-ref", branch, new, old).returncode == 0:
        n += 1
        with open(out, "a") as f:
            f.write(msg + "\n")
    time.sleep(0.01)
"""


def test_head_moves_by_compare_and_swap_while_others_commit(repo: Repo, tmp_path: Path) -> None:
    beats = 12
    names = ("h1", "h2")
    for name in names:  # tracked from the start
        repo.write(f"{name}.txt", "start\n")
    repo.git("add", *(f"{n}.txt" for n in names))
    repo.git("commit", "-qm", "human: start")
    branch = repo.git("symbolic-ref", "HEAD").strip()
    stop, turns = tmp_path / "stop", tmp_path / "turns"
    turns.write_text("")
    outs = {name: tmp_path / f"{name}.out" for name in (*names, "plumber")}
    scripts = [
        [sys.executable, "-c", HUMAN, str(repo.root), name, str(stop), str(outs[name]), str(turns)]
        for name in names
    ]
    scripts.append(
        [sys.executable, "-c", PLUMBER, str(repo.root), branch, str(stop), str(outs["plumber"])]
    )
    others = [subprocess.Popen(argv, stderr=subprocess.PIPE, text=True) for argv in scripts]
    bot_commits: list[str] = []
    try:
        for i in range(beats):
            repo.queue({"stdout": json.dumps(goal(f"g{i}", f"beat {i}")), "sleep": 0.05})
            code, out, err, _ = timed_tick(repo, "--force")
            if code != 0:
                # A beat that met a long-held index lock, or a HEAD that kept moving, fails
                # and the next commits its writes; a branch's ref lock, held for an instant
                # by whoever moves it, is waited out.
                assert "index.lock is held" in err or "HEAD kept moving" in err, err
                continue
            doc = json.loads(out)
            assert doc["outcome"] == "decided", doc
            bot_commits.append(doc["commit"])
    finally:
        stop.write_text("")
        errors = [p.communicate(timeout=30)[1] for p in others]
    assert [p.returncode for p in others] == [0] * len(others), errors
    code, out, err, _ = timed_tick(repo)  # commits whatever a failed last beat left
    assert code == 0, err
    assert len(bot_commits) >= beats // 2, f"only {len(bot_commits)} of {beats} beats committed"
    # every commit of every process is in history, once
    subjects = repo.git("log", "--format=%s").splitlines()
    for name, path in outs.items():
        made = path.read_text().splitlines() if path.exists() else []
        assert len(made) >= 3, f"{name} hardly committed: {made}"
        lost = [m for m in made if subjects.count(m) != 1]
        assert not lost, f"{name}'s commits lost or doubled: {lost}"
    history = set(repo.git("rev-list", "HEAD").split())
    assert set(bot_commits) <= history
    # every beat's writes are in HEAD, each journal line once
    journal = repo.git("show", "HEAD:journal.md")
    for i in range(beats):
        assert journal.count(f"beat {i}\n") == 1, (i, journal)
        assert repo.git("show", f"HEAD:goals/g{i}.md") == f"goal: g{i}\n"
    for name in names:
        last = outs[name].read_text().splitlines()[-1]
        assert repo.git("show", f"HEAD:{name}.txt") == last + "\n"
    assert repo.status_porcelain() == ""
    fsck(repo.root)
