"""Pull first, push after (DESIGN §9): the data repo as a shared, remote source of truth.

Before a beat senses, the remote branch is brought in — a fast-forward, or the unpushed bot
commits replayed onto it (looopbot.replay) — so the beat decides on the latest goals. After
it commits (or when commits are still unpushed), they are pushed; when the remote moved
under the push, it fetches, replays and pushes again, up to `limits.push_retries` times with
jittered backoff. Never a force push, never the user's commits rewritten: when the user's
own unpushed commits and the remote have diverged, the branch is left as it is and the
report says what to do. An unreachable remote stops nothing: the beat goes on with what it
has, and its commits go out with a later one.

Called with the beat lock held, by the beat and by every command that commits.
"""

from __future__ import annotations

import contextlib
import json
import random
import time
from dataclasses import dataclass, field
from typing import Any

from looopbot import advance, gitcli, remote
from looopbot.changes import PENDING
from looopbot.config import Config, author_identity
from looopbot.datadir import DataDir
from looopbot.errors import LooopbotError
from looopbot.fsutil import write_atomic
from looopbot.gitindex import IndexLocked
from looopbot.remote import RemoteFailed, Upstream
from looopbot.replay import Conflict, is_bot, replay

LAST_PUSH = "last-push.json"  # local scratch: the last push and its result, for `status`
_BACKOFF_S = 0.5
_BACKOFF_CAP_S = 8.0
_DEEPEN = (50, 500, 5000)  # a shallow clone deepens this far, then unshallows
_MOVES = 3  # HEAD moved by someone else while we moved it: read again, this many times
NEW = "new branch"  # Report.pulled: the remote has no such branch yet; the push creates it
GONE = "branch gone"  # Report.pulled: the remote branch we knew was deleted; no push
REWRITTEN = "rewritten"  # Report.pulled: rewritten away from others' commits here; no push
DEFERRED = "deferred"  # Report.pulled: fetched; brought in after a killed beat's writes commit


class Diverged(LooopbotError):
    """The user's own unpushed commits and the remote have both moved: theirs to merge."""


class Rewritten(Diverged):
    """The remote's history was rewritten away from commits here that are not the bot's."""


# What can stop bringing the remote branch in on this side: the beat goes on without it
# (a human's `git commit` holding the index lock included: that beat still decides, and
# its files wait for the next commit, exactly as without push).
_LOCAL_TROUBLE = (Diverged, Conflict, advance.Blocked, advance.Moved, IndexLocked)


@dataclass
class Report:
    """What pull and push did, for the beat's output, `tick --json` and `status`."""

    upstream: str
    pulled: str | None = None  # up to date | fast-forward | rebased N | ahead | NEW | GONE…
    pushed: str | None = None  # the commit pushed
    result: str = "skipped"  # pushed | up to date | failed | skipped
    error: str | None = None
    kind: str | None = None  # the failure's kind (looopbot.remote)
    dropped: list[str] = field(default_factory=list)
    attempts: int = 0
    up: Upstream | None = None  # worked out once per beat, for the push after the pull
    before: str | None = None  # the remote-tracking ref before a deferred pull's fetch

    @property
    def ok(self) -> bool:
        """False when the commits did not reach the remote, or reaching it failed for a
        reason other than the network (a human must fix the remote or the branch)."""
        if self.result == "failed":
            return False
        return self.error is None or self.kind == remote.UNREACHABLE

    def public(self) -> dict[str, Any]:
        return {
            "upstream": self.upstream,
            "pulled": self.pulled,
            "pushed": self.pushed,
            "result": self.result,
            "error": self.error,
            "kind": self.kind,
            "dropped": self.dropped,
        }

    def line(self) -> str:
        """One line for the beat's output."""
        said = {
            "pushed": f"pushed {(self.pushed or '')[:10]} to {self.upstream}",
            "up to date": f"{self.upstream} up to date",
            "skipped": f"nothing pushed to {self.upstream}",
            "failed": f"push to {self.upstream} failed",
        }[self.result]
        if self.pulled and self.pulled not in ("up to date", "ahead", GONE, REWRITTEN):
            said = f"pulled ({self.pulled}), {said}"
        if self.dropped:
            said += "; kept the remote's " + ", ".join(self.dropped)
        return said + (f": {self.error}" if self.error else "")

    def aside(self) -> str | None:
        """The journal line for a beat that commits anyway (None: nothing worth it)."""
        if self.error is None:
            return None
        return f"remote {self.upstream}: {self.error}"


def pull(dd: DataDir, config: Config) -> Report:
    """Bring the remote branch in before sensing. Never raises for a remote problem: the
    report carries it and the beat goes on with what it has."""
    up = remote.upstream(dd, config)
    report = Report(str(up), up=up)
    try:
        before = remote.rev(dd, up.tracking)
        if not remote.fetch(dd, up):
            if before is None:
                report.pulled = NEW
                return report
            # It was there when we last looked: deleted or renamed on purpose. Pushing
            # would bring it back beside the branch people now use.
            report.pulled = GONE
            report.error = (
                f"{up} is gone from the remote (deleted or renamed there) — looopbot does not "
                f"re-create it: push the branch by hand (git push -u {up.remote} {up.local}) "
                "or name the branch to use in looopbot.yaml (git.branch)"
            )
            report.kind = remote.MISSING
            return report
        if dd.scratch(PENDING).exists():
            # A killed beat's writes are still on disk, uncommitted: this beat commits them
            # first, and the push after it replays them onto the remote like any other.
            report.pulled, report.before = DEFERRED, before
            return report
        report.pulled, report.dropped = integrate(dd, config, up, before)
    except Rewritten as exc:
        # A push now would be a fast-forward of the rewritten branch that brings back
        # what someone removed from it.
        report.pulled, report.error, report.kind = REWRITTEN, exc.message, remote.FAILED
    except RemoteFailed as exc:
        report.error, report.kind = exc.message, exc.kind
    except _LOCAL_TROUBLE as exc:
        report.error, report.kind = exc.message, remote.FAILED
    return report


def integrate(
    dd: DataDir, config: Config, up: Upstream, before: str | None
) -> tuple[str, list[str]]:
    """Bring HEAD level with the remote-tracking ref, which was `before` until the fetch
    that just moved it: (what happened, dropped paths)."""
    for _ in range(_MOVES):
        head = remote.rev(dd, "HEAD")
        theirs = remote.rev(dd, up.tracking)
        if head is None or theirs is None or head == theirs:
            return "up to date", []
        base = _merge_base(dd, up, head, theirs)
        gone = _rewritten_away(dd, up, before, theirs, head)
        if base == theirs and not gone:
            return "ahead", []
        ident = author_identity(config.author)
        try:
            if base == head:
                advance.advance(dd, head, theirs, f"looopbot: fast-forward to {up}", ident)
                return "fast-forward", []
            mine = [sha for sha in _unpushed(dd, base, head) if sha not in gone]
            from dulwich.repo import Repo

            assert dd.repo_root is not None
            repo = Repo(str(dd.repo_root))
            try:
                done = replay(
                    dd, repo, mine, theirs, f"{ident[0]} <{ident[1]}>".encode(), where=str(up)
                )
            finally:
                repo.close()
            why = f"looopbot: rebased {len(mine)} bot commit(s) onto {up}"
            advance.advance(dd, head, done.tip, why, ident)
            said = f"rebased {done.commits}"
            if gone:
                said = f"followed a rewrite: dropped {len(gone)}, {said}"
            return said, done.dropped
        except advance.Moved:
            continue  # a commit landed meanwhile: look again
    raise advance.Moved("HEAD kept moving while bringing in the remote branch; try again")


def _merge_base(dd: DataDir, up: Upstream, head: str, theirs: str) -> str:
    """The merge base, deepening a shallow clone until the two histories meet."""
    assert dd.repo_root is not None
    for by in (*_DEEPEN, 0, None):
        found = gitcli.run(dd.repo_root, "merge-base", head, theirs, check=False)
        if found.ok:
            return found.stdout.decode().strip()
        if by is None or not remote.is_shallow(dd):
            break
        remote.deepen(dd, up, by)
    raise Diverged(
        f"this branch and {up} share no history — merge them by hand "
        "(git pull --allow-unrelated-histories), then push"
    )


def _rewritten_away(
    dd: DataDir, up: Upstream, before: str | None, theirs: str, head: str
) -> set[str]:
    """The commits here that the remote branch had — at any tip we fetched, `before` this
    fetch or in the tracking ref's reflog — and no longer has: its history was rewritten
    (a pushed bot commit removed on purpose, a leaked secret purged), and pushing them again
    would undo that. The reflog keeps it known after the fetch that saw it, and after a
    human's own `git fetch`. Only the bot's are followed; anyone else's are left for a
    human (Rewritten)."""
    root = dd.repo_root
    assert root is not None
    here = gitcli.out(root, "rev-list", head, "--not", theirs).split()
    if not here:
        return set()
    seen = gitcli.run(
        root,
        *("-c", "log.showSignature=false", "reflog", "show", "--format=%H", "-n", "50"),
        up.tracking,
        "--",
        check=False,
    )
    tips = {*seen.stdout.decode().split(), *([before] if before else [])} - {theirs}
    if not tips:
        return set()
    had = gitcli.out(root, "rev-list", "--ignore-missing", *sorted(tips), "--not", theirs)
    gone = set(here) & set(had.split())
    if gone:
        raw = gitcli.run(
            root,
            *("-c", "log.showSignature=false", "log", "-z", "--no-walk", "--format=%B"),
            *sorted(gone),
        ).stdout
        foreign = [m for m in raw.split(b"\0") if m.strip() and not is_bot(b"\n" + m)]
        if foreign:
            raise Rewritten(
                f"{up} was rewritten: {len(gone)} commit(s) here that it had are gone from "
                f"it, {len(foreign)} of them not looopbot's — looopbot neither restores nor "
                f"drops them: see git log {up}..HEAD, then reset or push by hand"
            )
    return gone


def _unpushed(dd: DataDir, base: str, head: str) -> list[str]:
    """The commits between `base` and `head`, oldest first — if every one is looopbot's
    and they form a line; else the user's commits are in the way (Diverged)."""
    assert dd.repo_root is not None
    # log.showSignature=true in the user's config would mix gpg's words into the output.
    raw = gitcli.run(
        dd.repo_root,
        *("-c", "log.showSignature=false", "log", "--reverse", "-z", "--format=%H %P%n%B"),
        f"{base}..{head}",
    ).stdout
    commits, foreign = [], 0
    for entry in raw.split(b"\0"):
        if not entry.strip():
            continue
        first, _, body = entry.partition(b"\n")
        shas = first.decode().split()
        if len(shas) != 2 or not is_bot(b"\n" + body):
            foreign += 1
        commits.append(shas[0])
    if foreign:
        raise Diverged(
            f"{foreign} unpushed commit(s) here are not looopbot's and the remote branch "
            "moved — looopbot never rewrites them: git pull --rebase (or merge), then push"
        )
    return commits


def push(dd: DataDir, config: Config, report: Report) -> Report:
    """Push what is unpushed (if anything), retrying a push the remote branch moved under.
    Fills and returns `report`; remembers the outcome for `status`."""
    up = report.up or remote.upstream(dd, config)
    try:
        _push(dd, config, up, report)
    finally:
        _remember(dd, report)
    return report


def _push(dd: DataDir, config: Config, up: Upstream, report: Report) -> None:
    if report.pulled in (GONE, REWRITTEN):
        report.result = "failed"  # a human settles it first (the report says how)
        return
    # The killed beat's writes are committed now: the remote comes in as the pull would
    # have brought it (a rewrite there included) before anything is pushed.
    if report.pulled == DEFERRED and not _catch_up(dd, config, up, report, report.before):
        return
    retries = config.limits.push_retries
    for attempt in range(retries + 1):
        head = remote.rev(dd, "HEAD")
        theirs = remote.rev(dd, up.tracking)
        if head is None or head == theirs or (theirs is not None and _contains(dd, theirs, head)):
            # Nothing to push — as far as we know, when the pull could not reach the remote.
            report.result = "up to date" if report.error is None else "skipped"
            return
        report.attempts = attempt + 1
        try:
            remote.push(dd, up, head)
            report.result, report.pushed = "pushed", head
            report.error = report.kind = None  # the remote took it: any earlier trouble is over
            return
        except RemoteFailed as exc:
            report.error, report.kind = exc.message, exc.kind
            if exc.kind != remote.MOVED or attempt == retries:
                report.result = "failed"
                return
        time.sleep(_backoff(attempt))
        before = remote.rev(dd, up.tracking)
        try:
            if not remote.fetch(dd, up):
                report.error = f"{up} is gone from the remote (deleted meanwhile)"
                report.kind, report.result = remote.MISSING, "failed"
                return
        except RemoteFailed as exc:
            report.error, report.kind, report.result = exc.message, exc.kind, "failed"
            return
        if not _catch_up(dd, config, up, report, before):
            return


def _catch_up(
    dd: DataDir, config: Config, up: Upstream, report: Report, before: str | None
) -> bool:
    """Bring the fetched remote branch in before a push; False when that failed (the
    report says why, and nothing is pushed)."""
    try:
        pulled, dropped = integrate(dd, config, up, before)
    except RemoteFailed as exc:
        report.error, report.kind, report.result = exc.message, exc.kind, "failed"
        return False
    except _LOCAL_TROUBLE as exc:
        report.error, report.kind, report.result = exc.message, remote.FAILED, "failed"
        return False
    report.dropped = sorted({*report.dropped, *dropped})
    if report.pulled in (None, "up to date", "ahead", DEFERRED):
        report.pulled = pulled
    return True


def _contains(dd: DataDir, theirs: str, head: str) -> bool:
    """Whether the remote already has `head` (it is an ancestor of what the remote holds)."""
    assert dd.repo_root is not None
    found = gitcli.run(dd.repo_root, "merge-base", "--is-ancestor", head, theirs, check=False)
    return found.ok


def _backoff(attempt: int) -> float:
    # Jittered, so clones that collided do not collide again in lockstep.
    return float(min(_BACKOFF_CAP_S, _BACKOFF_S * 2**attempt) * random.uniform(0.5, 1.5))


def _remember(dd: DataDir, report: Report) -> None:
    with contextlib.suppress(OSError):  # only `status` reads it
        write_atomic(
            dd.scratch(LAST_PUSH), json.dumps({**report.public(), "at": time.time()}), durable=False
        )


def last(dd: DataDir) -> dict[str, Any] | None:
    """The last push's record (local scratch), or None."""
    try:
        found = json.loads(dd.scratch(LAST_PUSH).read_bytes())
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None


def landed(dd: DataDir, commit: str, run_id: str) -> str:
    """The commit of run `run_id` as it is on the branch now: `commit` itself, or its
    replayed copy when a rebase around a human's push made a new one (found by its
    Looopbot-Run trailer among the newest commits)."""
    assert dd.repo_root is not None
    if gitcli.run(dd.repo_root, "merge-base", "--is-ancestor", commit, "HEAD", check=False).ok:
        return commit
    out = gitcli.out(
        dd.repo_root,
        *("-c", "log.showSignature=false", "log", "-n", "50"),
        "--format=%H %(trailers:key=Looopbot-Run,valueonly)",
    )
    for line in out.splitlines():
        sha, _, run = line.partition(" ")
        if run.strip() == run_id:
            return sha
    return commit


def after_commit(dd: DataDir, config: Config, pulled: Report | None = None) -> None:
    """Push after a command's commit (a move by hand), when push is on. `pulled`: the pull
    made before the move (else one is made now: it tells a deleted remote branch from a new
    one). Raises when the push fails — the commit staying local for the next push — and
    when the move's own change was dropped because the remote changed that file meanwhile:
    the command did not do what it said."""
    if not config.push:
        return
    report = pulled or pull(dd, config)
    earlier = set(report.dropped)
    push(dd, config, report)
    lost = sorted(set(report.dropped) - earlier)
    if lost:
        raise LooopbotError(
            f"{', '.join(lost)} changed on {report.upstream} meanwhile: its version was kept "
            "and this change to it dropped — look at it, then try again"
        )
    if not report.ok:
        raise LooopbotError(report.line())


__all__ = [
    "Diverged",
    "Report",
    "Rewritten",
    "after_commit",
    "integrate",
    "landed",
    "last",
    "pull",
    "push",
]
