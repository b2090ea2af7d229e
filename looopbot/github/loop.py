"""The dashboard in the beat (github.dashboard: true): what a beat reads from it before
sensing, what it writes after committing, and the notifications it posts while acting.

Before SENSE (`before`): find (or create) the dashboard issue, read its boxes — a
conditional GET, a 304 when nobody touched it — post what the outbox still owes, deliver
new `/answer` comments (their record goes into this beat's commit) and post new flags.
After the commit (`after`): re-render the body and write it only when it differs, and only
after a beat that called the runner, or when an earlier write failed (`owed`).

Local scratch (`github-dashboard.json`) keeps the issue number, its ETag and body, the
comments' read position, whether a "run a beat now" tick has been acted on but not yet
cleared (`consumed`), whether the body on GitHub is behind (`owed`), and the outbox of
comments and reactions a failing API did not take. Nothing in it must survive a fresh
clone: the issue is found again by label and title, and what was delivered or posted is
in git (looopbot.github.answers).

Every GitHub failure is one line — an aside on a beat that commits anyway, the next
beat's aside for a failed update — never a failed beat, and nothing a human did on GitHub
is lost: what was not read this beat is read the next.
"""

from __future__ import annotations

import contextlib
import json
import time
from typing import Any, NamedTuple

from looopbot.changes import Changes
from looopbot.config import Config
from looopbot.datadir import DataDir
from looopbot.errors import LooopbotError
from looopbot.fsutil import write_atomic
from looopbot.github import answers, dashboard, outbox
from looopbot.github.client import GitHubClient, GitHubUnavailable, connect
from looopbot.redact import redactor
from looopbot.text import one_line

SCRATCH = "github-dashboard.json"
_MAX_WAIT = 60.0
_TIMEOUT = 10.0


class Before(NamedTuple):
    run_now: bool = False  # a "run a beat now" tick not yet acted on
    paused: str | None = None  # the hold's message while "pause the loop" is ticked
    notes: tuple[str, ...] = ()  # journal lines (answers delivered or refused, pauses)
    asides: tuple[str, ...] = ()  # GitHub failures: journaled only on a beat that commits


def _find_or_create(
    client: GitHubClient, dd: DataDir, config: Config, saved: dict[str, Any]
) -> tuple[dashboard.Issue, bool]:
    """The dashboard issue, opened (with an empty set of boxes) when there is none; and
    whether it was just opened. Inside the caller's `talking`."""
    issue = dashboard.find(client, _known(saved))
    if issue is not None:
        return issue, False
    return dashboard.create(client, _body(dd, config, saved, dashboard.Ticks(), "")), True


def before(dd: DataDir, config: Config, changes: Changes, now: float) -> Before:
    """Read the dashboard before sensing. Never raises for GitHub or its setup."""
    saved = _load(dd, config)
    asides = [str(saved.pop("problem"))] if saved.get("problem") else []
    try:
        client = _connect(dd, config)
        with client.talking("read the dashboard issue"):
            issue, made = _find_or_create(client, dd, config, saved)
            if made:
                saved["owed"] = True  # the first body had no repository link to go by
    except GitHubUnavailable as exc:
        # Unread, the boxes keep their last known state: a pause stays a pause.
        _save(dd, saved)
        return Before(
            False, _paused(saved) if saved.get("paused") else None, (), (*asides, exc.message)
        )
    boxes = dashboard.ticks(issue.body)
    saved.update(number=issue.number, html=issue.html_url, body=issue.body, etag=issue.etag)
    notes: list[str] = []
    if boxes.paused != bool(saved.get("paused")):
        notes.append(
            f"paused from the GitHub dashboard (issue #{issue.number}): no runner calls until "
            "'pause the loop' is unticked"
            if boxes.paused
            else "resumed: 'pause the loop' was unticked on the GitHub dashboard "
            f"(issue #{issue.number})"
        )
    saved["paused"] = boxes.paused
    outbox.flush(client, saved, asides)
    talk = answers.Talk(client, dd, changes, saved, now, asides)
    try:
        ledger = answers.read_ledger(dd)
    except answers.Mangled as exc:
        asides.append(exc.message)
    else:
        notes += answers.take(talk, ledger)
        answers.post_flags(talk, ledger)
    _save(dd, saved)
    # A tick already acted on (its clearing write failed, or the beat was killed) is not
    # a second request: the update that clears it is owed, and retried after this beat.
    run_now = boxes.run_now and not saved.get("consumed")
    paused = _paused(saved) if boxes.paused else None
    return Before(run_now, paused, tuple(notes), tuple(asides))


def last_paused(dd: DataDir, config: Config) -> str | None:
    """The pause as last read (for a dry run, which asks GitHub nothing)."""
    saved = _load(dd, config)
    return _paused(saved) if saved.get("paused") else None


def consume(dd: DataDir, config: Config) -> None:
    """The runner is about to be called for a "run a beat now" tick: from here on the
    tick is spent, and clearing it on GitHub is owed — even if this beat is killed."""
    saved = _load(dd, config)
    saved.update(consumed=True, owed=True)
    _save(dd, saved, durable=True)


def after(
    dd: DataDir,
    config: Config,
    *,
    outcome: str,
    action: str | None,
    text: str,
    commit: str | None,
    now: float,
) -> str | None:
    """Bring the body up to date after a beat that called the runner (or retry a failed
    update); one line when GitHub failed, which the next beat also journals."""
    saved = _load(dd, config)
    if outcome in ("decided", "failed"):
        saved["last"] = {"outcome": outcome, "action": action, "text": text, "commit": commit}
        saved["last"]["at"] = now
        saved["owed"] = True
    if not saved.get("owed"):
        return None
    try:
        client = _connect(dd, config)
        with client.talking("update the dashboard issue"):
            issue, _made = _find_or_create(client, dd, config, saved)
            ticked = dashboard.ticks(issue.body)
            # Re-read just now: a box a human ticked while the beat ran is kept.
            boxes = ticked._replace(run_now=ticked.run_now and not saved.get("consumed"))
            body = _body(dd, config, saved, boxes, dashboard.repo_html(issue))
            if dashboard.normalized(issue.body) != dashboard.normalized(body):
                issue = dashboard.update(client, issue, body)
    except GitHubUnavailable as exc:
        saved["problem"] = f"the dashboard was not updated: {exc.message} — retried next beat"
        _save(dd, saved)
        return str(saved["problem"])
    saved.update(
        number=issue.number,
        html=issue.html_url,
        body=issue.body,
        etag=issue.etag,
        owed=False,
        consumed=False,
    )
    _save(dd, saved)
    return None


def notify(dd: DataDir, config: Config, message: str, nid: str | None) -> None:
    """A notification as a comment on the dashboard, posted while acting: a beat killed
    after it is journaled as interrupted and not acted again, so it is never posted twice;
    one posted after the commit would be lost by a kill in between. A failing API leaves
    it in the outbox for the next beat."""
    said = one_line(redactor()(message), 4096).replace("<", "&lt;").replace("@", "&#64;")
    body = "<!-- looopbot:notification -->\n**looopbot:** " + said
    if nid:
        body += f" (`{nid}`)"
    saved = _load(dd, config)
    op = {"op": "comment", "body": body}
    try:
        if not saved.get("number"):
            raise GitHubUnavailable("setup", "no dashboard issue yet")
        client = _connect(dd, config)
        with client.talking("post a notification on the dashboard"):
            outbox.send(client, int(saved["number"]), op)
    except GitHubUnavailable:
        outbox.queue(saved, op)
    _save(dd, saved)


# --- plumbing -------------------------------------------------------------------------


def _connect(dd: DataDir, config: Config) -> GitHubClient:
    from looopbot.github import repo

    settings = config.github
    assert settings is not None
    try:
        name = repo.resolve(dd, config, settings)
    except LooopbotError as exc:
        raise GitHubUnavailable("setup", exc.message) from None
    return connect(
        settings,
        name,
        max_wait=min(_MAX_WAIT, config.limits.network_timeout),
        timeout=min(_TIMEOUT, config.limits.network_timeout),
    )


def known_issue(dd: DataDir, config: Config) -> dashboard.Issue | None:
    """The dashboard issue as the last beat here found it (None: never found here)."""
    return _known(_load(dd, config))


def _paused(saved: dict[str, Any]) -> str:
    return (
        f"paused from the GitHub dashboard (issue #{saved.get('number')}) — untick "
        "'pause the loop' there to resume"
    )


def _known(saved: dict[str, Any]) -> dashboard.Issue | None:
    if not isinstance(saved.get("number"), int):
        return None
    body = saved.get("body")
    return dashboard.Issue(
        saved["number"],
        str(saved.get("html") or ""),
        str(body or ""),
        saved.get("etag") if isinstance(body, str) else None,
    )


def _body(
    dd: DataDir, config: Config, saved: dict[str, Any], boxes: dashboard.Ticks, repo_html: str
) -> str:
    return dashboard.render(
        dashboard.view(dd, config, time.time(), saved.get("last")), boxes, repo_html
    )


def _load(dd: DataDir, config: Config) -> dict[str, Any]:
    try:
        found = json.loads(dd.scratch(SCRATCH).read_bytes())
    except (OSError, ValueError):
        found = None
    repo = config.github.repo if config.github is not None else None
    if not isinstance(found, dict) or found.get("repo") != repo:
        return {"repo": repo}  # another repository's dashboard is not this one's
    return found


def _save(dd: DataDir, saved: dict[str, Any], *, durable: bool = False) -> None:
    with contextlib.suppress(OSError):  # scratch: a lost write costs a re-read, no more
        dd.meta.mkdir(parents=True, exist_ok=True)
        write_atomic(dd.scratch(SCRATCH), json.dumps(saved, sort_keys=True), durable=durable)
