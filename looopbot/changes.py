"""What one record (a beat, a move by hand, init) writes, ahead of writing it (DESIGN §9).

Before a file is first touched, `.looopbot/pending.json` (local scratch, written atomically)
says so: the paths written or removed, the lines appended (journal, ledger), the
move about to be executed, and — just before HEAD moves — the commit being made. A record
killed with -9 at any point leaves that file behind, and the next record takes it over:

- a commit that did land is finished (its index update) and forgotten;
- otherwise its paths and lines go into the next commit, so no journal line is lost or
  doubled and no stray bot edit lingers as if it were the user's;
- a move that started but never reached the journal is journaled as interrupted — and stays
  on record until its line is written, so a second kill (of the record that took it over)
  neither loses nor doubles it.

Appended lines are committed as HEAD's version of the file plus the lines, never the working
file: a human's uncommitted journal lines are not swept into a bot commit.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

from looopbot.datadir import DataDir
from looopbot.errors import LooopbotError
from looopbot.fsutil import (
    append_line,
    drop_dead_temp_files,
    read_bytes_or_none,
    tail_lines,
    write_atomic,
)
from looopbot.ids import is_valid_id

PENDING = "pending.json"
_MAX_ITEMS = 10_000  # a record lists tens of paths; a bigger file was not written by us
_MAX_MOVES = 100  # interrupted moves waiting for their journal line (one per killed beat)
_LEGACY = "pending"  # a plain list of paths, written by looopbot 0.1


class Move(NamedTuple):
    """The move a record is executing: an action and a one-line summary of it."""

    action: str
    summary: str


class Changes:
    def __init__(self, dd: DataDir) -> None:
        self.dd = dd
        self.started = time.time()  # after the beat lock: any record killed before is dead
        self.paths: set[str] = set()  # every path this record touches
        self.appended: dict[str, list[str]] = {}  # path -> lines appended, in order
        self.recovered: list[str] = []  # paths taken over from a killed record
        self.interrupted: list[Move] = []  # killed records' moves not yet journaled
        self.commit_intent: dict[str, Any] | None = None  # a killed record's commit in flight
        self._own: set[str] = set()  # the paths this record itself touched
        self._taken: dict[str, int] = {}  # path -> how many of `appended` were taken over
        self._move: Move | None = None
        self._journaled = False

    # --- the write-ahead file ---------------------------------------------------------

    def _save(self) -> None:
        doc = {
            "v": 2,
            "paths": sorted(self.paths),
            "appended": self.appended,
            "move": list(self._move) if self._move else None,
            "interrupted": [list(m) for m in self.interrupted],
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
        drop_dead_temp_files(self.dd.meta)  # e.g. a pending record half-written by a kill
        doc = _read(self.dd)
        if doc is None:
            return
        self.paths.update(doc["paths"])
        for rel, lines in doc["appended"].items():
            self.appended.setdefault(rel, []).extend(lines)
            self._taken[rel] = len(lines)
            self.paths.add(rel)
        self.recovered = sorted(self.paths)
        self.commit_intent = doc["commit"]
        self.interrupted = [Move(str(m[0]), str(m[1])) for m in doc["interrupted"]]
        move = doc["move"]
        if move is not None and not doc["journaled"]:
            self.interrupted.append(Move(str(move[0]), str(move[1])))
        for rel in self.recovered:
            _drop_temp_files(self.dd.path(rel))
        for rel, lines in self.appended.items():
            _restore_lines(self.dd.path(rel), lines)

    def landed(self) -> None:
        """The killed record's commit is in HEAD: its paths and lines are committed. What
        this record wrote itself is still to commit, and stays on record until it is."""
        for rel, n in self._taken.items():
            mine = self.appended.get(rel, [])[n:]
            if mine:
                self.appended[rel] = mine
            else:
                self.appended.pop(rel, None)
        self._taken = {}
        self.paths = set(self._own)
        self.recovered = []
        self.interrupted = []
        self.commit_intent = None
        if self.paths:
            self._save()
        else:
            with contextlib.suppress(FileNotFoundError):
                self.dd.scratch(PENDING).unlink()

    # --- writing ----------------------------------------------------------------------

    def _check(self, rel: str) -> None:
        """Refuse a path that leads out of the data dir through a symlink (a committed
        `journal.md -> ~/.bashrc` would have us append to it) or is not a regular file."""
        here = str(self.dd.root)
        parts = rel.split("/")
        for i, part in enumerate(parts):
            here = os.path.join(here, part)
            try:
                mode = os.lstat(here).st_mode
            except FileNotFoundError:
                return
            last = i == len(parts) - 1
            if stat.S_ISLNK(mode) or (not last and not stat.S_ISDIR(mode)):
                raise LooopbotError(
                    f"{'/'.join(parts[: i + 1])} is a symlink or not a folder — looopbot writes "
                    f"{rel} only as a regular file inside the data dir; replace it"
                )
            if last and not stat.S_ISREG(mode):
                raise LooopbotError(f"{rel} is not a regular file — move it away")

    def inside(self, rel: str) -> bool:
        """Whether `rel` stays inside the data dir (no symlink on the way, or at its end)."""
        try:
            self._check(rel)
        except LooopbotError:
            return False
        return True

    def _intend(self, *rels: str) -> None:
        for rel in rels:
            self._check(rel)
        self._own.update(rels)
        new = [r for r in rels if r not in self.paths]
        self.paths.update(rels)
        if new:
            self._save()

    def write(self, rel: str, data: str | bytes, mode: int | None = None) -> bool:
        """Write the file if its content differs; True when it did."""
        raw = data.encode() if isinstance(data, str) else data
        full = self.dd.path(rel)
        if read_bytes_or_none(full) == raw and (mode is None or _mode(full) == mode):
            return False
        self._intend(rel)
        write_atomic(full, raw, mode)
        return True

    def write_all(self, files: dict[str, bytes]) -> list[str]:
        """Write each file whose content differs, listed ahead in one go (one write of the
        record, not one per file); the paths written. For files the next beat re-derives
        (snapshots): atomic, not fsynced."""
        for rel in files:
            self._check(rel)
        changed = [r for r, raw in files.items() if read_bytes_or_none(self.dd.path(r)) != raw]
        self._intend(*changed)
        for rel in changed:
            write_atomic(self.dd.path(rel), files[rel], durable=False)
        return changed

    def lines(self, rel: str) -> list[str] | None:
        """The lines appended to `rel` (a killed record's first), or None if none were."""
        return self.appended.get(rel)

    def append(self, rel: str, line: str, *, journal: bool = False) -> None:
        """Append one line; `journal` marks it as the line that journals the current move."""
        line = line.rstrip("\n")
        self._check(rel)
        self.paths.add(rel)
        self._own.add(rel)
        self.appended.setdefault(rel, []).append(line)
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
        try:
            yield
        except LooopbotError:
            # Refused (or failed) with a message its caller reports: not interrupted.
            self._move = None
            self._save()
            raise

    def committing(self, intent: dict[str, Any]) -> None:
        """Just before HEAD moves: the commit being made (its ref, old and new ids, trees)."""
        self.commit_intent = intent
        self._save()

    def content(self, rel: str, head: bytes | None) -> bytes | None:
        """What the commit holds for `rel`, given HEAD's blob: appended lines go on top of
        HEAD's version; any other path is committed as it is on disk (None: removed)."""
        lines = self.appended.get(rel)
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
        self.paths.clear()
        self.appended.clear()
        self._own.clear()
        self._taken = {}
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
    interrupted = doc.get("interrupted")
    commit = doc.get("commit")
    return {
        "paths": [p for p in paths[:_MAX_ITEMS] if _safe(p)] if isinstance(paths, list) else [],
        "appended": {
            k: [line for line in v if isinstance(line, str)]
            for k, v in appended.items()
            if _safe(k) and isinstance(v, list)
        }
        if isinstance(appended, dict)
        else {},
        "move": move if _is_move(move) else None,
        "interrupted": [m for m in interrupted[:_MAX_MOVES] if _is_move(m)]
        if isinstance(interrupted, list)
        else [],
        "journaled": doc.get("journaled") is True,
        "commit": commit if isinstance(commit, dict) else None,
    }


def _is_move(raw: object) -> bool:
    return isinstance(raw, list) and len(raw) == 2


def _loads(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None


# What looopbot itself writes: nothing else is taken from a write-ahead file (it is scratch,
# but a hand-edited one must not make us commit .git/config, /etc/passwd or a sensor edit).
_OWN_FILES = frozenset(
    {
        "journal.md",
        "PLAYBOOK.md",
        "looopbot.yaml",
        ".gitattributes",
        ".gitignore",
        ".looopbot/.gitignore",
        ".looopbot/state.json",
        ".looopbot/cost.jsonl",
        # The workflows of `github install` (looopbot.workflows.WORKFLOWS), and no other
        # file under .github/: a hand-edited record must not make us commit anything there.
        ".github/workflows/looopbot.yml",
        ".github/workflows/looopbot-validate.yml",
    }
)
_OWN_DIRS = ("goals/", "sensors/", "snapshots/", "reports/")


def _safe(rel: object) -> bool:
    """A data-dir-relative path looopbot could have written."""
    if not isinstance(rel, str) or not rel or rel.startswith("/") or "\0" in rel:
        return False
    if ".." in rel.split("/") or "//" in rel:
        return False
    if rel.startswith("schedules/"):  # schedules/<name>.yaml and nothing else there
        name = rel[len("schedules/") :]
        return name.endswith(".yaml") and is_valid_id(name[: -len(".yaml")])
    return rel in _OWN_FILES or rel.startswith(_OWN_DIRS)


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
