"""What looopbot does when GitHub Actions runs it: validate's workflow checks and
annotations, the pull-request preview, the beat's job summary and its redacted artifacts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import NOOP, Repo

from looopbot.ghactions import annotation, cell

WF = ".github/workflows"


def validate(repo: Repo, *args: str, env: dict[str, str] | None = None) -> tuple[int, list[str]]:
    r = repo.run("validate", *args, env={"GITHUB_ACTIONS": "", **(env or {})})
    assert "Traceback" not in r.err
    return r.code, r.out.splitlines()


def installed(repo: Repo) -> None:
    r = repo.run("github", "install")
    assert r.code == 0, r.err


# --- validate -----------------------------------------------------------------------------


def test_installed_workflows_validate_clean(repo: Repo) -> None:
    installed(repo)
    code, lines = validate(repo)
    assert code == 0, lines
    assert lines == ["ok: config, goals, sensors, schedules and workflows are valid"]


def test_broken_workflow_yaml_is_reported_at_its_line(repo: Repo) -> None:
    repo.write(f"{WF}/ci.yml", "on: push\njobs:\n  a:\n    steps: [\n      - run: x\n")
    code, lines = validate(repo)
    assert code == 1
    assert len(lines) == 1
    assert lines[0].startswith(f"{WF}/ci.yml:5: invalid YAML"), lines


def test_a_workflow_without_jobs_or_on_is_reported(repo: Repo) -> None:
    repo.write(f"{WF}/a.yml", "name: a\non: push\n")
    repo.write(f"{WF}/b.yaml", "name: b\n\njobs:\n  x:\n    runs-on: ubuntu-latest\n")
    repo.write(f"{WF}/notes.txt", "not a workflow")
    code, lines = validate(repo)
    assert code == 1
    assert lines == [
        f"{WF}/a.yml:1: a workflow needs a top-level 'jobs' mapping with at least one job",
        f"{WF}/b.yaml:1: no 'on': a workflow needs the events that start it",
    ]


def test_a_looopbot_workflow_that_no_longer_runs_looopbot_is_reported(repo: Repo) -> None:
    installed(repo)
    text = repo.read(f"{WF}/looopbot.yml")
    # `pip install looopbot` is still there: installing it is not running it
    repo.write(f"{WF}/looopbot.yml", text.replace('looopbot tick "$@"', 'echo "$@"'))
    code, lines = validate(repo)
    assert code == 1
    jobs_line = text.splitlines().index("jobs:") + 1
    assert lines == [
        f"{WF}/looopbot.yml:{jobs_line}: a looopbot workflow that never runs looopbot: no "
        "step's 'run:' calls it (restore it with 'looopbot github install')"
    ]
    # a workflow of the user's own is not held to that
    repo.write(f"{WF}/mine.yml", "on: push\njobs:\n  a:\n    steps:\n      - run: make\n")
    assert len(validate(repo)[1]) == 1


def test_annotations_under_github_actions_and_on_request(repo: Repo) -> None:
    repo.write(f"{WF}/a.yml", "name: a\non: push\n")
    repo.write("goals/bad.md", "no goal line\n")
    expected = [
        "::error file=goals/bad.md,line=1::the first line must be 'goal: <one line>'",
        f"::error file={WF}/a.yml,line=1::a workflow needs a top-level 'jobs' mapping with "
        "at least one job",
    ]
    code, lines = validate(repo, env={"GITHUB_ACTIONS": "true"})
    assert code == 1
    assert lines == expected
    assert validate(repo, "--github-annotations")[1] == expected
    assert validate(repo)[1][0] == "goals/bad.md:1: the first line must be 'goal: <one line>'"


def test_an_environment_problem_is_an_annotation_without_a_file(repo: Repo) -> None:
    code, lines = validate(repo, env={"GITHUB_ACTIONS": "true", "LOOOPBOT_SENSOR_TIMEOUTT": "5"})
    assert code == 1
    assert len(lines) == 1 and lines[0].startswith("::error::environment: ")


def test_annotation_data_and_properties_are_escaped() -> None:
    assert (
        annotation("a\nb 100%", "x,y:z.yml", 3) == "::error file=x%2Cy%3Az.yml,line=3::a%0Ab 100%25"
    )
    assert annotation("plain") == "::error::plain"


def test_validate_in_a_sub_folder_annotates_paths_from_the_repo_top(tmp_path: Path) -> None:
    from conftest import BIN, git

    top = tmp_path / "top"
    top.mkdir()
    git(top, "init", "-q")
    import subprocess

    assert subprocess.run([str(BIN), "init", str(top / "ops")], capture_output=True).returncode == 0
    (top / WF).mkdir(parents=True)
    (top / WF / "a.yml").write_text("on: push\n")
    (top / "ops" / "goals" / "bad.md").write_text("x\n")
    r = subprocess.run(
        [str(BIN), "-C", str(top / "ops"), "validate", "--github-annotations"],
        capture_output=True,
        text=True,
    )
    assert r.stdout.splitlines() == [
        "::error file=ops/goals/bad.md,line=1::the first line must be 'goal: <one line>'",
        f"::error file={WF}/a.yml,line=1::a workflow needs a top-level 'jobs' mapping with "
        "at least one job",
    ]


# --- the pull-request preview -------------------------------------------------------------


def decided(repo: Repo) -> None:
    repo.decide(NOOP)
    assert repo.tick().json()["outcome"] == "decided"
    assert repo.status_porcelain() == ""


def merged_pr(repo: Repo, files: dict[str, str]) -> None:
    """A pull request merged the way GitHub checks one out: a merge commit on the base."""
    base = repo.git("symbolic-ref", "--short", "HEAD").strip()
    repo.git("checkout", "-qb", "pr")
    for rel, text in files.items():
        repo.write(rel, text)
    repo.git("add", "-A")
    repo.git("commit", "-qm", "the pull request")
    repo.git("checkout", "-q", base)
    repo.git("commit", "-q", "--allow-empty", "-m", "the base moved on")
    repo.git("merge", "-q", "--no-ff", "-m", "merge", "pr")


def preview(repo: Repo, *args: str, env: dict[str, str] | None = None) -> dict:
    r = repo.run("github", "preview", "--json", *args, env=env)
    assert r.code == 0, r.err
    return json.loads(r.out)


def test_a_pr_that_changes_a_goal_would_wake_the_loop(repo: Repo) -> None:
    decided(repo)
    merged_pr(repo, {"goals/ship.md": "goal: ship v2\n", "README.md": "hello\n"})
    found = preview(repo)
    assert found["wake"] == "yes"
    assert found["why"] == ["goals/ship.md added since the last decision (by this change)"]
    assert {(c["path"], c["change"], c["kind"]) for c in found["changes"]} == {
        ("goals/ship.md", "added", "desired"),
        ("README.md", "added", "other"),
    }
    assert repo.calls() == 1  # nothing ran: no runner, and no beat


def test_a_pr_that_changes_only_the_readme_would_not_wake_it(repo: Repo) -> None:
    decided(repo)
    merged_pr(repo, {"README.md": "hello\n"})
    found = preview(repo)
    assert found["wake"] == "no"
    assert [c["path"] for c in found["changes"]] == ["README.md"]


def test_a_pr_that_changes_a_sensor_may_wake_it_and_the_sensor_never_runs(
    repo: Repo, tmp_path: Path
) -> None:
    decided(repo)
    witness = tmp_path / "ran"
    merged_pr(repo, {"sensors/ci.sh": f"#!/bin/sh\ntouch {witness}\necho 1\n"})
    found = preview(repo)
    assert found["wake"] == "maybe"
    assert found["changes"] == [{"path": "sensors/ci.sh", "change": "added", "kind": "sensor"}]
    assert not witness.exists()


def test_a_pr_that_adds_a_due_schedule_would_wake_the_loop(repo: Repo) -> None:
    decided(repo)
    merged_pr(
        repo,
        {
            "schedules/now.yaml": "at: 2020-01-01T09:00:00Z\nnote: check\n",
            "schedules/later.yaml": "at: 2099-01-01T09:00:00Z\nnote: check\n",
        },
    )
    found = preview(repo)
    assert found["wake"] == "yes"
    assert found["why"] == ["schedules/now.yaml is due now: the next beat wakes for it"]
    repo.git("reset", "-q", "--hard", "HEAD~1")
    repo.git("branch", "-qD", "pr")
    merged_pr(repo, {"schedules/later.yaml": "at: 2099-01-01T09:00:00Z\nnote: check\n"})
    found = preview(repo)
    assert found["wake"] == "no"
    assert found["why"][1] == (
        "schedules/later.yaml wakes the loop when it falls due, at 2099-01-01T09:00:00Z"
    )


def test_the_preview_is_the_job_summary_under_actions(repo: Repo, tmp_path: Path) -> None:
    decided(repo)
    merged_pr(repo, {"goals/ship.md": "goal: ship | v2\n"})
    summary = tmp_path / "summary.md"
    r = repo.run("github", "preview", env={"GITHUB_STEP_SUMMARY": str(summary)})
    assert r.code == 0, r.err
    text = summary.read_text()
    assert "**Wakes the loop: yes**" in text
    assert "| `goals/ship.md` | added | desired state: feeds the world hash |" in text
    assert r.out.strip() == text.strip()


def test_a_base_that_is_not_there_is_one_clear_line(repo: Repo) -> None:
    r = repo.run("github", "preview", "--base", "no-such-branch")
    assert r.code == 1
    assert "cannot compare with no-such-branch" in r.err and "Traceback" not in r.err


# --- the beat's job summary and artifacts -------------------------------------------------


SECRET = "s3cr3t-value-of-the-runner-key"


def test_a_beat_writes_its_job_summary_and_redacted_artifacts(repo: Repo, tmp_path: Path) -> None:
    summary, out = tmp_path / "summary.md", tmp_path / "artifacts"
    env = {
        "GITHUB_STEP_SUMMARY": str(summary),
        "GITHUB_SERVER_URL": "https://github.example",
        "GITHUB_REPOSITORY": "me/loop",
        "ANTHROPIC_API_KEY": SECRET,
    }
    decision = {"action": "noop", "reason": "idle", "journal": "all | quiet"}
    repo.queue({"stdout": f"the key is {SECRET}\n{json.dumps(decision)}\n"})
    r = repo.tick("--artifacts", str(out), env=env)
    assert r.code == 0, r.err
    doc = r.json()
    text = summary.read_text()
    assert "| outcome | decided |" in text
    assert "| action | noop |" in text
    assert "| journal | all \\| quiet |" in text
    assert (
        f"[`{doc['commit'][:10]}`](https://github.example/me/loop/commit/{doc['commit']})" in text
    )
    runs = list(out.iterdir())
    assert [p.name for p in runs] == [
        repo.git("log", "-1", "--format=%(trailers:key=Looopbot-Run,valueonly)").strip()
    ]
    files = {p.name: p.read_text() for p in runs[0].iterdir()}
    assert sorted(files) == ["beat.json", "decision.json", "output.log", "prompt.md"]
    assert SECRET not in "".join(files.values())
    assert "the key is [redacted]" in files["output.log"]
    assert json.loads(files["beat.json"])["commit"] == doc["commit"]
    # the local run folder is scratch and keeps what the runner said
    assert SECRET in (repo.root / ".looopbot" / "runs" / runs[0].name / "output.log").read_text()


def test_an_unchanged_beat_exports_nothing_and_says_so_in_the_summary(
    repo: Repo, tmp_path: Path
) -> None:
    repo.decide(NOOP)
    repo.tick()
    summary, out = tmp_path / "summary.md", tmp_path / "artifacts"
    r = repo.tick("--artifacts", str(out), env={"GITHUB_STEP_SUMMARY": str(summary)})
    assert r.json()["outcome"] == "unchanged"
    assert not out.exists()
    assert "| outcome | unchanged |" in summary.read_text()
    assert "| commit | none (nothing changed) |" in summary.read_text()


def test_a_failed_beat_and_a_refused_one_still_get_a_summary(repo: Repo, tmp_path: Path) -> None:
    summary = tmp_path / "summary.md"
    env = {"GITHUB_STEP_SUMMARY": str(summary)}
    repo.queue({"stdout": "no decision here", "exit": 3})
    assert repo.tick(env=env).code == 1
    assert "| outcome | failed |" in summary.read_text()
    repo.write("looopbot.yaml", "runner: [\n")
    r = repo.tick(env=env)
    assert r.code == 1
    assert "| error | looopbot.yaml:2: invalid YAML" in summary.read_text()


def test_a_summary_that_cannot_be_written_does_not_fail_the_beat(
    repo: Repo, tmp_path: Path
) -> None:
    repo.decide(NOOP)
    r = repo.tick(env={"GITHUB_STEP_SUMMARY": str(tmp_path / "no" / "such" / "dir" / "s.md")})
    assert r.code == 0
    assert "cannot write the job summary" in r.err


def test_artifacts_are_refused_with_a_dry_run(repo: Repo, tmp_path: Path) -> None:
    r = repo.run("tick", "--dry-run", "--artifacts", str(tmp_path / "a"))
    assert r.code == 1 and "dry run" in r.err


@pytest.mark.parametrize(("raw", "cell_"), [("a|b", "a\\|b"), ("x\n y", "x y"), ("", " ")])
def test_table_cells_stay_one_cell(raw: str, cell_: str) -> None:
    assert cell(raw) == cell_
