"""The user's index around a beat commit: held locked while HEAD moves, then brought in step.

A beat commit moves HEAD without `git commit`, so the index entries of the paths it
committed must move too, or `git status` would show every bot commit reversed as a staged
change — and a human's next plain `git commit`, built from that index, would silently revert
the bot's journal, state and goals. Git itself holds `index.lock` from before it reads the
index until the new index is in place; we do the same:

1. take `index.lock` (O_EXCL, as git does), writing who we are into it;
2. move HEAD by compare-and-swap (the caller);
3. update the entries of just the committed paths in a copy of the index with
   `git update-index --index-info` (git keeps every extension — split index, untracked
   cache, sparse directories, intent-to-add flags, version 4 — which dulwich's index
   writer does not, and touching only those paths keeps the cost independent of the tree);
4. rename the copy over the index, then release the lock.

A lock held by another process (a human's `git commit` with its editor open) makes us wait
a little, then give up with a message naming it; the caller's files stay pending and the
next beat commits them. A lock whose note names a looopbot process that is gone is ours,
left by a kill -9: it is removed.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

from looopbot import gitcli
from looopbot.errors import LooopbotError
from looopbot.workers import identity

LOCK_WAIT_S = 3.0
_POLL_S = 0.05
_NOTE = b"looopbot-index-lock "
_TMP_PREFIX = "looopbot-index."
_NULL_SHA = "0" * 40
_INTENT_TO_ADD = 1 << 29  # CE_INTENT_TO_ADD in git's cache.h


class Entry(NamedTuple):
    mode: int
    sha: str


class Move(NamedTuple):
    """One committed path: what HEAD held before and after (None: absent)."""

    path: str  # repo-relative, '/'-separated
    old: Entry | None
    new: Entry | None
    appended: bytes = b""  # the lines the commit only appended to HEAD's version (journal)


def index_path(gitdir: Path) -> Path:
    return gitdir / "index"


class IndexLocked(LooopbotError):
    pass


def _mine(note: bytes) -> identity.Identity | None:
    """The looopbot process named in a lock file's note, or None if it is not our note."""
    if not note.startswith(_NOTE):
        return None
    try:
        pid, start = note[len(_NOTE) :].decode().split(" ", 1)
        return identity.Identity(int(pid), start.strip())
    except ValueError:
        return None


@contextlib.contextmanager
def locked(gitdir: Path, wait_s: float = LOCK_WAIT_S) -> Iterator[None]:
    """Hold `index.lock` for the duration, as git does while it commits."""
    lock = gitdir / "index.lock"
    me = identity.of(os.getpid())
    note = _NOTE + f"{os.getpid()} {me.start if me else '?'}\n".encode()
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            break
        except FileExistsError:
            holder = _mine(_read(lock))
            if holder is not None and not identity.alive(holder):
                # Left by a looopbot killed while committing: nobody else will clear it.
                with contextlib.suppress(FileNotFoundError):
                    lock.unlink()
                continue
            if time.monotonic() >= deadline:
                raise IndexLocked(
                    f"{lock} is held by another git process (a `git commit` waiting for its "
                    "editor?) — this beat's files stay pending and the next beat commits "
                    "them; if no git process is running, remove that file"
                ) from None
            time.sleep(_POLL_S)
    try:
        os.write(fd, note)
    finally:
        os.close(fd)
    try:
        for stale in gitdir.glob(_TMP_PREFIX + "*"):  # a killed beat's copies
            with contextlib.suppress(OSError):
                stale.unlink()
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            lock.unlink()


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()[:200]
    except OSError:
        return b""


CONFLICT = "conflict"  # the user's merge conflict: stages above 0
INTENT_TO_ADD = "intent-to-add"  # `git add -N`: stages nothing yet


def index_state(repo_root: Path, paths: Sequence[str]) -> dict[str, Entry | str]:
    """The index's entry for each of `paths` that has one: its stage-0 Entry, CONFLICT or
    INTENT_TO_ADD. One `git ls-files`, which honours split indexes, version 4 and sparse
    directories."""
    found: dict[str, Entry | str] = {}
    # --debug follows each "<mode> <sha> <stage>\t<path>\0" with indented lines, the last
    # one ending in "flags: <hex>" (the in-core entry flags).
    raw = gitcli.run(repo_root, "ls-files", "--stage", "--debug", "-z", "--", *paths).stdout
    wanted = set(paths)
    records = raw.split(b"\0")
    for i, chunk in enumerate(records[:-1]):
        record = chunk
        while record.startswith(b"  "):  # the previous entry's debug lines
            record = record.partition(b"\n")[2]
        meta, _, name = record.partition(b"\t")
        path = os.fsdecode(name)
        if path not in wanted:
            continue
        mode, sha, stage = meta.split(b" ")
        if stage != b"0" or path in found:
            found[path] = CONFLICT
        elif _intent_to_add(records[i + 1]):
            found[path] = INTENT_TO_ADD
        else:
            found[path] = Entry(int(mode, 8), sha.decode())
    return found


def _entries(repo_root: Path, paths: Sequence[str]) -> dict[str, Entry | None]:
    """The index's stage-0 entries for `paths`; a conflicted path maps to None.

    An intent-to-add entry (`git add -N`) is left out: it stages nothing, so like a missing
    entry it stands for "not in HEAD" — kept, it would read as a staged deletion of the
    file once the bot commits it, and the human's next `git commit` would delete it."""
    return {
        path: (entry if isinstance(entry, Entry) else None)
        for path, entry in index_state(repo_root, paths).items()
        if entry != INTENT_TO_ADD
    }


def _intent_to_add(debug: bytes) -> bool:
    """Whether an entry's `ls-files --debug` lines carry git's CE_INTENT_TO_ADD flag."""
    for line in debug.split(b"\n"):
        if not line.startswith(b"  "):
            break
        _, sep, flags = line.partition(b"flags: ")
        if sep:
            try:
                return bool(int(flags.strip(), 16) & _INTENT_TO_ADD)
            except ValueError:
                return False
    return False


def _plus(repo_root: Path, sha: str, appended: bytes) -> str:
    """The id of a new blob: blob `sha` with the lines of `appended` it lacks after it
    (a line of a beat that could not commit may be staged already); stored in the repo."""
    base = gitcli.run(repo_root, "cat-file", "blob", sha).stdout
    if base and not base.endswith(b"\n"):
        base += b"\n"
    present = set(base.splitlines())
    extra = b"".join(line + b"\n" for line in appended.splitlines() if line not in present)
    made = gitcli.run(repo_root, "hash-object", "-w", "--no-filters", "--stdin", stdin=base + extra)
    return made.stdout.decode().strip()


def prepare(repo_root: Path, gitdir: Path, moves: Sequence[Move]) -> Path | None:
    """The index as it must be once HEAD holds the committed paths, made ready in a copy
    (call while holding `locked`); None when no entry needs to move. Only an entry that
    matched the old HEAD moves: a path the user had staged keeps its staged content, and
    their other entries are never touched.

    It is made BEFORE HEAD moves, so the new index replaces the old one an instant after
    (`install`), as git itself does: `git commit` reads HEAD, then the index without a lock,
    and a human's commit that read HEAD after ours but the index before it would revert the
    bot's files."""
    index = index_path(gitdir)
    if not moves:
        return None
    current = _entries(repo_root, [m.path for m in moves]) if index.exists() else {}
    lines: list[str] = []
    for m in moves:
        cur = current.get(m.path)
        if m.path in current and cur is None:
            continue  # conflicted
        if m.old == m.new:
            continue
        if cur != m.old:
            # The user staged their own version. Of a file the bot only appends to (their
            # note in journal.md after `git add -A`), stage theirs plus the bot's lines, as
            # the working file has them: else their next commit drops the bot's lines.
            if cur is not None and m.new is not None and m.appended:
                lines.append(f"{cur.mode:o} {_plus(repo_root, cur.sha, m.appended)}\t{m.path}")
            continue
        if m.new is None:
            lines.append(f"0 {_NULL_SHA}\t{m.path}")
        else:
            lines.append(f"{m.new.mode:o} {m.new.sha}\t{m.path}")
    if not lines:
        return None
    tmp = copy(gitdir)
    try:
        gitcli.run(
            repo_root,
            "update-index",
            "-z",
            "--index-info",
            stdin="".join(line + "\0" for line in lines).encode(),
            env={"GIT_INDEX_FILE": str(tmp)},
        )
    except BaseException:
        discard(tmp)
        raise
    return tmp


def copy(gitdir: Path) -> Path:
    """A private copy of the index to change and then `install` (call while holding
    `locked`); when there is no index yet (the first commit) git makes a new one there."""
    index = index_path(gitdir)
    tmp = gitdir / f"{_TMP_PREFIX}{os.getpid()}"
    try:
        with open(index, "rb") as src, open(tmp, "wb") as dst:
            while chunk := src.read(1 << 20):
                dst.write(chunk)
            st = os.fstat(src.fileno())
    except FileNotFoundError:
        discard(tmp)
        return tmp
    except BaseException:
        discard(tmp)
        raise
    # git tells a "racily clean" entry (its file edited in the same timestamp tick as the
    # index was written) by the index file's mtime, and smudges it when it rewrites the
    # index; a copy stamped now would make it look safely clean, and that edit would vanish
    # from `git status` and from the next `git commit -a`.
    os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
    return tmp


def install(gitdir: Path, prepared: Path | None) -> None:
    """Put a prepared index in place (atomically)."""
    if prepared is not None:
        os.replace(prepared, index_path(gitdir))


def discard(prepared: Path | None) -> None:
    if prepared is not None:
        with contextlib.suppress(FileNotFoundError):
            prepared.unlink()


def update(repo_root: Path, gitdir: Path, moves: Sequence[Move]) -> None:
    """Bring the index in step with a commit that is already HEAD (a killed record's)."""
    install(gitdir, prepare(repo_root, gitdir, moves))
