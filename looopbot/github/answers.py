"""Questions and answers on the dashboard (DESIGN §10): a worker's flag posted once as a
comment, and `/answer <worker> <text>` comments from people with write access delivered to
that worker's stdin exactly once — across beats, fresh clones and Actions runs.

What was posted and delivered is recorded in git, in `.looopbot/github.jsonl` (a ledger:
one JSON row per line, merged by lines like the cost ledger when clones meet). An answer is
recorded `taken` BEFORE it is delivered and `delivered` after: a beat killed between the
two leaves `taken` alone, which the next beat reports to the human as interrupted instead
of delivering again. At most once, never silently lost. A flag is posted first and recorded
after: a kill between the two may post it twice, never lose the question.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from typing import Any, NamedTuple

from looopbot.actions import MESSAGE_CAP
from looopbot.changes import Changes
from looopbot.datadir import DataDir
from looopbot.errors import LooopbotError
from looopbot.fsutil import read_bytes_or_none
from looopbot.github import outbox
from looopbot.github.calls import call, listing
from looopbot.github.client import GitHubClient, GitHubUnavailable
from looopbot.ids import is_valid_id
from looopbot.redact import redactor
from looopbot.text import one_line

LEDGER = ".looopbot/github.jsonl"
WRITERS = ("OWNER", "MEMBER", "COLLABORATOR")
_WRITE_PERMISSIONS = ("admin", "maintain", "write")
_BODY_CAP = 2 * MESSAGE_CAP  # a longer comment is refused unread
# `/answer <worker>[#<n>] <text>` and `/keys <worker> <key>…`; the text may start on the
# next line.
_COMMAND = re.compile(r"/(answer|keys)[ \t]+(\S+)(?:[ \t]+|[ \t]*\n)(.+)", re.S)
_VERBS = ("/answer", "/keys")
# Control characters (C0 but tab and newline, DEL, C1) and the bidirectional overrides and
# isolates, which make a text read otherwise on the dashboard than the worker receives it.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
# `to-run`: addressed to a worker on GitHub Actions, whose run takes it (github.thread).
DONE = ("delivered", "refused", "interrupted", "to-run")
_SINCE_MARGIN_S = 60


class Ledger(NamedTuple):
    answers: dict[int, str]  # comment id -> its last recorded result
    flags: set[tuple[str, str]]  # (worker, digest) posted, not answered since


class Mangled(LooopbotError):
    pass


def read_ledger(dd: DataDir) -> Ledger:
    """The ledger; a row that does not parse raises Mangled: reading past it could
    deliver an answer twice."""
    raw = read_bytes_or_none(dd.path(LEDGER)) or b""
    answers: dict[int, str] = {}
    flags: set[tuple[str, str]] = set()
    for n, line in enumerate(raw.decode("utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            kind = row["kind"]
            if kind == "answer":
                comment, result = int(row["comment"]), str(row["result"])
                # Clones merge by lines: a finished result is never undone by a `taken`.
                if answers.get(comment) not in DONE:
                    answers[comment] = result
                if result == "delivered":
                    flags = {f for f in flags if f[0] != row["worker"]}
            elif kind == "flag":
                flags.add((str(row["worker"]), str(row["digest"])))
        except (ValueError, KeyError, TypeError):
            raise Mangled(
                f"{LEDGER}:{n} is not a ledger row — answers from GitHub wait until it is "
                "fixed (delivering past it could deliver one twice)"
            ) from None
    return Ledger(answers, flags)


def row(changes: Changes, now: float, **fields: Any) -> None:
    changes.append(LEDGER, json.dumps({"ts": round(now, 3), **fields}, sort_keys=True))


# --- flags ------------------------------------------------------------------------------


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def flag_comment(
    wid: str, question: str, scrub: Callable[[str], str], options: tuple[str, ...] = ()
) -> str:
    said = one_line(scrub(question), MESSAGE_CAP).replace("<", "&lt;").replace("@", "&#64;")
    takes = ""
    if options:
        shown = " / ".join(f"`{_inline(scrub(o))}`" for o in options)
        takes = f" It takes one of: {shown}."
    return (
        f"<!-- looopbot:flag {wid} -->\n"
        f"**Worker `{wid}` asks:** {said}\n\n"
        f"Answer with a comment `/answer {wid} <your answer>` — from someone with write "
        f"access to this repository; it goes to the worker's input once.{takes}"
    )


def _inline(text: str) -> str:
    """An option inside `…`: no backtick can close the code span early."""
    return one_line(text, 100).replace("`", "'")


# --- answers ----------------------------------------------------------------------------


class Parsed(NamedTuple):
    worker: str
    text: str
    verb: str = "answer"  # or "keys": `text` is then the key names, space-separated
    ask: str | None = None  # `/answer w1#2 …` names the ask it answers

    @property
    def target(self) -> str:
        """What `fleet.answer` takes: the ask's id when one was named, else the worker's."""
        return self.ask or self.worker


class Refusal(NamedTuple):
    why: str


def parse(body: str) -> Parsed | Refusal | None:
    """An `/answer` or `/keys` comment's worker and text; None for any other comment."""
    from looopbot.actions import KEYS

    text = body.replace("\r\n", "\n").strip()
    verb = next((v for v in _VERBS if text.startswith(v)), None)
    if verb is None or text[len(verb) : len(verb) + 1] not in ("", " ", "\t", "\n"):
        return None
    if len(text.encode()) > _BODY_CAP:
        return Refusal(f"the comment is over the {_BODY_CAP}-byte cap")
    match = _COMMAND.fullmatch(text)
    if match is None:
        return Refusal(f"write `{verb} <worker> <{'keys' if verb == '/keys' else 'text'}>`")
    wid, sep, n = match[2].partition("#")
    said = match[3].strip("\n").strip()
    if not is_valid_id(wid) or (sep and (verb == "/keys" or not n.isdigit())):
        return Refusal(f"{one_line(match[2], 70)!r} is not a worker id")
    if not said:
        return Refusal("the answer is empty")
    if len(said.encode()) > MESSAGE_CAP:
        return Refusal(f"the answer is over the {MESSAGE_CAP}-byte cap")
    if _CONTROL.search(said):
        return Refusal("the answer holds control characters")
    if verb == "/keys":
        unknown = [k for k in said.split() if k not in KEYS]
        if unknown:
            return Refusal(f"unknown key {one_line(unknown[0], 20)!r} (valid: {', '.join(KEYS)})")
        return Parsed(wid, " ".join(said.split()), "keys")
    return Parsed(wid, said, "answer", match[2] if sep else None)


class Comment(NamedTuple):
    id: int
    login: str
    association: str
    body: str
    url: str
    created_at: str = ""
    bot: bool = False  # the user's type is Bot (github-actions[bot], an app)


def comment_of(item: Any) -> Comment | None:
    try:
        return Comment(
            int(item["id"]),
            str(item["user"]["login"]),
            str(item.get("author_association") or "NONE"),
            str(item.get("body") or ""),
            str(item.get("html_url") or ""),
            str(item.get("created_at") or ""),
            item["user"].get("type") == "Bot",
        )
    except (KeyError, TypeError, ValueError):
        return None


def may_write(permission: Any) -> bool:
    """`GET …/collaborators/{user}/permission` says write (or more)."""
    return isinstance(permission, dict) and permission.get("permission") in _WRITE_PERMISSIONS


def writes(client: GitHubClient, comment: Comment) -> bool:
    """Whether the comment's author has write access: the association says so and —
    since an org MEMBER need not have write access to this repository — GitHub confirms."""
    if comment.association not in WRITERS:
        return False
    try:
        with client.talking(f"check @{comment.login}'s permission"):
            permission = call(
                client, "GET", f"/repos/{client.repo}/collaborators/{comment.login}/permission"
            )
    except GitHubUnavailable as exc:
        if exc.kind == "not-found":
            # GitHub knows no such collaborator (a deleted account, a mannequin): an answer,
            # not a failure — asked again, it would block every comment after this one.
            return False
        raise
    return may_write(permission.data)


# --- taking answers and posting flags ---------------------------------------------


class Talk(NamedTuple):
    """One beat's conversation with the dashboard."""

    client: GitHubClient
    dd: DataDir
    changes: Changes
    saved: dict[str, Any]  # the scratch record, saved at the end of `before`
    now: float
    asides: list[str]


def take(talk: Talk, ledger: Ledger) -> list[str]:
    """Read the dashboard's new comments (conditionally, from where the last read ended)
    and deliver or refuse each `/answer` not on record yet; the journal lines."""
    client, saved, asides = talk.client, talk.saved, talk.asides
    number = int(saved["number"])
    place = saved.get("comments") if isinstance(saved.get("comments"), dict) else None
    if place is None or place.get("issue") != number:
        place = {"issue": number}
    since = margin(place.get("since"))
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
        comment = comment_of(item)
        if comment is None:
            continue
        fresh = ledger.answers.get(comment.id) not in DONE
        if fresh and parse(comment.body) is not None:
            try:
                notes += _one(talk, comment, ledger)
            except GitHubUnavailable as exc:
                # Undecided: read from the same place next beat (the ledger skips the rest).
                asides.append(exc.message)
                return notes
        newest = max(newest, str(item.get("updated_at") or ""))
    # The ETag belongs to this query: a moved `since` is a new query.
    etag = got.etag if newest == str(place.get("since") or "") else None
    saved["comments"] = {"issue": number, "since": newest or None, "etag": etag}
    return notes


def _one(talk: Talk, comment: Comment, ledger: Ledger) -> list[str]:
    """Judge one `/answer` or `/keys` comment and deliver it or refuse it; its journal
    lines."""
    from looopbot.workers import fleet, onactions

    client, dd, changes, saved, now = talk.client, talk.dd, talk.changes, talk.saved, talk.now

    parsed = parse(comment.body)
    who = f"@{comment.login}"

    def note(result: str, worker: str | None) -> None:
        row(
            changes,
            now,
            kind="answer",
            comment=comment.id,
            worker=worker,
            by=comment.login,
            result=result,
        )

    def done(result: str, worker: str | None, reaction: str, reply: str | None) -> None:
        note(result, worker)
        outbox.send_or_queue(
            client, saved, {"op": "react", "comment": comment.id, "content": reaction}
        )
        if reply:
            outbox.send_or_queue(client, saved, {"op": "comment", "body": reply})

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
    remote = onactions.elsewhere(dd, parsed.worker) if isinstance(parsed, Parsed) else None
    gone: str | None = None
    if remote is not None:
        from looopbot.github import thread

        # Said after its run ended, nobody would ever answer it: refused here, below.
        gone = thread.unheard(client, remote, comment)
    if isinstance(parsed, Parsed) and remote is not None and gone is None:
        # Its run reads the thread and answers it (github.thread): not delivered twice.
        note("to-run", parsed.worker)
        return []
    if not writes(client, comment):
        # No reply to a stranger: a reply per comment would let anyone make the bot talk.
        done("refused", None, "confused", None)
        return [
            f"refused an /answer from {who} on the GitHub dashboard (comment {comment.id}, "
            f"association {comment.association}): only people with write access may answer"
        ]
    wid = parsed.worker if isinstance(parsed, Parsed) else None
    why: str | None = parsed.why if isinstance(parsed, Refusal) else gone
    if isinstance(parsed, Parsed) and why is None:
        try:
            worker = fleet.get(dd, parsed.worker)
            if not worker.live:
                why = f"worker `{parsed.worker}` is not running (it is {worker.state})"
        except LooopbotError:
            why = f"there is no worker `{parsed.worker}` here"
    if why is None and isinstance(parsed, Parsed):
        note("taken", wid)  # before the delivery: a kill between the two is never silent
        try:
            said = deliver(dd, parsed)
        except LooopbotError as exc:
            why = one_line(exc.message, 200)
        else:
            done("delivered", wid, "+1", None)
            return [f"{said} from the GitHub dashboard ({who}): {parsed.text}"]
    reason = why or "it cannot be delivered"
    done(
        "refused",
        wid,
        "confused",
        f"{who}: [this answer]({comment.url}) was not delivered: {reason}.",
    )
    return [f"refused an /answer from {who} (comment {comment.id}): {reason}"]


def deliver(dd: DataDir, parsed: Parsed) -> str:
    """Hand a parsed command to the worker's stdin (via its supervisor); what was done,
    for a journal line ("answered w1#2")."""
    from looopbot.workers import fleet

    if parsed.verb == "keys":
        fleet.keys(dd, parsed.worker, parsed.text.split())
        return f"sent keys to {parsed.worker}"
    fleet.answer(dd, parsed.target, parsed.text)
    return f"answered {parsed.target}"


def _options(dd: DataDir, wid: str) -> tuple[str, ...]:
    from looopbot.workers import asks

    pending = asks.pending(dd, wid)
    return pending.options if pending is not None else ()


def post_flags(talk: Talk, ledger: Ledger) -> None:
    """Post each live worker's question not posted yet (since its last answer)."""
    from looopbot.workers import fleet, record

    client, dd, saved = talk.client, talk.dd, talk.saved
    scrub = redactor()

    for worker in fleet.workers(dd):
        question = record.flag(dd, worker.id) if worker.live else None
        if not question or (worker.id, digest(question)) in ledger.flags:
            continue
        try:
            with client.talking(f"post {worker.id}'s question on the dashboard"):
                got = call(
                    client,
                    "POST",
                    f"/repos/{client.repo}/issues/{saved['number']}/comments",
                    body={
                        "body": flag_comment(worker.id, question, scrub, _options(dd, worker.id))
                    },
                )
        except GitHubUnavailable as exc:
            talk.asides.append(exc.message)  # not recorded: posted by a later beat
            return
        row(
            talk.changes,
            talk.now,
            kind="flag",
            worker=worker.id,
            digest=digest(question),
            comment=got.data["id"],
        )


def margin(newest: Any) -> str | None:
    """The `since` to ask with: a minute before the newest comment seen. GitHub's times
    have one-second steps, and a comment stamped in the second (or moments) before a read
    may list after it; reading a few again costs nothing (the ledger knows them)."""
    from datetime import UTC, datetime, timedelta

    try:
        when = datetime.strptime(str(newest), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None  # never read, or not GitHub's form: read them all
    return (when - timedelta(seconds=_SINCE_MARGIN_S)).strftime("%Y-%m-%dT%H:%M:%SZ")
