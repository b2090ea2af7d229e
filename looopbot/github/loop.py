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
from looopbot.github import answers, dashboard
from looopbot.github.calls import call, listing
from looopbot.github.client import GitHubClient, GitHubUnavailable, connect
from looopbot.redact import redactor
from looopbot.text import one_line

SCRATCH = "github-dashboard.json"
_OUTBOX_CAP = 100
_SINCE_MARGIN_S = 60
_MAX_WAIT = 60.0
_TIMEOUT = 10.0


class Before(NamedTuple):
    run_now: bool = False  # a "run a beat now" tick not yet acted on
    paused: str | None = None  # the hold's message while "pause the loop" is ticked
    notes: tuple[str, ...] = ()  # journal lines (answers delivered or refused, pauses)
    asides: tuple[str, ...] = ()  # GitHub failures: journaled only on a beat that commits


class _Talk(NamedTuple):
    """One beat's conversation with the dashboard."""

    client: GitHubClient
    dd: DataDir
    changes: Changes
    saved: dict[str, Any]  # the scratch record, saved at the end of `before`
    now: float
    asides: list[str]


def before(dd: DataDir, config: Config, changes: Changes, now: float) -> Before:
    """Read the dashboard before sensing. Never raises for GitHub or its setup."""
    saved = _load(dd, config)
    asides = [str(saved.pop("problem"))] if saved.get("problem") else []
    try:
        client = _connect(dd, config)
        with client.talking("read the dashboard issue"):
            issue = dashboard.find(client, _known(saved))
            if issue is None:
                issue = dashboard.create(client, _body(dd, config, saved, dashboard.Ticks(), ""))
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
    _flush(client, saved, asides)
    talk = _Talk(client, dd, changes, saved, now, asides)
    try:
        ledger = answers.read_ledger(dd)
    except answers.Mangled as exc:
        asides.append(exc.message)
    else:
        notes += _answers(talk, ledger)
        _flags(talk, ledger)
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
            issue = dashboard.find(client, _known(saved))
            if issue is None:
                issue = dashboard.create(client, _body(dd, config, saved, dashboard.Ticks(), ""))
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
            _send(client, int(saved["number"]), op)
    except GitHubUnavailable:
        _queue(saved, op)
    _save(dd, saved)


# --- answers and flags ----------------------------------------------------------------


def _answers(talk: _Talk, ledger: answers.Ledger) -> list[str]:
    client, saved, asides = talk.client, talk.saved, talk.asides
    number = int(saved["number"])
    place = saved.get("comments") if isinstance(saved.get("comments"), dict) else None
    if place is None or place.get("issue") != number:
        place = {"issue": number}
    since = _margin(place.get("since"))
    params = {"since": since} if since else {}
    try:
        with client.talking("read the dashboard's comments"):
            got = listing(
                client,
                f"/repos/{client.repo}/issues/{number}/comments",
                etag=place.get("etag"),
                params=params,
            )
    except GitHubUnavailable as exc:
        asides.append(exc.message)
        return []
    if got.status == 304:
        return []
    notes: list[str] = []
    newest = str(place.get("since") or "")
    for item in got.data or []:
        comment = answers.comment_of(item)
        if comment is None:
            continue
        fresh = ledger.answers.get(comment.id) not in answers.DONE
        if fresh and answers.parse(comment.body) is not None:
            try:
                notes += _answer(talk, comment, ledger)
            except GitHubUnavailable as exc:
                # Undecided: read from the same place next beat (the ledger skips the rest).
                asides.append(exc.message)
                return notes
        newest = max(newest, str(item.get("updated_at") or ""))
    # The ETag belongs to this query: a moved `since` is a new query.
    etag = got.etag if newest == str(place.get("since") or "") else None
    saved["comments"] = {"issue": number, "since": newest or None, "etag": etag}
    return notes


def _answer(talk: _Talk, comment: answers.Comment, ledger: answers.Ledger) -> list[str]:
    """Judge one `/answer` comment and deliver it or refuse it; its journal lines."""
    from looopbot.workers import fleet

    client, dd, changes, saved, now = talk.client, talk.dd, talk.changes, talk.saved, talk.now

    parsed = answers.parse(comment.body)
    who = f"@{comment.login}"

    def done(result: str, worker: str | None, reaction: str, reply: str | None) -> None:
        answers.row(
            changes,
            now,
            kind="answer",
            comment=comment.id,
            worker=worker,
            by=comment.login,
            result=result,
        )
        _queue_or_send(client, saved, {"op": "react", "comment": comment.id, "content": reaction})
        if reply:
            _queue_or_send(client, saved, {"op": "comment", "body": reply})

    if ledger.answers.get(comment.id) == "taken":
        done(
            "interrupted",
            None,
            "confused",
            f"{who}: a beat was killed while delivering [this answer]({comment.url}); it may or "
            "may not have reached the worker, and it is not delivered again. Answer again "
            "with a new comment if the worker still waits.",
        )
        return [
            f"an /answer from {who} (comment {comment.id}) was interrupted while being "
            "delivered — not delivered again"
        ]
    writer = comment.association in answers.WRITERS
    if writer:
        # An org MEMBER need not have write access to this repository: ask GitHub.
        with client.talking(f"check {who}'s permission"):
            permission = call(
                client, "GET", f"/repos/{client.repo}/collaborators/{comment.login}/permission"
            )
        writer = answers.may_write(permission.data)
    if not writer:
        # No reply to a stranger: a reply per comment would let anyone make the bot talk.
        done("refused", None, "confused", None)
        return [
            f"refused an /answer from {who} on the GitHub dashboard (comment {comment.id}, "
            f"association {comment.association}): only people with write access may answer"
        ]
    wid = parsed.worker if isinstance(parsed, answers.Parsed) else None
    why: str | None = parsed.why if isinstance(parsed, answers.Refusal) else None
    if isinstance(parsed, answers.Parsed):
        try:
            worker = fleet.get(dd, parsed.worker)
            if not worker.live:
                why = f"worker `{parsed.worker}` is not running (it is {worker.state})"
        except LooopbotError:
            why = f"there is no worker `{parsed.worker}` here"
    if why is None and isinstance(parsed, answers.Parsed):
        answers.row(
            changes,
            now,
            kind="answer",
            comment=comment.id,
            worker=wid,
            by=comment.login,
            result="taken",
        )
        try:
            fleet.answer(dd, parsed.worker, parsed.text)
        except LooopbotError as exc:
            why = one_line(exc.message, 200)
        else:
            done("delivered", wid, "+1", None)
            return [f"answered {wid} from the GitHub dashboard ({who}): {parsed.text}"]
    reason = why or "it cannot be delivered"
    done(
        "refused",
        wid,
        "confused",
        f"{who}: [this answer]({comment.url}) was not delivered: {reason}.",
    )
    return [f"refused an /answer from {who} (comment {comment.id}): {reason}"]


def _flags(talk: _Talk, ledger: answers.Ledger) -> None:
    from looopbot.workers import fleet, record

    client, dd, saved = talk.client, talk.dd, talk.saved
    scrub = redactor()

    for worker in fleet.workers(dd):
        question = record.flag(dd, worker.id) if worker.live else None
        if not question or (worker.id, answers.digest(question)) in ledger.flags:
            continue
        try:
            with client.talking(f"post {worker.id}'s question on the dashboard"):
                got = call(
                    client,
                    "POST",
                    f"/repos/{client.repo}/issues/{saved['number']}/comments",
                    body={"body": answers.flag_comment(worker.id, question, scrub)},
                )
        except GitHubUnavailable as exc:
            talk.asides.append(exc.message)  # not recorded: posted by a later beat
            return
        answers.row(
            talk.changes,
            talk.now,
            kind="flag",
            worker=worker.id,
            digest=answers.digest(question),
            comment=got.data["id"],
        )


# --- the outbox -----------------------------------------------------------------------


def _send(client: GitHubClient, number: int, op: dict[str, Any]) -> None:
    if op["op"] == "react":
        path = f"/repos/{client.repo}/issues/comments/{int(op['comment'])}/reactions"
        call(client, "POST", path, body={"content": op["content"]})
    else:
        call(
            client,
            "POST",
            f"/repos/{client.repo}/issues/{number}/comments",
            body={"body": op["body"]},
        )


def _queue(saved: dict[str, Any], op: dict[str, Any]) -> None:
    box = list(saved.get("outbox") or [])
    saved["outbox"] = [*box, op][-_OUTBOX_CAP:]


def _queue_or_send(client: GitHubClient, saved: dict[str, Any], op: dict[str, Any]) -> None:
    if saved.get("outbox"):
        _queue(saved, op)  # in order, behind what is already owed
        return
    try:
        with client.talking("answer on the dashboard"):
            _send(client, int(saved["number"]), op)
    except GitHubUnavailable:
        _queue(saved, op)


def _flush(client: GitHubClient, saved: dict[str, Any], asides: list[str]) -> None:
    box = list(saved.get("outbox") or [])
    while box:
        try:
            with client.talking("post what the dashboard is owed"):
                _send(client, int(saved["number"]), box[0])
        except GitHubUnavailable as exc:
            asides.append(exc.message)
            break
        box.pop(0)
    saved["outbox"] = box


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


def _margin(newest: Any) -> str | None:
    """The `since` to ask with: a minute before the newest comment seen. GitHub's times
    have one-second steps, and a comment stamped in the second (or moments) before a read
    may list after it; reading a few again costs nothing (the ledger knows them)."""
    from datetime import UTC, datetime, timedelta

    try:
        when = datetime.strptime(str(newest), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None  # never read, or not GitHub's form: read them all
    return (when - timedelta(seconds=_SINCE_MARGIN_S)).strftime("%Y-%m-%dT%H:%M:%SZ")


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
    return dashboard.render(view(dd, config, time.time(), saved.get("last")), boxes, repo_html)


def view(dd: DataDir, config: Config, now: float, last: Any) -> dashboard.View:
    """What the dashboard shows, read from the data dir."""
    from looopbot import desired, journal, ledger
    from looopbot.workers import fleet, record

    goals = []
    for gid, text in desired.goals_of(desired.read(dd)):
        first = text.lstrip("\ufeff").split("\n", 1)[0]
        goals.append((gid, first.removeprefix("goal:").strip()))
    live = [
        dashboard.Worker(w.id, w.state, record.flag(dd, w.id)) for w in fleet.workers(dd) if w.live
    ]
    try:
        spent: float | None = ledger.spent_since(dd.ledger, ledger.day_start(now))
    except ledger.Mangled:
        spent = None
    shown = None
    if isinstance(last, dict):
        with contextlib.suppress(KeyError, TypeError, ValueError):
            shown = dashboard.Last(
                str(last["outcome"]),
                last.get("action"),
                str(last.get("text") or ""),
                last.get("commit"),
                float(last["at"]),
            )
    return dashboard.View(
        goals, live, journal.recent(dd.journal, 10), spent, config.limits.max_daily_usd, shown
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
