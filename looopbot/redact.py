"""Secrets never enter a commit (DESIGN §9): values of secret-named environment variables
and common token shapes are replaced by `[redacted]` in everything a beat writes."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

MARK = "[redacted]"
_SECRET_NAME = re.compile(r"TOKEN|KEY|SECRET|PASSWORD", re.IGNORECASE)
# Short values ("1", "true") would shred ordinary text; real secrets are longer.
_MIN_VALUE_LEN = 8
_SHAPES = (
    r"ghp_[A-Za-z0-9]{20,}",
    r"gh[ousr]_[A-Za-z0-9]{20,}",
    r"github_pat_[A-Za-z0-9_]{20,}",
    # Not inside a word: "disk-usage-report-for-server-01" is not a key.
    r"(?<![A-Za-z0-9_-])sk-[A-Za-z0-9_-]{20,}",
    r"AKIA[0-9A-Z]{16}",
    r"xox[abprs]-[A-Za-z0-9-]{10,}",
    # The credentials in a URL (https://user:password@host/…); git hides them in its own
    # messages, but a hook's or a helper's output need not.
    r"(?<=://)[^/@\s:]+:[^/@\s]+(?=@)",
)


@lru_cache(maxsize=4)
def _pattern(values: tuple[str, ...]) -> re.Pattern[str]:
    alternatives = [re.escape(v) for v in sorted(values, key=len, reverse=True)]
    return re.compile("|".join([*alternatives, *_SHAPES]))


def secret_values(env: Mapping[str, str] | None = None) -> tuple[str, ...]:
    env = os.environ if env is None else env
    return tuple(
        sorted({v for k, v in env.items() if _SECRET_NAME.search(k) and len(v) >= _MIN_VALUE_LEN})
    )


def redactor(env: Mapping[str, str] | None = None) -> Callable[[str], str]:
    """A function that redacts secrets from text; build it once per beat, not per string."""
    pattern = _pattern(secret_values(env))
    return lambda text: pattern.sub(MARK, text)


def redact(text: str, env: Mapping[str, str] | None = None) -> str:
    return redactor(env)(text)


def redact_value(value: Any, scrub: Callable[[str], str]) -> Any:
    """Redact every string inside a JSON value (not its serialization, which escapes)."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, list):
        return [redact_value(v, scrub) for v in value]
    if isinstance(value, dict):
        return {scrub(k): redact_value(v, scrub) for k, v in value.items()}
    if isinstance(value, int | float) and not isinstance(value, bool):
        # A secret made of digits can hide in a JSON number: the number goes too.
        text = json.dumps(value)
        return value if scrub(text) == text else MARK
    return value


# Output is kept as a head or a tail of N bytes. Cut first and redacted after, a secret
# straddling the cut leaves a piece of itself behind; so read this much more, redact, and
# only then cut. Real secrets and token shapes are far shorter.
MARGIN = 1024


def head(data: bytes, keep: int, scrub: Callable[[str], str]) -> str:
    """The first `keep` characters of `data` (read `keep` + MARGIN bytes), redacted first."""
    return scrub(data[: keep + MARGIN].decode("utf-8", errors="replace"))[:keep]


def tail(data: bytes, keep: int, scrub: Callable[[str], str]) -> str:
    """The last `keep` characters of `data` (the caller kept `keep` + MARGIN bytes),
    redacted first."""
    text = scrub(data[-(keep + MARGIN) :].decode("utf-8", errors="replace"))
    return text[-keep:] if keep else ""
