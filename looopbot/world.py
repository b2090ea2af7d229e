"""The wake signal, the world hash and what changed (DESIGN §4). Pure functions."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any, NamedTuple


class World(NamedTuple):
    """What SENSE and DIFF found: the desired files, the snapshots and their hashes."""

    desired: dict[str, bytes]
    snapshots: dict[str, Any]  # name -> value
    signals: dict[str, Any]  # name -> wake signal
    hash: str
    desired_hash: str


def canonical(value: Any) -> bytes:
    """Canonical JSON: sorted keys, no whitespace, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def wake_signal(value: Any) -> Any:
    """What of a snapshot wakes the loop: `.signal` of an object holding one, else all of it."""
    if isinstance(value, dict) and "signal" in value:
        return value["signal"]
    return value


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def world_hash(desired: Mapping[str, bytes], signals: Mapping[str, Any]) -> str:
    """SHA-256 over the desired state (PLAYBOOK.md, goals/*.md: path -> bytes) and each
    snapshot's wake signal (snapshot name -> value), sorted, each behind a path marker.

    Each part is framed by its path and length, so no concatenation of parts can be read
    as a different set of parts.
    """
    parts: list[tuple[str, bytes]] = list(desired.items())
    parts += [(f"snapshots/{name}.json", canonical(sig)) for name, sig in signals.items()]
    h = hashlib.sha256()
    for path, data in sorted(parts):
        h.update(b"%s\0%d\0" % (path.encode(), len(data)))
        h.update(data)
    return h.hexdigest()


def desired_digests(desired: Mapping[str, bytes]) -> dict[str, str]:
    return {path: digest(data) for path, data in sorted(desired.items())}


def desired_hash(desired: Mapping[str, bytes]) -> str:
    return world_hash(desired, {})


def signal_digest(value: Any) -> str:
    return digest(canonical(value))[:16]


def what_changed(
    old_files: Mapping[str, str] | None,
    new_files: Mapping[str, str],
    old_signals: Mapping[str, Any] | None,
    new_signals: Mapping[str, Any],
    value_cap: int = 1024,
) -> list[str]:
    """Human-readable lines: which desired-state files and snapshot signals differ.

    `None` for the old side means there was no decided beat yet.
    """
    if old_files is None or old_signals is None:
        return ["(first beat)"]
    lines: list[str] = []
    for path in sorted({*old_files, *new_files}):
        before, after = old_files.get(path), new_files.get(path)
        if before == after:
            continue
        verb = "added" if before is None else "removed" if after is None else "edited"
        lines.append(f"{path}: {verb}")
    for name in sorted({*old_signals, *new_signals}):
        was, now = old_signals.get(name, _ABSENT), new_signals.get(name, _ABSENT)
        if was is not _ABSENT and now is not _ABSENT and canonical(was) == canonical(now):
            continue
        path = f"snapshots/{name}.json"
        if was is _ABSENT:
            lines.append(f"{path}: new signal {_cut(canonical(now), value_cap)}")
        elif now is _ABSENT:
            lines.append(f"{path}: gone (was {_cut(canonical(was), value_cap)})")
        else:
            lines.append(
                f"{path}: signal {_cut(canonical(was), value_cap)} -> "
                f"{_cut(canonical(now), value_cap)}"
            )
    return lines or ["(nothing: a follow-up, a forced beat or an aged noop)"]


class _Absent:
    pass


_ABSENT: Any = _Absent()


def _cut(data: bytes, cap: int) -> str:
    text = data.decode("utf-8", errors="replace")
    if len(text) <= cap:
        return text
    return text[:cap] + f"…[cut {len(text) - cap} chars]"
