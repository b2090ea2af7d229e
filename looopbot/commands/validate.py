"""`looopbot validate`: check config, goals, sensors, ids and workflows; `path:line: message`
each, or GitHub annotations (`::error file=…,line=…::message`) under GitHub Actions.

Run on pull requests (the validate workflow), so a broken goal or config is caught before
it merges and wakes the loop.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import asdict, dataclass

from looopbot import ghactions, proc
from looopbot.actions import BODY_CAP
from looopbot.config import ConfigProblem, env_problems, parse
from looopbot.datadir import CONFIG_NAME, DataDir, locate
from looopbot.errors import EXIT_FAIL, EXIT_OK
from looopbot.ids import describe_bad_id, is_valid_id
from looopbot.sense import discover

ENVIRONMENT = "environment"  # the "path" of a problem with a LOOOPBOT_* variable


@dataclass(frozen=True)
class Problem:
    path: str
    line: int  # 0: no line (the environment)
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.message}"


def check(dd: DataDir) -> list[Problem]:
    problems: list[Problem] = []
    plain = None
    try:
        text = dd.config.read_text(encoding="utf-8", errors="replace")
        plain = parse(text, CONFIG_NAME)
    except ConfigProblem as exc:
        problems.append(Problem(exc.path, exc.line, exc.detail))
    except FileNotFoundError:
        problems.append(Problem(CONFIG_NAME, 1, "missing — run 'looopbot init'"))
    problems += [Problem(ENVIRONMENT, 0, m) for m in env_problems(plain, os.environ)]
    playbook = dd.playbook
    if not playbook.is_file() or not playbook.read_text(errors="replace").strip():
        problems.append(
            Problem("PLAYBOOK.md", 1, "missing or empty: the loop has no judgment to go on")
        )
    problems += _goals(dd)
    problems += _sensors(dd)
    problems += _schedules(dd)
    problems += _workflows(dd)
    return problems


def _workflows(dd: DataDir) -> list[Problem]:
    """The repo's GitHub workflows: YAML, the keys GitHub requires, and that looopbot's own
    workflows still run looopbot (see looopbot.workflow_check)."""
    from looopbot.workflow_check import check_workflow

    folder = (dd.repo_root or dd.root) / ".github" / "workflows"
    out: list[Problem] = []
    if not folder.is_dir():
        return out
    for path in sorted(folder.iterdir()):
        if path.suffix not in (".yml", ".yaml") or not path.is_file():
            continue
        rel = os.path.relpath(path, dd.root)  # ../.github/… when the data dir is a sub-folder
        text = path.read_text(encoding="utf-8", errors="replace")
        out += [Problem(rel, line, msg) for line, msg in check_workflow(path.name, text)]
    return out


def _goals(dd: DataDir) -> list[Problem]:
    out: list[Problem] = []
    try:
        names = sorted(os.listdir(dd.goals))
    except FileNotFoundError:
        return out
    for name in names:
        path = f"goals/{name}"
        if (dd.goals / name).is_dir():
            if name != "archive":
                out.append(
                    Problem(
                        path, 1, "sub-folders of goals/ are ignored (only goals/archive/ is known)"
                    )
                )
            continue
        if not name.endswith(".md"):
            out.append(Problem(path, 1, "not a goal: goals are goals/<id>.md"))
            continue
        if not is_valid_id(name[:-3]):
            out.append(Problem(path, 1, f"ignored: {describe_bad_id(name[:-3])}"))
            continue
        raw = (dd.goals / name).read_bytes()
        text = raw.decode("utf-8", errors="replace")
        first = text.lstrip("\ufeff").split("\n", 1)[0]
        if not first.startswith("goal:") or not first[5:].strip():
            out.append(Problem(path, 1, "the first line must be 'goal: <one line>'"))
        if len(raw) > BODY_CAP:
            out.append(Problem(path, 1, f"{len(raw)} bytes, over the {BODY_CAP}-byte cap"))
    return out


def _schedules(dd: DataDir) -> list[Problem]:
    """schedules/<name>.yaml: each readable, valid YAML, with a valid time or period."""
    from looopbot.schedules import store

    out: list[Problem] = []
    try:
        names = sorted(os.listdir(dd.path(store.FOLDER)))
    except (FileNotFoundError, NotADirectoryError):
        return out
    for name in names:
        if not name.endswith(store.SUFFIX) and not name.startswith("."):
            out.append(
                Problem(f"{store.FOLDER}/{name}", 1, "ignored: schedules are schedules/<name>.yaml")
            )
    for entry in store.read_all(dd):
        if entry.problem is not None:
            out.append(Problem(store.path_of(entry.name), entry.line or 1, entry.problem))
    return out


def _sensors(dd: DataDir) -> list[Problem]:
    out: list[Problem] = []
    try:
        names = sorted(os.listdir(dd.sensors))
    except FileNotFoundError:
        return out
    for name in names:
        if name.endswith(".sh") and not is_valid_id(name[:-3]):
            out.append(Problem(f"sensors/{name}", 1, f"ignored: {describe_bad_id(name[:-3])}"))
        elif not name.endswith(".sh") and not name.startswith("."):
            out.append(Problem(f"sensors/{name}", 1, "ignored: sensors are sensors/<name>.sh"))
    bash_scripts = [
        s
        for s in discover(dd)
        if not s.script.startswith(b"#!")
        or b"bash" in s.script.split(b"\n", 1)[0]
        or b"/sh" in s.script.split(b"\n", 1)[0]
    ]
    specs = [
        proc.Spec(["bash", "-n", str(s.path)], dd.root, proc.child_env(), timeout=10)
        for s in bash_scripts
    ]
    for s, result in zip(bash_scripts, proc.run_many(specs), strict=True):
        if result.exit_code != 0:
            msg = result.stderr.decode(errors="replace").strip().splitlines()
            line = 1
            text = msg[-1] if msg else "bash -n failed"
            # bash -n reports "path: line N: message"
            if ": line " in text:
                _, _, rest = text.partition(": line ")
                num, _, text = rest.partition(": ")
                line = int(num) if num.isdigit() else 1
            out.append(Problem(f"sensors/{s.path.name}", line, f"syntax: {text}"))
    return out


def validate(args: argparse.Namespace) -> int:
    dd = locate(args.data_dir)
    problems = check(dd)
    if args.json:
        print(json.dumps({"ok": not problems, "problems": [asdict(p) for p in problems]}))
    elif args.github_annotations or ghactions.in_actions():
        for p in problems:
            print(annotate(dd, p))
        if not problems:
            print("ok: config, goals, sensors, schedules and workflows are valid")
    else:
        for p in problems:
            print(p)
        if not problems:
            print("ok: config, goals, sensors, schedules and workflows are valid")
    return EXIT_FAIL if problems else EXIT_OK


def annotate(dd: DataDir, problem: Problem) -> str:
    """A problem as a GitHub annotation; its file is named from the repo's top, as GitHub
    wants it (the data dir may be a sub-folder)."""
    if problem.path == ENVIRONMENT:
        return ghactions.annotation(f"{ENVIRONMENT}: {problem.message}")
    path = os.path.normpath(dd.prefix + problem.path)
    return ghactions.annotation(problem.message, path, problem.line)
