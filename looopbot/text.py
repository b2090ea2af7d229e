"""Tiny text helpers shared by the journal, the actions and the ids (kept import-light).

Whatever is shortened here is redacted first (looopbot.redact): a cut through a secret
would leave a piece of it that redaction, later, can no longer recognise.
"""

from __future__ import annotations

from collections.abc import Mapping

from looopbot.redact import redact


def one_line(text: str, cap: int = 500) -> str:
    """Redact, then collapse whitespace and newlines into one line of at most `cap` characters."""
    flat = " ".join(redact(text).split())
    return flat if len(flat) <= cap else flat[: cap - 1] + "…"


def quote(value: object, cap: int = 40, env: Mapping[str, str] | None = None) -> str:
    """Someone's input quoted back in a message: redacted, then cut to `cap`, as a repr."""
    if not isinstance(value, str):
        return repr(value)
    value = redact(value, env)
    return repr(value) if len(value) <= cap else repr(value[:cap]) + "…"


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
