"""The GitHub Actions workflow templates (DESIGN §10): rendered per runner, stamped, and
installed into a data repo without ever overwriting a workflow the user changed.

The templates are package data (`templates/github/.github/workflows/`), kept apart from
the starter data repo. Rendering is two rules and nothing more: `@@name@@` inside a line is
replaced by a value, and a line holding only `@@name@@` is replaced by a block of lines at
its indentation (no lines: the line goes).

Each rendered file starts with a stamp that carries the SHA-256 of the whole file (the
digest itself left out). A file whose stamp still matches its content is looopbot's to
refresh; any edit by hand — or no stamp at all — makes it the user's, and it is skipped.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Literal, NamedTuple

from looopbot import __version__
from looopbot.config import GIT_NAME, GitHubSettings
from looopbot.errors import LooopbotError
from looopbot.presets import CLI

WORKFLOWS = (
    ".github/workflows/looopbot.yml",
    ".github/workflows/looopbot-validate.yml",
    # Dispatched by a worker start with workers.backend: actions; idle otherwise.
    ".github/workflows/looopbot-worker.yml",
)

_PLACEHOLDER = re.compile(r"@@([a-z_]+)@@")
_STAMP = re.compile(r"^# looopbot-template: sha256=([0-9a-f]{64})?$", re.MULTILINE)
STAMP_LINE = "# looopbot-template: sha256="
# The Node.js that the runners' CLIs are installed under (claude-code 2.1.197 and the
# others run on 20 and newer; an LTS line that GitHub's images keep).
NODE_VERSION = "22"
SETUP_NODE = "actions/setup-node@820762786026740c76f36085b0efc47a31fe5020 # v7.0.0"


def template(rel: str) -> str:
    """A workflow template's text, read from the installed package."""
    node = resources.files("looopbot") / "templates" / "github"
    for part in rel.split("/"):
        node = node / part
    if not node.is_file():
        raise LooopbotError(
            f"looopbot's workflow template {rel} is missing from this install — reinstall looopbot"
        )
    return node.read_text(encoding="utf-8")


def render_text(text: str, values: Mapping[str, str | Sequence[str]]) -> str:
    """Fill `@@name@@` placeholders: a string inline, a list of lines as a block."""
    out: list[str] = []
    for line in text.splitlines(keepends=True):
        whole = _PLACEHOLDER.fullmatch(line.strip())
        if whole is not None and not isinstance(values.get(whole.group(1)), str):
            indent = line[: len(line) - len(line.lstrip())]
            out += [f"{indent}{block}\n" for block in _value(values, whole.group(1))]
            continue
        out.append(_PLACEHOLDER.sub(lambda m: str(_value(values, m.group(1))), line))
    return "".join(out)


def _value(values: Mapping[str, str | Sequence[str]], name: str) -> str | Sequence[str]:
    if name not in values:
        raise LooopbotError(f"workflow template: no value for @@{name}@@ (a looopbot bug)")
    return values[name]


def runner_values(runner: str) -> dict[str, str | list[str]]:
    """What depends on the configured runner: its CLI's pinned install and its key."""
    cli = CLI.get(runner)
    if cli is None:
        return {"runner_setup": [], "runner_env": []}
    name = cli.package.rsplit("@", 1)[0]
    return {
        "runner_setup": [
            f"- uses: {SETUP_NODE}",
            "  with:",
            f'    node-version: "{NODE_VERSION}"',
            f"- name: Install the {runner} CLI ({name})",
            f"  run: npm install --global --no-fund --no-audit {cli.package}",
        ],
        # By name only: the value lives in the repo's secrets, never in a file.
        "runner_env": [
            f"# {runner}'s key: add the repo secret {cli.secret} (Settings → Secrets and "
            "variables → Actions)",
            f"{cli.env}: ${{{{ secrets.{cli.secret} }}}}",
        ],
    }


def github_values(settings: GitHubSettings | None, backend: str) -> dict[str, str | list[str]]:
    """What the jobs need of GitHub for the `github:` switches that are on: the job's own
    token in `token_env`, and each permission at the least level that does the job. A
    workflow that names its permissions gets `none` for every other one, so each feature
    names what it reads too. Nothing when looopbot never calls GitHub: least permissions."""
    if settings is None:
        return {
            "beat_permissions": [],
            "beat_github_env": [],
            "worker_github": [],
            "worker_github_env": [],
        }
    wants: dict[str, tuple[str, str]] = {}

    def want(scope: str, level: str, why: str) -> None:
        if wants.get(scope, ("", ""))[0] != "write":
            wants[scope] = (level, why)

    if settings.sensor:
        for scope in ("issues", "pull-requests", "checks", "statuses"):
            want(scope, "read", "github.sensor reads issues, pull requests and checks")
    if settings.dashboard:
        want("issues", "write", "github.dashboard keeps its issue and answers there")
    if settings.pull_requests:
        want("pull-requests", "write", "github.pull_requests opens workers' draft PRs")
    if backend == "actions":
        want("actions", "write", "workers.backend: actions dispatches and cancels runs")
    lines: list[str] = []
    for scope, (level, why) in wants.items():
        lines += [f"# {why}", f"{scope}: {level}"]
    token = f"{settings.token_env}: ${{{{ github.token }}}}"
    thread = backend == "actions" and settings.dashboard
    return {
        "beat_permissions": lines,
        "beat_github_env": [token],
        # The worker's run asks its questions and hears its answers on the dashboard.
        # `actions: read`: the thread counts comments from the run's own start, which it
        # reads from GitHub (GET …/actions/runs/{id}) — under `actions: none`, a private
        # repository's run would never learn it, and never hear a word.
        "worker_github": [
            "# github.dashboard: the worker's dashboard thread",
            "issues: write",
            "actions: read",
        ]
        if thread
        else [],
        "worker_github_env": [token] if thread else [],
    }


def render(
    rel: str,
    *,
    runner: str,
    branch: str,
    version: str = __version__,
    github: GitHubSettings | None = None,
    backend: str = "local",
) -> str:
    """A workflow as installed: stamped, for this runner, branch and looopbot version, with
    what the `github:` switches (and workers on Actions) need of GitHub."""
    if not GIT_NAME.fullmatch(branch):
        # It goes into YAML and into an `if:` expression: a quote or `||` there would
        # change what the workflow does.
        raise LooopbotError(
            f"the branch name {branch!r} cannot go into a workflow as it is — use letters, "
            "digits, '.', '_', '/' and '-' (github install --branch NAME)"
        )
    values = {
        "version": version,
        "branch": branch,
        **runner_values(runner),
        **github_values(github, backend),
    }
    body = render_text(template(rel), values)
    head = (
        f"# Written by looopbot {version} (looopbot github install).\n"
        "# While this file is unchanged, `looopbot github install` refreshes it; edit it and it\n"
        "# is yours: looopbot never overwrites it again.\n"
        f"{STAMP_LINE}\n"
    )
    return stamp(head + body)


def _digest(text: str) -> str:
    return hashlib.sha256(_STAMP.sub(STAMP_LINE, text).encode()).hexdigest()


def stamp(text: str) -> str:
    """Put the digest of `text` into its (empty) stamp line."""
    return _STAMP.sub(STAMP_LINE + _digest(text), text, count=1)


def unchanged_since_written(text: str) -> bool:
    """Whether a file still is exactly what looopbot wrote: its stamp matches its content."""
    found = _STAMP.search(text)
    return found is not None and found.group(1) == _digest(text)


Verdict = Literal["wrote", "refreshed", "up to date", "skipped"]


class Step(NamedTuple):
    rel: str
    verdict: Verdict
    text: str  # what to write ("wrote", "refreshed"); else ""
    why: str = ""  # for "skipped"

    def line(self) -> str:
        return f"{self.verdict:<10} {self.rel}" + (f" ({self.why})" if self.why else "")


def plan(existing: Mapping[str, str | None], rendered: Mapping[str, str]) -> list[Step]:
    """What an install does to each workflow, given what is on disk (None: absent)."""
    steps = []
    for rel, new in rendered.items():
        old = existing.get(rel)
        if old is None:
            steps.append(Step(rel, "wrote", new))
        elif old == new:
            steps.append(Step(rel, "up to date", ""))
        elif unchanged_since_written(old):
            steps.append(Step(rel, "refreshed", new))
        else:
            why = (
                "changed by hand — kept as it is; delete it and re-run to get the new template"
                if _STAMP.search(old)
                else "not written by looopbot — kept as it is"
            )
            steps.append(Step(rel, "skipped", "", why))
    return steps
