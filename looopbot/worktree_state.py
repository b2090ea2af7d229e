"""Which files hold the user's uncommitted work, so no move ever overwrites it (DESIGN §6).

Asked of git itself (`git status`), which knows the user's whole setup: staged and unstaged
edits, intent-to-add entries, untracked files, split indexes, sparse checkouts. Only the
moves that write desired state ask, so an unchanged beat never pays for it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from looopbot import gitcli
from looopbot.datadir import DataDir
from looopbot.errors import LooopbotError


def uncommitted(dd: DataDir, rels: Iterable[str], *, untracked: bool = True) -> list[str]:
    """Those of `rels` (data-dir relative) that differ from HEAD in the index or on disk,
    or (with `untracked`) exist untracked; in the order given."""
    wanted = list(dict.fromkeys(rels))
    if dd.repo_root is None or not wanted:
        return []
    repo_paths = {dd.repo_path(rel): rel for rel in wanted}
    raw = gitcli.run(
        dd.repo_root,
        "status",
        "--porcelain=v1",
        "-z",
        "--untracked-files=all",
        "--no-renames",
        "--ignore-submodules",
        "--",
        *repo_paths,
    ).stdout
    dirty = set()
    for record in raw.split(b"\0"):
        if len(record) > 3 and (untracked or not record.startswith(b"??")):
            dirty.add(os.fsdecode(record[3:]))
    return [rel for path, rel in repo_paths.items() if path in dirty]


def refuse_uncommitted(
    dd: DataDir, rels: Iterable[str], what: str, ours: Iterable[str], *, untracked: bool = True
) -> None:
    """Refuse `what` when it would overwrite the user's uncommitted edit of one of `rels`;
    `ours` are paths this very record (or a killed one it took over) wrote itself."""
    mine = set(ours)
    found = [rel for rel in uncommitted(dd, rels, untracked=untracked) if rel not in mine]
    if found:
        names = ", ".join(found)
        raise LooopbotError(
            f"{what} refused: {names} has uncommitted changes (staged, unstaged or untracked) "
            "that it would overwrite — commit or stash them first; the file was left as it is"
        )
