"""Where things live in a data repo, and how the data dir is found (DESIGN §2)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

from looopbot.errors import LooopbotError

CONFIG_NAME = "looopbot.yaml"


class DataDir(NamedTuple):
    """A data dir and the git repo that holds it.

    `prefix` is the data dir's path inside the repo ("" at the top, else "sub/dir/"), so a
    data-dir-relative path becomes a repo path by prefixing it.
    """

    root: Path
    repo_root: Path | None

    @property
    def prefix(self) -> str:
        if self.repo_root is None or self.repo_root == self.root:
            return ""
        return self.root.relative_to(self.repo_root).as_posix() + "/"

    def path(self, rel: str) -> Path:
        return self.root / rel

    def repo_path(self, rel: str) -> str:
        return self.prefix + rel

    @property
    def config(self) -> Path:
        return self.root / CONFIG_NAME

    @property
    def playbook(self) -> Path:
        return self.root / "PLAYBOOK.md"

    @property
    def goals(self) -> Path:
        return self.root / "goals"

    @property
    def sensors(self) -> Path:
        return self.root / "sensors"

    @property
    def snapshots(self) -> Path:
        return self.root / "snapshots"

    @property
    def journal(self) -> Path:
        return self.root / "journal.md"

    @property
    def meta(self) -> Path:
        """`.looopbot/`: committed state and ledger, plus local scratch (gitignored)."""
        return self.root / ".looopbot"

    @property
    def state(self) -> Path:
        return self.meta / "state.json"

    @property
    def ledger(self) -> Path:
        return self.meta / "cost.jsonl"

    @property
    def runs(self) -> Path:
        return self.meta / "runs"

    @property
    def decision_file(self) -> Path:
        return self.root / ".decision.json"

    @property
    def lock(self) -> Path:
        return self.meta / "lock"

    @property
    def crash_log(self) -> Path:
        return self.meta / "crash.log"

    def scratch(self, name: str) -> Path:
        """A local, never-committed file under `.looopbot/` (listed in .gitignore)."""
        return self.meta / name


def find_repo_root(start: Path) -> Path | None:
    for d in (start, *start.parents):
        if (d / ".git").exists():
            return d
    return None


def locate(explicit: str | None, *, must_exist: bool = True) -> DataDir:
    """Find the data dir: -C/--data-dir, else $LOOOPBOT_DATA_DIR, else upward search."""
    chosen = explicit or os.environ.get("LOOOPBOT_DATA_DIR")
    if chosen:
        root = Path(chosen).resolve()
        if must_exist and not (root / CONFIG_NAME).is_file():
            raise LooopbotError(
                f"{root} has no {CONFIG_NAME} — run 'looopbot init {chosen}' to make a data repo"
            )
    else:
        here = Path.cwd().resolve()
        found = next((d for d in (here, *here.parents) if (d / CONFIG_NAME).is_file()), None)
        if found is None:
            if must_exist:
                raise LooopbotError(
                    f"no {CONFIG_NAME} here or above {here} — run 'looopbot init' or pass -C DIR"
                )
            found = here
        root = found
    return DataDir(root=root, repo_root=find_repo_root(root))
