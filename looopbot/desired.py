"""The desired state: PLAYBOOK.md and every top-level goals/<id>.md (DESIGN §2, §4)."""

from __future__ import annotations

import os
from pathlib import Path

from looopbot.datadir import DataDir
from looopbot.fsutil import read_bytes_or_none
from looopbot.ids import is_valid_id


def goal_ids(dd: DataDir) -> list[str]:
    """The ids of the goals on disk (top-level goals/<id>.md with a valid id)."""
    try:
        names = os.listdir(dd.goals)
    except FileNotFoundError:
        return []
    return sorted(
        n[:-3]
        for n in names
        if n.endswith(".md") and is_valid_id(n[:-3]) and (dd.goals / n).is_file()
    )


def read(dd: DataDir) -> dict[str, bytes]:
    """Data-dir relative path -> bytes, for PLAYBOOK.md and the goals."""
    out: dict[str, bytes] = {}
    playbook = read_bytes_or_none(dd.playbook)
    if playbook is not None:
        out["PLAYBOOK.md"] = playbook
    for gid in goal_ids(dd):
        raw = read_bytes_or_none(dd.goals / f"{gid}.md")
        if raw is not None:
            out[f"goals/{gid}.md"] = raw
    return out


def ids_of(desired: dict[str, bytes]) -> list[str]:
    """The goal ids in a desired state already read (no second listing of goals/)."""
    return [p[len("goals/") : -len(".md")] for p in sorted(desired) if p.startswith("goals/")]


def goals_of(desired: dict[str, bytes]) -> list[tuple[str, str]]:
    return [
        (Path(p).stem, raw.decode("utf-8", errors="replace"))
        for p, raw in sorted(desired.items())
        if p.startswith("goals/")
    ]
