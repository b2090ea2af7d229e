"""The fleet's part of every beat: housekeeping and the sys-workers / sys-claims snapshots.

Every beat calls these, so they first check, with a stat or two, whether there are any
workers or claims at all; only then do they load the fleet (and, for claims, dulwich).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from looopbot.config import Config
from looopbot.datadir import DataDir
from looopbot.gitstate import git_dir

CLAIM_REFS = "refs/heads/looopbot/claim/"


def _common_dir(dd: DataDir) -> Path | None:
    if dd.repo_root is None:
        return None
    gitdir = git_dir(dd.repo_root)
    try:  # a worktree keeps its refs in the main repository's git dir
        common = (gitdir / "commondir").read_text().strip()
    except OSError:
        return gitdir
    return (gitdir / common).resolve()


def has_workers(dd: DataDir) -> bool:
    try:
        return bool(os.listdir(dd.meta / "workers"))
    except (FileNotFoundError, NotADirectoryError):
        return False


def has_claims(dd: DataDir) -> bool:
    common = _common_dir(dd)
    if common is None:
        return False
    try:
        if os.listdir(common / CLAIM_REFS):
            return True
    except (FileNotFoundError, NotADirectoryError):
        pass
    try:
        with open(common / "packed-refs", "rb") as f:
            return any(CLAIM_REFS.encode() in line for line in f)
    except FileNotFoundError:
        return False


def housekeeping(dd: DataDir, config: Config, now: float) -> list[str]:
    """Notice workers that ended or were lost, prune aged ones, reap stale claims.

    Returns the problems for the beat to report (empty when all went well): a worker that
    could not be pruned, once per distinct failure. None of them stops the beat.
    """
    problems: list[str] = []
    if has_workers(dd):
        from looopbot.workers import upkeep

        problems += upkeep.housekeeping(dd, config, now)
        if config.github is not None and config.github.pull_requests:
            from looopbot.workers import delivery  # retry pending PRs, read open ones

            problems += delivery.housekeeping(dd, config)
    if has_claims(dd):
        from looopbot.workers import claims

        claims.reap_stale(dd, now)
    return problems


def snapshots(dd: DataDir, *, stuck_after: float) -> dict[str, Any]:
    """sys-workers and sys-claims (absolute times only, so an idle fleet commits nothing)."""
    workers: Any = {"signal": [], "detail": {"counts": {}, "workers": {}}}
    if has_workers(dd):
        from looopbot.workers import fleet

        workers = fleet.snapshot(dd, stuck_after)
    _add_actions_workers(dd, workers)
    held: list[dict[str, Any]] = []
    if has_claims(dd):
        from looopbot.workers import claims

        held = claims.signal(dd)
    return {"sys-workers": workers, "sys-claims": {"signal": held}}


def _add_actions_workers(dd: DataDir, workers: dict[str, Any]) -> None:
    """Workers on GitHub Actions (workers.backend: actions) join sys-workers, read from
    their runs; a listdir when there are none (onactions, which imports the GitHub client,
    is not even imported then)."""
    try:
        records = [n for n in os.listdir(dd.path("workers")) if n.endswith(".json")]
    except (FileNotFoundError, NotADirectoryError):
        records = []
    if not records:
        return
    import json

    from looopbot.config import load
    from looopbot.errors import LooopbotError
    from looopbot.workers import actions_state

    try:
        previous = json.loads((dd.snapshots / "sys-workers.json").read_bytes())
    except (OSError, ValueError):
        previous = None
    try:
        config = load(dd)
    except LooopbotError:
        return  # the beat itself reports a broken config
    found, detail = actions_state.items(dd, config, previous)
    signal = [i for i in workers["signal"] if i["id"] not in detail] + found
    signal.sort(key=lambda item: str(item["id"]))
    workers["signal"] = signal
    counts = workers["detail"]["counts"]
    for item in found:
        counts[item["state"]] = counts.get(item["state"], 0) + 1
    workers["detail"]["workers"].update(detail)
