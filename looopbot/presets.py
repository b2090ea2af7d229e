"""Built-in runner presets (DESIGN §6). A `runners.<name>` entry in looopbot.yaml overrides
any of these fields. The commands run under `bash -c` with the prompt on stdin.

Flags were checked against each CLI's real `--help` (versions in the README).
"""

from __future__ import annotations

from typing import Any

PRESETS: dict[str, dict[str, Any]] = {
    # The offline example decider shipped with looopbot: for trying the loop, not deciding.
    "example": {
        "tick": '"$LOOOPBOT_BIN" example-decider',
        "worker": '"$LOOOPBOT_BIN" example-decider --worker {prompt_file}',
        "cost": None,
    },
}
