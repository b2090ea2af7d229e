"""A scripted worker command: what a real agent would do in its worktree, minus the LLM.

Wired as the runner's worker command (`LOOOPBOT_WORKER_COMMAND="python fake_worker.py
{prompt_file}"`). It reads its brief and follows the line `FAKE {json}` in it, in order:

    starts: PATH      append "<cwd>" to PATH (proves where, and how often, it ran)
    pids: PATH        append its own pid, and its grandchild's, to PATH
    grandchild: true  fork a `sleep 300` into its process group
    report: true      write reports/<id>.md and commit it on the current branch
    commit: TEXT      append TEXT to reports/<id>.md and commit it (subject: TEXT)
    flag: TEXT        run `$LOOOPBOT_BIN flag <id> TEXT`
    ask: {question, options?, out, no_wait?}   run `$LOOOPBOT_BIN ask <id> …` and append
                      what it printed (the ask id, then the answer) to `out`
    read: N, echo: PATH   read N lines from stdin, appending each to PATH
    hang: true        then sleep until killed
    exit: N           exit code (default 0)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path


def append(path: str, text: str) -> None:
    with open(path, "a") as f:
        f.write(text + "\n")


def main() -> int:
    brief = Path(sys.argv[1]).read_text()
    spec = next(
        (json.loads(line[5:]) for line in brief.splitlines() if line.startswith("FAKE ")), {}
    )
    wid = os.environ["LOOOPBOT_SESSION_ID"]
    print(f"fake worker {wid} in {os.getcwd()}", flush=True)
    if "starts" in spec:
        append(spec["starts"], os.getcwd())
    if "pids" in spec:
        append(spec["pids"], str(os.getpid()))
    if spec.get("grandchild"):
        child = subprocess.Popen(["sleep", "300"])
        append(spec["pids"], str(child.pid))
    if spec.get("report"):
        Path("reports").mkdir(exist_ok=True)
        Path("reports", f"{wid}.md").write_text(f"# report from {wid}\n")
        subprocess.run(["git", "add", "reports"], check=True)
        subprocess.run(["git", "commit", "-qm", f"report from {wid}"], check=True)
        print("committed the report", flush=True)
    if "commit" in spec:
        Path("reports").mkdir(exist_ok=True)
        with open(Path("reports", f"{wid}.md"), "a") as f:
            f.write(spec["commit"] + "\n")
        subprocess.run(["git", "add", "reports"], check=True)
        subprocess.run(["git", "commit", "-qm", spec["commit"]], check=True)
    if "flag" in spec:
        subprocess.run([os.environ["LOOOPBOT_BIN"], "flag", wid, spec["flag"]], check=True)
    if "ask" in spec:
        a = spec["ask"]
        argv = [os.environ["LOOOPBOT_BIN"], "ask", wid, a["question"]]
        argv += ["--options", a["options"]] if "options" in a else []
        argv += ["--no-wait"] if a.get("no_wait") else []
        done = subprocess.run(argv, capture_output=True, text=True)
        append(a["out"], done.stdout.strip() + f"\nexit {done.returncode}")
    for _ in range(spec.get("read", 0)):
        line = sys.stdin.readline()
        if not line:
            break
        append(spec["echo"], line.rstrip("\n"))
    if spec.get("hang"):
        while True:
            time.sleep(300)
    return int(spec.get("exit", 0))


if __name__ == "__main__":
    raise SystemExit(main())
