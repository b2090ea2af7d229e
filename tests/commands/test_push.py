"""Pull first, push after (DESIGN §9): real clones of a bare repo playing GitHub, the real
CLI, the scripted runner. A human's pushes land before and during beats."""

from __future__ import annotations

import json
import shlex
import subprocess
import time
from pathlib import Path

import pytest
from conftest import NOOP, git
from gitops import (
    REFUSED_URL,
    clone,
    fsck,
    human,
    human_push,
    not_mid_rebase,
    published,
    remote_log,
    show,
)

from looopbot.remote import AUTH, MISSING, MOVED, REFUSED, UNREACHABLE, classify


def _push(run_json: dict) -> dict:
    assert run_json["push"] is not None, run_json
    return run_json["push"]


def test_a_pushed_beat_arrives_on_the_remote(tmp_path: Path) -> None:
    repo, remote = published(tmp_path)
    repo.decide({"action": "write_goal", "id": "ship", "body": "goal: Ship it."})
    run = repo.tick("--push")
    assert run.code == 0, run.err
    doc = run.json()
    assert _push(doc)["result"] == "pushed"
    assert remote_log(remote)[0] == doc["commit"] == repo.head()
    assert show(remote, "goals/ship.md").strip() == "goal: Ship it."
    fsck(remote)
    fsck(repo.root)
    # Nothing new: no runner call, no commit, no push.
    again = repo.tick("--push")
    assert again.code == 0 and again.json()["commit"] is None
    assert _push(again.json())["result"] == "up to date"
    assert repo.calls() == 1


def test_a_human_goal_pushed_before_the_beat_is_in_its_prompt(tmp_path: Path) -> None:
    repo, remote = published(tmp_path)
    h = human(tmp_path, remote)
    human_push(h, {"goals/deploy.md": "Deploy on Friday, not before.\n"}, "human: deploy goal")
    repo.decide(NOOP)
    run = repo.tick("--push")
    assert run.code == 0, run.err
    assert "Deploy on Friday, not before." in repo.prompts()[-1]
    assert _push(run.json())["pulled"] == "fast-forward"
    assert repo.read("goals/deploy.md") == "Deploy on Friday, not before.\n"
    assert remote_log(remote)[0] == repo.head()


def test_a_human_push_while_the_runner_decides_is_rebased_around(tmp_path: Path) -> None:
    repo, remote = published(tmp_path)
    h = human(tmp_path, remote)
    human_push(h, {"goals/ship.md": "Ship v1.\n"}, "human: ship goal")
    repo.decide(NOOP)
    assert repo.tick("--push").code == 0
    # While the runner thinks, the human rewrites the same goal and writes in the journal.
    script = (
        f"cd {shlex.quote(str(h))} && git pull -q --rebase && printf 'Ship v2, with docs.\\n'"
        " > goals/ship.md && printf -- '- 2026-01-01 00:00 human: docs first\\n' >> journal.md"
        " && git commit -qam 'human: ship v2' && git push -q"
    )
    repo.queue(
        {
            "spawn": script,
            "stdout": json.dumps(
                {
                    "action": "write_goal",
                    "id": "ship",
                    "body": "goal: Ship v1 now.",
                    "journal": "bot: tightened ship",
                }
            ),
        }
    )
    before = remote_log(remote)
    run = repo.tick("--push", "--force")
    assert run.code == 0, run.err
    push = _push(run.json())
    assert push["result"] == "pushed"
    assert push["dropped"] == ["goals/ship.md"]
    tip = remote_log(remote)
    human_tip = git(h, "rev-parse", "HEAD").strip()
    # The commit it names is the one on the branch (its replayed copy), as the push says.
    assert run.json()["commit"] == push["pushed"] == repo.head()
    # No force push: every commit the remote had is still there, the human's included.
    assert set(before) | {human_tip} <= set(tip)
    assert tip[0] == repo.head()
    journal = show(remote, "journal.md")
    assert "human: docs first" in journal
    assert "bot: tightened ship" in journal
    assert "kept origin/" in journal and "goals/ship.md" in journal
    # The human's version of the contested goal won.
    assert show(remote, "goals/ship.md") == "Ship v2, with docs.\n"
    assert repo.read("goals/ship.md") == "Ship v2, with docs.\n"
    assert repo.status_porcelain() == ""
    json.loads(show(remote, ".looopbot/state.json"))
    fsck(remote)
    fsck(repo.root)
    not_mid_rebase(repo.root)
    # The next beat re-decides on the human's version.
    repo.decide(NOOP)
    assert repo.tick("--push").json()["outcome"] == "decided"
    assert "Ship v2, with docs." in repo.prompts()[-1]


def test_an_unreachable_remote_does_not_stop_the_beat(tmp_path: Path) -> None:
    repo, remote = published(tmp_path)
    repo.git("remote", "set-url", "origin", REFUSED_URL)
    repo.decide({"action": "write_goal", "id": "offline", "body": "goal: Written offline."})
    run = repo.tick("--push")
    assert run.code == 1  # the commit did not reach the remote
    doc = run.json()
    assert doc["outcome"] == "decided" and doc["commit"] == repo.head()
    push = _push(doc)
    assert push["result"] == "failed" and push["kind"] == UNREACHABLE
    assert "push to origin/" in run.err
    # The beat's own commit says the remote could not be reached (it commits anyway).
    assert "remote origin/" in repo.read("journal.md")
    # A quiet beat offline: silent in git, and nothing to be ashamed of in the exit code
    # once there is nothing left to push — but here the commit is still unpushed.
    quiet = repo.tick("--push")
    assert quiet.json()["commit"] is None
    assert quiet.code == 1 and _push(quiet.json())["kind"] == UNREACHABLE
    # Back online: the next beat delivers the commit.
    repo.git("remote", "set-url", "origin", str(remote))
    back = repo.tick("--push")
    assert back.code == 0, back.err
    assert _push(back.json())["result"] == "pushed"
    assert show(remote, "goals/offline.md").strip() == "goal: Written offline."


def test_an_offline_quiet_loop_stays_silent_in_git(tmp_path: Path) -> None:
    repo, _remote = published(tmp_path)
    repo.decide(NOOP)
    assert repo.tick("--push").code == 0
    repo.git("remote", "set-url", "origin", REFUSED_URL)
    head = repo.head()
    run = repo.tick("--push")
    assert run.code == 0, run.err  # nothing unpushed: being offline costs nothing
    assert _push(run.json())["result"] == "skipped"
    assert _push(run.json())["kind"] == UNREACHABLE
    assert repo.head() == head
    assert repo.calls() == 1


def test_a_hook_that_refuses_the_push_is_reported_not_retried(tmp_path: Path) -> None:
    repo, remote = published(tmp_path)
    hook = remote / "hooks" / "pre-receive"
    count = tmp_path / "hook-calls"
    hook.write_text(f"#!/bin/sh\necho x >> {count}\necho 'no bots on Fridays' >&2\nexit 1\n")
    hook.chmod(0o755)
    repo.decide(NOOP)
    run = repo.tick("--push")
    assert run.code == 1
    push = _push(run.json())
    assert push["kind"] == REFUSED and push["result"] == "failed"
    assert "hook declined" in push["error"]
    assert "no bots on Fridays" in push["error"] and "\t" not in push["error"], push["error"]
    assert count.read_text().count("x") == 1  # not retried blindly
    assert run.json()["commit"] == repo.head()  # the local commit is intact


def test_a_local_pre_push_hook_that_says_no_is_a_refusal_in_its_words(tmp_path: Path) -> None:
    repo, remote = published(tmp_path)
    hook = repo.root / ".git" / "hooks" / "pre-push"
    hook.write_text("#!/bin/sh\necho 'tests are red, not pushing' >&2\nexit 1\n")
    hook.chmod(0o755)
    repo.decide(NOOP)
    run = repo.tick("--push")
    assert run.code == 1
    push = _push(run.json())
    assert push["kind"] == REFUSED and push["result"] == "failed"
    assert "tests are red, not pushing" in push["error"], push["error"]
    assert remote_log(remote)[0] != repo.head()


def test_users_unpushed_commits_go_out_when_the_remote_has_not_moved(tmp_path: Path) -> None:
    repo, remote = published(tmp_path)
    repo.write("notes.md", "mine\n")
    repo.git("add", "notes.md")
    repo.git("commit", "-qm", "human: notes")
    repo.decide(NOOP)
    run = repo.tick("--push")
    assert run.code == 0, run.err
    assert show(remote, "notes.md") == "mine\n"


def test_users_unpushed_commits_are_never_rewritten(tmp_path: Path) -> None:
    repo, remote = published(tmp_path)
    h = human(tmp_path, remote)
    human_push(h, {"goals/other.md": "From elsewhere.\n"}, "human: other")
    repo.write("notes.md", "mine\n")
    repo.git("add", "notes.md")
    repo.git("commit", "-qm", "human: notes")
    mine = repo.head()
    repo.decide(NOOP)
    run = repo.tick("--push")
    assert run.code == 1
    push = _push(run.json())
    assert "not looopbot's" in push["error"] and "git pull --rebase" in push["error"]
    # Their commit is where it was, under the beat's commit; nothing was force-pushed.
    assert git(repo.root, "merge-base", "--is-ancestor", mine, "HEAD", check=False) == ""
    assert mine in repo.git("log", "--format=%H")
    assert mine not in remote_log(remote)
    not_mid_rebase(repo.root)


def test_uncommitted_edits_survive_a_pull_exactly(tmp_path: Path) -> None:
    repo, remote = published(tmp_path)
    h = human(tmp_path, remote)
    repo.write("goals/setup.md", repo.read("goals/setup.md") + "my unsaved line\n")
    repo.write("scratch.txt", "untracked\n")
    repo.write("PLAYBOOK.md", repo.read("PLAYBOOK.md") + "staged rule\n")
    repo.git("add", "PLAYBOOK.md")
    status = repo.status_porcelain()
    human_push(h, {"goals/new.md": "New goal.\n"}, "human: new goal")
    repo.decide(NOOP)
    run = repo.tick("--push")
    assert run.code == 0, run.err
    assert repo.read("goals/new.md") == "New goal.\n"
    assert repo.read("goals/setup.md").endswith("my unsaved line\n")
    assert repo.git("diff", "--cached", "--name-only").split() == ["PLAYBOOK.md"]
    assert repo.status_porcelain() == status


def test_an_edit_the_remote_would_overwrite_blocks_the_pull_not_the_beat(tmp_path: Path) -> None:
    repo, remote = published(tmp_path)
    h = human(tmp_path, remote)
    human_push(h, {"goals/setup.md": "Remote version.\n"}, "human: setup")
    repo.write("goals/setup.md", "My unsaved version.\n")
    repo.decide(NOOP)
    run = repo.tick("--push")
    assert run.code == 1
    assert run.json()["outcome"] == "decided"
    push = _push(run.json())
    assert "goals/setup.md" in push["error"] and "commit or stash" in push["error"]
    assert repo.read("goals/setup.md") == "My unsaved version.\n"
    not_mid_rebase(repo.root)


def test_a_conflict_looopbot_cannot_classify_names_the_files(tmp_path: Path) -> None:
    repo, remote = published(tmp_path)
    h = human(tmp_path, remote)
    human_push(h, {"README.md": "theirs\n"}, "human: readme")
    # An unpushed bot commit (our trailers) that touched a file no rule covers.
    repo.write("README.md", "ours\n")
    repo.git("add", "README.md")
    repo.git(
        "commit", "-qm", "looopbot: manual · readme\n\nLooopbot-Run: r1\nLooopbot-Outcome: manual"
    )
    head = repo.head()
    repo.decide(NOOP)
    run = repo.tick("--push")
    assert run.code == 1
    assert "README.md" in _push(run.json())["error"]
    assert repo.git("rev-list", "--count", f"{head}..HEAD").strip() in ("0", "1")
    assert repo.read("README.md") == "ours\n"
    not_mid_rebase(repo.root)
    assert remote_log(remote)[0] == git(h, "rev-parse", "HEAD").strip()


def test_the_bots_state_file_wins_a_rebase(tmp_path: Path) -> None:
    repo, remote = published(tmp_path)
    repo.decide(NOOP)
    assert repo.tick("--push").code == 0
    h = human(tmp_path, remote)
    state = json.loads((h / ".looopbot/state.json").read_text())
    state["failures"] = 7
    human_push(h, {".looopbot/state.json": json.dumps(state)}, "human: fiddles with state")
    repo.decide({"action": "write_goal", "id": "x", "body": "goal: x"})
    run = repo.tick("--push", "--force")
    assert run.code == 0, run.err
    pushed = json.loads(show(remote, ".looopbot/state.json"))
    assert pushed == repo.state() and pushed["failures"] == 0


def test_a_shallow_clone_beats_and_pushes(tmp_path: Path) -> None:
    repo, remote = published(tmp_path)
    for i in range(3):
        repo.decide({"action": "write_goal", "id": f"g{i}", "body": f"goal: number {i}"})
        assert repo.tick("--push", "--force").code == 0
    ci = clone(tmp_path, remote, "runner", depth=1)
    assert ci.git("rev-parse", "--is-shallow-repository").strip() == "true"
    h = human(tmp_path, remote)
    ci.decide({"action": "write_goal", "id": "from-ci", "body": "goal: ci"})
    # The human pushes while the shallow runner decides: the push is rebased around it.
    script = (
        f"cd {shlex.quote(str(h))} && git pull -q --rebase && echo more >> goals/g0.md"
        " && git commit -qam 'human: more' && git push -q"
    )
    ci.queue({"spawn": script, "stdout": json.dumps(NOOP)})
    first = ci.tick("--push", "--force")
    assert first.code == 0, first.err
    run = ci.tick("--push", "--force")
    assert run.code == 0, run.err
    assert _push(run.json())["result"] == "pushed"
    assert remote_log(remote)[0] == ci.head()
    assert "more" in show(remote, "goals/g0.md")
    fsck(remote)


def test_status_shows_the_push_state(tmp_path: Path) -> None:
    repo, _remote = published(tmp_path)
    repo.decide(NOOP)
    assert repo.tick("--push").code == 0
    doc = repo.run("status", "--json").json()
    assert doc["push"]["upstream"] == "origin/" + repo.git("branch", "--show-current").strip()
    assert doc["push"]["ahead"] == 0 and doc["push"]["behind"] == 0
    assert doc["push"]["last"]["result"] == "pushed"
    repo.run("goal", "write", "local", "goal: only here")
    assert repo.run("status", "--json").json()["push"]["ahead"] == 1
    assert "ahead 1" in repo.run("status").out


def test_push_is_on_for_every_command_with_git_push(tmp_path: Path) -> None:
    repo, remote = published(tmp_path)
    run = repo.run("goal", "write", "by-hand", "goal: Pushed by hand.", env={"LOOOPBOT_PUSH": "1"})
    assert run.code == 0, run.err
    assert show(remote, "goals/by-hand.md").strip() == "goal: Pushed by hand."


def test_git_remote_and_branch_override_the_upstream(tmp_path: Path) -> None:
    repo, _remote = published(tmp_path)
    other = tmp_path / "mirror.git"
    subprocess.run(["git", "init", "-q", "--bare", str(other)], check=True)
    repo.git("remote", "add", "mirror", str(other))
    text = repo.read("looopbot.yaml").replace(
        "git:\n", "git:\n  push: true\n  remote: mirror\n  branch: loop\n"
    )
    repo.write("looopbot.yaml", text)
    repo.git("commit", "-qam", "config: push to the mirror")
    repo.decide(NOOP)
    run = repo.tick()
    assert run.code == 0, run.err
    assert _push(run.json())["upstream"] == "mirror/loop"
    assert git(other, "rev-parse", "refs/heads/loop").strip() == repo.head()


@pytest.mark.parametrize("value", ["-upload-pack=evil", "a b", ""])
def test_an_unsafe_git_remote_is_refused_with_its_line(tmp_path: Path, value: str) -> None:
    repo, _remote = published(tmp_path)
    text = repo.read("looopbot.yaml").replace("git:\n", f"git:\n  remote: '{value}'\n")
    repo.write("looopbot.yaml", text)
    run = repo.run("validate")
    if value == "":
        return  # empty means "not set"
    assert run.code == 1
    assert "looopbot.yaml:" in run.out + run.err and "git.remote" in run.out + run.err


@pytest.mark.parametrize(
    ("said", "kind"),
    [
        ("! [rejected]        main -> main (fetch first)", MOVED),
        ("! [rejected]        main -> main (non-fast-forward)", MOVED),
        ("! [rejected]        main -> main (stale info)", MOVED),
        ("! [remote rejected] main -> main (cannot lock ref 'refs/heads/main': is at x)", MOVED),
        ("! [remote rejected] main -> main (pre-receive hook declined)", REFUSED),
        ("! [remote rejected] main -> main (protected branch hook declined)", REFUSED),
        ("fatal: Authentication failed for 'https://github.com/o/r.git/'", AUTH),
        (
            "fatal: could not read Username for 'https://github.com': terminal prompts disabled",
            AUTH,
        ),
        ("git@github.com: Permission denied (publickey).\nfatal: Could not read from remote", AUTH),
        ("fatal: 'nowhere' does not appear to be a git repository", MISSING),
        ("ERROR: Repository not found.\nfatal: Could not read from remote repository.", MISSING),
        (
            "! [remote rejected] main -> main (refusing to allow a GitHub App to create or "
            "update workflow `.github/workflows/x.yml` without `workflows` permission)",
            REFUSED,
        ),
        ("remote: error: GH013: Repository rule violations found for refs/heads/main.", REFUSED),
        ("error: failed to push some refs to 'origin'", REFUSED),
        ("remote: Repository not found.\nfatal: repository 'https://x/y.git/' not found", MISSING),
        (
            "fatal: unable to access 'https://github.com/': Could not resolve host: github.com",
            UNREACHABLE,
        ),
        (
            "fatal: unable to access 'http://127.0.0.1:9/': Failed to connect: Connection refused",
            UNREACHABLE,
        ),
    ],
)
def test_failures_are_classified(said: str, kind: str) -> None:
    assert classify(said) == kind


def test_a_worker_branch_with_commits_is_pushed_when_it_exits_and_on_prune(
    tmp_path: Path,
) -> None:
    from conftest import FAKE_WORKER, end_workers, task

    repo, remote = published(tmp_path)
    repo.env["LOOOPBOT_WORKER_COMMAND"] = FAKE_WORKER
    repo.env["LOOOPBOT_PUSH"] = "1"
    try:
        assert repo.run("worker", "start", "w1", "-", input=task("w1", report=True)).code == 0
        assert repo.run("worker", "start", "w2", "-", input=task("w2")).code == 0
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            rows = {r["id"]: r for r in repo.run("worker", "list", "--json").json()["workers"]}
            if all(rows[w]["state"] == "exited" for w in ("w1", "w2")):
                break
            time.sleep(0.1)
        branch = "refs/heads/looopbot/worker/w1"
        assert git(remote, "rev-parse", branch).strip() == repo.git("rev-parse", branch).strip()
        assert "pushed looopbot/worker/w1 to origin" in repo.run("worker", "logs", "w1").out
        # A worker with nothing to deliver leaves nothing on the remote.
        assert git(remote, "branch", "--list", "looopbot/worker/w2").strip() == ""
        # Work committed after the exit (by a human in the worktree) goes out on prune.
        wt = repo.root / ".looopbot" / "worktrees" / "w1"
        (wt / "reports" / "extra.md").write_text("more\n")
        git(wt, "add", "-A")
        git(wt, "commit", "-qm", "human: more")
        assert repo.run("worker", "prune", "--all").code == 0
        assert git(remote, "rev-parse", branch).strip() == repo.git("rev-parse", branch).strip()
    finally:
        end_workers(repo)


def test_two_clones_journaling_the_same_words_keep_both_lines(tmp_path: Path) -> None:
    repo, remote = published(tmp_path)
    other = clone(tmp_path, remote, "other")
    same = {"action": "noop", "reason": "quiet", "journal": "all quiet on the loop"}
    repo.decide(same)
    other.decide(same)
    # Both decide before either pushes: the second push is rejected and replayed.
    repo.git("remote", "set-url", "origin", REFUSED_URL)
    assert repo.tick("--push").code == 1  # decided and committed, not pushed
    assert other.tick("--push").code == 0
    repo.git("remote", "set-url", "origin", str(remote))
    run = repo.tick("--push")
    assert run.code == 0, run.err
    assert _push(run.json())["result"] == "pushed"
    lines = [line for line in show(remote, "journal.md").splitlines() if "all quiet" in line]
    assert len(lines) == 2, show(remote, "journal.md")


def test_runner_calls_of_every_clone_count_against_the_hourly_cap(tmp_path: Path) -> None:
    repo, remote = published(tmp_path)
    other = clone(tmp_path, remote, "other")
    repo.decide(NOOP)
    other.decide(NOOP)
    repo.git("remote", "set-url", "origin", REFUSED_URL)
    assert repo.tick("--push").code == 1  # decided offline
    assert other.tick("--push").code == 0
    repo.git("remote", "set-url", "origin", str(remote))
    assert repo.tick("--push").code == 0
    state = json.loads(show(remote, ".looopbot/state.json"))
    assert len(state["decides"]) == 2, state["decides"]
    # With a cap of 2 per hour, neither clone calls its runner again.
    other.decide(NOOP)
    held = other.tick("--push", "--force", env={"LOOOPBOT_MAX_DECIDES_PER_HOUR": "2"})
    assert held.json()["outcome"] == "capped", held.out
    assert other.calls() == 1


def test_a_secret_in_git_s_words_is_redacted_everywhere(tmp_path: Path) -> None:
    repo, remote = published(tmp_path)
    secret = "sekritvalue12345"
    moved = remote.rename(tmp_path / f"r-{secret}.git")
    repo.git("remote", "set-url", "origin", str(moved))
    # A pre-push hook that says no: git then names the remote's URL in its last word.
    hook = repo.root / ".git" / "hooks" / "pre-push"
    hook.write_text("#!/bin/sh\nexit 1\n")
    hook.chmod(0o755)
    repo.decide(NOOP)
    run = repo.tick("--push", env={"DEPLOY_TOKEN": secret})
    assert run.code == 1
    error = _push(run.json())["error"]
    assert "failed to push" in error and "[redacted]" in error, error
    assert secret not in run.out + run.err
    assert secret not in repo.read("journal.md")
    status = repo.run("status", "--json", env={"DEPLOY_TOKEN": secret})
    assert secret not in status.out


def test_a_move_by_hand_is_made_on_the_latest_and_a_lost_one_says_so(tmp_path: Path) -> None:
    repo, remote = published(tmp_path)
    h = human(tmp_path, remote)
    human_push(h, {"goals/g.md": "goal: the human's first\n"}, "human: g")
    push_on = {"LOOOPBOT_PUSH": "1"}
    # Pulled first: the operator's move lands on the human's version, and wins.
    run = repo.run("goal", "write", "g", "goal: the operator's", env=push_on)
    assert run.code == 0, run.err
    assert show(remote, "goals/g.md").strip() == "goal: the operator's"
    # The human pushes again while the operator's next move is on its way out (a one-shot
    # pre-push hook here): the replay keeps the human's version — and the command says so.
    armed = tmp_path / "armed"
    armed.touch()
    script = (
        f"cd {shlex.quote(str(h))} && git pull -q --rebase && echo 'goal: the human again'"
        " > goals/g.md && git commit -qam 'human: again' && git push -q"
    )
    hook = repo.root / ".git" / "hooks" / "pre-push"
    hook.write_text(f"#!/bin/sh\n[ -e {armed} ] || exit 0\nrm {armed}\n({script}) >&2\n")
    hook.chmod(0o755)
    lost = repo.run("goal", "write", "g", "goal: the operator's second", env=push_on)
    assert lost.code == 1
    assert "goals/g.md changed on origin/" in lost.err and "dropped" in lost.err, lost.err
    assert show(remote, "goals/g.md") == "goal: the human again\n"
    assert repo.read("goals/g.md") == "goal: the human again\n"
    assert "kept origin/" in show(remote, "journal.md")


def test_a_runner_with_no_git_identity_rebases_and_pushes_as_the_bot(tmp_path: Path) -> None:
    """As on an Actions runner: no user.name/email anywhere. The replayed commit's
    committer is git.author, like every bot commit."""
    import os

    from conftest import BIN

    repo, remote = published(tmp_path)
    h = human(tmp_path, remote)
    me = "GIT_AUTHOR_NAME=H GIT_AUTHOR_EMAIL=h@x GIT_COMMITTER_NAME=H GIT_COMMITTER_EMAIL=h@x"
    script = (
        f"cd {shlex.quote(str(h))} && git pull -q --rebase && echo more >> PLAYBOOK.md"
        f" && {me} git commit -qam 'human: playbook' && git push -q"
    )
    repo.queue({"spawn": script, "stdout": json.dumps(NOOP)})
    identity = ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL")
    env = {k: v for k, v in {**os.environ, **repo.env}.items() if k not in identity}
    run = subprocess.run(
        [str(BIN), "-C", str(repo.root), "tick", "--json", "--push"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["push"]["pulled"] == "rebased 1"
    who = git(remote, "log", "-1", "--format=%an <%ae>|%cn <%ce>", "HEAD").strip()
    bot = "looopbot <looopbot@users.noreply.github.com>"
    assert who == f"{bot}|{bot}"
    assert "human: playbook" in git(remote, "log", "--format=%s")
