"""Claims across clones with push on (issue 7, DESIGN §8, §9): the remote decides who holds a
lease. Clones race for a name at the same instant, over and over; a claim taken elsewhere
shows in `sys-claims` after the next beat's fetch; release and reclaim go through with a
lease on the exact commit they read, so a claim that changed meanwhile is never clobbered.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import time
from pathlib import Path

import pytest
from conftest import BIN, NOOP, Repo, git
from gitops import clone, published

CLONES = 6
TRIALS = 50
CLAIMS = "refs/heads/looopbot/claim/"
PUSH = {"LOOOPBOT_PUSH": "1"}


def race(tmp_path: Path, argvs: list[tuple[Repo, list[str]]]) -> list[tuple[int, str, str]]:
    """One CLI process per (clone, argv), released at once: each waits in open(2) on a FIFO
    until the test opens it for writing, which lets every reader through together (a shell
    waits for it: no second interpreter start-up per racer, so 50 rounds stay quick). The
    writer stays open until all are through, so one a hair late is not shut out."""
    gate = tmp_path / "gate"
    gate.unlink(missing_ok=True)
    os.mkfifo(gate)
    procs, readies, through = [], [], []
    for i, (repo, argv) in enumerate(argvs):
        ready, past = tmp_path / f"ready-{i}", tmp_path / f"through-{i}"
        for marker in (ready, past):
            marker.unlink(missing_ok=True)
        readies.append(ready)
        through.append(past)
        line = shlex.join([str(BIN), "-C", str(repo.root), *argv])
        q = shlex.quote
        script = f": > {q(str(ready))}; : < {q(str(gate))}; : > {q(str(past))}; exec {line}"
        procs.append(
            subprocess.Popen(
                ["sh", "-c", script],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env={**os.environ, **repo.env, **PUSH},
            )
        )
    while not all(r.exists() for r in readies):
        time.sleep(0.002)
    with open(gate, "w"):
        while not all(p.exists() for p in through):
            time.sleep(0.002)
    results = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        results.append((p.returncode, out, err))
    return results


def on_remote(remote: Path, name: str) -> dict[str, object] | None:
    found = git(remote, "show", f"{CLAIMS}{name}:claim.json", check=False)
    return json.loads(found) if found else None


@pytest.mark.slow
def test_clones_racing_for_a_claim_get_exactly_one_winner_every_time(tmp_path: Path) -> None:
    _seed, remote = published(tmp_path)
    clones = [clone(tmp_path, remote, f"c{i}", depth=1) for i in range(CLONES)]
    watcher = clone(tmp_path, remote, "watcher", depth=1)
    names = [f"res{k}" for k in range(TRIALS)]
    holders = {}
    for name in names:
        results = race(
            tmp_path, [(c, ["claim", name, "--session", f"c{i}"]) for i, c in enumerate(clones)]
        )
        winners = [i for i, (code, _, _) in enumerate(results) if code == 0]
        assert len(winners) == 1, (name, results)
        holder = f"c{winners[0]}"
        assert results[winners[0]][1].startswith(f"claimed {name} for {holder}")
        for i, (code, out, err) in enumerate(results):
            if i != winners[0]:
                assert (code, out) == (1, ""), (name, i, code, err)
                assert err.startswith(f"looopbot: {name} is claimed by {holder} on "), err
                assert len(err.splitlines()) == 1
        remote_claim = on_remote(remote, name)
        assert remote_claim is not None and remote_claim["holder"] == holder
        holders[name] = holder

    # Taken elsewhere, seen here after the next beat's fetch.
    assert watcher.run("claim", "res0", "--session", "watcher").code == 0  # push off: local
    watcher.decide(NOOP)
    beat = watcher.tick("--push")
    assert beat.code == 0, beat.err
    signal = json.loads(watcher.read("snapshots/sys-claims.json"))
    signal = signal.get("signal", signal)
    assert signal == [{"name": n, "holder": holders[n]} for n in sorted(names)]

    # Released only by its holder, with a lease: a loser cannot, the holder can.
    name = names[0]
    winner = int(holders[name][1:])
    loser = clones[(winner + 1) % CLONES]
    refused = loser.run("unclaim", name, "--session", f"c{(winner + 1) % CLONES}", env=PUSH)
    assert refused.code == 1
    assert refused.err.startswith(f"looopbot: {name} is claimed by {holders[name]}")
    assert on_remote(remote, name) is not None
    done = clones[winner].run("unclaim", name, "--session", holders[name], env=PUSH)
    assert done.code == 0, done.err
    assert on_remote(remote, name) is None
    assert git(remote, "rev-parse", "--verify", "-q", f"{CLAIMS}{name}", check=False) == ""


def test_a_stale_claim_is_reclaimed_by_a_lease_on_its_exact_commit(tmp_path: Path) -> None:
    _seed, remote = published(tmp_path)
    git(remote, "config", "core.logAllRefUpdates", "always")
    a, b = (clone(tmp_path, remote, name, depth=1) for name in ("a", "b"))
    assert a.run("claim", "db", "--session", "wa", "--ttl", "1", env=PUSH).code == 0
    stale = git(remote, "rev-parse", f"{CLAIMS}db").strip()
    expires = on_remote(remote, "db")
    assert expires is not None
    while time.time() <= float(str(expires["expires_at"])):  # the evidence, not a guess
        time.sleep(0.05)
    taken = b.run("claim", "db", "--session", "wb", env=PUSH)
    assert taken.code == 0, taken.err
    claim = on_remote(remote, "db")
    assert claim is not None and claim["holder"] == "wb"
    # One update on the remote, from exactly the stale commit to b's: compare-and-swap.
    log = (remote / "logs" / f"{CLAIMS}db").read_text().splitlines()
    old, new = log[-1].split()[:2]
    assert old == stale and new == git(remote, "rev-parse", f"{CLAIMS}db").strip()


@pytest.mark.parametrize("move", ["unclaim", "claim"])
def test_a_release_or_reclaim_loses_to_a_reclaim_that_landed_meanwhile(
    tmp_path: Path, move: str
) -> None:
    """a's claim expired. a releases it (or c reclaims it) — and b reclaims it after that
    one read the remote, before its update goes out. The update holds a lease on the commit
    it read, so b's claim stays. (Once a push has connected, git's own protocol compares
    the old value; the lease covers the time before: here, fetching the claim it had not
    seen yet.)"""
    _seed, remote = published(tmp_path)
    a, b, c = (clone(tmp_path, remote, name, depth=1) for name in ("a", "b", "c"))
    assert a.run("claim", "db", "--session", "wa", "--ttl", "1", env=PUSH).code == 0
    expires = on_remote(remote, "db")
    assert expires is not None
    while time.time() <= float(str(expires["expires_at"])):
        time.sleep(0.05)
    actor, session = (a, "wa") if move == "unclaim" else (c, "wc")
    # It fetches the claim now (neither it nor its mirror of the remote's is here).
    actor.git("update-ref", "-d", f"{CLAIMS}db", check=False)
    actor.git("update-ref", "-d", "refs/remotes/origin/looopbot/claim/db", check=False)
    armed = tmp_path / "armed"
    armed.touch()
    hook = actor.root / ".git" / "hooks" / "reference-transaction"
    reclaim = shlex.join([str(BIN), "-C", str(b.root), "claim", "db", "--session", "wb"])
    hook.write_text(
        f'#!/bin/sh\ninput=$(cat)\n[ "$1" = committed ] && [ -e {armed} ] || exit 0\n'
        # the claim's fetch lands in the mirror, refs/remotes/origin/looopbot/claim/db
        f'case "$input" in *looopbot/claim/db*) ;; *) exit 0 ;; esac\nrm {armed}\n'
        f"LOOOPBOT_PUSH=1 {reclaim} >> {tmp_path}/reclaim.log 2>&1\n"
    )
    hook.chmod(0o755)
    run = actor.run(move, "db", "--session", session, env=PUSH)
    assert not armed.exists(), "the hook never ran"
    assert "claimed db for wb" in (tmp_path / "reclaim.log").read_text()
    assert run.code == 1
    assert run.err.startswith("looopbot: db is claimed by wb"), run.err
    claim = on_remote(remote, "db")
    assert claim is not None and claim["holder"] == "wb"


def test_human_on_another_machine_is_someone_else(tmp_path: Path) -> None:
    """Without --session the holder is "human" everywhere: a claim of that name made on
    another host (here: written there and pushed) is not renewed by this one."""
    repo, remote = published(tmp_path)
    now = time.time()
    doc = {
        "name": "db",
        "holder": "human",
        "host": "elsewhere.example",
        "pid": 1,
        "claimed_at": now,
        "expires_at": now + 3600,
    }
    blob = subprocess.run(
        ["git", "hash-object", "-w", "--stdin"],
        cwd=remote,
        input=json.dumps(doc),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    tree = subprocess.run(
        ["git", "mktree"],
        cwd=remote,
        input=f"100644 blob {blob}\tclaim.json\n",
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    commit = git(remote, "commit-tree", tree, "-m", "claim db by human").strip()
    git(remote, "update-ref", f"{CLAIMS}db", commit)
    run = repo.run("claim", "db", env=PUSH)
    assert run.code == 1, run.out
    assert "human on elsewhere.example" in run.err
    assert git(remote, "rev-parse", f"{CLAIMS}db").strip() == commit


def test_a_claim_taken_before_push_was_on_survives_the_first_pushed_beat(
    tmp_path: Path,
) -> None:
    """Nothing deletes what nobody released: a beat's fetch mirrors the remote's claims,
    but a local claim the remote never had stays, and still holds against others."""
    repo, remote = published(tmp_path)
    assert repo.run("claim", "db", "--session", "alice").code == 0  # push off: local only
    repo.decide(NOOP)
    assert repo.tick("--push").code == 0  # the flag alone turns push on
    assert repo.git("for-each-ref", "--format=%(refname)", CLAIMS).split() == [f"{CLAIMS}db"]
    bob = repo.run("claim", "db", "--session", "bob", env=PUSH)
    assert bob.code == 1 and "alice" in bob.err, bob.err
    # alice, with push on, shares it: the remote now decides.
    assert repo.run("claim", "db", "--session", "alice", env=PUSH).code == 0
    assert on_remote(remote, "db")["holder"] == "alice"  # type: ignore[index]
    assert repo.run("unclaim", "db", "--session", "alice", env=PUSH).code == 0
    assert on_remote(remote, "db") is None


def test_a_claim_released_on_another_clone_goes_here_at_the_next_fetch(tmp_path: Path) -> None:
    repo, remote = published(tmp_path)
    other = clone(tmp_path, remote, "other")
    assert repo.run("claim", "db", "--session", "alice", env=PUSH).code == 0
    other.decide(NOOP)
    assert other.tick("--push").code == 0
    assert other.git("for-each-ref", "--format=%(refname)", CLAIMS).split() == [f"{CLAIMS}db"]
    assert repo.run("unclaim", "db", "--session", "alice", env=PUSH).code == 0
    other.decide(NOOP)
    assert other.tick("--push", "--force").code == 0
    assert other.git("for-each-ref", "--format=%(refname)", CLAIMS).strip() == ""


def test_a_hand_made_ref_under_the_claims_does_not_stop_claims_following(
    tmp_path: Path,
) -> None:
    repo, remote = published(tmp_path)
    other = clone(tmp_path, remote, "other")
    assert repo.run("claim", "team", "--session", "alice").code == 0  # here only
    # Someone pushes a branch that is no claim, and could not sit beside `team` here.
    git(remote, "update-ref", f"{CLAIMS}team/x", repo.head())
    assert other.run("claim", "cache", "--session", "carol", env=PUSH).code == 0
    repo.decide(NOOP)
    assert repo.tick("--push").code == 0
    names = repo.git("for-each-ref", "--format=%(refname)", CLAIMS).split()
    assert names == [f"{CLAIMS}cache", f"{CLAIMS}team"], names
