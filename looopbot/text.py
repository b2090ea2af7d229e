"""Tiny text helpers shared by the journal and the actions (kept import-light)."""

from __future__ import annotations


def one_line(text: str, cap: int = 500) -> str:
    """Collapse whitespace and newlines into one line of at most `cap` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= cap else flat[: cap - 1] + "…"


def age(seconds: float) -> str:
    """A short human age: 42s, 7m, 5h, 3d (ages are rendered, never stored)."""
    s = max(0, int(seconds))
    if s < 90:
        return f"{s}s"
    if s < 90 * 60:
        return f"{s // 60}m"
    if s < 48 * 3600:
        return f"{s // 3600}h"
    return f"{s // 86400}d"
