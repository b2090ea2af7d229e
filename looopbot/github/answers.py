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
from looopbot.ids import is_valid_id
from looopbot.text import one_line

LEDGER = ".looopbot/github.jsonl"
WRITERS = ("OWNER", "MEMBER", "COLLABORATOR")
_WRITE_PERMISSIONS = ("admin", "maintain", "write")
_BODY_CAP = 2 * MESSAGE_CAP  # a longer comment is refused unread
_COMMAND = re.compile(r"/answer[ \t]+(\S+)(?:[ \t]+|[ \t]*\n)(.+)", re.S)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
DONE = ("delivered", "refused", "interrupted")


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


def flag_comment(wid: str, question: str, scrub: Callable[[str], str]) -> str:
    said = one_line(scrub(question), MESSAGE_CAP).replace("<", "&lt;").replace("@", "&#64;")
    return (
        f"<!-- looopbot:flag {wid} -->\n"
        f"**Worker `{wid}` asks:** {said}\n\n"
        f"Answer with a comment `/answer {wid} <your answer>` — from someone with write "
        "access to this repository; it goes to the worker's input once."
    )


# --- answers ----------------------------------------------------------------------------


class Parsed(NamedTuple):
    worker: str
    text: str


class Refusal(NamedTuple):
    why: str


def parse(body: str) -> Parsed | Refusal | None:
    """An `/answer` comment's worker and text; None for any other comment."""
    text = body.replace("\r\n", "\n").strip()
    if not text.startswith("/answer") or text[7:8] not in ("", " ", "\t", "\n"):
        return None
    if len(text.encode()) > _BODY_CAP:
        return Refusal(f"the comment is over the {_BODY_CAP}-byte cap")
    match = _COMMAND.fullmatch(text)
    if match is None:
        return Refusal("write `/answer <worker> <text>`")
    wid, said = match[1], match[2].strip("\n").strip()
    if not is_valid_id(wid):
        return Refusal(f"{one_line(wid, 70)!r} is not a worker id")
    if not said:
        return Refusal("the answer is empty")
    if len(said.encode()) > MESSAGE_CAP:
        return Refusal(f"the answer is over the {MESSAGE_CAP}-byte cap")
    if _CONTROL.search(said):
        return Refusal("the answer holds control characters")
    return Parsed(wid, said)


class Comment(NamedTuple):
    id: int
    login: str
    association: str
    body: str
    url: str


def comment_of(item: Any) -> Comment | None:
    try:
        return Comment(
            int(item["id"]),
            str(item["user"]["login"]),
            str(item.get("author_association") or "NONE"),
            str(item.get("body") or ""),
            str(item.get("html_url") or ""),
        )
    except (KeyError, TypeError, ValueError):
        return None


def may_write(permission: Any) -> bool:
    """`GET …/collaborators/{user}/permission` says write (or more)."""
    return isinstance(permission, dict) and permission.get("permission") in _WRITE_PERMISSIONS
