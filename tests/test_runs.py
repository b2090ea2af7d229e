"""Run folders: ids that sort by time below the second, and keeping the newest `runs_keep`."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

from looopbot import runs
from looopbot.datadir import DataDir


@pytest.fixture
def dd(tmp_path: Path) -> DataDir:
    return DataDir(tmp_path, None)


def make_run(dd: DataDir, name: str, mtime_ns: int | None = None) -> None:
    """A run folder as the runner leaves it; `mtime_ns` sets its age when a test needs one."""
    folder = dd.runs / name
    folder.mkdir(parents=True)
    (folder / "prompt.md").write_text("the prompt\n")
    if mtime_ns is not None:
        os.utime(folder, ns=(mtime_ns, mtime_ns))


def left(dd: DataDir) -> list[str]:
    return sorted(os.listdir(dd.runs))


def test_a_run_id_is_utc_to_the_microsecond_then_random() -> None:
    run_id = runs.new_run_id(1_790_000_000.25)
    assert re.fullmatch(r"20260921T\d{6}\.250000Z-[0-9a-f]{6}", run_id), run_id
    assert runs.new_run_id(1_790_000_000.25) != run_id


def test_run_ids_within_one_second_sort_by_their_time() -> None:
    base = 1_790_000_000.0
    times = [base + i / 1000 for i in range(1000)] + [base + 1]
    ids = [runs.new_run_id(t) for t in times]
    assert sorted(ids) == ids


def test_many_runs_within_one_second_keep_the_last_ones(dd: DataDir) -> None:
    # As fast as beats could ever go: folders made back to back, most sharing one second
    # and many one mtime tick of the filesystem's clock.
    names = []
    for _ in range(40):
        names.append(runs.new_run_id(time.time()))
        make_run(dd, names[-1])
    runs.prune(dd, keep=5, current=names[-1])
    assert left(dd) == names[-5:]


def test_age_not_the_name_decides(dd: DataDir) -> None:
    # Old-style names of one second sort by their random part: here, against their age.
    names = [f"20260101T000000Z-{c * 6}" for c in "fedcba9876"]
    start = time.time_ns() - 10**9
    for i, name in enumerate(names):
        make_run(dd, name, mtime_ns=start + i * 1000)
    runs.prune(dd, keep=3, current=names[-1])
    assert left(dd) == sorted(names[-3:])


def test_the_current_run_is_kept_even_when_it_looks_oldest(dd: DataDir) -> None:
    start = time.time_ns() - 10**9
    for i, name in enumerate(["a", "b", "c", "d"]):
        make_run(dd, name, mtime_ns=start + i * 10**6)
    # The clock stepped back while this beat ran: its folder looks the oldest.
    make_run(dd, "current", mtime_ns=start - 10**6)
    runs.prune(dd, keep=2, current="current")
    assert left(dd) == ["current", "d"]
    runs.prune(dd, keep=0, current="current")
    assert left(dd) == ["current"]


def test_a_killed_beats_folder_counts_like_any_other(dd: DataDir) -> None:
    start = time.time_ns() - 10**9
    make_run(dd, "killed", mtime_ns=start)  # only its prompt: the runner never finished
    for i, name in enumerate(["one", "two", "three"], start=1):
        make_run(dd, name, mtime_ns=start + i * 10**6)
    runs.prune(dd, keep=3, current="three")
    assert left(dd) == ["one", "three", "two"]


def test_a_current_run_without_a_folder_takes_no_place(dd: DataDir) -> None:
    start = time.time_ns() - 10**9
    for i, name in enumerate(["one", "two", "three"]):
        make_run(dd, name, mtime_ns=start + i * 10**6)
    runs.prune(dd, keep=2, current="never-made")
    assert left(dd) == ["three", "two"]


def test_what_is_not_a_run_folder_is_left_alone(dd: DataDir, tmp_path: Path) -> None:
    runs.prune(dd, keep=1, current="x")  # no runs folder yet: nothing to do
    start = time.time_ns() - 10**9
    make_run(dd, "old", mtime_ns=start)
    (dd.runs / "notes.txt").write_text("a human's file\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (dd.runs / "link").symlink_to(elsewhere)
    make_run(dd, "new", mtime_ns=start + 10**6)
    runs.prune(dd, keep=1, current="new")
    assert left(dd) == ["link", "new", "notes.txt"]
    assert elsewhere.is_dir()
