"""The desired state: PLAYBOOK.md, every top-level goals/<id>.md, and CONSTITUTION.md as
committed at HEAD (DESIGN §2, §4; issue 9).

Read on every beat, so it works on plain strings with os.scandir: with hundreds of goals,
pathlib objects alone would cost more than the rest of an unchanged beat.
"""

from __future__ import annotations

import os
import stat

from looopbot.datadir import DataDir
from looopbot.ids import is_valid_id


def _goal_entries(dd: DataDir) -> list[tuple[str, str]]:
    """(id, path) of each goal file, sorted by id."""
    try:
        with os.scandir(dd.goals) as it:
            found = [
                (e.name[:-3], e.path)
                for e in it
                # Not through a symlink: a goal a pull request links to /proc/self/environ
                # or ~/.ssh would be read into the prompt.
                if e.name.endswith(".md")
                and is_valid_id(e.name[:-3])
                and e.is_file(follow_symlinks=False)
            ]
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(found)


def goal_ids(dd: DataDir) -> list[str]:
    """The ids of the goals on disk (top-level goals/<id>.md with a valid id)."""
    return [gid for gid, _ in _goal_entries(dd)]


def read_file(path: str) -> bytes | None:
    """A regular file's bytes; None for a missing file, a symlink or anything else."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, OSError):
        return None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            return None
        return f.read()


def read(dd: DataDir) -> dict[str, bytes]:
    """Data-dir relative path -> bytes, for CONSTITUTION.md, PLAYBOOK.md and the goals."""
    from looopbot import constitution

    out: dict[str, bytes] = {}
    rules = constitution.read(dd)
    if rules is not None:
        out[constitution.NAME] = rules
    playbook = read_file(os.path.join(dd.root, "PLAYBOOK.md"))
    if playbook is not None:
        out["PLAYBOOK.md"] = playbook
    for gid, path in _goal_entries(dd):
        raw = read_file(path)
        if raw is not None:
            out[f"goals/{gid}.md"] = raw
    return out


def ids_of(desired: dict[str, bytes]) -> list[str]:
    """The goal ids in a desired state already read (no second listing of goals/)."""
    return [p[len("goals/") : -len(".md")] for p in sorted(desired) if p.startswith("goals/")]


def goals_of(desired: dict[str, bytes]) -> list[tuple[str, str]]:
    return [
        (p[len("goals/") : -len(".md")], raw.decode("utf-8", errors="replace"))
        for p, raw in sorted(desired.items())
        if p.startswith("goals/")
    ]
