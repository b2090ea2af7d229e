"""`.looopbot/cost.jsonl`: the spend ledger, one JSON row per metered run (DESIGN §6)."""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

from looopbot.errors import LooopbotError


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


class Mangled(LooopbotError):
    """A ledger row that cannot be read (a bad merge, a hand edit): today's spend is unknown,
    so a budget must fail closed rather than skip the row and under-count."""

    def __init__(self, path: Path, line: int, why: str) -> None:
        # Named as in the data dir: a held beat's message may become a commit subject, which
        # must not carry this machine's absolute paths.
        shown = f"{path.parent.name}/{path.name}"
        super().__init__(f"{shown}:{line}: mangled ledger row ({why}) — fix or remove that line")
        self.path = path
        self.line = line


def parse_row(line: str) -> Row:
    """One ledger row; raises ValueError saying what is wrong with it."""
    try:
        d: Any = json.loads(line)
    except ValueError:
        raise ValueError("not JSON") from None
    if not isinstance(d, dict):
        raise ValueError("not a JSON object")
    missing = [k for k in Row._fields if k not in d]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    for key in ("kind", "id", "runner"):
        if not isinstance(d[key], str):
            raise ValueError(f"{key} is not a string")
    if not _number(d["ts"]):
        raise ValueError("ts is not a number")
    cost = d["cost_usd"]
    # NaN would make every comparison with the budget false: a budget that never holds.
    if cost is not None and (not _number(cost) or cost < 0):
        raise ValueError("cost_usd is not a number >= 0 or null")
    return Row(
        float(d["ts"]), d["kind"], d["id"], d["runner"], None if cost is None else float(cost)
    )


def _number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer too big for a float
        return False


def rows(path: Path) -> Iterator[Row]:
    """Every readable row, oldest first (for reports; the budget uses spent_since)."""
    try:
        f = path.open(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return
    with f:
        for line in f:
            if not line.strip():
                continue
            try:
                yield parse_row(line)
            except ValueError:
                continue  # a report shows what it can; the budget guard fails closed instead


def day_start(now: float) -> float:
    """Midnight of the local day holding `now`."""
    t = time.localtime(now)
    return time.mktime((t.tm_year, t.tm_mon, t.tm_mday, 0, 0, 0, 0, 0, -1))


def _lines_backwards(path: Path, block: int = 65536) -> Iterator[tuple[int, bytes]]:
    """The file's lines from the last to the first, each with the byte offset it starts at."""
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
            starts = [pos]
            for line in lines[:-1]:
                starts.append(starts[-1] + len(line) + 1)
            for i in range(len(lines) - 1, 0, -1):
                yield starts[i], lines[i]
        if rest:
            yield 0, rest


def _line_number(path: Path, offset: int) -> int:
    """1-based line of the byte at `offset` (only on the error path: it reads the prefix)."""
    with path.open("rb") as f:
        return f.read(offset).count(b"\n") + 1


def spent_since(path: Path, since: float) -> float:
    """Total cost of rows at or after `since`, reading the ledger from its end.

    Rows are appended in time order (a union merge may interleave two machines' recent rows),
    so reading stops a day's worth of rows before `since` — never the whole history. A
    mangled row among those read raises Mangled: skipping it could hide real spend.
    """
    total = 0.0
    for offset, raw in _lines_backwards(path):
        text = raw.decode("utf-8", errors="replace")
        if not text.strip():
            continue
        try:
            row = parse_row(text)
        except ValueError as exc:
            raise Mangled(path, _line_number(path, offset), str(exc)) from None
        if row.ts < since - 86400:
            break
        if row.ts >= since and row.cost_usd is not None:
            total += row.cost_usd
    return total
