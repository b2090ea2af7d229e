"""`.looopbot/cost.jsonl`: the spend ledger, one JSON row per metered run (DESIGN §6)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple


class Row(NamedTuple):
    ts: float
    kind: str
    id: str
    runner: str
    cost_usd: float | None

    def to_json(self) -> str:
        return json.dumps(
            {
                "ts": self.ts,
                "kind": self.kind,
                "id": self.id,
                "runner": self.runner,
                "cost_usd": self.cost_usd,
            },
            sort_keys=True,
        )


def _row(line: str) -> Row | None:
    try:
        d: Any = json.loads(line)
        return Row(
            float(d["ts"]),
            str(d["kind"]),
            str(d["id"]),
            str(d["runner"]),
            None if d.get("cost_usd") is None else float(d["cost_usd"]),
        )
    except (ValueError, KeyError, TypeError):
        return None  # a mangled row (a bad merge) is skipped, not fatal


def rows(path: Path) -> Iterator[Row]:
    try:
        f = path.open(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return
    with f:
        for line in f:
            row = _row(line)
            if row is not None:
                yield row


def day_start(now: float) -> float:
    """Midnight of the local day holding `now`."""
    t = time.localtime(now)
    return time.mktime((t.tm_year, t.tm_mon, t.tm_mday, 0, 0, 0, 0, 0, -1))


def _rows_backwards(path: Path, block: int = 65536) -> Iterator[Row]:
    try:
        f = path.open("rb")
    except FileNotFoundError:
        return
    with f:
        pos = f.seek(0, os.SEEK_END)
        rest = b""
        while pos > 0:
            step = min(block, pos)
            pos -= step
            f.seek(pos)
            chunk = f.read(step) + rest
            lines = chunk.split(b"\n")
            rest = lines[0]  # may be cut: joined with the next block
            for raw in reversed(lines[1:]):
                row = _row(raw.decode("utf-8", errors="replace"))
                if row is not None:
                    yield row
        if rest:
            row = _row(rest.decode("utf-8", errors="replace"))
            if row is not None:
                yield row


def spent_since(path: Path, since: float) -> float:
    """Total cost of rows at or after `since`, reading the ledger from its end.

    Rows are appended in time order (a union merge may interleave two machines' recent rows),
    so reading stops a day's worth of rows before `since` — never the whole history.
    """
    total = 0.0
    for row in _rows_backwards(path):
        if row.ts < since - 86400:
            break
        if row.ts >= since and row.cost_usd is not None:
            total += row.cost_usd
    return total
