"""Durable schedules end to end: the real CLI, real git, the scripted runner (issue 9 item 1).

A due schedule wakes exactly one decided beat; that beat removes a one-shot and advances a
recurring one in its own commit; a failed or held beat leaves it due; a quiet loop with
schedules makes no commit; all of it survives a fresh clone.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from conftest import NOOP, Repo

from looopbot.schedules.spec import parse, parse_time

PAST = "2020-01-01T09:00:00Z"
FUTURE = "2099-01-01T09:00:00+01:00"


def commit(repo: Repo, rel: str, text: str, message: str = "human: schedule") -> None:
    repo.write(rel, text)
    repo.git("add", "--", rel)
    repo.git("commit", "-qm", message)


def first_beat(repo: Repo) -> None:
    repo.decide(NOOP)
    r = repo.tick()
    assert r.code == 0 and r.json()["outcome"] == "decided", r.err


def schedules_snapshot(repo: Repo) -> dict[str, Any]:
    return json.loads(repo.read("snapshots/sys-schedules.json"))  # type: ignore[no-any-return]


def changed_in(repo: Repo, rev: str = "HEAD") -> list[str]:
    return repo.git("show", "--name-status", "--format=", rev).splitlines()


def due_section(prompt: str) -> str:
    assert "=== DUE SCHEDULES ===" in prompt, prompt[-2000:]
    return prompt.split("=== DUE SCHEDULES ===\n", 1)[1].split("\n\n===", 1)[0]


def quiet(repo: Repo, times: int = 2) -> None:
    """Beats that change nothing: no runner call and no commit."""
    head, calls = repo.head(), repo.calls()
    for _ in range(times):
        r = repo.tick()
        assert r.code == 0, r.err
        assert r.json()["outcome"] == "unchanged", r.out
        assert r.json()["commit"] is None
    assert repo.head() == head and repo.calls() == calls


# --- waking -----------------------------------------------------------------------------------


def test_a_due_one_shot_wakes_one_decided_beat_and_is_gone_after_it(repo: Repo) -> None:
    first_beat(repo)
    commit(repo, "schedules/deploy.yaml", f"at: {PAST}\nnote: re-check the deploy\ngoal: setup\n")
    repo.decide(NOOP)
    r = repo.tick()
    assert r.code == 0 and r.json()["outcome"] == "decided", r.out + r.err
    due = due_section(repo.prompts()[-1])
    assert "- deploy (once, due 2020-01-01 09:00 UTC, " in due
    assert "d overdue, goal setup): re-check the deploy" in due
    # gone, in that beat's own commit
    assert not (repo.root / "schedules/deploy.yaml").exists()
    assert "D\tschedules/deploy.yaml" in changed_in(repo)
    assert repo.trailers()["Looopbot-Outcome"] == "decided"
    assert "schedules handled: deploy (done, removed)" in repo.read("journal.md")
    assert schedules_snapshot(repo)["signal"] == []
    assert repo.status_porcelain() == ""
    quiet(repo)


def test_a_recurring_schedule_advances_and_stays_quiet_until_its_next_time(repo: Repo) -> None:
    first_beat(repo)
    text = f"# the nightly backups\nevery: 1h  # hourly\nnext: {PAST}\nnote: check the backups\n"
    commit(repo, "schedules/backups.yaml", text)
    before = time.time()
    repo.decide(NOOP)
    assert repo.tick().json()["outcome"] == "decided"
    assert "- backups (every 60m, due 2020-01-01 09:00 UTC" in due_section(repo.prompts()[-1])
    after = repo.read("schedules/backups.yaml")
    # the author's comments and layout stay; only next: moved, past now, on the 09:00 grid
    assert after.startswith("# the nightly backups\nevery: 1h  # hourly\nnext: ")
    nxt = parse(after).next
    assert nxt is not None and before < nxt <= time.time() + 3600
    assert (nxt - parse_time(PAST)) % 3600 == 0
    assert "M\tschedules/backups.yaml" in changed_in(repo)
    assert schedules_snapshot(repo)["detail"]["schedules"]["backups"]["next"] == nxt
    quiet(repo)


def test_a_recurring_schedule_wakes_once_per_period(repo: Repo) -> None:
    first_beat(repo)
    commit(repo, "schedules/ping.yaml", f"every: 2\nnext: {PAST}\nnote: ping\n")
    seen = []
    for _ in range(3):
        repo.decide(NOOP)
        r = repo.tick()
        assert r.json()["outcome"] == "decided", r.out
        nxt = parse(repo.read("schedules/ping.yaml")).next
        assert nxt is not None
        seen.append(nxt)
        while time.time() <= nxt + 0.05:  # let the period pass (waiting, not asserting)
            time.sleep(0.05)
    assert seen == sorted(set(seen))  # each beat moved it on
    assert repo.calls() == 4 and not list((repo.fake / "queue").glob("*.json"))
    assert [line for line in repo.read("journal.md").splitlines() if "ping (next" in line][2:]


def test_schedules_survive_a_fresh_clone(repo: Repo, tmp_path: Path) -> None:
    first_beat(repo)
    commit(repo, "schedules/once.yaml", f"at: {PAST}\nnote: once\n")
    commit(repo, "schedules/hourly.yaml", f"every: 1h\nnext: {PAST}\nnote: hourly\n")
    commit(repo, "schedules/later.yaml", f"at: {FUTURE}\nnote: much later\n")

    def clone(src: Path, name: str) -> Repo:
        dst = tmp_path / name
        subprocess.run(["git", "clone", "-q", str(src), str(dst)], check=True)
        return Repo(dst, repo.fake, dict(repo.env))

    there = clone(repo.root, "clone")
    there.decide(NOOP)
    r = there.tick()
    assert r.code == 0 and r.json()["outcome"] == "decided", r.out + r.err
    due = due_section(there.prompts()[-1])
    assert "- once (" in due and "- hourly (" in due and "later" not in due
    assert not (there.root / "schedules/once.yaml").exists()
    assert parse(there.read("schedules/hourly.yaml")).next > time.time()  # type: ignore[operator]
    quiet(there)
    # Nothing local was needed: a second clone, of the clone, goes on just as quietly.
    again = clone(there.root, "clone2")
    quiet(again)


def test_a_quiet_loop_with_schedules_makes_no_commit(repo: Repo) -> None:
    first_beat(repo)
    commit(repo, "schedules/later.yaml", f"at: {FUTURE}\nnote: much later\n")
    commit(repo, "schedules/weekly.yaml", f"every: 7d\nstart: {FUTURE}\nnote: weekly\n")
    calls = repo.calls()
    r = repo.tick()  # new schedules that are not due: detail only, no runner call
    assert r.json()["outcome"] == "unchanged", r.out
    assert repo.calls() == calls
    detail = schedules_snapshot(repo)["detail"]["schedules"]
    assert detail["weekly"]["next"] == parse_time(FUTURE) and detail["weekly"]["every"] == 604800
    quiet(repo, 3)
    # A human's edit to a schedule that is not due tells the loop nothing to act on now.
    commit(repo, "schedules/later.yaml", f"at: {FUTURE}\nnote: much later, and more\n")
    assert repo.tick().json()["outcome"] == "unchanged"
    assert repo.calls() == calls
    assert schedules_snapshot(repo)["detail"]["schedules"]["later"]["note"] == (
        "much later, and more"
    )
    quiet(repo)


# --- the actions ------------------------------------------------------------------------------


def test_write_schedule_and_delete_schedule_by_decision(repo: Repo) -> None:
    repo.decide(
        {"action": "write_schedule", "name": "later", "at": FUTURE, "note": "check it", "goal": "g"}
    )
    r = repo.tick()
    assert r.json()["outcome"] == "decided" and r.json()["action"] == "write_schedule", r.out
    written = parse(repo.read("schedules/later.yaml"))
    assert written.at == parse_time(FUTURE) and written.note == "check it" and written.goal == "g"
    assert "A\tschedules/later.yaml" in changed_in(repo)
    assert "later" in schedules_snapshot(repo)["detail"]["schedules"]
    assert "write_schedule" in repo.prompts()[0] and "DUE SCHEDULES" in repo.prompts()[0]

    before = time.time()
    repo.decide({"action": "write_schedule", "name": "often", "every": "15m", "note": "a\nb"})
    assert repo.tick("--force").json()["outcome"] == "decided"
    often = parse(repo.read("schedules/often.yaml"))
    assert often.every == 900 and often.note == "a\nb"
    assert often.next is not None and before + 900 <= often.next <= time.time() + 901
    quiet(repo)  # written for later: not due, no wake

    repo.decide({"action": "delete_schedule", "name": "later"})
    assert repo.tick("--force").json()["outcome"] == "decided"
    assert "D\tschedules/later.yaml" in changed_in(repo)
    repo.decide({"action": "delete_schedule", "name": "later"})
    r = repo.tick("--force")
    assert r.json()["outcome"] == "failed"
    assert "no schedule 'later' (schedules/later.yaml is missing)" in r.json()["error"]


def test_the_move_may_postpone_the_schedule_that_woke_it(repo: Repo) -> None:
    first_beat(repo)
    commit(repo, "schedules/deploy.yaml", f"at: {PAST}\nnote: re-check\n")
    repo.decide({"action": "write_schedule", "name": "deploy", "at": FUTURE, "note": "again"})
    assert repo.tick().json()["outcome"] == "decided"
    assert parse(repo.read("schedules/deploy.yaml")).at == parse_time(FUTURE)
    quiet(repo)


def test_the_move_may_rewrite_the_note_of_the_schedule_that_woke_it(repo: Repo) -> None:
    first_beat(repo)
    commit(repo, "schedules/deploy.yaml", f"at: {PAST}\nnote: re-check\n")
    repo.decide({"action": "write_schedule", "name": "deploy", "at": PAST, "note": "half done"})
    assert repo.tick().json()["outcome"] == "decided"
    assert parse(repo.read("schedules/deploy.yaml")).note == "half done"
    assert "stays due" not in repo.read("journal.md")


def test_a_schedule_the_move_writes_already_due_wakes_the_next_beat(repo: Repo) -> None:
    repo.decide({"action": "write_schedule", "name": "now", "at": PAST, "note": "right away"})
    assert repo.tick().json()["outcome"] == "decided"
    assert (repo.root / "schedules/now.yaml").exists()
    repo.decide(NOOP)
    r = repo.tick()
    assert r.json()["outcome"] == "decided", r.out
    assert "- now (once, " in due_section(repo.prompts()[-1])
    assert not (repo.root / "schedules/now.yaml").exists()
    quiet(repo)


def test_a_failed_or_held_beat_leaves_the_schedule_due(repo: Repo) -> None:
    first_beat(repo)
    commit(repo, "schedules/deploy.yaml", f"at: {PAST}\nnote: re-check\n")
    repo.queue({"exit": 1, "stderr": "runner broke"})
    assert repo.tick().json()["outcome"] == "failed"
    assert (repo.root / "schedules/deploy.yaml").exists()
    r = repo.tick()
    assert r.json()["outcome"] == "backoff", r.out  # held: no runner call
    assert (repo.root / "schedules/deploy.yaml").exists()
    # A refused move is a failed beat too.
    commit(repo, "PLAYBOOK.md", "# Playbook\nretry now\n")  # a human edit cuts the wait short
    repo.decide({"action": "write_schedule", "name": "x", "every": 0, "note": "n"})
    r = repo.tick()
    assert r.json()["outcome"] == "failed"
    assert "write_schedule.every: every must be at least 1 second" in r.json()["error"]
    assert (repo.root / "schedules/deploy.yaml").exists()
    assert not (repo.root / "schedules/x.yaml").exists()
    commit(repo, "PLAYBOOK.md", "# Playbook\nand again\n")
    repo.decide(NOOP)
    assert repo.tick().json()["outcome"] == "decided"
    assert not (repo.root / "schedules/deploy.yaml").exists()
    assert all("- deploy (once" in due_section(p) for p in repo.prompts()[1:])


def test_the_users_uncommitted_edits_to_a_schedule_are_never_overwritten(repo: Repo) -> None:
    first_beat(repo)
    commit(repo, "schedules/deploy.yaml", f"at: {PAST}\nnote: re-check\n")
    mine = f"at: {PAST}\nnote: re-check, my words\n"
    repo.write("schedules/deploy.yaml", mine)
    repo.decide(NOOP)
    assert repo.tick().json()["outcome"] == "decided"
    assert repo.read("schedules/deploy.yaml") == mine
    assert repo.status_porcelain() == " M schedules/deploy.yaml\n"
    assert "schedule deploy stays due: advancing the schedule refused" in repo.read("journal.md")
    repo.decide({"action": "write_schedule", "name": "deploy", "at": FUTURE, "note": "n"})
    r = repo.tick("--force")
    assert r.json()["outcome"] == "failed" and "uncommitted changes" in r.json()["error"]
    assert repo.read("schedules/deploy.yaml") == mine


# --- by hand ----------------------------------------------------------------------------------


def test_schedule_write_list_delete_by_hand(repo: Repo) -> None:
    r = repo.run("schedule", "write", "nightly", "--every", "1d", "--goal", "setup", "backups?")
    assert r.code == 0, r.err
    assert r.out.startswith("by hand: write_schedule nightly [")
    assert repo.git("log", "-1", "--format=%s").strip() == (
        "looopbot: write_schedule · by hand: write_schedule nightly"
    )
    assert repo.trailers()["Looopbot-Outcome"] == "manual"
    assert repo.run("schedule", "write", "once", "--at", PAST, "-", input="from stdin\n").code == 0
    assert parse(repo.read("schedules/once.yaml")).note == "from stdin"
    rows = {row["name"]: row for row in repo.run("schedule", "list", "--json").json()["schedules"]}
    assert rows["nightly"]["every"] == 86400 and rows["nightly"]["due"] is False
    assert rows["nightly"]["goal"] == "setup" and rows["nightly"]["note"] == "backups?"
    assert rows["once"]["due"] is True and rows["once"]["next"] == parse_time(PAST)
    text = repo.run("schedule", "list").out.splitlines()
    assert text[0].startswith("nightly\tevery 86400s\tnext ") and text[0].endswith("backups?")
    assert text[1].startswith("once\tonce\tdue since 2020-01-01T09:00:00Z (")
    r = repo.run("schedule", "delete", "nightly")
    assert r.code == 0, r.err
    assert not (repo.root / "schedules/nightly.yaml").exists()
    assert "D\tschedules/nightly.yaml" in changed_in(repo)
    assert repo.status_porcelain() == ""


def test_bad_input_by_hand_is_one_line_and_writes_nothing(repo: Repo) -> None:
    head = repo.head()
    cases = [
        (["write", "x", "--at", "2026-12-07T09:00", "n"], "no time zone"),
        (["write", "x", "--at", PAST, "--every", "1h", "n"], "exactly one of --at"),
        (["write", "x", "n"], "exactly one of --at"),
        (["write", "x", "--every", "0", "n"], "every must be at least 1 second"),
        (["write", "x", "--every", "1w", "n"], "every must be whole seconds"),
        (["write", "x", "--at", PAST, "--start", PAST, "n"], '"start" goes with "every"'),
        (["write", "../x", "--every", "1h", "n"], "is not a valid id"),
        (["write", "x", "--every", "1h", "--goal", "a b", "n"], "is not a valid id"),
        (["write", "x", "--every", "1h", "  "], "note is empty"),
        (["delete", "nope"], "no schedule 'nope'"),
    ]
    for args, words in cases:
        r = repo.run("schedule", *args)
        assert r.code == 1, (args, r.err)
        assert words in r.err and r.err.count("\n") == 1, (args, r.err)
    assert repo.head() == head and repo.status_porcelain() == ""
    assert not (repo.root / "schedules").exists()


# --- hostile files ----------------------------------------------------------------------------


def test_hostile_schedule_files_are_one_error_each_never_a_crash(repo: Repo) -> None:
    secret = repo.root.parent / "secret.txt"
    secret.write_text("at: 2020-01-01T00:00:00Z\nnote: the secret words\n")
    first_beat(repo)
    commit(repo, "schedules/good.yaml", f"at: {PAST}\nnote: still works\n")
    d = repo.root / "schedules"
    (d / "link.yaml").symlink_to(secret)
    (d / "huge.yaml").write_text("note: " + "x" * 20000 + "\nevery: 1h\n")
    (d / "notyaml.yaml").write_text("every: 1h\nnote: [\n")
    (d / "badtime.yaml").write_text("note: n\nat: 2026-12-07 09:00\n")
    (d / "zero.yaml").write_text("note: n\nevery: 0\n")
    (d / "bad name.yaml").write_text(f"at: {PAST}\nnote: n\n")
    (d / "binary.yaml").write_bytes(b"note: \xff\xfe\n")
    (d / "dir.yaml").mkdir()
    os.mkfifo(d / "fifo.yaml")
    (d / "readme.txt").write_text("not a schedule\n")
    repo.decide(NOOP)
    r = repo.tick(timeout=30)
    assert r.code == 0 and r.json()["outcome"] == "decided", r.out + r.err
    snap = schedules_snapshot(repo)
    errors = {k: v["error"] for k, v in snap["detail"]["schedules"].items() if "error" in v}
    assert errors == {
        "link": "schedules/link.yaml: is a symlink: schedules must be regular files",
        "huge": "schedules/huge.yaml: is over the 16384-byte cap for a schedule",
        "notyaml": errors["notyaml"],
        "badtime": "schedules/badtime.yaml:2: at: '2026-12-07 09:00' has no time zone: add Z "
        "or an offset such as +01:00",
        "zero": "schedules/zero.yaml:2: every must be at least 1 second",
        "bad name": errors["bad name"],
        "binary": "schedules/binary.yaml:1: not UTF-8 text",
        "dir": "schedules/dir.yaml: is not a regular file",
        "fifo": "schedules/fifo.yaml: is not a regular file",
    }
    assert errors["notyaml"].startswith("schedules/notyaml.yaml:3: not valid YAML: ")
    assert "is not a valid id" in errors["bad name"]
    assert all("\n" not in e for e in errors.values())
    assert {i["name"] for i in snap["signal"] if i.get("error")} == set(errors)
    assert "the secret words" not in repo.prompts()[-1] + json.dumps(snap)
    assert not (d / "good.yaml").exists()  # the good one still did its job
    quiet(repo)  # a steady break wakes the loop once
    v = repo.run("validate")
    assert v.code == 1
    lines = v.out.splitlines()
    assert "schedules/zero.yaml:2: every must be at least 1 second" in lines
    assert "schedules/link.yaml:1: is a symlink: schedules must be regular files" in lines
    assert any(line.startswith("schedules/notyaml.yaml:3: not valid YAML") for line in lines)
    assert "schedules/readme.txt:1: ignored: schedules are schedules/<name>.yaml" in lines


def test_a_hand_made_record_cannot_make_us_commit_stray_files_under_schedules(repo: Repo) -> None:
    d = repo.root / "schedules"
    d.mkdir()
    (d / "notes.txt").write_text("the user's notes\n")
    (d / "x.yaml.bak").write_text("a backup\n")
    stray = ["schedules/notes.txt", "schedules/x.yaml.bak", "schedules/../PLAYBOOK.md"]
    doc = {"v": 2, "paths": stray, "appended": {}}
    (repo.root / ".looopbot/pending.json").write_text(json.dumps(doc))
    repo.decide(NOOP)
    assert repo.tick("--force").code == 0
    tree = repo.git("ls-tree", "-r", "--name-only", "HEAD")
    assert "schedules/notes.txt" not in tree and "schedules/x.yaml.bak" not in tree
