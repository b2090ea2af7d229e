"""`looopbot github install|preview`: the GitHub Actions workflows of a data repo."""

from __future__ import annotations

import argparse
import json
import time

from looopbot import ghactions, gitcli, record, workflows
from looopbot.changes import Changes, Move
from looopbot.config import Config, load
from looopbot.datadir import DataDir, locate
from looopbot.errors import EXIT_OK, LooopbotError
from looopbot.fsutil import read_bytes_or_none
from looopbot.gitstate import check_committable
from looopbot.lock import beat_lock
from looopbot.runs import new_run_id


def github(args: argparse.Namespace) -> int:
    dd = locate(args.data_dir)
    if args.verb == "install":
        return install(dd, args.branch)
    return show_preview(dd, args.base, as_json=args.json)


def check_at_top(dd: DataDir) -> None:
    """GitHub reads workflows from the repo's top only, and they run there."""
    if dd.repo_root is not None and dd.root != dd.repo_root:
        raise LooopbotError(
            f"the data dir {dd.root} is a sub-folder of its repo {dd.repo_root}: the workflows "
            "run looopbot at the repo's top — install them by hand, with looopbot -C <folder>"
        )


def current_branch(dd: DataDir) -> str:
    assert dd.repo_root is not None
    return gitcli.out(dd.repo_root, "symbolic-ref", "--short", "HEAD").strip()


def plan_for(dd: DataDir, changes: Changes, config: Config, branch: str) -> list[workflows.Step]:
    """What installing the workflows does to each file; a file with the user's uncommitted
    edits is skipped (not refused: the other file still goes in)."""
    from looopbot.worktree_state import uncommitted

    existing = {}
    for rel in workflows.WORKFLOWS:
        raw = read_bytes_or_none(dd.path(rel))
        existing[rel] = None if raw is None else raw.decode("utf-8", errors="replace")
    rendered = {
        rel: workflows.render(
            rel,
            runner=config.runner.name,
            branch=branch,
            github=config.github,
            backend=config.workers_backend,
        )
        for rel in workflows.WORKFLOWS
    }
    steps = workflows.plan(existing, rendered)
    writing = [s.rel for s in steps if s.text]
    dirty = set(uncommitted(dd, writing, untracked=True)) - set(changes.recovered)
    return [
        workflows.Step(s.rel, "skipped", "", "uncommitted changes — commit or stash them first")
        if s.rel in dirty
        else s
        for s in steps
    ]


def write(changes: Changes, steps: list[workflows.Step]) -> list[workflows.Step]:
    """Write the files the plan writes; the steps that wrote."""
    for step in steps:
        if step.text:
            changes.write(step.rel, step.text)
    return [s for s in steps if s.text]


def install(dd: DataDir, branch: str | None) -> int:
    check_at_top(dd)
    with beat_lock(dd):
        config = load(dd)
        check_committable(dd)
        branch = branch or current_branch(dd)
        now = time.time()
        changes = record.start(dd)
        steps = plan_for(dd, changes, config, branch)
        done = [s for s in steps if s.text]
        text = None
        if done:
            text = "by hand: github install: " + ", ".join(f"{s.verdict} {s.rel}" for s in done)
            said = ", ".join(f"{s.verdict} {s.rel}" for s in done)
            with changes.executing(Move("github-install", said)):
                write(changes, steps)
        # With nothing written there is no journal line and, unless a killed record left
        # writes behind, no commit: a second install is a no-op.
        sha = record.record(
            dd,
            config,
            changes,
            record.Entry(
                outcome="manual",
                run_id=new_run_id(now),
                subject=text or "github install",
                head="github-install",
                journal=text,
                action="github-install" if text else None,
            ),
            now,
        )
        for step in steps:
            print(step.line())
        if sha:
            print(f"committed [{sha[:10]}]", flush=True)
            from looopbot.sync import after_commit

            after_commit(dd, config)  # push on: like every other command's commit
    if any(s.verdict in ("wrote", "refreshed") for s in steps):
        print(next_steps(config.runner.name))
    return EXIT_OK


def next_steps(runner: str) -> str:
    from looopbot.presets import CLI

    cli = CLI.get(runner)
    key = (
        f"add the secret {cli.secret} (Settings → Secrets and variables → Actions), then "
        if cli is not None
        else ""
    )
    return f"next: {key}push; the beat runs on its schedule, on a manual run and on goal changes"


def show_preview(dd: DataDir, base: str, *, as_json: bool) -> int:
    from looopbot.preview import markdown, preview

    found = preview(dd, base)
    text = markdown(found)
    ghactions.append_summary(text)
    print(json.dumps(found.to_json()) if as_json else text)
    return EXIT_OK
