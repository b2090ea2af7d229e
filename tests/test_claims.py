"""Named claims through the library API, on real data repos (DESIGN §8 "Named claims").

Time is passed in (`now`), so expiry is proven without waiting; liveness is proven with real
worker records whose supervisor identity is this very process (alive) or a pid + start time
that matches no process (dead, and a reused pid would not fool it either).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest
from conftest import Repo

from looopbot.datadir import DataDir, locate
from looopbot.errors import LooopbotError
from looopbot.workers import claims, identity, record
from looopbot.workers.identity import Identity

T = 1_700_000_000.0
DAY = 86400.0


def dd_of(repo: Repo) -> DataDir:
    return locate(str(repo.root))


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def worker(dd: DataDir, wid: str, *, live: bool = True, state: str = "running") -> None:
    """A real worker record: its supervisor is this test process (live) or a dead identity."""
    me = identity.of(os.getpid())
    assert me is not None
    sup = me if live else Identity(pid=dead_pid(), start="x")
    record.write(
        dd,
        record.Worker(
            id=wid,
            state=state,
            command="true",
            branch=record.branch(wid),
            base="0" * 40,
            base_branch="master",
            started_at=T,
            supervisor=sup,
        ),
    )


def ref(repo: Repo, name: str) -> str | None:
    out = repo.git("rev-parse", "-q", "--verify", f"refs/heads/looopbot/claim/{name}", check=False)
    return out.strip() or None


def claim_json(repo: Repo, name: str) -> dict[str, object]:
    doc: dict[str, object] = json.loads(repo.git("show", f"looopbot/claim/{name}:claim.json"))
    return doc


def test_free_then_renewed_by_its_holder_then_refused_to_another(repo: Repo) -> None:
    dd = dd_of(repo)
    worker(dd, "w-live")
    first = claims.claim(dd, "db", "human", DAY, T)
    assert (first.name, first.holder, first.expires_at) == ("db", "human", T + DAY)
    assert ref(repo, "db") == first.commit

    again = claims.claim(dd, "db", "human", DAY, T + 100)  # the holder renews by CAS
    assert again.holder == "human"
    assert again.expires_at == T + 100 + DAY
    assert ref(repo, "db") == again.commit != first.commit

    with pytest.raises(claims.Held) as exc:
        claims.claim(dd, "db", "w-live", DAY, T + 200)
    assert "claimed by human" in exc.value.message
    assert exc.value.claim.commit == again.commit
    assert ref(repo, "db") == again.commit  # the refused claimer changed nothing


def test_a_claim_held_by_a_dead_worker_is_reclaimed(repo: Repo) -> None:
    dd = dd_of(repo)
    worker(dd, "w-dead", live=False)
    worker(dd, "w-live")
    old = claims.claim(dd, "db", "w-dead", DAY, T)
    assert claims.is_stale(dd, old, T + 1)  # its supervisor is gone: stale long before expiry

    new = claims.claim(dd, "db", "w-live", DAY, T + 1)
    assert new.holder == "w-live"
    assert ref(repo, "db") == new.commit != old.commit
    assert not claims.is_stale(dd, new, T + 2)


def test_a_pid_reused_by_a_live_process_does_not_keep_a_dead_holder(repo: Repo) -> None:
    dd = dd_of(repo)
    # This very pid is alive, but with another start time: a different process.
    record.write(
        dd,
        record.Worker(
            "w-reused", "running", "true", record.branch("w-reused"), "0" * 40, "master", T,
            supervisor=Identity(pid=os.getpid(), start="not-my-start"),
        ),
    )  # fmt: skip
    held = claims.claim(dd, "db", "w-reused", DAY, T)
    assert claims.is_stale(dd, held, T)


@pytest.mark.parametrize(
    ("holder", "setup", "stale"),
    [
        ("human", None, False),  # a human only expires
        ("w-live", "live", False),
        ("w-exited", "exited", True),  # a finished worker holds nothing
        ("alice", None, False),  # no worker record (a person via --session): only expires
        ("w-garbled", "garbled", False),  # unreadable record: fail closed, keep the lease
    ],
)
def test_staleness_by_holder(repo: Repo, holder: str, setup: str | None, stale: bool) -> None:
    dd = dd_of(repo)
    if setup == "live":
        worker(dd, holder)
    elif setup == "exited":
        worker(dd, holder, state="exited")
    elif setup == "garbled":
        path = record.paths(dd, holder).state
        path.parent.mkdir(parents=True)
        path.write_text("{not json")
    held = claims.claim(dd, "res", holder, DAY, T)
    assert claims.is_stale(dd, held, T + 1) is stale
    assert claims.is_stale(dd, held, T + DAY)  # and everyone expires


def test_an_expired_claim_is_reclaimed_and_not_before(repo: Repo) -> None:
    dd = dd_of(repo)
    worker(dd, "w-live")
    claims.claim(dd, "db", "human", 1, T)
    with pytest.raises(claims.Held):
        claims.claim(dd, "db", "w-live", DAY, T + 0.5)
    taken = claims.claim(dd, "db", "w-live", DAY, T + 1)
    assert taken.holder == "w-live"
    assert claim_json(repo, "db")["holder"] == "w-live"


def test_unclaim_only_by_the_holder_or_when_stale(repo: Repo) -> None:
    dd = dd_of(repo)
    worker(dd, "w-live")
    worker(dd, "w-other")
    with pytest.raises(LooopbotError, match="db is not claimed"):
        claims.unclaim(dd, "db", "human", T)

    held = claims.claim(dd, "db", "w-live", DAY, T)
    with pytest.raises(claims.Held, match="claimed by w-live"):
        claims.unclaim(dd, "db", "w-other", T + 1)
    assert ref(repo, "db") == held.commit
    claims.unclaim(dd, "db", "w-live", T + 1)
    assert ref(repo, "db") is None

    claims.claim(dd, "db", "human", 10, T)
    claims.unclaim(dd, "db", "w-other", T + 10)  # expired: anyone may clear it
    assert ref(repo, "db") is None


def test_reap_stale_removes_only_stale_claims(repo: Repo) -> None:
    dd = dd_of(repo)
    worker(dd, "w-live")
    worker(dd, "w-dead", live=False)
    claims.claim(dd, "fresh", "human", DAY, T)
    claims.claim(dd, "expired", "human", 10, T)
    claims.claim(dd, "dead-holder", "w-dead", DAY, T)
    claims.claim(dd, "live-holder", "w-live", DAY, T)

    assert claims.reap_stale(dd, T + 10) == ["dead-holder", "expired"]
    assert [c.name for c in claims.list_claims(dd)] == ["fresh", "live-holder"]
    assert ref(repo, "expired") is None and ref(repo, "dead-holder") is None
    assert claims.reap_stale(dd, T + 10) == []


def test_signal_is_claims_sorted_by_name_with_their_holders(repo: Repo) -> None:
    dd = dd_of(repo)
    assert claims.signal(dd) == []
    for name, holder in (("zeta", "human"), ("alpha", "w1"), ("mid.dle", "w2")):
        claims.claim(dd, name, holder, DAY, T)
    assert claims.signal(dd) == [
        {"name": "alpha", "holder": "w1"},
        {"name": "mid.dle", "holder": "w2"},
        {"name": "zeta", "holder": "human"},
    ]
    listed = claims.list_claims(dd)
    assert [c.commit for c in listed] == [ref(repo, n) for n in ("alpha", "mid.dle", "zeta")]


def test_a_hand_made_branch_is_a_stale_claim_and_nested_refs_are_not_claims(repo: Repo) -> None:
    dd = dd_of(repo)
    repo.git("branch", "looopbot/claim/byhand", "HEAD")  # no claim.json in its tree
    repo.git("branch", "looopbot/claim/nest/deep", "HEAD")  # not a claim name at all
    (found,) = claims.list_claims(dd)
    assert (found.name, found.holder) == ("byhand", "?")
    assert claims.is_stale(dd, found, T)
    assert claims.claim(dd, "byhand", "human", DAY, T).holder == "human"
    assert claims.reap_stale(dd, T + 2 * DAY) == ["byhand"]
    assert ref(repo, "nest/deep") is not None  # never touched


def test_packed_claims_are_held_renewed_and_removed(repo: Repo) -> None:
    dd = dd_of(repo)
    worker(dd, "w-live")
    held = claims.claim(dd, "db", "human", DAY, T)
    repo.git("pack-refs", "--all")
    assert not (repo.root / ".git/refs/heads/looopbot/claim/db").exists()

    with pytest.raises(claims.Held):  # create-if-absent sees the packed ref
        claims.claim(dd, "db", "w-live", DAY, T + 1)
    assert claims.claim(dd, "db", "human", DAY, T + 1).commit != held.commit  # CAS on packed
    claims.unclaim(dd, "db", "human", T + 2)
    assert ref(repo, "db") is None
    assert "looopbot/claim" not in (repo.root / ".git/packed-refs").read_text()


@pytest.mark.parametrize(
    "name", ["../x", "a/b", ".hidden", "has space", "x" * 200, "a.lock", "end.", "", "a\nb"]
)
def test_unsafe_names_build_no_ref(repo: Repo, name: str) -> None:
    dd = dd_of(repo)
    for call in (
        lambda: claims.claim(dd, name, "human", DAY, T),
        lambda: claims.unclaim(dd, name, "human", T),
    ):
        with pytest.raises(LooopbotError, match="claim name"):
            call()
    assert repo.git("for-each-ref", "refs/heads/looopbot/") == ""
    assert not (repo.root / ".git/refs/heads/looopbot").exists()


@pytest.mark.parametrize("holder", ["../w", "a/b", "", ".x"])
def test_unsafe_holders_are_refused(repo: Repo, holder: str) -> None:
    with pytest.raises(LooopbotError, match="session"):
        claims.claim(dd_of(repo), "db", holder, DAY, T)
    assert repo.git("for-each-ref", "refs/heads/looopbot/") == ""


@pytest.mark.parametrize("ttl", [0, -1, float("nan"), float("inf")])
def test_a_ttl_must_be_a_positive_number(repo: Repo, ttl: float) -> None:
    with pytest.raises(LooopbotError, match="ttl"):
        claims.claim(dd_of(repo), "db", "human", ttl, T)
    assert ref(repo, "db") is None


def test_outside_a_git_repo_claims_are_an_error_and_none_are_listed(tmp_path: Path) -> None:
    dd = DataDir(root=tmp_path, repo_root=None)
    assert claims.list_claims(dd) == []
    (tmp_path / "looopbot.yaml").write_text("runner: example\n")
    with pytest.raises(LooopbotError, match="not in a git repository"):
        claims.claim(dd, "db", "human", DAY, T)


def _racer(root: str, me: str, names: list[str], barrier: Barrier, out: str) -> None:
    """One forked process: for each name, wait for all racers, then claim it."""
    dd = locate(root)
    lines = []
    for name in names:
        barrier.wait()
        try:
            won = claims.claim(dd, name, me, DAY, T).holder == me
            lines.append(f"{name} won\n")
            assert won
        except claims.Held as exc:
            lines.append(f"{name} lost-to {exc.claim.holder}\n")
    Path(out).write_text("".join(lines))


@pytest.mark.parametrize("taken_by_the_dead", [False, True])
def test_racing_processes_released_by_a_barrier_never_both_win(
    repo: Repo, tmp_path: Path, taken_by_the_dead: bool
) -> None:
    # Imports done and the barrier passed, racers meet within microseconds: a check-then-write
    # claim (or a reclaim that is not a compare-and-swap) would let two in on some names.
    dd = dd_of(repo)
    racers = [f"w{i}" for i in range(8)]
    for wid in racers:
        worker(dd, wid)
    names = [f"res{i}" for i in range(25)]
    if taken_by_the_dead:
        worker(dd, "gone", live=False)
        for name in names:
            claims.claim(dd, name, "gone", DAY, T)
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(len(racers), timeout=60)
    procs = [
        ctx.Process(target=_racer, args=(str(repo.root), wid, names, barrier, tmp_path / wid))
        for wid in racers
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    results = {wid: (tmp_path / wid).read_text().splitlines() for wid in racers}
    for i, name in enumerate(names):
        lines = {wid: results[wid][i] for wid in racers}
        winners = [wid for wid, line in lines.items() if line == f"{name} won"]
        assert len(winners) == 1, lines
        assert all(
            line == f"{name} lost-to {winners[0]}"
            for wid, line in lines.items()
            if wid != winners[0]
        ), lines
        assert claim_json(repo, name)["holder"] == winners[0]


def _claim_one(root: str, name: str, barrier: Barrier) -> None:
    barrier.wait()
    claims.claim(locate(root), name, "human", DAY, T)


def test_first_claims_of_different_names_at_once_all_succeed(repo: Repo) -> None:
    # In a fresh repo each winner also creates the reflog's folders: two doing so at once
    # must not make either claim fail.
    names = [f"n{i}" for i in range(8)]
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(len(names), timeout=60)
    procs = [ctx.Process(target=_claim_one, args=(str(repo.root), n, barrier)) for n in names]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * len(names)
    assert [c.name for c in claims.list_claims(dd_of(repo))] == names
