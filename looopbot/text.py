"""Tiny text helpers shared by the journal and the actions (kept import-light)."""

from __future__ import annotations


def one_line(text: str, cap: int = 500) -> str:
    """Collapse whitespace and newlines into one line of at most `cap` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= cap else flat[: cap - 1] + "…"
