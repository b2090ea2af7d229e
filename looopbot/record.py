"""RECORD: the one step that turns what happened into the journal line, the ledger row, the
state update and the commit (DESIGN §1, §9).

Every writer goes through here — a beat, a move made by hand (`goal`, `playbook`, `sensor
write`, `answer`, `worker start|stop`), `init` — so each gets the same write-ahead record
(looopbot.changes), the same redaction, the same trailers and the same commit. Whatever
must follow a commit (a push, a dashboard update) hooks in at `record`, not in its callers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import NamedTuple

from looopbot.changes import Changes, Move
from looopbot.config import Config
from looopbot.datadir import DataDir
from looopbot.fsutil import COARSE_CLOCK_S
from looopbot.journal import format_line
from looopbot.ledger import Row
from looopbot.redact import redactor

JOURNAL = "journal.md"
LEDGER = ".looopbot/cost.jsonl"
STATE = ".looopbot/state.json"


class Entry(NamedTuple):
    """What one record says: its outcome, journal line and new state."""

    outcome: (
        str  # decided | failed | unchanged | backoff | capped | budget | paused | manual | init
    )
    run_id: str
    subject: str  # the commit subject after "looopbot: <head> · "
    head: str = ""  # the subject's first word: the action, else the outcome
    journal: str | None = None  # the journal line's text (redacted here)
    action: str | None = None  # the Looopbot-Action trailer
    world: str | None = None
    cost_usd: float | None = None
    state: str | None = None  # the new state file's text; None: unchanged


def start(dd: DataDir) -> Changes:
    """A new record, taking over whatever a killed one left (looopbot.changes). A commit it
    left in flight is settled first, so this record knows what is really still pending."""
    if (dd.meta / "advance.json").exists():
        from looopbot.advance import recover

        recover(dd)  # a branch move a kill cut short: HEAD, index and files in step first
    changes = Changes(dd)
    changes.recover()
    if changes.commit_intent is not None:
        from looopbot.gitindex import IndexLocked
        from looopbot.gitstore import finish_interrupted

        # Busy index: the commit step settles it later, under the same lock.
        with contextlib.suppress(IndexLocked):
            finish_interrupted(dd, changes)
    return changes


def meter(changes: Changes, row: Row) -> None:
    """The ledger row of a metered run, written as soon as the spend happened: a beat killed
    after its runner still counts against the budget."""
    changes.append(LEDGER, row.to_json())


def record(
    dd: DataDir,
    config: Config,
    changes: Changes,
    entry: Entry,
    now: float,
    *,
    notes: Sequence[str] = (),
    asides: Sequence[str] = (),
) -> str | None:
    """Journal, state and commit; returns the commit id (None: nothing changed).

    `asides` are journal lines worth keeping only on a record that commits anyway (an
    unreachable remote): a quiet loop stays silent in git."""
    scrub = redactor()
    while changes.interrupted:
        # Off the record in the same write that puts its line on: killed in between, the
        # next record finds one or the other, never both nor neither.
        move = changes.interrupted.pop(0)
        changes.append(JOURNAL, format_line(scrub(interrupted(move)), now))
    for note in notes:
        changes.append(JOURNAL, format_line(scrub(note), now))
    if entry.journal is not None:
        changes.append(JOURNAL, format_line(scrub(entry.journal), now), journal=True)
    if entry.state is not None:
        changes.write(STATE, entry.state)
    if changes.paths:
        for aside in asides:
            changes.append(JOURNAL, format_line(scrub(aside), now))
    if not changes.paths and changes.commit_intent is None:
        changes.done()  # a quiet beat: no commit, and no git library loaded
        return None
    from looopbot.config import author_identity
    from looopbot.gitstore import Trailers, commit_changes, message

    trailers = Trailers(
        run=entry.run_id,
        outcome=entry.outcome,
        action=entry.action,
        world=entry.world,
        cost_usd=entry.cost_usd,
    )
    head = entry.head or entry.outcome
    msg = message(f"looopbot: {head} · {scrub(entry.subject)}", trailers)
    if changes.recovered or changes.commit_intent is not None:
        # A killed record died before this one could even start Python (tens of ms).
        _drop_abandoned_object_locks(dd, changes.started - COARSE_CLOCK_S)
    return commit_changes(dd, changes, msg, author_identity(config.author))


def interrupted(move: Move) -> str:
    """The journal text of a move a killed record started and never journaled: the line the
    move would have written (its journal text, else its summary), named by its action."""
    said = move.summary if move.summary.startswith(move.action) else f"{move.action} {move.summary}"
    return f"interrupted: {said} — it may have run"


def _drop_abandoned_object_locks(dd: DataDir, before: float) -> None:
    """dulwich writes each loose object through `objects/xx/<sha>.lock`; a record killed
    mid-write leaves one, which git reports as garbage (`git count-objects -v`) and which
    only a write of that very object would clear. Called when this record takes a killed
    one over, for locks older than this record: that record's (we hold the beat lock it
    held). A live writer — a claim — holds one only for the moment of one write."""
    from looopbot.gitstate import git_dir

    if dd.repo_root is None:
        return
    gitdir = git_dir(dd.repo_root)
    common = gitdir / "commondir"  # a linked worktree shares its main repo's objects
    if common.is_file():
        gitdir = (gitdir / common.read_text().strip()).resolve()
    for lock in (gitdir / "objects").glob("[0-9a-f][0-9a-f]/*.lock"):
        sha = lock.name[: -len(".lock")]
        if len(sha) != 38 or any(c not in "0123456789abcdef" for c in sha):
            continue
        with contextlib.suppress(OSError):
            if lock.stat().st_mtime < before:
                lock.unlink()


__all__ = ["Changes", "Entry", "Move", "meter", "record", "start"]
