"""`tick --artifacts DIR`: a copy of the beat's run folder that is safe to publish.

A run folder (`.looopbot/runs/<run-id>/`: prompt.md, output.log, decision.json) is local
scratch and may hold what the runner printed, secrets included. Uploaded as a CI artifact it
is readable by anyone who can read the repo, so the copy is redacted exactly like a commit
(looopbot.redact). It is made by the beat's own process, whose environment holds the very
secrets to remove (the runner's key); a later step without that key could not know them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from looopbot.datadir import DataDir
from looopbot.fsutil import write_atomic
from looopbot.redact import redact_value, redactor

RUN_FILES = ("prompt.md", "output.log", "decision.json")


def export(dd: DataDir, run_id: str, beat: dict[str, Any], dest: Path) -> list[Path]:
    """Copy the run's files into `dest/<run-id>/`, redacted, with `beat.json` (the
    `tick --json` document); the files written. A beat that ran no runner has no run
    folder: nothing is written, so an unchanged beat uploads no artifact."""
    source = dd.runs / run_id
    if not source.is_dir():
        return []
    scrub = redactor()
    target = dest / run_id
    written = []
    for name in RUN_FILES:
        path = source / name
        if not path.is_file() or path.is_symlink():
            continue
        text = path.read_bytes().decode("utf-8", errors="replace")
        write_atomic(target / name, scrub(text), durable=False)
        written.append(target / name)
    doc = json.dumps(redact_value(beat, scrub), indent=1, sort_keys=True) + "\n"
    write_atomic(target / "beat.json", doc, durable=False)
    written.append(target / "beat.json")
    return written
