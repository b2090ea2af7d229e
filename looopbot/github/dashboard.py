"""The dashboard issue (DESIGN §10): one open issue labelled `looopbot` with the title
below, found again after a fresh clone, whose body looopbot keeps current.

The body is rendered from the data dir alone (a pure function of a `View`), so a beat can
compare it with what is on GitHub and write nothing when they agree. Hidden markers (HTML
comments, invisible on GitHub) delimit the control section, so the checkboxes a human ticks
are read back from a known place and a box quoted elsewhere (a journal line, a flag) never
counts. Everything else in the body is the bot's: a human's edit outside the boxes is
overwritten by the next update.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from typing import Any, NamedTuple

from looopbot.config import Config
from looopbot.datadir import DataDir
from looopbot.github.calls import Answer, call, listing
from looopbot.github.client import GitHubClient, GitHubUnavailable
from looopbot.ids import is_valid_id
from looopbot.text import one_line

TITLE = "looopbot dashboard"
LABEL = "looopbot"
MARK = "<!-- looopbot:dashboard v1 -->"
CONTROLS = "<!-- looopbot:controls -->"
CONTROLS_END = "<!-- looopbot:/controls -->"
RUN_NOW, PAUSE = "run-now", "pause"
_BOX = re.compile(r"^[-*] \[([ xX])\] [^\n<]*<!-- looopbot:(run-now|pause) -->[ \t]*$", re.M)
BODY_CAP = 60_000  # GitHub refuses an issue body over 65,536 characters
_JOURNAL_LINES = 10
_LIST_CAP = 30  # goals or workers shown; the rest are counted


class Ticks(NamedTuple):
    run_now: bool = False
    paused: bool = False


class Issue(NamedTuple):
    number: int
    html_url: str
    body: str
    etag: str | None


class Last(NamedTuple):
    """The last decided (or failed) beat, as the dashboard shows it."""

    outcome: str
    action: str | None
    text: str  # its journal line or error
    commit: str | None
    at: float


class Worker(NamedTuple):
    id: str
    state: str
    flag: str | None


class View(NamedTuple):
    goals: list[tuple[str, str]]  # id, its `goal:` line
    workers: list[Worker]  # live ones
    journal: list[str]
    spent: float | None  # today's spend; None: the ledger cannot be read
    budget: float | None
    last: Last | None


def normalized(body: str | None) -> str:
    # GitHub's editor sends CRLF; a box ticked in the browser must not read as a change.
    return "\n".join(line.rstrip("\r") for line in (body or "").split("\n")).rstrip("\n")


def ticks(body: str | None) -> Ticks:
    """The boxes ticked in the control section of `body` (strict: only our marked lines).

    Who ticked is not asked: GitHub lets only people with write or triage access edit an
    issue someone else opened (the bot opened this one), so a tick is a writer's act."""
    text = normalized(body)
    start = text.find(CONTROLS)
    end = text.find(CONTROLS_END, start)
    if start < 0 or end < 0:
        return Ticks()
    found = {name: mark != " " for mark, name in _BOX.findall(text[start:end])}
    return Ticks(found.get(RUN_NOW, False), found.get(PAUSE, False))


def render(view: View, boxes: Ticks, repo_html: str) -> str:
    """The whole body. `boxes` are the checkbox states to write back."""

    def box(on: bool) -> str:
        return "x" if on else " "

    lines = [
        MARK,
        "looopbot keeps this issue current after every decided beat. Tick a box to steer "
        "the loop. Only people with write or triage access can edit this issue, so a tick "
        "is theirs to make.",
        "",
        CONTROLS,
        f"- [{box(boxes.run_now)}] run a beat now <!-- looopbot:{RUN_NOW} -->",
        f"- [{box(boxes.paused)}] pause the loop <!-- looopbot:{PAUSE} -->",
        CONTROLS_END,
        "",
        "### Last decision",
        _last(view.last, repo_html),
        "",
        "### Goals",
        *_capped([f"- `{gid}` {_inline(line, 200)}" for gid, line in view.goals], "goals"),
        "",
        "### Workers",
        *_capped(
            [
                f"- `{w.id}` {w.state}" + (" · asks a question" if w.flag else "")
                for w in view.workers
            ],
            "workers",
        ),
        "",
        "### Pending questions",
        *_capped(
            [
                f"- `{w.id}` asks: {_inline(w.flag, 500)} — answer with a comment "
                f"`/answer {w.id} <text>`"
                for w in view.workers
                if w.flag
            ],
            "questions",
        ),
        "",
        "### Spend today",
        _spend(view.spent, view.budget),
        "",
        "### Recent journal",
        *_block(view.journal[-_JOURNAL_LINES:]),
    ]
    body = "\n".join(lines)
    return body if len(body) <= BODY_CAP else body[: BODY_CAP - 1] + "…"


def _last(last: Last | None, repo_html: str) -> str:
    if last is None:
        return "(no decided beat yet)"
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(last.at))
    what = f"**{last.outcome}**" + (f" `{last.action}`" if last.action else "")
    said = f" · {_inline(last.text, 300)}" if last.text else ""
    link = f" · [{last.commit[:10]}]({repo_html}/commit/{last.commit})" if last.commit else ""
    return f"{what}{said}{link} · {stamp}"


def _spend(spent: float | None, budget: float | None) -> str:
    if spent is None:
        return "unknown: the cost ledger cannot be read (the budget guard holds the loop)"
    if budget is None:
        return f"${spent:.2f} (no daily budget set: limits.max_daily_usd)"
    return f"${spent:.2f} of ${budget:.2f}"


def _capped(items: list[str], what: str) -> list[str]:
    if not items:
        return ["(none)"]
    more = len(items) - _LIST_CAP
    return items[:_LIST_CAP] + ([f"- … and {more} more {what}"] if more > 0 else [])


def _block(lines: list[str]) -> list[str]:
    if not lines:
        return ["(empty)"]
    text = [one_line(line, 300) for line in lines]
    longest = max((len(run) for line in text for run in re.findall(r"`+", line)), default=0)
    fence = "`" * max(3, longest + 1)  # no journal line can close the block early
    return [fence + "text", *text, fence]


def _inline(text: str, cap: int) -> str:
    """Anyone's words on one line: no HTML (a forged marker or box), no @-mention pings."""
    return one_line(text, cap).replace("<", "&lt;").replace("@", "&#64;")


def view(dd: DataDir, config: Config, now: float, last: Any) -> View:
    """What the dashboard shows, read from the data dir."""
    from looopbot import desired, journal, ledger
    from looopbot.workers import fleet, record

    goals = []
    for gid, text in desired.goals_of(desired.read(dd)):
        first = text.lstrip("\ufeff").split("\n", 1)[0]
        goals.append((gid, first.removeprefix("goal:").strip()))
    live = [Worker(w.id, w.state, record.flag(dd, w.id)) for w in fleet.workers(dd) if w.live]
    live += _on_actions(dd)
    try:
        spent: float | None = ledger.spent_since(dd.ledger, ledger.day_start(now))
    except ledger.Mangled:
        spent = None
    shown = None
    if isinstance(last, dict):
        with contextlib.suppress(KeyError, TypeError, ValueError):
            shown = Last(
                str(last["outcome"]),
                last.get("action"),
                str(last.get("text") or ""),
                last.get("commit"),
                float(last["at"]),
            )
    return View(
        goals, live, journal.recent(dd.journal, 10), spent, config.limits.max_daily_usd, shown
    )


def _on_actions(dd: DataDir) -> list[Worker]:
    """Workers on GitHub Actions whose run is not over, as the last sys-workers snapshot
    read them (their questions are in their own comments on this issue)."""
    try:
        snapshot = json.loads((dd.snapshots / "sys-workers.json").read_bytes())
        items = snapshot["signal"]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    found = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict) or item.get("backend") != "actions":
            continue
        wid, state = item.get("id"), item.get("state")
        # A committed file, which a human may have edited: only what an id may be.
        if not (isinstance(wid, str) and is_valid_id(wid) and isinstance(state, str)):
            continue
        if state.isidentifier() and state != "completed":
            found.append(Worker(wid, f"{state} on GitHub Actions", None))
    return found


# --- the issue on GitHub -------------------------------------------------------------


def find(client: GitHubClient, known: Issue | None) -> Issue | None:
    """The open dashboard issue: the one known (asked for conditionally: a 304 costs no
    rate limit), else the oldest open issue with the label and the exact title."""
    if known is not None:
        try:
            got = call(
                client, "GET", f"/repos/{client.repo}/issues/{known.number}", etag=known.etag
            )
        except GitHubUnavailable as exc:
            if exc.kind != "not-found":  # deleted: look for another
                raise
        else:
            if got.status == 304:
                return known
            if _is_dashboard(got.data):
                return _issue(got)
    found = listing(
        client, f"/repos/{client.repo}/issues", params={"state": "open", "labels": LABEL}
    )
    mine = sorted((i for i in found.data or [] if _is_dashboard(i)), key=lambda i: int(i["number"]))
    if not mine:
        return None
    # The list's ETag is not the issue's: the next beat asks for the issue itself.
    return Issue(int(mine[0]["number"]), str(mine[0]["html_url"]), str(mine[0]["body"] or ""), None)


def create(client: GitHubClient, body: str) -> Issue:
    got = call(
        client,
        "POST",
        f"/repos/{client.repo}/issues",
        body={"title": TITLE, "body": body, "labels": [LABEL]},
    )
    return _issue(got)._replace(etag=None)


def update(client: GitHubClient, issue: Issue, body: str) -> Issue:
    got = call(client, "PATCH", f"/repos/{client.repo}/issues/{issue.number}", body={"body": body})
    return _issue(got)._replace(etag=None)  # a PATCH's ETag is not a GET's


def repo_html(issue: Issue) -> str:
    """The repository's web address, from the issue's (github.com, GHE, or a test server)."""
    return issue.html_url.rsplit("/issues/", 1)[0]


def _is_dashboard(item: Any) -> bool:
    return (
        isinstance(item, dict)
        and item.get("state") == "open"
        and item.get("title") == TITLE
        and "pull_request" not in item
        and any(isinstance(lb, dict) and lb.get("name") == LABEL for lb in item.get("labels") or [])
    )


def _issue(got: Answer) -> Issue:
    data = got.data
    return Issue(int(data["number"]), str(data["html_url"]), str(data.get("body") or ""), got.etag)
