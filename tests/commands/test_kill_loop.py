"""Nothing lost, nothing escapes: beats killed with -9 in every stage, each followed by a
normal beat, while the user keeps a staged and an unstaged edit in the repo (DESIGN §1, §9).

The kills come two ways:
- timed: one unkilled beat of each kind is measured first, and the kills are spread across
  it — sensing (a slow sensor), the runner (it sleeps), ACT (a run_shell that sleeps, a
  write_goal), and, densely, the short tail after ACT where the beat records and commits;
- placed: `kill -9 $PPID` from inside a run_shell (bash's parent is looopbot), and a FIFO
  where looopbot is about to write a file atomically, so it stops exactly there (see
  test_interrupted.py).

After every round: `git fsck` is clean; every move that ran is in HEAD's journal exactly
once (as itself, or as "interrupted: …"), no line is doubled and no ledger row either;
the bot's paths are committed (git status shows only the user's edits, byte for byte as
they were); no temporary file, index copy or lock is left behind.
"""

from __future__ import annotations

import collections
import json
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import Repo, fsck
from gitops import users_notes
from test_interrupted import blocked, pause_before_writing, texts
from test_robustness import Committed, commit_sensors, end_leftovers, marked, popen, wait_for

SLEEP = 0.3  # each slow stage: sensing, the runner, the run_shell
# Placed kills that stop a beat while its move is on record: it must reach the journal.
PLACED_ON_RECORD = {
    "snapshots/sys-goals.json",
    ".looopbot/state.json",
    *(f"goals/g{i}.md" for i in range(4)),
}
BOT_PATHS = ("journal.md", "snapshots", ".looopbot/state.json", ".looopbot/cost.jsonl", "goals")


@dataclass
class Move:
    tag: str  # its unique journal text
    action: str
    want: str  # "once": it ran (or was on record as running); "at-most-once"; "never"


class UserEdits:
    """The user's staged edit of one file and unstaged edit of another, exactly as made."""

    def __init__(self, repo: Repo) -> None:
        users_notes(repo, "staged by the human", "not staged yet")
        self.repo = repo
        self.seen = self.look()
        assert self.seen[0] and self.seen[1]

    def look(self) -> tuple[str, ...]:
        repo = self.repo
        return (
            repo.git("diff", "--cached", "--", "user"),
            repo.git("diff", "--", "user"),
            repo.read("user/staged.txt"),
            repo.read("user/unstaged.txt"),
            repo.git("status", "--porcelain"),
        )

    def check(self, when: str) -> None:
        assert self.look() == self.seen, when


def litter(repo: Repo) -> list[str]:
    """Temporary files, index copies and locks anywhere in the data repo."""
    root = repo.root
    found = [*root.rglob("*.tmp"), *root.rglob("*.lock"), *(root / ".git").glob("looopbot-*")]
    found += [p for p in (root / ".looopbot").glob("pending*")]
    return sorted(str(p.relative_to(root)) for p in found)


def stage_of(repo: Repo, code: int | None) -> str:
    """Where the kill landed, read from the write-ahead record it left (for the report)."""
    if code == 0:
        return "too late: the beat had finished"
    raw = repo.root / ".looopbot" / "pending.json"
    if not raw.exists():
        return "while sensing, nothing written yet"
    doc = json.loads(raw.read_text())
    if doc.get("commit"):
        return "while committing"
    if doc.get("journaled"):
        return "while recording, journaled"
    if doc.get("move"):
        return "while acting, or just after"
    return "while sensing or deciding, snapshots written"


def check_journal(repo: Repo, moves: list[Move], before: int) -> None:
    lines = texts(repo.git("show", "HEAD:journal.md"))[before:]
    count = collections.Counter(lines)
    known: set[str] = set()
    for m in moves:
        interrupted = f"interrupted: {m.action} {m.tag} — it may have run"
        known |= {m.tag, interrupted}
        n = count[m.tag] + count[interrupted]
        if m.want == "once":
            assert n == 1, (m, n, lines)
        elif m.want == "never":
            assert n == 0, (m, lines)
        else:
            assert n <= 1, (m, n, lines)
    for line in lines:
        assert line in known or line.startswith(
            ("recovered the writes of an interrupted beat: ", "ended the runner of an ")
        ), f"unexpected journal line {line!r}"


def check_ledger(repo: Repo) -> None:
    rows = [json.loads(r) for r in repo.git("show", "HEAD:.looopbot/cost.jsonl").splitlines()]
    runs = collections.Counter(row["id"] for row in rows)
    assert all(n == 1 for n in runs.values()), f"doubled ledger rows: {runs}"


def check_git(repo: Repo) -> None:
    fsck(repo.root)
    garbage = repo.git("count-objects", "-v")
    assert "\ngarbage: 0\n" in garbage, garbage
    dirty = repo.git("status", "--porcelain", "--", *BOT_PATHS)
    assert dirty == "", dirty


@pytest.mark.slow
def test_kill_9_in_every_stage_loses_nothing_and_nothing_escapes(
    repo: Repo, tmp_path: Path
) -> None:
    reading, slow, ran = tmp_path / "reading", tmp_path / "slow", tmp_path / "ran"
    act_end = tmp_path / "act-end"
    reading.write_text("0")
    repo.sensor(
        "slow",
        f"#!/usr/bin/env bash\n[ -e {slow} ] && sleep {SLEEP}\n"
        f'echo "{{\\"signal\\": $(cat {reading})}}"\n',
    )
    repo.sensor("fast", "#!/usr/bin/env bash\necho '{\"ok\": true}'\n")
    commit_sensors(repo)
    user = UserEdits(repo)
    committed = Committed(repo)
    journal = repo.root / "journal.md"
    start_lines = len(texts(journal.read_text())) if journal.exists() else 0
    moves: list[Move] = []
    stages: collections.Counter[str] = collections.Counter()
    last_stage = ["(none)"]

    def decision(kind: str, tag: str, n: int) -> dict[str, Any]:
        if kind == "shell":
            cmd = f"echo {tag} >> {ran}; sleep {SLEEP}; date +%s.%N > {act_end}"
            return {"action": "run_shell", "cmd": cmd, "reason": "r", "journal": tag}
        if kind == "goal":
            body = f"goal: {tag}\n" + "detail\n" * 40
            return {"action": "write_goal", "id": f"g{n % 4}", "body": body, "journal": tag}
        return {"action": "noop", "reason": "r", "journal": tag}

    def ran_it(kind: str, tag: str, n: int) -> bool:
        """Evidence, outside looopbot, that the killed beat's move was executed."""
        if kind == "shell":
            return ran.exists() and tag in ran.read_text().split()
        goal = repo.root / "goals" / f"g{n % 4}.md"
        return kind == "goal" and goal.exists() and tag in goal.read_text()

    def settle_leftovers(tag: str) -> None:
        """Let what the killed beat started (sensors, runner, shell; each sleeps at most
        SLEEP) run out; an answer no runner took is removed, so the queue holds exactly
        the next beat's."""
        end = time.monotonic() + 5
        while marked(tag) and time.monotonic() < end:
            time.sleep(0.02)
        end_leftovers(tag)
        for leftover in (repo.fake / "queue").glob("*.json"):
            leftover.unlink()

    def normal(n: int) -> None:
        slow.unlink(missing_ok=True)
        tag = f"normal-{n}"
        kind = ("noop", "goal", "shell-quick")[n % 3]
        if kind == "shell-quick":
            d: dict[str, Any] = {"action": "run_shell", "cmd": "true", "reason": "r"}
            d["journal"] = tag
        else:
            d = decision(kind, tag, n)  # a goal the killed beat may have written, uncommitted
        repo.queue({"stdout": json.dumps(d)})
        r = repo.tick("--force")
        assert r.code == 0, (n, r.out, r.err)
        assert r.json()["outcome"] == "decided", r.out
        moves.append(Move(tag, d["action"], "once"))
        try:
            check_git(repo)
            check_journal(repo, moves, start_lines)
            check_ledger(repo)
            user.check(f"round {n}")
            assert litter(repo) == [], litter(repo)
            committed.check()
        except AssertionError as exc:
            log = repo.git("log", "--format=%h %s", "-3")
            raise AssertionError(f"round {n}, after a kill {last_stage[0]}: {exc}\n{log}") from exc

    def killed_beat(n: int, kind: str, *, after: float | None, fifo: str | None = None) -> None:
        tag = f"killed-{n}-{kind}"
        reading.write_text(str(n))
        d = decision(kind, tag, n)
        if kind == "self":  # the move kills looopbot itself, mid-ACT
            cmd = f"echo {tag} >> {ran}; kill -9 $PPID"
            d = {"action": "run_shell", "cmd": cmd, "reason": "r", "journal": tag}
        if kind == "touch-self":  # ... after touching a file
            cmd = f"touch {tmp_path}/touched-{n}; echo {tag} >> {ran}; kill -9 $PPID"
            d = {"action": "run_shell", "cmd": cmd, "reason": "r", "journal": tag}
        timed = after is not None
        if timed:
            slow.touch()
        else:
            slow.unlink(missing_ok=True)
        repo.queue({"stdout": json.dumps(d), "sleep": SLEEP if timed else 0})
        btag = f"{tmp_path.name}-{n}"
        beat = popen(repo, "tick", "--force", env={"LB_TEST_TAG": btag})
        if fifo is not None:
            pause_before_writing(repo, fifo, beat)
            wait_for("the paused write", lambda: blocked(beat) or beat.poll() is not None)
            assert beat.poll() is None, beat.communicate()
        elif after is not None:
            time.sleep(after)
        if kind.endswith("self"):
            beat.wait(timeout=30)  # its own move kills it
        elif beat.poll() is None:
            beat.send_signal(signal.SIGKILL)
        beat.communicate()
        last_stage[0] = stage_of(repo, beat.returncode)
        stages[last_stage[0]] += 1
        if kind in ("self", "touch-self"):
            assert beat.returncode == -signal.SIGKILL
        assert beat.returncode in (0, -signal.SIGKILL), beat.returncode
        settle_leftovers(btag)
        executed = ran_it("shell" if kind.endswith("self") else kind, tag, n)
        if beat.returncode == 0 or executed or fifo in PLACED_ON_RECORD:
            want = "once"
        elif fifo == ".looopbot/pending.json":
            want = "never"  # stopped before its runner was asked
        else:
            want = "at-most-once"
        moves.append(Move(tag, d["action"], want))
        if kind == "touch-self":
            assert (tmp_path / f"touched-{n}").exists()

    # Measure one unkilled beat of each kind: its span and how long its recording takes.
    spans: dict[str, float] = {}
    tail = 0.0
    for n, kind in enumerate(("shell", "goal", "noop")):
        slow.touch()
        reading.write_text(f"-{n}")
        tag = f"measured-{kind}"
        d = decision(kind, tag, n)
        repo.queue({"stdout": json.dumps(d), "sleep": SLEEP})
        start = time.monotonic()
        assert repo.tick("--force").code == 0
        spans[kind] = time.monotonic() - start
        moves.append(Move(tag, d["action"], "once"))
        if kind == "shell":
            tail = max(time.time() - float(act_end.read_text()), 0.02)
    check_git(repo)

    n = 0
    placed = [
        ("self", None),
        ("goal", "snapshots/sys-goals.json"),  # after write_goal, before its journal line
        ("touch-self", None),
        ("goal", ".looopbot/state.json"),  # in RECORD, after the journal line
        ("goal", "goals/g{n}.md"),  # inside the move's own atomic write
        ("noop", ".looopbot/pending.json"),  # its first write-ahead record
    ]
    fractions = (0.03, 0.2, 0.4, 0.6, 0.8, 0.95)  # across sensing, the runner, ACT
    tail_steps = (1.2, 0.8, 0.55, 0.3, 0.1)  # the recording tail, back from the end
    timed_kills = 0
    for kind in ("shell", "goal", "noop"):
        work = spans[kind] - tail
        offsets = [work * f for f in fractions] + [spans[kind] - tail * s for s in tail_steps]
        for after in offsets:
            n += 1
            killed_beat(n, kind, after=after)
            timed_kills += 1
            normal(n)
            if placed and n % 5 == 0:
                pkind, fifo = placed.pop(0)
                n += 1
                if fifo is not None:
                    fifo = fifo.replace("{n}", str(n % 4))
                killed_beat(n, pkind, after=None, fifo=fifo)
                normal(n)
    assert not placed
    print(f"\nkills by stage: {dict(stages)}")
    assert timed_kills >= 20
    assert sum(stages.values()) - stages[stage_of(repo, 0)] >= 20, stages
    # Every move that ran is in the journal: the last word, after the loop.
    check_journal(repo, moves, start_lines)
