#!/usr/bin/env python3
"""A human who edits the shared data repo and pushes, as people do: fetch, edit on top of
the remote branch, commit, push — and on a rejection (someone pushed first) start over from
the new tip. Never a force push. Used by the GitOps simulation, both from a test thread and
from the scripted runner's `spawn` step (a push that lands while a beat decides).

    human_pusher.py REMOTE WORKDIR KIND TAG RECORD

KIND is `goal:<id>`, `playbook` or `journal`; TAG makes the change unique. Once the push is
accepted, one JSON line {"sha", "tag", "journal"} is appended to RECORD (the test's proof of
what the human delivered).
"""

import json
import random
import subprocess
import sys
import time
from pathlib import Path

STAMP = "2026-01-01 00:00"  # a human's journal line: its text, not its time, is what counts


def git(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=check)


def edit(root: Path, kind: str, tag: str) -> str | None:
    """Make the change; the journal line it added, if any."""
    if kind.startswith("goal:"):
        (root / "goals").mkdir(exist_ok=True)
        (root / "goals" / f"{kind[5:]}.md").write_text(f"goal: {tag}\n")
        return None
    if kind == "playbook":
        with open(root / "PLAYBOOK.md", "a") as f:
            f.write(f"- {tag}\n")
        return None
    line = f"- {STAMP} {tag}"
    with open(root / "journal.md", "a") as f:
        f.write(line + "\n")
    return line


def main(remote: str, workdir: str, kind: str, tag: str, record: str) -> int:
    root = Path(workdir)
    if not root.exists():
        git(Path("/"), "clone", "-q", f"file://{remote}", str(root))
    tracking = git(root, "rev-parse", "--abbrev-ref", "origin/HEAD").stdout.strip()
    branch = tracking.split("/", 1)[1]
    for _ in range(60):
        git(root, "fetch", "-q", "origin")
        git(root, "reset", "-q", "--hard", tracking)
        line = edit(root, kind, tag)
        git(root, "add", "-A")
        git(root, "commit", "-qm", f"human: {tag}")
        if git(root, "push", "-q", "origin", f"HEAD:{branch}", check=False).returncode:
            time.sleep(random.uniform(0.01, 0.2))  # someone pushed first: start over
            continue
        sha = git(root, "rev-parse", "HEAD").stdout.strip()
        with open(record, "a") as f:  # one short O_APPEND write: whole even when concurrent
            f.write(json.dumps({"sha": sha, "tag": tag, "journal": line}) + "\n")
        return 0
    print(f"human_pusher: {tag} never got through", file=sys.stderr)
    return 1


if __name__ == "__main__":
    raise SystemExit(main(*sys.argv[1:]))
