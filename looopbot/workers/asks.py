"""Asks: a worker's question for a human, with an id and, optionally, the answers it takes
(issue 9). A flag is an ask without options.

The question stays in the worker's `flag` file (so `sys-workers` shows it as `note`, and
everything that reads flags — the prompt, the dashboard — sees asks too); `ask.json` beside
it holds the ask's id (`<worker>#<n>`: a `#` is never in a worker id, so `answer` tells the
two apart), its options and when it was asked. The answer goes to the worker's stdin as a
flag's does, and into `ask.json`, where a `looopbot ask` that waits picks it up and prints
it — the way an agent whose stdin is its brief file hears back.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, NamedTuple

from looopbot.datadir import DataDir
from looopbot.errors import LooopbotError
from looopbot.fsutil import read_bytes_or_none, write_atomic
from looopbot.ids import check_branch_id
from looopbot.text import quote
from looopbot.workers import record

ASK_FILE = "ask.json"
MAX_OPTIONS = 20
OPTION_CAP = 100


class Ask(NamedTuple):
    id: str  # <worker>#<n>
    worker: str
    question: str
    options: tuple[str, ...]  # empty: any answer
    asked_at: float | None
    answer: str | None = None
    answered_at: float | None = None


def parse_options(text: str | None) -> tuple[str, ...]:
    """`--options yes,no` → ("yes", "no"): trimmed, deduplicated, each capped."""
    if text is None:
        return ()
    found: list[str] = []
    for raw in text.split(","):
        option = " ".join(raw.split())
        if not option:
            continue
        if len(option) > OPTION_CAP:
            raise LooopbotError(f"an option is over {OPTION_CAP} characters: {quote(option, 40)}")
        if option.lower() not in (o.lower() for o in found):
            found.append(option)
    if text.strip() and not found:
        raise LooopbotError("--options holds no option — give them comma-separated: yes,no")
    if len(found) > MAX_OPTIONS:
        raise LooopbotError(f"at most {MAX_OPTIONS} options")
    if len(found) == 1:
        raise LooopbotError("one option is no choice — give two or more, or none")
    return tuple(found)


def _file(dd: DataDir, wid: str) -> Path:
    return record.paths(dd, wid).dir / ASK_FILE


def _read(dd: DataDir, wid: str) -> dict[str, Any] | None:
    raw = read_bytes_or_none(_file(dd, wid))
    try:
        found = json.loads(raw) if raw is not None else None
    except ValueError:
        return None
    return found if isinstance(found, dict) else None


def open_ask(dd: DataDir, wid: str, question: str, options: tuple[str, ...]) -> Ask:
    """Record the ask (the caller has raised the flag); its id."""
    before = _read(dd, wid)
    n = int(before.get("n", 0)) + 1 if before and isinstance(before.get("n"), int) else 1
    ask = {
        "n": n,
        "id": f"{wid}#{n}",
        "question": question,
        "options": list(options),
        "asked_at": time.time(),
    }
    write_atomic(_file(dd, wid), json.dumps(ask))
    return _from(wid, ask, question)


def _from(wid: str, data: dict[str, Any], question: str) -> Ask:
    listed = data.get("options")
    options = tuple(o for o in listed if isinstance(o, str)) if isinstance(listed, list) else ()
    return Ask(
        id=str(data.get("id") or wid),
        worker=wid,
        question=question,
        options=options,
        asked_at=data["asked_at"] if isinstance(data.get("asked_at"), int | float) else None,
        answer=data["answer"] if isinstance(data.get("answer"), str) else None,
        answered_at=data["answered_at"]
        if isinstance(data.get("answered_at"), int | float)
        else None,
    )


def pending(dd: DataDir, wid: str) -> Ask | None:
    """The worker's open question, as an ask (a bare flag is one without options)."""
    question = record.flag(dd, wid)
    if question is None:
        return None
    data = _read(dd, wid)
    if data is None or data.get("answer") is not None or data.get("question") != question:
        # A flag raised by `looopbot flag` (or one whose ask record was lost): any answer.
        return Ask(id=wid, worker=wid, question=question, options=(), asked_at=_flag_time(dd, wid))
    return _from(wid, data, question)


def _flag_time(dd: DataDir, wid: str) -> float | None:
    try:
        return record.paths(dd, wid).flag.stat().st_mtime
    except OSError:
        return None


def target(text: str) -> tuple[str, str | None]:
    """`answer`'s first argument: (worker id, ask id or None)."""
    wid, sep, n = text.partition("#")
    check_branch_id(wid, "worker id")  # the usual refusal, secrets unquoted
    if sep and not n.isdigit():
        raise LooopbotError(
            f"{quote(text, 80)} is neither a worker id nor an ask id (<worker>#<n>, as "
            "`looopbot asks` lists them)"
        )
    return wid, text if sep else None


def check_answer(ask: Ask, ask_id: str | None, text: str) -> str:
    """The answer as it will be delivered; refused when it names another ask or is not one
    of the options (matched without regard to case, delivered as the option is spelt)."""
    if ask_id is not None and ask_id != ask.id:
        raise LooopbotError(
            f"ask {ask_id} is not pending — {ask.worker}'s open question is {ask.id}: "
            f"{quote(ask.question, 120)}"
        )
    if not ask.options:
        return text
    for option in ask.options:
        if option.lower() == " ".join(text.split()).lower():
            return option
    raise LooopbotError(
        f"{quote(text, 60)} is not an answer {ask.id} takes — choose one of: "
        + ", ".join(ask.options)
    )


def answered(dd: DataDir, ask: Ask, text: str) -> None:
    """Record the answer where a waiting `looopbot ask` looks for it."""
    data = _read(dd, ask.worker)
    if data is None or data.get("id") != ask.id:
        return  # a bare flag: nobody waits on a file for it
    data.update(answer=text, answered_at=time.time())
    write_atomic(_file(dd, ask.worker), json.dumps(data))


def wait_answer(dd: DataDir, ask: Ask, poll: float = 0.2) -> str:
    """Block until `ask` is answered; the answer. The worker ending (or its ask being
    replaced) ends the wait with an error."""
    while True:
        data = _read(dd, ask.worker)
        if data is None or data.get("id") != ask.id:
            raise LooopbotError(f"ask {ask.id} was withdrawn before it was answered")
        if isinstance(data.get("answer"), str):
            return str(data["answer"])
        if not _live(dd, ask.worker):
            raise LooopbotError(f"worker {ask.worker} is no longer live: {ask.id} is stranded")
        time.sleep(poll)


def _live(dd: DataDir, wid: str) -> bool:
    try:
        worker = record.read(dd, wid)
    except record.Unreadable:
        return False
    return worker is not None and record.effective(worker).live


def all_pending(dd: DataDir) -> list[tuple[Ask, bool]]:
    """Every open question with whether its worker is still live (False: STRANDED)."""
    found: list[tuple[Ask, bool]] = []
    for wid in record.ids(dd):
        ask = pending(dd, wid)
        if ask is not None:
            found.append((ask, _live(dd, wid)))
    return found
