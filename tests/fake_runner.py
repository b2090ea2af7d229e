#!/usr/bin/env python3
"""A scripted runner: the one boundary the tests replace (the LLM).

It behaves exactly like a real runner command under `bash -c`: it reads the prompt on
stdin and answers with whatever the test queued, as stdout/stderr/exit code and optionally
a decision file. Queue files live in $FAKE_RUNNER_DIR/queue/ (taken in name order); every
prompt it receives is kept in $FAKE_RUNNER_DIR/prompts/ so tests can count calls and read
what the decider saw. An empty queue is an error, so an unexpected call fails loudly.
"""

import json
import os
import sys
import time
from pathlib import Path

root = Path(os.environ["FAKE_RUNNER_DIR"])
prompts = root / "prompts"
prompts.mkdir(parents=True, exist_ok=True)
n = len(list(prompts.iterdir())) + 1
(prompts / f"{n:04d}.md").write_text(sys.stdin.read())
queue = sorted((root / "queue").glob("*.json"))
if not queue:
    print("fake runner: nothing queued for this call", file=sys.stderr)
    sys.exit(97)
step = json.loads(queue[0].read_text())
queue[0].unlink()
if step.get("spawn"):  # leave a grandchild behind, e.g. to test group kills
    os.system(step["spawn"])
if step.get("sleep"):
    time.sleep(step["sleep"])
if "decision_file" in step:
    Path(os.environ["LOOOPBOT_DECISION_FILE"]).write_text(step["decision_file"])
sys.stdout.write(step.get("stdout", ""))
sys.stderr.write(step.get("stderr", ""))
sys.exit(step.get("exit", 0))
