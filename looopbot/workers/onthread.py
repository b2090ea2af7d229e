"""The ear of a worker on GitHub Actions: inside `looopbot worker run`, beside the worker,
it listens to the worker's dashboard thread (looopbot.github.thread).

Every `limits.thread_poll` seconds it
- posts the worker's open question (`looopbot ask` / `looopbot flag` in the run, recorded
  by the run's own supervisor) as a flag comment, once per question;
- reads the dashboard's comments — conditionally, so a quiet thread costs 304s and no
  rate limit — and hands each `/answer` or `/keys` addressed to this worker, from someone
  who may speak to it, to the worker's stdin exactly as `looopbot answer` does on a
  machine of its own (the ask's options enforced); reacts 👍, or 😕 with the reason.

Only comments made since the run was dispatched count (GitHub's clock: the run's own
`created_at`), and for a re-run since that attempt started: what was said to an earlier
attempt is not said again to a fresh agent. Each comment is taken once, in memory: the
run is one process. Everything GitHub refuses is one line in the job's log and is tried
again on the next poll; nothing here ever stops the worker.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from looopbot.config import Config
from looopbot.datadir import DataDir
from looopbot.errors import LooopbotError
from looopbot.github import answers, dashboard, thread
from looopbot.github.calls import call, listing
from looopbot.github.client import GitHubClient, GitHubUnavailable
from looopbot.redact import redactor
from looopbot.text import one_line
from looopbot.workers.supervisor import note

TAIL_S = 0.2  # how often the worker's output is copied to the job's log
FIND_EVERY = 10  # polls between looks for a dashboard issue that is not there yet
_NO_RUN_MARGIN_S = 60  # outside Actions: comments from a minute before the start count
# GitHub's answers that asking again will not change: what is owed is dropped on them.
_FOR_GOOD = ("not-found", "invalid")


class Ear:
    """One worker's side of its dashboard thread; `poll` never raises."""

    def __init__(
        self,
        dd: DataDir,
        client: GitHubClient,
        wid: str,
        log: Path,
        ending: threading.Event | None = None,
    ) -> None:
        self.dd, self.client, self.wid, self.log = dd, client, wid, log
        # Set when the run ends: a rate-limit wait under way stops (see `nap`).
        self.ending = ending or threading.Event()
        self.number: int | None = None
        self.issue: dashboard.Issue | None = None  # as last found (its ETag: a 304 next time)
        self.since: str | None = None  # comments created before this are not ours
        self.window: str | None = None  # the `since` asked with: moves up as comments come
        self.etag: str | None = None  # of the answer to `window`
        self.seen: set[int] = set()
        self.posted: set[str] = set()  # the asks already on the dashboard
        self.owed: list[dict[str, Any]] = []  # reactions and replies GitHub did not take
        self.polls = 0
        self.said: str | None = None  # the last trouble reported, not repeated
        self.scrub = redactor()

    def poll(self) -> None:
        self.polls += 1
        try:
            # Looked for again now and then, not only until found: a dashboard closed by a
            # human is replaced by the next beat, and `looopbot answer` posts on the new one.
            if (self.polls - 1) % FIND_EVERY == 0:
                self._find()
            if self.number is None:
                return
            if self.since is None:
                self.since = self._start()
            self._send_owed()
            self._post_ask()
            self._take()
            self.said = None
        except GitHubUnavailable as exc:
            self._trouble(exc.message)
        except Exception as exc:  # the ear must never take the worker down
            self._trouble(f"the dashboard thread failed: {one_line(repr(exc), 200)}")

    def _find(self) -> None:
        with self.client.talking("find the dashboard issue"):
            found = dashboard.find(self.client, self.issue)  # a 304 while it stays
        if found is None:
            if self.number is None:
                self._trouble("there is no dashboard issue yet: nobody can answer here")
            return  # closed, none opened since: its thread is still read
        moved = self.number is not None and found.number != self.number
        self.issue = found
        if found.number == self.number:
            return
        self.number, self.etag = found.number, None
        self.posted.clear()  # the open question is asked again where people now look
        said = (
            "the dashboard moved: listening on issue"
            if moved
            else "listening on the dashboard, issue"
        )
        self._say(f"{said} #{found.number}")

    # --- since when ------------------------------------------------------------------

    def _start(self) -> str:
        """GitHub's time of this run's dispatch (of this attempt's start, for a re-run)."""
        run_id = os.environ.get("GITHUB_RUN_ID", "")
        if run_id.isdigit():
            with self.client.talking("read this run"):
                got = call(self.client, "GET", f"/repos/{self.client.repo}/actions/runs/{run_id}")
            run = got.data if isinstance(got.data, dict) else {}
            attempt = run.get("run_attempt")
            when = run.get("run_started_at") if attempt != 1 else run.get("created_at")
            if isinstance(when, str) and when:
                return when
        # Outside Actions (or a run without its times): a minute before now, our clock.
        back = datetime.now(UTC) - timedelta(seconds=_NO_RUN_MARGIN_S)
        return back.strftime("%Y-%m-%dT%H:%M:%SZ")

    # --- the worker's questions ------------------------------------------------------

    def _post_ask(self) -> None:
        from looopbot.workers import asks

        ask = asks.pending(self.dd, self.wid)
        if ask is None:
            return
        key = f"{ask.id}:{answers.digest(ask.question)}"
        if key in self.posted:
            return
        body = answers.flag_comment(self.wid, ask.question, self.scrub, ask.options)
        with self.client.talking(f"post {self.wid}'s question"):
            call(self.client, "POST", self._comments(), body={"body": body})
        self.posted.add(key)
        self._say(f"asked on the dashboard: {one_line(ask.question, 120)}")

    # --- what is said to the worker --------------------------------------------------

    def _comments(self) -> str:
        return f"/repos/{self.client.repo}/issues/{self.number}/comments"

    def _take(self) -> None:
        assert self.since is not None
        # Asked from a minute before the newest comment seen, not from the start: the list
        # stays short, and a new comment never hides on a page whose first one is unchanged
        # (a 304 speaks for page 1 only).
        window = self.window or self.since
        with self.client.talking("read the dashboard's comments"):
            got = listing(self.client, self._comments(), etag=self.etag, params={"since": window})
        if got.status == 304:
            return
        newest = window
        for item in got.data or []:
            if isinstance(item, dict):
                newest = max(newest, str(item.get("updated_at") or ""))
            comment = answers.comment_of(item)
            if comment is None or comment.id in self.seen:
                continue
            parsed = answers.parse(comment.body)
            ours = isinstance(parsed, answers.Parsed) and parsed.worker == self.wid
            if ours and comment.created_at >= self.since:
                assert isinstance(parsed, answers.Parsed)
                may = thread.trusted(self.client, comment)  # may raise: asked again next poll
                self.seen.add(comment.id)
                self._hear(comment, parsed, may)
            # Anything else is not marked seen: a remark edited into `/answer w1 …` later
            # counts when the edit is read, as a beat counts it for a local worker. Only a
            # comment judged above is never judged again, however it is edited.
        # Never back: a window that only moves up keeps its ETag while nothing changes.
        moved = max(window, answers.margin(newest) or window)
        # The ETag belongs to its query: a moved window is a new one.
        self.etag = got.etag if moved == window else None
        self.window = moved

    def _hear(self, comment: answers.Comment, parsed: answers.Parsed, may: bool) -> None:
        who = f"@{comment.login}"
        if not may:
            # No reply: a reply per comment would let anyone make the bot talk.
            self._owe({"op": "react", "comment": comment.id, "content": "confused"})
            self._say(f"refused {who}'s comment {comment.id}: no write access")
            return
        try:
            done = answers.deliver(self.dd, parsed)
        except LooopbotError as exc:
            reason = one_line(exc.message, 300)
            self._owe({"op": "react", "comment": comment.id, "content": "confused"})
            self._owe(
                {
                    "op": "comment",
                    "body": f"{who}: [this]({comment.url}) did not reach worker "
                    f"`{self.wid}`: {reason}.",
                }
            )
            self._say(f"not delivered ({who}): {reason}")
            return
        self._owe({"op": "react", "comment": comment.id, "content": "+1"})
        self._say(f"{done} from the dashboard ({who}): {one_line(self.scrub(parsed.text), 200)}")

    # --- plumbing --------------------------------------------------------------------

    def _owe(self, op: dict[str, Any]) -> None:
        self.owed.append(op)
        self._send_owed()

    def _send_owed(self) -> None:
        from looopbot.github import outbox

        assert self.number is not None
        while self.owed:
            try:
                with self.client.talking("answer on the dashboard"):
                    outbox.send(self.client, self.number, self.owed[0])
            except GitHubUnavailable as exc:
                if exc.kind not in _FOR_GOOD:
                    raise  # tried again next poll
                # A comment deleted before its reaction (404) would otherwise sit at the
                # head of the queue for the rest of the run: every later poll would fail
                # on it before reading the thread, and the worker would hear nothing more.
                self._say(f"dropped (GitHub will not take it): {exc.message}")
            self.owed.pop(0)

    def _say(self, text: str) -> None:
        note(self.log, f"dashboard: {text}")

    def _trouble(self, text: str) -> None:
        if text != self.said:  # a failing API every poll is one line, not hundreds
            self.said = text
            self._say(text)


def ear_for(dd: DataDir, config: Config, wid: str, log: Path) -> Ear | None:
    """The worker's ear, or None (said in the log) when its run cannot listen."""
    from looopbot.workers import onactions

    settings = config.github
    if settings is None or not settings.dashboard:
        note(log, "dashboard: github.dashboard is off — nobody can answer this worker's questions")
        return None
    ending = threading.Event()
    try:
        client = onactions.client_for(dd, config, sleep=lambda s: nap(ending, s))
    except LooopbotError as exc:
        note(log, f"dashboard: cannot listen: {exc.message}")
        return None
    return Ear(dd, client, wid, log, ending)


def nap(ending: threading.Event, seconds: float) -> None:
    """The ear's wait for a rate limit (up to a minute): cut short when the run ends, since
    `Companion.finish` waits for the poll under way — a minute's wait there would hold the
    run's commit, and a cancelled run has seconds before the runner kills it."""
    if ending.wait(seconds):
        raise GitHubUnavailable("rate-limited", "the run is ending: not waiting out the rate limit")


class Companion(threading.Thread):
    """Beside the worker: copies its output to the job's log as it comes, and polls its
    dashboard thread every `poll` seconds."""

    def __init__(self, log: Path, ear: Ear | None, poll: float) -> None:
        super().__init__(name="looopbot-companion", daemon=True)
        self.log, self.ear, self.poll = log, ear, poll
        self.offset = 0
        self.done = threading.Event()

    def run(self) -> None:
        due = 0.0
        while True:  # a first poll at once: a quick worker still finds its thread
            self.copy()
            if self.ear is not None and time.monotonic() >= due:
                self.ear.poll()
                due = time.monotonic() + self.poll
            if self.done.wait(TAIL_S):
                break
        self.copy()

    def copy(self) -> None:
        with contextlib.suppress(OSError), self.log.open("rb") as f:
            f.seek(self.offset)
            while chunk := f.read(65536):
                sys.stdout.buffer.write(chunk)
                self.offset += len(chunk)
        sys.stdout.flush()

    def finish(self) -> None:
        self.done.set()
        if self.ear is not None:
            self.ear.ending.set()
        self.join()
