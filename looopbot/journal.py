"""journal.md: one line per move, `- YYYY-MM-DD HH:MM <text>` (DESIGN §2)."""

from __future__ import annotations

import time
from pathlib import Path

from looopbot.fsutil import tail_lines
from looopbot.text import one_line

LINE_CAP = 500


def format_line(text: str, now: float) -> str:
    stamp = time.strftime("%Y-%m-%d %H:%M", time.localtime(now))
    head = f"- {stamp} "
    return head + one_line(text, LINE_CAP - len(head))


def recent(path: Path, n: int = 20) -> list[str]:
    return [line for line in tail_lines(path, n * 2) if line.strip()][-n:]
