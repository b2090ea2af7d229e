"""The paths a beat writes, so its commit holds exactly those (DESIGN §9).

Before a path is first touched it is listed in `.looopbot/pending` (local scratch, written
atomically). A beat killed with -9 after writing files but before committing leaves that
list behind; the next beat takes those paths into its own commit, so no journal line is
lost and no stray bot edit lingers as if it were the user's.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from looopbot.datadir import DataDir
from looopbot.fsutil import append_line, read_bytes_or_none, write_atomic

PENDING = "pending"


class Changes:
    def __init__(self, dd: DataDir) -> None:
        self.dd = dd
        self.paths: set[str] = set()
        self._listed: set[str] = set()
        self.recovered: list[str] = []

    def recover(self) -> None:
        """Take over the paths a killed beat wrote but never committed."""
        raw = read_bytes_or_none(self.dd.scratch(PENDING))
        if raw is None:
            return
        try:
            paths = json.loads(raw)
        except ValueError:
            paths = []
        if isinstance(paths, list):
            self.recovered = sorted(p for p in paths if isinstance(p, str))
            self.paths.update(self.recovered)
            self._listed.update(self.recovered)
            for rel in self.recovered:
                self._drop_temp_files(rel)

    def _drop_temp_files(self, rel: str) -> None:
        """A beat killed inside write_atomic leaves `.<name>.<pid>.tmp` beside the file,
        which `git status` would show as the user's untracked file forever."""
        full = self.dd.path(rel)
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

    def _intend(self, *rels: str) -> None:
        new = [r for r in rels if r not in self._listed]
        if new:
            self._listed.update(new)
            write_atomic(self.dd.scratch(PENDING), json.dumps(sorted(self._listed)))
        self.paths.update(rels)

    def write(self, rel: str, data: str | bytes, mode: int | None = None) -> bool:
        """Write the file if its content differs; True when it did."""
        raw = data.encode() if isinstance(data, str) else data
        full = self.dd.path(rel)
        if read_bytes_or_none(full) == raw and (mode is None or _mode(full) == mode):
            return False
        self._intend(rel)
        write_atomic(full, raw, mode)
        return True

    def append(self, rel: str, line: str) -> None:
        self._intend(rel)
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

    def done(self) -> None:
        """Everything listed is committed (or was identical): forget the list."""
        with contextlib.suppress(FileNotFoundError):
            self.dd.scratch(PENDING).unlink()
        self._listed.clear()


def _mode(path: Path) -> int | None:
    try:
        return path.stat().st_mode & 0o777
    except FileNotFoundError:
        return None
