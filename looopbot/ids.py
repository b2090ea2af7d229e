"""Ids and names for goals, sensors, workers and claims (DESIGN §6).

One pattern, checked before any path is built from an id, so `../x`, `/abs`, `.hidden`,
`a/b`, spaces, control characters and NUL can never reach the file system.
"""

from __future__ import annotations

import re

ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
ID_RULE = "1-64 characters: letters, digits, '.', '_', '-', starting with a letter or digit"


def is_valid_id(value: object) -> bool:
    return isinstance(value, str) and ID_RE.fullmatch(value) is not None and ".." not in value


def check_branch_id(value: str, what: str) -> None:
    """Ids that become branch names (workers, claims): a safe id git also accepts.

    git refuses ref names ending in "." or ".lock"; say so in our words, before any path or
    ref is built.
    """
    from looopbot.errors import LooopbotError

    if not is_valid_id(value):
        raise LooopbotError(f"{what} {describe_bad_id(value)}")
    if value.endswith((".", ".lock")):
        raise LooopbotError(f"{what} {value!r} may not end with '.' or '.lock'")


def describe_bad_id(value: object) -> str:
    shown = (
        repr(value) if not isinstance(value, str) or len(value) <= 40 else repr(value[:40]) + "…"
    )
    return f"{shown} is not a valid id ({ID_RULE})"
