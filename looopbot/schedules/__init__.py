"""Durable schedules: `schedules/<name>.yaml` in the data repo, the `sys-schedules` snapshot
whose signal is the set of schedules that are due, and what a decided beat does to them."""

from __future__ import annotations

import os
from typing import Any

from looopbot.datadir import DataDir

NAME = "sys-schedules"
FOLDER = "schedules"
SUFFIX = ".yaml"


def snapshot(dd: DataDir, now: float) -> dict[str, Any]:
    """sys-schedules. With no schedule file, the empty snapshot without importing the
    parser (the skip path of a loop that has no schedules pays one listdir)."""
    try:
        names = [n for n in os.listdir(dd.path(FOLDER)) if n.endswith(SUFFIX)]
    except (FileNotFoundError, NotADirectoryError):
        names = []
    if not names:
        return {"signal": [], "detail": {"schedules": {}}}
    from looopbot.schedules import store

    return store.snapshot(dd, now)
