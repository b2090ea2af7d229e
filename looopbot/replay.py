"""Replaying the bot's unpushed commits onto the remote branch: a rebase whose conflicts are
settled by rules, so nothing is lost and nothing is left half-done (DESIGN §9).

Each bot commit C (parent P) is re-applied onto the new tip T path by path, comparing the
three versions of every path C changed:

- T still has P's version: the remote did not touch it, C's change applies as it is;
- T already has C's version: nothing to do;
- both changed it:
  - `journal.md` and the `.jsonl` ledgers are append-only: T's version plus the lines C
    added, so every line of both writers survives, each writer's in its own order (what
    the `merge=union` attribute means for files that only grow) — a side that lacks the
    file counts as empty (two clones' first beats both create it; a human rotated it);
  - `.looopbot/state.json` is the bot's: C's version, if it still parses, else T's —
    keeping the other writer's runner calls of the last hour and goal times (merge_state);
  - `snapshots/` are re-derived every beat: C's (the newer sensing);
  - the desired state and the config (goals, PLAYBOOK, sensors, schedules,
    looopbot.yaml): the remote's version wins — a human changed it — and C's change to it
    is dropped, with a journal line saying so; the next beat re-decides on their version;
  - anything else cannot be classified: nothing moves and the caller fails naming it.

It is done in memory with dulwich (objects only; no ref, index or working file changes
until the caller moves the branch), so a failed or killed replay never leaves the repo
mid-rebase. Commits that end up empty are dropped; the committer is `git.author`, so it
works on a runner with no git identity. (git 2.39's `merge-tree` cannot cherry-pick onto
a given base, and a real `git rebase` needs a clean working tree; the user's uncommitted
edits must stay exactly as they are.)
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

from looopbot.datadir import DataDir
from looopbot.errors import LooopbotError
from looopbot.journal import format_line
from looopbot.redact import redactor

if TYPE_CHECKING:
    from dulwich.objects import Commit, ObjectID
    from dulwich.repo import Repo

_APPENDED = ("journal.md",)
_APPENDED_SUFFIX = ".jsonl"
_BOTS = (".looopbot/state.json",)
_DERIVED = ("snapshots/",)
_DESIRED_FILES = ("PLAYBOOK.md", "looopbot.yaml", "CONSTITUTION.md")
_DESIRED_DIRS = ("goals/", "sensors/", "schedules/")
_BOT_TRAILERS = (b"\nLooopbot-Run: ", b"\nLooopbot-Outcome: ")


class Conflict(LooopbotError):
    def __init__(self, files: Sequence[str]) -> None:
        names = ", ".join(files[:10]) + (f" and {len(files) - 10} more" if len(files) > 10 else "")
        super().__init__(
            f"the remote changed {names} where unpushed bot commits changed it too, in a way "
            "looopbot cannot merge by its rules — nothing was moved; merge by hand "
            "(git pull --rebase) and push"
        )
        self.files = list(files)


class Replayed(NamedTuple):
    tip: str  # the new tip (the remote's own when every commit came out empty)
    commits: int  # commits that were replayed (not empty)
    dropped: list[str]  # repo paths where the remote's version was kept over the bot's


def is_bot(message: bytes) -> bool:
    """A commit looopbot made (a beat, a hand move, init): it carries our trailers."""
    return all(t in message for t in _BOT_TRAILERS)


def _rule(rel: str | None) -> str:
    if rel is None:
        return "other"
    if rel in _APPENDED or rel.endswith(_APPENDED_SUFFIX):
        return "appended"
    if rel in _BOTS:
        return "bot"
    if rel.startswith(_DERIVED):
        return "derived"
    if rel in _DESIRED_FILES or rel.startswith(_DESIRED_DIRS):
        return "desired"
    return "other"


def added_lines(before: bytes, after: bytes) -> list[bytes]:
    """The lines `after` added to `before` (the bot only appends; if it did not, the lines
    that are new, in order)."""
    if after.startswith(before):
        tail = after[len(before) :]
        return tail.splitlines()
    had = set(before.splitlines())
    return [line for line in after.splitlines() if line not in had]


def with_lines(base: bytes, lines: Sequence[bytes], *, keep_repeats: bool = False) -> bytes:
    """`base` plus `lines`, each on its own line — only those it lacks, unless
    `keep_repeats`."""
    if base and not base.endswith(b"\n"):
        base += b"\n"
    present = set() if keep_repeats else set(base.splitlines())
    return base + b"".join(line + b"\n" for line in lines if line not in present)


def replay(
    dd: DataDir,
    repo: Repo,
    commits: Sequence[str],
    onto: str,
    ident: bytes,
    *,
    where: str,
    now: float | None = None,
) -> Replayed:
    """Re-apply `commits` (oldest first, each the child of the one before) onto `onto`.
    Raises Conflict naming the files it cannot merge; stores objects, moves no ref."""
    from dulwich.objects import Commit, ObjectID

    tip = ObjectID(onto.encode())
    made = 0
    dropped: list[str] = []
    for sha in commits:
        commit = repo[ObjectID(sha.encode())]
        assert isinstance(commit, Commit)
        new, lost = _one(dd, repo, commit, tip, ident, where=where, now=now)
        dropped += lost
        if new is not None:
            tip = new
            made += 1
    return Replayed(tip.decode(), made, sorted(set(dropped)))


def _one(
    dd: DataDir,
    repo: Repo,
    commit: Commit,
    tip: ObjectID,
    ident: bytes,
    *,
    where: str,
    now: float | None,
) -> tuple[ObjectID | None, list[str]]:
    from dulwich.diff_tree import tree_changes
    from dulwich.object_store import commit_tree_changes
    from dulwich.objects import Blob, Commit

    store = repo.object_store
    parent = store[commit.parents[0]]
    onto = store[tip]
    assert isinstance(parent, Commit) and isinstance(onto, Commit)
    todo: list[tuple[bytes, int | None, ObjectID | None]] = []
    dropped: list[str] = []
    conflicts: list[str] = []
    for change in tree_changes(store, parent.tree, commit.tree):
        path = change.new.path if change.new is not None and change.new.path else None
        path = path or (change.old.path if change.old is not None else None)
        if path is None:
            continue
        was = _entry(change.old)
        ours = _entry(change.new)
        theirs = _lookup(repo, onto.tree, path)
        if theirs == was:
            todo.append((path, ours[0] if ours else None, ours[1] if ours else None))
            continue
        if theirs == ours:
            continue
        rel = _rel(dd, path)
        rule = _rule(rel)
        if rule == "appended" and ours is not None:
            # A side without the file has no lines: a data repo's journal and ledger are
            # born with the first beat, so two clones' first beats both create them; and a
            # human who rotates the journal away leaves the bot's new lines a new file.
            before = _data(repo, was[1]) if was is not None else b""
            lines = added_lines(before, _data(repo, ours[1]))
            base = _data(repo, theirs[1]) if theirs is not None else b""
            # Every added line, even one the other side has too: two writers who journaled
            # the same words in the same minute wrote two lines, and both must survive.
            blob = Blob.from_string(with_lines(base, lines, keep_repeats=True))
            store.add_object(blob)
            todo.append((path, (theirs or ours)[0], blob.id))
        elif rule == "bot" and ours is not None:
            merged = merge_state(_data(repo, ours[1]), _data(repo, theirs[1]) if theirs else b"")
            if merged is None:
                continue  # the bot's own version does not parse: the remote's stands
            blob = Blob.from_string(merged)
            store.add_object(blob)
            todo.append((path, ours[0], blob.id))
        elif rule == "bot":
            continue  # the bot's own version does not parse: the remote's stands
        elif rule == "derived":
            todo.append((path, ours[0] if ours else None, ours[1] if ours else None))
        elif rule == "desired":
            dropped.append(path.decode("utf-8", errors="replace"))
        else:
            conflicts.append(path.decode("utf-8", errors="replace"))
    if conflicts:
        raise Conflict(sorted(conflicts))
    if dropped:
        todo = _note(dd, repo, onto.tree, todo, dropped, where=where, now=now)
    if not todo:
        return None, dropped
    new_tree = commit_tree_changes(store, onto.tree, todo)
    if new_tree == onto.tree:
        return None, dropped
    from looopbot.gitstore import new_commit

    made = new_commit(new_tree, [tip], ident, "", when=int(time.time()))
    # The author, their time and the message are the original's; only the committer is new.
    made.author = commit.author
    made.author_time = commit.author_time
    made.author_timezone = commit.author_timezone
    made.message = commit.message
    made.encoding = commit.encoding
    store.add_object(made)
    return made.id, dropped


def _note(
    dd: DataDir,
    repo: Repo,
    base_tree: ObjectID,
    todo: list[tuple[bytes, int | None, ObjectID | None]],
    dropped: list[str],
    *,
    where: str,
    now: float | None,
) -> list[tuple[bytes, int | None, ObjectID | None]]:
    """`todo` with a journal line naming each file whose remote version was kept."""
    from dulwich.objects import Blob

    journal = dd.repo_path("journal.md").encode()
    pending = {path: (mode, sha) for path, mode, sha in todo}
    current = pending.get(journal)
    if current is not None and current[1] is not None:
        mode, base = current[0], _data(repo, current[1])
    else:
        found = _lookup(repo, base_tree, journal)
        mode, base = (found[0], _data(repo, found[1])) if found else (0o100644, b"")
    scrub = redactor()
    at = time.time() if now is None else now
    lines = [
        format_line(
            scrub(
                f"kept {where}'s {name}: it changed there while this commit changed it too; "
                "this commit's change to it is dropped and the next beat decides on it again"
            ),
            at,
        ).encode()
        for name in dropped
    ]
    blob = Blob.from_string(with_lines(base, lines))
    repo.object_store.add_object(blob)
    pending[journal] = (mode or 0o100644, blob.id)
    return [(path, mode_, sha) for path, (mode_, sha) in pending.items()]


def _entry(side: object) -> tuple[int, ObjectID] | None:
    mode = getattr(side, "mode", None)
    sha = getattr(side, "sha", None)
    return (mode, sha) if mode is not None and sha is not None else None


def _lookup(repo: Repo, tree: ObjectID, path: bytes) -> tuple[int, ObjectID] | None:
    from looopbot.gitstore import lookup

    return lookup(repo, tree, path)


def _data(repo: Repo, sha: ObjectID) -> bytes:
    from dulwich.objects import Blob

    blob = repo.object_store[sha]
    return blob.data if isinstance(blob, Blob) else b""


def _rel(dd: DataDir, path: bytes) -> str | None:
    """The data-dir-relative path of a repo path; None outside the data dir."""
    text = path.decode("utf-8", errors="replace")
    prefix = dd.repo_path("")
    return text[len(prefix) :] if text.startswith(prefix) else None


def merge_state(ours: bytes, theirs: bytes) -> bytes | None:
    """The rebasing beat's state (None if it does not parse), with what the other writer
    counted kept: its runner calls of the last hour (the per-hour cap is the loop's, not
    one clone's) and the later time each goal was acted on (fairness)."""
    from looopbot.guards import HOUR
    from looopbot.state import StateUnreadable, parse

    try:
        mine = parse(ours)
    except StateUnreadable:
        return None
    try:
        other = parse(theirs)
    except StateUnreadable:
        return ours
    calls = {*mine.decides, *other.decides}
    newest = max(calls, default=0.0)
    acted = dict(other.goal_acted)
    for goal, at in mine.goal_acted.items():
        acted[goal] = max(at, acted.get(goal, at))
    merged = mine._replace(
        decides=tuple(sorted(t for t in calls if newest - t < HOUR)),
        goal_acted={g: acted[g] for g in sorted(acted)},
    )
    return merged.to_json().encode()
