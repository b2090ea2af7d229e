"""What one record (a beat, a move by hand, init) writes, ahead of writing it (DESIGN §9).

Before a file is first touched, `.looopbot/pending.json` (local scratch, written atomically)
says so: the paths written or removed, the lines appended (journal, ledger), the
move about to be executed, and — just before HEAD moves — the commit being made. A record
killed with -9 at any point leaves that file behind, and the next record takes it over:

- a commit that did land is finished (its index update) and forgotten;
- otherwise its paths and lines go into the next commit, so no journal line is lost or
  doubled and no stray bot edit lingers as if it were the user's;
- a move that started but never reached the journal is journaled as interrupted.

Appended lines are committed as HEAD's version of the file plus the lines, never the working
file: a human's uncommitted journal lines are not swept into a bot commit.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

from looopbot.datadir import DataDir
from looopbot.fsutil import append_line, read_bytes_or_none, tail_lines, write_atomic

PENDING = "pending.json"
_LEGACY = "pending"  # a plain list of paths, written by looopbot 0.1


class Move(NamedTuple):
    """The move a record is executing: an action and a one-line summary of it."""

    action: str
    summary: str


class Changes:
    def __init__(self, dd: DataDir) -> None:
        self.dd = dd
        # What this record writes, and what it took over from a killed one (kept apart, so
        # a killed record's commit found to have landed is forgotten without this one's).
        self._own: set[str] = set()
        self._own_lines: dict[str, list[str]] = {}
        self._taken: set[str] = set()
        self._taken_lines: dict[str, list[str]] = {}
        self.interrupted: Move | None = None  # a killed record's move that was never journaled
        self.commit_intent: dict[str, Any] | None = None  # a killed record's commit in flight
        self._move: Move | None = None
        self._journaled = False

    @property
    def paths(self) -> set[str]:
        """Every path this record commits."""
        return self._own | self._taken

    @property
    def recovered(self) -> list[str]:
        """The paths taken over from a killed record, sorted."""
        return sorted(self._taken)

    def lines(self, rel: str) -> list[str] | None:
        """The lines appended to `rel` (a killed record's first), or None if none were."""
        if rel not in self._own_lines and rel not in self._taken_lines:
            return None
        return [*self._taken_lines.get(rel, ()), *self._own_lines.get(rel, ())]

    # --- the write-ahead file ---------------------------------------------------------

    def _save(self) -> None:
        appended = {rel: self.lines(rel) for rel in {*self._own_lines, *self._taken_lines}}
        doc = {
            "v": 2,
            "paths": sorted(self.paths),
            "appended": appended,
            "move": list(self._move) if self._move else None,
            "journaled": self._journaled,
            "commit": self.commit_intent,
        }
        # Not fsynced: it guards against a killed process, whose writes the page cache keeps;
        # a power cut is git's own exposure too (it does not fsync the working tree).
        # Seven fsyncs a decided beat were ~15 ms of it (bench/).
        write_atomic(self.dd.scratch(PENDING), json.dumps(doc, sort_keys=True), durable=False)

    def recover(self) -> None:
        """Take over what a killed record wrote but never committed (see the module doc).

        The commit intent is kept on `commit_intent` for the commit step, which decides
        under the index lock whether that commit landed."""
        doc = _read(self.dd)
        if doc is None:
            return
        self._taken.update(doc["paths"])
        for rel, lines in doc["appended"].items():
            self._taken_lines.setdefault(rel, []).extend(lines)
            self._taken.add(rel)
        self.commit_intent = doc["commit"]
        move = doc["move"]
        if move is not None and not doc["journaled"]:
            self.interrupted = Move(str(move[0]), str(move[1]))
        for rel in self._taken:
            _drop_temp_files(self.dd.path(rel))
        for rel, lines in self._taken_lines.items():
            _restore_lines(self.dd.path(rel), lines)

    def landed(self) -> None:
        """The killed record's commit is in HEAD: what was taken over from it is committed."""
        self._taken.clear()
        self._taken_lines.clear()
        self.interrupted = None
        self.commit_intent = None
        if self._own or self._move:
            self._save()
        else:
            with contextlib.suppress(FileNotFoundError):
                self.dd.scratch(PENDING).unlink()

    # --- writing ----------------------------------------------------------------------

    def _intend(self, *rels: str) -> None:
        new = [r for r in rels if r not in self.paths]
        self._own.update(rels)
        if new:
            self._save()

    def write_all(self, files: dict[str, bytes]) -> list[str]:
        """Write each file whose content differs, listed ahead in one go (one durable write
        of the record, not one per file); the paths written."""
        changed = [
            rel for rel, raw in files.items() if read_bytes_or_none(self.dd.path(rel)) != raw
        ]
        self._intend(*changed)
        for rel in changed:
            write_atomic(self.dd.path(rel), files[rel])
        return changed

    def write(self, rel: str, data: str | bytes, mode: int | None = None) -> bool:
        """Write the file if its content differs; True when it did."""
        raw = data.encode() if isinstance(data, str) else data
        full = self.dd.path(rel)
        if read_bytes_or_none(full) == raw and (mode is None or _mode(full) == mode):
            return False
        self._intend(rel)
        write_atomic(full, raw, mode)
        return True

    def append(self, rel: str, line: str, *, journal: bool = False) -> None:
        """Append one line; `journal` marks it as the line that journals the current move."""
        line = line.rstrip("\n")
        self._own.add(rel)
        self._own_lines.setdefault(rel, []).append(line)
        if journal:
            self._journaled = True
        self._save()  # the line is ours before it is in the file
        append_line(self.dd.path(rel), line)

    def remove(self, rel: str) -> None:
        full = self.dd.path(rel)
        if not full.exists():
            return
        self._intend(rel)
        full.unlink()

    def move(self, src: str, dst: str) -> None:
        self._intend(src, dst)
        target = self.dd.path(dst)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.dd.path(src), target)

    # --- the move and the commit ------------------------------------------------------

    @contextlib.contextmanager
    def executing(self, move: Move) -> Iterator[None]:
        """Around ACT: until its journal line is written, a kill leaves the move on record
        as interrupted ("may have run"), so an executed move always reaches the journal."""
        self._move = move
        self._journaled = False
        self._save()
        yield

    def committing(self, intent: dict[str, Any]) -> None:
        """Just before HEAD moves: the commit being made (its ref, old and new ids, trees)."""
        self.commit_intent = intent
        self._save()

    def content(self, rel: str, head: bytes | None) -> bytes | None:
        """What the commit holds for `rel`, given HEAD's blob: appended lines go on top of
        HEAD's version; any other path is committed as it is on disk (None: removed)."""
        lines = self.lines(rel)
        if lines is not None:
            base = head or b""
            if base and not base.endswith(b"\n"):
                base += b"\n"
            return base + "".join(line + "\n" for line in lines).encode()
        return read_bytes_or_none(self.dd.path(rel))

    def done(self) -> None:
        """Everything is committed (or was identical): forget the record."""
        with contextlib.suppress(FileNotFoundError):
            self.dd.scratch(PENDING).unlink()
        with contextlib.suppress(FileNotFoundError):
            self.dd.scratch(_LEGACY).unlink()
        self._own.clear()
        self._own_lines.clear()
        self._taken.clear()
        self._taken_lines.clear()
        self.commit_intent = None
        self._move = None
        self._journaled = False


def _read(dd: DataDir) -> dict[str, Any] | None:
    """The killed record's write-ahead file, normalised; None when there is none."""
    raw = read_bytes_or_none(dd.scratch(PENDING))
    if raw is None:
        legacy = read_bytes_or_none(dd.scratch(_LEGACY))
        if legacy is None:
            return None
        raw = json.dumps({"paths": _loads(legacy)}).encode()
    doc = _loads(raw)
    if not isinstance(doc, dict):
        doc = {}
    paths = doc.get("paths")
    appended = doc.get("appended")
    move = doc.get("move")
    commit = doc.get("commit")
    return {
        "paths": [p for p in paths if _safe(p)] if isinstance(paths, list) else [],
        "appended": {
            k: [line for line in v if isinstance(line, str)]
            for k, v in appended.items()
            if _safe(k) and isinstance(v, list)
        }
        if isinstance(appended, dict)
        else {},
        "move": move if isinstance(move, list) and len(move) == 2 else None,
        "journaled": doc.get("journaled") is True,
        "commit": commit if isinstance(commit, dict) else None,
    }


def _loads(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _safe(rel: object) -> bool:
    """A data-dir-relative path we could have written (the file is scratch, but a hand-edited
    one must not make us commit /etc/passwd)."""
    if not isinstance(rel, str) or not rel or rel.startswith("/"):
        return False
    return ".." not in rel.split("/") and "\0" not in rel


def _restore_lines(path: Path, lines: list[str]) -> None:
    """Lines a killed record listed but may not have appended yet go into the file now."""
    present = tail_lines(path, len(lines) + 50)
    for line in lines:
        if line not in present:
            append_line(path, line)


def _drop_temp_files(full: Path) -> None:
    """A record killed inside write_atomic leaves `.<name>.<pid>.tmp` beside the file,
    which `git status` would show as the user's untracked file forever."""
    head, tail = f".{full.name}.", ".tmp"
    try:
        names = os.listdir(full.parent)
    except OSError:
        return
    for name in names:
        pid = name[len(head) : -len(tail)]
        ours = name.startswith(head) and name.endswith(tail) and pid.isdigit()
        if ours and int(pid) != os.getpid():
            with contextlib.suppress(OSError):
                os.unlink(full.parent / name)


def _mode(path: Path) -> int | None:
    try:
        return path.stat().st_mode & 0o777
    except FileNotFoundError:
        return None
