"""The wake signal, the world hash and what changed (DESIGN §4): pure functions."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from looopbot import desired
from looopbot.datadir import DataDir
from looopbot.world import canonical, desired_hash, wake_signal, what_changed, world_hash

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=4), kids, max_size=4)
    ),
    max_leaves=12,
)
ids = st.from_regex(r"[a-z][a-z0-9._-]{0,6}", fullmatch=True).filter(lambda s: ".." not in s)
goal_paths = ids.map(lambda i: f"goals/{i}.md")
desired_parts = st.dictionaries(
    goal_paths | st.just("PLAYBOOK.md"), st.binary(max_size=12), max_size=5
)
signal_sets = st.dictionaries(ids, json_values, max_size=4)


# --- canonical JSON --------------------------------------------------------------------------


def test_canonical_is_sorted_compact_utf8() -> None:
    assert canonical({"b": 1, "a": [1, 2, {"d": None, "c": True}]}) == (
        b'{"a":[1,2,{"c":true,"d":null}],"b":1}'
    )
    # UTF-8, not \u escapes: the same reading hashes the same however it was serialized
    assert canonical({"k": "é✓"}) == '{"k":"é✓"}'.encode()


@given(json_values)
def test_canonical_is_stable_through_a_round_trip(value: Any) -> None:
    once = canonical(value)
    assert canonical(json.loads(once)) == once
    # No whitespace outside string literals (a string may well hold ": " itself).
    bare = re.sub(rb'"(?:[^"\\]|\\.)*"', b'""', once)
    assert b"\n" not in once and b" " not in bare


@given(st.dictionaries(st.text(max_size=5), json_values, max_size=6))
def test_canonical_ignores_insertion_order(value: dict[str, Any]) -> None:
    reversed_order = dict(reversed(list(value.items())))
    assert canonical(reversed_order) == canonical(value)


# --- wake signal -----------------------------------------------------------------------------


def test_wake_signal_of_an_object_holding_signal_is_its_signal() -> None:
    assert wake_signal({"signal": {"open": 3}, "detail": {"at": 17}}) == {"open": 3}
    # a falsy signal is still the signal, not "no signal"
    assert wake_signal({"signal": None, "detail": "x"}) is None
    assert wake_signal({"signal": 0}) == 0
    assert wake_signal({"signal": []}) == []


def test_wake_signal_of_anything_else_is_the_whole_value() -> None:
    for value in (
        {"open": 3, "detail": "x"},
        {"nested": {"signal": 1}},
        [{"signal": 1}],
        "signal",
        42,
        None,
        True,
    ):
        assert wake_signal(value) == value


# --- world hash ------------------------------------------------------------------------------


def test_world_hash_is_sha256_hex() -> None:
    h = world_hash({"PLAYBOOK.md": b"be kind\n"}, {"today": {"day": 1}})
    assert len(h) == 64 and int(h, 16) >= 0
    assert h != hashlib.sha256(b"").hexdigest()


@given(desired_parts, signal_sets)
def test_world_hash_ignores_insertion_order(parts: dict[str, bytes], sigs: dict[str, Any]) -> None:
    h = world_hash(parts, sigs)
    assert world_hash(dict(reversed(list(parts.items()))), dict(reversed(list(sigs.items())))) == h
    # canonical JSON: the key order inside a signal does not matter either
    reordered = {
        n: dict(reversed(list(v.items()))) if isinstance(v, dict) else v for n, v in sigs.items()
    }
    assert world_hash(parts, reordered) == h


@given(desired_parts, desired_parts, signal_sets, signal_sets)
def test_different_worlds_hash_differently(
    a: dict[str, bytes], b: dict[str, bytes], sa: dict[str, Any], sb: dict[str, Any]
) -> None:
    same = a == b and {n: canonical(v) for n, v in sa.items()} == {
        n: canonical(v) for n, v in sb.items()
    }
    assert (world_hash(a, sa) == world_hash(b, sb)) == same


@given(
    st.lists(ids, min_size=2, max_size=2, unique=True),
    st.binary(max_size=10),
    st.binary(max_size=10),
)
def test_path_markers_frame_parts_so_concatenations_never_collide(
    names: list[str], head: bytes, tail: bytes
) -> None:
    """{p1: a + p2 + b} and {p1: a, p2: b} concatenate to the same bytes; framing by path and
    length must still tell them apart."""
    p1, p2 = sorted(f"goals/{n}.md" for n in names)
    merged = {p1: head + p2.encode() + tail}
    split = {p1: head, p2: tail}

    def naive(parts: dict[str, bytes]) -> bytes:
        return b"".join(p.encode() + d for p, d in sorted(parts.items()))

    assert naive(merged) == naive(split)  # the trap is real
    assert world_hash(merged, {}) != world_hash(split, {})


@given(st.text(min_size=1, max_size=6), st.text(min_size=1, max_size=6))
def test_signal_framing_never_collides(x: str, y: str) -> None:
    # two snapshots vs one whose signal happens to hold the other's marker
    marker = "snapshots/b.json"
    one = {"a": x + marker + y}
    two = {"a": x, "b": y}
    assert world_hash({}, one) != world_hash({}, two)


def test_detail_changes_do_not_change_the_hash_but_signal_changes_do() -> None:
    base = {"ci": {"signal": {"failing": 0}, "detail": {"checked_at": 1}}}
    detail_only = {"ci": {"signal": {"failing": 0}, "detail": {"checked_at": 2, "more": [1]}}}
    new_signal = {"ci": {"signal": {"failing": 1}, "detail": {"checked_at": 1}}}

    def h(snaps: dict[str, Any]) -> str:
        return world_hash({"PLAYBOOK.md": b"p"}, {n: wake_signal(v) for n, v in snaps.items()})

    assert h(detail_only) == h(base)
    assert h(new_signal) != h(base)
    # a value without "signal" is its own signal: every change counts
    assert h({"ci": {"failing": 0, "at": 1}}) != h({"ci": {"failing": 0, "at": 2}})


def test_playbook_and_goal_edits_change_the_hash() -> None:
    base = {"PLAYBOOK.md": b"p\n", "goals/a.md": b"goal: a\n"}
    h = world_hash(base, {})
    assert world_hash({**base, "PLAYBOOK.md": b"p2\n"}, {}) != h
    assert world_hash({**base, "goals/a.md": b"goal: a!\n"}, {}) != h
    assert world_hash({**base, "goals/b.md": b"goal: b\n"}, {}) != h
    assert world_hash({"PLAYBOOK.md": b"p\n"}, {}) != h
    assert desired_hash(base) == world_hash(base, {})


def _data_dir(root: Path) -> DataDir:
    (root / "goals" / "archive").mkdir(parents=True)
    (root / "PLAYBOOK.md").write_text("be useful\n")
    (root / "goals" / "live.md").write_text("goal: live\n")
    return DataDir(root=root, repo_root=None)


def test_archived_goals_are_not_part_of_the_desired_state(tmp_path: Path) -> None:
    dd = _data_dir(tmp_path)
    before = desired.read(dd)
    assert set(before) == {"PLAYBOOK.md", "goals/live.md"}
    (tmp_path / "goals" / "archive" / "old.md").write_text("goal: old\n")
    (tmp_path / "goals" / "archive" / "live.md").write_text("goal: archived twin\n")
    after = desired.read(dd)
    assert after == before
    assert world_hash(after, {}) == world_hash(before, {})
    # a new top-level goal, by contrast, is part of it
    (tmp_path / "goals" / "new.md").write_text("goal: new\n")
    assert set(desired.read(dd)) == {"PLAYBOOK.md", "goals/live.md", "goals/new.md"}


def test_files_that_are_not_goals_are_not_desired_state(tmp_path: Path) -> None:
    dd = _data_dir(tmp_path)
    before = desired.read(dd)
    (tmp_path / "goals" / "notes.txt").write_text("not a goal")
    (tmp_path / "goals" / ".hidden.md").write_text("goal: hidden")
    (tmp_path / "journal.md").write_text("- 2024-01-01 00:00 hi\n")
    (tmp_path / "looopbot.yaml").write_text("runner: example\n")
    assert desired.read(dd) == before


# --- what changed ----------------------------------------------------------------------------


def test_what_changed_on_the_first_beat() -> None:
    assert what_changed(None, {"PLAYBOOK.md": "d"}, None, {"x": 1}) == ["(first beat)"]
    assert what_changed({"PLAYBOOK.md": "d"}, {}, None, {}) == ["(first beat)"]


def test_what_changed_names_added_edited_and_removed_goals() -> None:
    old = {"PLAYBOOK.md": "p1", "goals/a.md": "a1", "goals/gone.md": "g1"}
    new = {"PLAYBOOK.md": "p2", "goals/a.md": "a1", "goals/b.md": "b1"}
    assert what_changed(old, new, {}, {}) == [
        "PLAYBOOK.md: edited",
        "goals/b.md: added",
        "goals/gone.md: removed",
    ]


def test_what_changed_names_signal_changes_new_and_gone_snapshots() -> None:
    old = {"ci": {"failing": 0}, "old": [1], "same": {"b": 1, "a": 2}}
    new = {"ci": {"failing": 2}, "fresh": "hi", "same": {"a": 2, "b": 1}}
    lines = what_changed({}, {}, old, new)
    assert lines == [
        'snapshots/ci.json: signal {"failing":0} -> {"failing":2}',
        'snapshots/fresh.json: new signal "hi"',
        "snapshots/old.json: gone (was [1])",
    ]


def test_what_changed_when_nothing_changed_says_why_it_decides_anyway() -> None:
    lines = what_changed({"PLAYBOOK.md": "d"}, {"PLAYBOOK.md": "d"}, {"a": 1}, {"a": 1})
    assert len(lines) == 1 and lines[0].startswith("(nothing")


def test_what_changed_a_null_signal_appearing_is_a_change() -> None:
    assert what_changed({}, {}, {}, {"a": None}) == ["snapshots/a.json: new signal null"]
    assert what_changed({}, {}, {"a": None}, {}) == ["snapshots/a.json: gone (was null)"]


def test_what_changed_caps_long_values_visibly() -> None:
    old = {"big": "x" * 5000}
    new = {"big": "y" * 5000}
    (line,) = what_changed({}, {}, old, new, value_cap=100)
    assert line.count("…[cut ") == 2
    assert len(line) < 400
    # the canonical text '"xxx…"' (5002 chars) keeps its first 100 and says how much went
    assert '"' + "x" * 99 + "…[cut 4902 chars]" in line
    # under the cap, nothing is cut
    (short,) = what_changed({}, {}, {"s": "a"}, {"s": "b"}, value_cap=100)
    assert "cut" not in short


@given(signal_sets, signal_sets)
def test_what_changed_lists_exactly_the_changed_snapshots(
    old: dict[str, Any], new: dict[str, Any]
) -> None:
    lines = what_changed({}, {}, old, new)
    changed = {
        n
        for n in {*old, *new}
        if n not in old or n not in new or canonical(old[n]) != canonical(new[n])
    }
    if not changed:
        assert len(lines) == 1 and lines[0].startswith("(nothing")
    else:
        named = {line.split(": ", 1)[0] for line in lines}
        assert named == {f"snapshots/{n}.json" for n in changed}
    assert all("\n" not in line for line in lines)
