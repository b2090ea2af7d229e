"""Ids and names for goals, sensors, workers and claims (DESIGN §6).

One pattern, checked before any path is built from an id, so `../x`, `/abs`, `.hidden`,
`a/b`, spaces, control characters and NUL can never reach the file system. And one gate,
`check_id`, for every id that comes from outside (a decision, the command line): an id
becomes a file name, a branch name and a commit message, so one that holds a secret would
put it in git history for good.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TypeGuard

from looopbot.errors import LooopbotError
from looopbot.redact import redact
from looopbot.text import quote

ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
ID_RULE = "1-64 characters: letters, digits, '.', '_', '-', starting with a letter or digit"


def is_valid_id(value: object) -> TypeGuard[str]:
    """The shape alone (pure): what names on disk are filtered by."""
    return isinstance(value, str) and ID_RE.fullmatch(value) is not None and ".." not in value


def check_id(value: object, what: str, env: Mapping[str, str] | None = None) -> str:
    """Refuse an id from outside before anything is built from it; returns it when safe.

    Secrets follow the redaction rules (looopbot.redact, `env` defaults to os.environ), and
    the refusal names no part of the secret.
    """
    if isinstance(value, str) and redact(value, env) != value:
        raise LooopbotError(
            f"{what} {quote(value, env=env)} contains a secret (the value of a secret-named "
            "environment variable, or a token) — ids end up in file names, branch names and "
            "git history; choose one without it"
        )
    if not is_valid_id(value):
        raise LooopbotError(f"{what} {describe_bad_id(value, env)}")
    return value


def check_branch_id(value: str, what: str) -> None:
    """Ids that become branch names (workers, claims): a safe id git also accepts.

    git refuses ref names ending in "." or ".lock"; say so in our words, before any path or
    ref is built.
    """
    check_id(value, what)
    if value.endswith((".", ".lock")):
        raise LooopbotError(f"{what} {value!r} may not end with '.' or '.lock'")


def describe_bad_id(value: object, env: Mapping[str, str] | None = None) -> str:
    """Why `value` is refused, quoting it redacted and shortened (never a piece of a secret)."""
    return f"{quote(value, env=env)} is not a valid id ({ID_RULE})"
