"""`looopbot github preview`: what a branch (a pull request) changes for the next beat, and
whether that beat would wake the loop — without running anything.

A pull request's sensor scripts are its author's code, so no sensor runs here: the verdict
comes from the desired state alone (PLAYBOOK.md and the goals, read exactly as a beat reads
them) against the one the loop last decided on (`.looopbot/state.json`). That is the part
of the wake signal a pull request controls; a changed sensor is named as a "maybe", because
only running it can tell whether its signal moves.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from looopbot import desired, gitcli
from looopbot import state as state_mod
from looopbot.datadir import CONFIG_NAME, DataDir
from looopbot.errors import LooopbotError
from looopbot.ids import is_valid_id
from looopbot.world import desired_digests

_VERBS = {"A": "added", "D": "removed", "M": "edited", "T": "edited"}

# kind -> what the loop makes of a file of that kind
MEANING = {
    "desired": "desired state: feeds the world hash",
    "archive": "an archived goal: not part of the world",
    "sensor": "a sensor: runs on the next beat; wakes the loop if its signal changes",
    "config": "config: runner, limits, git (does not wake the loop by itself)",
    "schedule": "a schedule: a durable wake-up",
    "workflow": "a GitHub workflow",
    "record": "the loop's record (journal, ledger): merged line by line",
    "bot": "the bot's own file: re-derived or overwritten by the next beat",
    "ignored": "in goals/ but not a goal (goals are goals/<id>.md)",
    "other": "not read by the loop",
}


class Change(NamedTuple):
    path: str  # data-dir relative
    change: str  # added | removed | edited
    kind: str  # a key of MEANING


class Preview(NamedTuple):
    base: str
    changes: list[Change]
    wake: str  # yes | maybe | no
    why: list[str]

    def to_json(self) -> dict[str, Any]:
        return {
            "base": self.base,
            "changes": [c._asdict() for c in self.changes],
            "wake": self.wake,
            "why": self.why,
        }


def kind_of(rel: str) -> str:
    """What a data-dir relative path is to the loop."""
    if rel in ("PLAYBOOK.md", "CONSTITUTION.md"):
        return "desired"
    if rel == CONFIG_NAME:
        return "config"
    if rel in ("journal.md", ".looopbot/cost.jsonl"):
        return "record"
    if rel == ".looopbot/state.json" or rel.startswith("snapshots/"):
        return "bot"
    folder, _, name = rel.partition("/")
    if folder == "goals":
        if name.startswith("archive/"):
            return "archive"
        ok = "/" not in name and name.endswith(".md") and is_valid_id(name[:-3])
        return "desired" if ok else "ignored"
    if folder == "sensors" and "/" not in name and name.endswith(".sh"):
        return "sensor"
    if folder == "schedules":
        return "schedule"
    if rel.startswith(".github/workflows/"):
        return "workflow"
    return "other"


def changed(dd: DataDir, base: str) -> list[Change]:
    """The files under the data dir that HEAD changes since its merge base with `base`."""
    if dd.repo_root is None:
        raise LooopbotError(f"{dd.root} is not inside a git repository")
    scope = dd.prefix or "."
    try:
        raw = gitcli.out(
            dd.repo_root,
            "diff",
            "--name-status",
            "-z",
            "--no-renames",
            f"{base}...HEAD",
            "--",
            scope,
        )
    except gitcli.GitFailed as exc:
        raise LooopbotError(
            f"cannot compare with {base}: {exc.message} — fetch it (in a workflow: "
            "actions/checkout with fetch-depth: 2) or pass another --base"
        ) from None
    fields = raw.split("\0")
    out = []
    for status, path in zip(fields[0::2], fields[1::2], strict=False):
        if not path:
            continue
        rel = path[len(dd.prefix) :]
        out.append(Change(rel, _VERBS.get(status[:1], "edited"), kind_of(rel)))
    return out


def preview(dd: DataDir, base: str) -> Preview:
    changes = changed(dd, base)
    ours = {c.path for c in changes}
    try:
        decided = state_mod.parse(dd.state.read_bytes()).decided_files
    except (OSError, state_mod.StateUnreadable):
        decided = None
    if decided is None:
        return Preview(base, changes, "yes", ["the loop has not decided yet: its next beat does"])
    now = desired_digests(desired.read(dd))
    moved = sorted(p for p in {*now, *decided} if now.get(p) != decided.get(p))
    if moved:
        why = []
        for path in moved:
            verb = "added" if path not in decided else "removed" if path not in now else "edited"
            whose = "by this change" if path in ours else "already, before this change"
            why.append(f"{path} {verb} since the last decision ({whose})")
        return Preview(base, changes, "yes", why)
    due, later = _schedules(dd, changes)
    if due:
        return Preview(base, changes, "yes", due)
    sensors = [c.path for c in changes if c.kind == "sensor"]
    if sensors:
        return Preview(
            base,
            changes,
            "maybe",
            [f"{', '.join(sensors)}: the next beat runs it and wakes only if a signal changes"],
        )
    return Preview(
        base, changes, "no", ["the desired state is the one the loop last decided on", *later]
    )


def _schedules(dd: DataDir, changes: list[Change]) -> tuple[list[str], list[str]]:
    """The changed schedules that are due (or broken) now — they wake the next beat — and
    the ones that wake the loop later, when they fall due."""
    import time

    from looopbot.schedules import store
    from looopbot.schedules.spec import iso

    due: list[str] = []
    later: list[str] = []
    now = time.time()
    for c in changes:
        name = c.path[len("schedules/") : -len(".yaml")]
        if c.kind != "schedule" or c.change == "removed" or store.path_of(name) != c.path:
            continue
        entry = store.read_one(dd, name)
        if entry is None:
            continue
        s = entry.schedule
        if s is None:
            due.append(f"{c.path} cannot be used ({entry.problem}): the next beat wakes for it")
        elif s.is_due(now):
            due.append(f"{c.path} is due now: the next beat wakes for it")
        else:
            assert s.due is not None
            later.append(f"{c.path} wakes the loop when it falls due, at {iso(s.due)}")
    return due, later


def markdown(p: Preview) -> str:
    """The preview as the validate workflow's job summary (and `preview`'s output)."""
    from looopbot.ghactions import cell

    verdict = {"yes": "yes", "maybe": "maybe", "no": "no"}[p.wake]
    lines = [
        "### looopbot: what the next beat would see",
        "",
        f"**Wakes the loop: {verdict}**",
        "",
        *(f"- {cell(w)}" for w in p.why),
        "",
    ]
    if not p.changes:
        lines.append(f"No file of the data repo changes against `{cell(p.base)}`.")
        return "\n".join(lines)
    lines += [
        f"Changed against `{cell(p.base)}`:",
        "",
        "| file | change | what the loop makes of it |",
        "| --- | --- | --- |",
    ]
    lines += [f"| `{cell(c.path)}` | {c.change} | {MEANING[c.kind]} |" for c in p.changes]
    return "\n".join(lines)
