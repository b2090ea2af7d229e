"""`looopbot init`: make (or adopt) a data repo. Never overwrites an existing file."""

from __future__ import annotations

import argparse
import io
import time
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from looopbot import record
from looopbot.config import load
from looopbot.datadir import DataDir, find_repo_root
from looopbot.errors import EXIT_OK, LooopbotError
from looopbot.gitstate import check_committable
from looopbot.lock import beat_lock
from looopbot.presets import PRESETS
from looopbot.runs import new_run_id


def template_files() -> list[tuple[str, bytes]]:
    """The starter data repo shipped inside the package: (relative path, bytes)."""
    root = resources.files("looopbot") / "templates"
    if not root.is_dir():
        raise LooopbotError(
            "looopbot's templates are missing from this install — reinstall looopbot"
        )
    out: list[tuple[str, bytes]] = []

    def walk(node: Traversable, prefix: str) -> None:
        for child in sorted(node.iterdir(), key=lambda c: c.name):
            rel = prefix + child.name
            if child.is_dir():
                # templates/github/ holds the workflows (looopbot.workflows), not seed files.
                if child.name != "__pycache__" and rel != "github":
                    walk(child, rel + "/")
            else:
                out.append((rel, child.read_bytes()))

    walk(root, "")
    return out


def _with_runner(raw: bytes, runner: str) -> bytes:
    """Set `runner:` in the template config, keeping its comments (ruamel round-trip)."""
    from ruamel.yaml import YAML

    yaml = YAML(typ="rt")
    doc = yaml.load(raw.decode())
    doc["runner"] = runner
    buf = io.StringIO()
    yaml.dump(doc, buf)
    return buf.getvalue().encode()


def init(args: argparse.Namespace) -> int:
    if args.runner not in PRESETS:
        raise LooopbotError(
            f"unknown runner '{args.runner}' (presets: {', '.join(sorted(PRESETS))})"
        )
    target = Path(args.dir or ".").resolve()
    if target.exists() and not target.is_dir():
        raise LooopbotError(f"{target} exists and is not a directory")
    target.mkdir(parents=True, exist_ok=True)
    repo_root = find_repo_root(target)
    if repo_root is None:
        from looopbot import gitcli

        # `git init` itself honours the user's init.defaultBranch and templates.
        gitcli.run(target, "init", "--quiet")
        repo_root = target
    dd = DataDir(target, repo_root)
    if args.github:
        from looopbot.commands.github import check_at_top

        check_at_top(dd)
    with beat_lock(dd):  # a `run` already going in an adopted repo must not interleave
        return _seed(dd, args.runner, github=args.github)


def _seed(dd: DataDir, runner: str, *, github: bool = False) -> int:
    check_committable(dd)
    changes = record.start(dd)
    written, kept = [], []
    for rel, data in template_files():
        if dd.path(rel).exists():
            kept.append(rel)
            continue
        body = _with_runner(data, runner) if rel == "looopbot.yaml" else data
        changes.write(rel, body, mode=0o755 if rel.startswith("sensors/") else None)
        written.append(rel)
    config = load(dd)  # the config we leave behind must load (an adopted one too)
    steps = []
    if github:
        from looopbot.commands import github as gh

        # The adopted config's runner, which may not be --runner: the workflow must install
        # the CLI the loop will really call.
        steps = gh.plan_for(dd, changes, config, gh.current_branch(dd))
        gh.write(changes, steps)
    now = time.time()
    seeded = len(written) + sum(bool(s.text) for s in steps)
    entry = record.Entry(
        outcome="init",
        run_id=new_run_id(now),
        subject=f"seeded {seeded} file(s), runner {runner}",
    )
    sha = record.record(dd, config, changes, entry, now)
    where = dd.root
    print(f"initialised {where}" + (f" [{sha[:10]}]" if sha else " (nothing new to commit)"))
    for rel in written:
        print(f"  wrote {rel}")
    for rel in kept:
        print(f"  kept  {rel} (already there)")
    for step in steps:
        print(f"  {step.line()}")
    print(f"next: looopbot -C {where} tick")
    if any(step.text for step in steps):
        from looopbot.commands.github import next_steps

        print(f"then, for GitHub Actions: {next_steps(config.runner.name).removeprefix('next: ')}")
    return EXIT_OK
