"""`looopbot claim` / `unclaim` end to end: the installed CLI as real, racing processes."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import BIN, Repo

from looopbot.datadir import DataDir, locate
from looopbot.workers import identity, record
from looopbot.workers.identity import Identity

RACERS = 8

# Each racer announces itself, waits for the barrier file, then becomes the real CLI: all
# eight are past interpreter start-up and released together.
RACER = """
import os, sys, time
ready, barrier, *argv = sys.argv[1:]
open(ready, "w").close()
while not os.path.exists(barrier):
    time.sleep(0.001)
os.execv(argv[0], argv)
"""


def dd_of(repo: Repo) -> DataDir:
    return locate(str(repo.root))


def worker(dd: DataDir, wid: str, *, live: bool = True) -> None:
    """A real worker record whose supervisor is this test process, or a process long gone."""
    if live:
        sup = identity.of(os.getpid())
    else:
        gone = subprocess.Popen(["true"])
        gone.wait()
        sup = Identity(pid=gone.pid, start="x")
    record.write(
        dd,
        record.Worker(
            id=wid,
            state="running",
            command="true",
            branch=record.branch(wid),
            base="0" * 40,
            base_branch="master",
            started_at=time.time(),
            supervisor=sup,
        ),
    )


def claim_refs(repo: Repo) -> list[str]:
    out = repo.git("for-each-ref", "--format=%(refname)", "refs/heads/looopbot/")
    return out.split()


def claim_json(repo: Repo, name: str) -> dict[str, object]:
    doc: dict[str, object] = json.loads(repo.git("show", f"looopbot/claim/{name}:claim.json"))
    return doc


def race(repo: Repo, tmp_path: Path, argvs: list[list[str]]) -> list[tuple[int, str, str]]:
    """Start one CLI process per argv, release them together, return (code, out, err)."""
    script = tmp_path / "racer.py"
    script.write_text(RACER)
    barrier = tmp_path / "go"
    barrier.unlink(missing_ok=True)
    procs = []
    readies = []
    for i, argv in enumerate(argvs):
        ready = tmp_path / f"ready-{i}"
        ready.unlink(missing_ok=True)
        readies.append(ready)
        procs.append(
            subprocess.Popen(
                [sys.executable, script, ready, barrier, BIN, "-C", repo.root, *argv],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env={**os.environ, **repo.env},
            )
        )
    while not all(r.exists() for r in readies):
        time.sleep(0.005)
    barrier.touch()
    results = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        results.append((p.returncode, out, err))
    return results


@pytest.mark.parametrize("round_", range(3))
def test_eight_processes_race_for_one_claim_and_exactly_one_wins(
    repo: Repo, tmp_path: Path, round_: int
) -> None:
    dd = dd_of(repo)
    for i in range(RACERS):
        worker(dd, f"w{i}")  # every racer is a live holder: no claim is ever stale here
    results = race(repo, tmp_path, [["claim", "db", "--session", f"w{i}"] for i in range(RACERS)])

    winners = [i for i, (code, _, _) in enumerate(results) if code == 0]
    assert len(winners) == 1, results
    holder = f"w{winners[0]}"
    assert results[winners[0]][1].startswith(f"claimed db for {holder}")
    for i, (code, out, err) in enumerate(results):
        if i != winners[0]:
            assert code == 1, (code, err)
            assert out == ""
            assert err.startswith(f"looopbot: db is claimed by {holder}"), err
    assert claim_refs(repo) == ["refs/heads/looopbot/claim/db"]
    assert claim_json(repo, "db")["holder"] == holder
    assert not list((repo.root / ".git").rglob("*.lock"))  # no lock left behind


def test_eight_processes_race_to_reclaim_a_stale_claim_and_exactly_one_wins(
    repo: Repo, tmp_path: Path
) -> None:
    dd = dd_of(repo)
    worker(dd, "gone", live=False)
    for i in range(RACERS):
        worker(dd, f"w{i}")
    assert repo.run("claim", "db", "--session", "gone").code == 0
    stale = repo.git("rev-parse", "looopbot/claim/db").strip()

    results = race(repo, tmp_path, [["claim", "db", "--session", f"w{i}"] for i in range(RACERS)])

    winners = [i for i, (code, _, _) in enumerate(results) if code == 0]
    assert len(winners) == 1, results  # the compare-and-swap on the old commit lets one in
    holder = f"w{winners[0]}"
    assert all(
        err.startswith(f"looopbot: db is claimed by {holder}")
        for i, (_, _, err) in enumerate(results)
        if i != winners[0]
    ), results
    assert claim_json(repo, "db")["holder"] == holder
    assert repo.git("rev-parse", "looopbot/claim/db").strip() != stale


def test_the_claim_commit_records_holder_host_and_expiry(repo: Repo) -> None:
    before = time.time()
    run = repo.run("claim", "db", "--ttl", "600", env={"LOOOPBOT_SESSION_ID": "w7"})
    after = time.time()
    assert run.code == 0, run.err
    assert run.out.startswith("claimed db for w7")
    assert len(run.out.splitlines()) == 1

    doc = claim_json(repo, "db")
    assert doc["name"] == "db"
    assert doc["holder"] == "w7"  # from $LOOOPBOT_SESSION_ID, as every worker has it
    assert doc["host"] == os.uname().nodename
    assert isinstance(doc["pid"], int)
    claimed_at, expires_at = doc["claimed_at"], doc["expires_at"]
    assert isinstance(claimed_at, float) and isinstance(expires_at, float)
    assert before - 1 <= claimed_at <= after + 1
    assert expires_at == pytest.approx(claimed_at + 600)

    subject, author, parents = repo.git(
        "log", "-1", "--format=%s%n%an <%ae>%n%P", "looopbot/claim/db"
    ).splitlines()
    assert subject == "claim db by w7"
    assert author == "looopbot <looopbot@users.noreply.github.com>"  # config git.author
    assert parents == ""  # a lease, not history: no parent
    assert repo.git("ls-tree", "--name-only", "looopbot/claim/db").split() == ["claim.json"]

    # --session wins over the environment, and "human" is the holder without either.
    assert repo.run("claim", "other", "--session", "w8").out.startswith("claimed other for w8")
    assert repo.run("claim", "third").out.startswith("claimed third for human")


def test_a_claim_of_a_dead_worker_is_reclaimed(repo: Repo) -> None:
    dd = dd_of(repo)
    worker(dd, "w-dead", live=False)
    assert repo.run("claim", "db", "--session", "w-dead").code == 0
    run = repo.run("claim", "db", "--session", "w2")
    assert run.code == 0, run.err
    assert claim_json(repo, "db")["holder"] == "w2"


def test_an_expired_claim_is_reclaimed(repo: Repo) -> None:
    dd = dd_of(repo)
    worker(dd, "w2")
    assert repo.run("claim", "db", "--ttl", "1").code == 0  # held by "human": only expiry frees it
    expires_at = claim_json(repo, "db")["expires_at"]
    assert isinstance(expires_at, float)
    while time.time() <= expires_at:  # wait for the evidence, not for a guessed duration
        time.sleep(0.05)
    run = repo.run("claim", "db", "--session", "w2")
    assert run.code == 0, run.err
    assert claim_json(repo, "db")["holder"] == "w2"


def test_a_live_claim_is_refused_naming_its_holder_and_expiry(repo: Repo) -> None:
    dd = dd_of(repo)
    worker(dd, "w1")
    assert repo.run("claim", "db", "--session", "w1").code == 0
    sha = repo.git("rev-parse", "looopbot/claim/db")
    run = repo.run("claim", "db")
    assert run.code == 1
    assert run.err.startswith("looopbot: db is claimed by w1 on ")
    assert " until 20" in run.err and "UTC" in run.err
    assert len(run.err.splitlines()) == 1
    assert repo.git("rev-parse", "looopbot/claim/db") == sha


def test_unclaim_by_a_non_holder_is_refused_and_by_the_holder_accepted(repo: Repo) -> None:
    dd = dd_of(repo)
    worker(dd, "w1")
    worker(dd, "w2")
    assert repo.run("claim", "db", "--session", "w1").code == 0

    refused = repo.run("unclaim", "db", "--session", "w2")
    assert refused.code == 1
    assert refused.err.startswith("looopbot: db is claimed by w1")
    assert claim_refs(repo) == ["refs/heads/looopbot/claim/db"]

    done = repo.run("unclaim", "db", env={"LOOOPBOT_SESSION_ID": "w1"})
    assert done.code == 0, done.err
    assert done.out == "unclaimed db\n"
    assert claim_refs(repo) == []

    again = repo.run("unclaim", "db", "--session", "w1")
    assert again.code == 1
    assert again.err == "looopbot: db is not claimed\n"


def test_anyone_may_unclaim_a_stale_claim(repo: Repo) -> None:
    dd = dd_of(repo)
    worker(dd, "w-dead", live=False)
    assert repo.run("claim", "db", "--session", "w-dead").code == 0
    run = repo.run("unclaim", "db")
    assert run.code == 0, run.err
    assert claim_refs(repo) == []


def everything(root: Path) -> dict[str, str]:
    """Every file under the repo, .git included, with a digest: "nothing was written"."""
    out = {}
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            path = Path(dirpath) / name
            out[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@pytest.mark.parametrize(
    ("args"),
    [
        ["claim", "../x"],
        ["claim", "a/b"],
        ["claim", ".hidden"],
        ["claim", "has space"],
        ["claim", "x" * 200],
        ["claim", "name.lock"],
        ["unclaim", "../x"],
        ["unclaim", "a/b"],
        ["claim", "db", "--session", "../evil"],
        ["claim", "db", "--session", "a b"],
        ["unclaim", "db", "--session", ".x"],
        ["claim", "db", "--ttl", "0"],
        ["claim", "db", "--ttl", "nan"],
    ],
)
def test_unsafe_names_sessions_and_ttls_exit_1_and_write_nothing(
    repo: Repo, args: list[str]
) -> None:
    before = everything(repo.root)
    run = repo.run(*args)
    assert run.code == 1, (run.code, run.err)
    assert run.err.startswith("looopbot: ")
    assert len(run.err.splitlines()) == 1
    assert run.out == ""
    assert everything(repo.root) == before  # no ref, no lock, no reflog, no object, no file
    assert claim_refs(repo) == []


def test_claiming_leaves_the_users_tree_index_and_head_alone_and_git_fsck_clean(
    repo: Repo, tmp_path: Path
) -> None:
    dd = dd_of(repo)
    # The user is mid-edit: one change staged, one not.
    repo.write("notes.md", "staged\n")
    repo.git("add", "notes.md")
    repo.write("PLAYBOOK.md", repo.read("PLAYBOOK.md") + "unstaged edit\n")
    head = repo.head()
    branch = repo.git("symbolic-ref", "HEAD")
    commits = repo.commits()
    status = repo.status_porcelain()
    index = (repo.root / ".git/index").read_bytes()
    files = {k: v for k, v in everything(repo.root).items() if not k.startswith(".git/")}

    for i in range(RACERS):
        worker(dd, f"w{i}")
    race(repo, tmp_path, [["claim", "db", "--session", f"w{i}"] for i in range(RACERS)])
    worker(dd, "gone", live=False)
    assert repo.run("claim", "lab", "--session", "gone").code == 0
    assert repo.run("claim", "lab").code == 0  # a reclaim
    assert repo.run("claim", "tmp").code == 0
    assert repo.run("unclaim", "tmp").code == 0

    assert repo.head() == head
    assert repo.commits() == commits  # no beat commit
    assert repo.git("symbolic-ref", "HEAD") == branch
    assert repo.status_porcelain() == status
    assert (repo.root / ".git/index").read_bytes() == index
    now = {k: v for k, v in everything(repo.root).items() if not k.startswith(".git/")}
    assert {k: v for k, v in now.items() if not k.startswith(".looopbot/workers/")} == {
        k: v for k, v in files.items() if not k.startswith(".looopbot/workers/")
    }
    # The losers' commits are dangling objects, which is not damage; anything else is.
    fsck = subprocess.run(
        ["git", "fsck", "--strict", "--no-dangling", "--no-progress"],
        cwd=repo.root,
        capture_output=True,
        text=True,
        check=False,
    )
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    assert fsck.stdout + fsck.stderr == ""
    assert claim_refs(repo) == ["refs/heads/looopbot/claim/db", "refs/heads/looopbot/claim/lab"]
