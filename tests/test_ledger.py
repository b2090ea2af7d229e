"""The spend ledger (DESIGN §5, §6): the budget reads it from its end, and a mangled row in
what it reads is an error naming its line, never a row silently skipped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from looopbot import ledger
from looopbot.ledger import Mangled, Row, parse_row, spent_since

DAY = 1_700_000_000.0  # `since` in these tests


def row(ts: float, cost: float | None = 0.5) -> str:
    return Row(ts, "tick", f"run-{ts:g}", "claude", cost).to_json()


def write(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / ".looopbot" / "cost.jsonl"
    path.parent.mkdir(exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines))
    return path


def test_spent_since_sums_today_and_ignores_yesterday(tmp_path: Path) -> None:
    path = write(tmp_path, [row(DAY - 3600, 9.0), row(DAY + 1, 0.25), row(DAY + 2, None)])
    assert spent_since(path, DAY) == pytest.approx(0.25)
    assert spent_since(tmp_path / "absent.jsonl", DAY) == 0.0


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        (
            '{"ts": 1700000001, "kind": "tick", "id": "r", "runner": "c", "cost_usd": 0.1',
            "not JSON",
        ),
        ("<<<<<<< HEAD", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"ts": 1700000001, "kind": "tick", "id": "r", "runner": "c"}', "missing cost_usd"),
        ('{"kind": "tick", "id": "r", "runner": "c", "cost_usd": 1}', "missing ts"),
        (
            '{"ts": 1700000001, "kind": "tick", "id": "r", "runner": "c", "cost_usd": "lots"}',
            "cost_usd is not a number",
        ),
        (
            '{"ts": 1700000001, "kind": "tick", "id": "r", "runner": "c", "cost_usd": NaN}',
            "cost_usd is not a number",
        ),
        (
            '{"ts": 1700000001, "kind": "tick", "id": "r", "runner": "c", "cost_usd": -5}',
            "cost_usd is not a number",
        ),
        (
            '{"ts": 1700000001, "kind": "tick", "id": "r", "runner": "c", "cost_usd": true}',
            "cost_usd is not a number",
        ),
        (
            '{"ts": "today", "kind": "tick", "id": "r", "runner": "c", "cost_usd": 1}',
            "ts is not a number",
        ),
        (
            '{"ts": 1700000001, "kind": 3, "id": "r", "runner": "c", "cost_usd": 1}',
            "kind is not a string",
        ),
    ],
)
def test_a_mangled_row_in_the_window_names_its_file_and_line(
    tmp_path: Path, bad: str, why: str
) -> None:
    path = write(tmp_path, [row(DAY - 100), row(DAY + 1), "", bad, row(DAY + 3)])
    with pytest.raises(Mangled) as exc:
        spent_since(path, DAY)
    assert exc.value.line == 4
    assert exc.value.message.startswith(".looopbot/cost.jsonl:4: ")
    assert why in exc.value.message and "fix or remove" in exc.value.message
    with pytest.raises(ValueError, match=why):
        parse_row(bad)


def test_blank_lines_and_a_missing_final_newline_are_fine(tmp_path: Path) -> None:
    path = write(tmp_path, ["", row(DAY + 1), "   ", "", row(DAY + 2)])
    path.write_text(path.read_text().rstrip("\n"))
    assert spent_since(path, DAY) == pytest.approx(1.0)


def test_a_mangled_row_older_than_the_window_read_is_not_read(tmp_path: Path) -> None:
    # The backward read stops a day before `since`: history it never reads cannot hold it.
    path = write(tmp_path, ["garbage", row(DAY - 2 * 86400), row(DAY + 1)])
    assert spent_since(path, DAY) == pytest.approx(0.5)


def test_the_line_number_is_right_across_read_blocks(tmp_path: Path) -> None:
    lines = [row(DAY + i) for i in range(3000)]  # ~250 KB: several 64 KiB blocks
    lines.insert(1234, "not json at all")
    path = write(tmp_path, lines)
    with pytest.raises(Mangled) as exc:
        spent_since(path, DAY)
    assert exc.value.line == 1235
    assert path.read_text().splitlines()[exc.value.line - 1] == "not json at all"


def test_the_whole_window_is_summed_across_read_blocks(tmp_path: Path) -> None:
    lines = [row(DAY + i, 0.001) for i in range(5000)]
    path = write(tmp_path, lines)
    assert spent_since(path, DAY) == pytest.approx(5.0)


def test_reports_skip_what_they_cannot_read(tmp_path: Path) -> None:
    path = write(tmp_path, [row(DAY + 1), "garbage", "", row(DAY + 2)])
    assert [r.ts for r in ledger.rows(path)] == [DAY + 1, DAY + 2]


def test_rows_round_trip() -> None:
    r = Row(DAY, "tick", "run-1", "claude", None)
    assert parse_row(r.to_json()) == r
    assert json.loads(r.to_json())["cost_usd"] is None
