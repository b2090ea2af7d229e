"""A worker's deliverable as a draft pull request (`github.pull_requests: true`).

When one is due: the worker exited by itself with code 0, its verify (when it declared one)
passed, and its branch holds commits the base branch lacks. A non-zero exit is the worker
saying it is not done (the worker contract), and a stopped or killed worker was ended by
someone's decision that this run is not the deliverable: neither gets a PR. Their commits
stay on the branch (pushed when push is on, kept by prune), and the next run under the same
id that finishes gets the PR.

Where it runs. The supervisor tries once as the worker ends, before its record says
`exited`, so the beat that hears of the end sees the PR as well. That is outside the beat
lock and maybe offline, so nothing there may cost the worker its result: the outcome goes to
`.looopbot/workers/<id>/pr.json`, written `pending` before any network call, and every
failure (GitHub down, 401, no token, a push refused) leaves it pending with one line in the
worker's log. Each beat's housekeeping retries pending PRs (a beat holds the lock and,
usually, the network) and reads the state of open ones with a conditional request (a 304
costs no rate limit) so that `sys-workers` shows `pr: merged` once a human merged it.

pr.json is local scratch beside the worker's record, like the record itself. What must
survive a fresh clone or an Actions runner — which PR belongs to a branch — GitHub keeps:
the open PR is found again by its head (and a 422 "already exists" leads there too).
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from looopbot import gitcli
from looopbot.config import Config, load
from looopbot.datadir import DataDir, find_repo_root
from looopbot.errors import LooopbotError
from looopbot.fsutil import read_bytes_or_none, write_atomic
from looopbot.text import one_line
from looopbot.workers import record
from looopbot.workers.record import Worker

if TYPE_CHECKING:
    from looopbot.github.client import GitHubClient
    from looopbot.github.drafts import Draft, Pull, Verdict
    from looopbot.remote import Upstream

PR_FILE = "pr.json"
STATES = ("pending", "open", "merged", "closed")
_MAX_WAIT = 10.0  # seconds a rate limit may hold a supervisor's or a beat's PR step
_TIMEOUT = 10.0


class PrRecord(NamedTuple):
    state: str  # one of STATES
    number: int | None = None
    url: str = ""
    error: str = ""  # why it is pending, or why the last look at it failed
    reported: str = ""  # the error a beat last reported: a steady failure is said once
    etag: str = ""  # of the last full answer about `number`

    def to_json(self) -> str:
        return json.dumps(self._asdict(), sort_keys=True) + "\n"


def enabled(config: Config) -> bool:
    return config.github is not None and config.github.pull_requests


def due(worker: Worker) -> bool:
    """Does this ended run deserve a PR (given commits on its branch)?"""
    if worker.state != "exited" or worker.exit_code != 0:
        return False
    return worker.verdict == "pass" if worker.verify else True


def read(dd: DataDir, wid: str) -> PrRecord | None:
    """The worker's PR record; None when there is none or it cannot be read (then the next
    delivery writes a good one)."""
    return _parse(read_bytes_or_none(record.paths(dd, wid).dir / PR_FILE))


def _parse(raw: bytes | None) -> PrRecord | None:
    if raw is None:
        return None
    try:
        data = json.loads(raw)
        found = PrRecord(**{k: v for k, v in data.items() if k in PrRecord._fields})
    except (ValueError, TypeError, AttributeError):
        return None
    if found.state not in STATES or not isinstance(found.number, int | None):
        return None
    return found


def write(dd: DataDir, wid: str, found: PrRecord) -> None:
    write_atomic(record.paths(dd, wid).dir / PR_FILE, found.to_json())


def supersede(worker_dir: Path) -> None:
    """A new run of the worker starts: a PR still pending from an earlier run is void (this
    run delivers its own as it ends); an open or merged one stays on show meanwhile."""
    path = worker_dir / PR_FILE
    found = _parse(read_bytes_or_none(path))
    if found is not None and found.state == "pending":
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def signal(found: PrRecord) -> dict[str, Any]:
    """A PR record as sys-workers' signal shows it: {state, number}. The state wakes the
    loop (opened, merged, closed); the error and the URL are detail, so a changing reason
    for a pending PR does not."""
    item: dict[str, Any] = {"state": found.state}
    if found.number is not None:
        item["number"] = found.number
    return item


# --- as the worker ends (the supervisor) ------------------------------------------------


def on_exit(dd: DataDir, worker: Worker) -> list[str]:
    """The supervisor's last step before it records `worker` (its final record): push the
    branch, and open or update its PR when one is due. Lines for the worker's log; never
    raises."""
    from looopbot.workers.publish import push_branch

    try:
        config: Config | None = load(dd)
    except LooopbotError:
        config = None
    try:
        if config is not None and enabled(config) and due(worker):
            said = deliver(_with_repo(dd), config, worker)
            return [said] if said else []
        pushed = push_branch(dd, worker)
        return [pushed.message] if pushed else []
    except Exception as exc:  # a bug here must not cost the worker its exit record
        return [f"the pull request step failed: {one_line(repr(exc), 300)}"]


def deliver(
    dd: DataDir, config: Config, worker: Worker, client: GitHubClient | None = None
) -> str | None:
    """Push the worker's branch and open or update its draft PR; the outcome is pr.json.
    One line saying what happened (None: no commits, nothing to deliver). Raises only for a
    broken git repo; every GitHub or push failure leaves the record pending."""
    from looopbot.github.client import GitHubUnavailable
    from looopbot.workers.worktree import commits_ahead

    before = read(dd, worker.id)
    if commits_ahead(dd, worker.branch, worker.base_branch) == 0:
        if before is not None and before.state == "pending":
            _restore(dd, worker.id, None)  # its commits are gone (reset by hand): nothing due
        return None
    pending = PrRecord(
        "pending",
        before.number if before else None,
        before.url if before else "",
        reported=before.reported if before else "",
    )
    # Before any network call: a supervisor killed mid-request leaves a retry behind.
    write(dd, worker.id, pending)
    try:
        pull = _publish(dd, config, worker, pending.number, client)
    except GitHubUnavailable as exc:
        if exc.kind == "empty":  # the base holds it all already (merged by hand?)
            _restore(dd, worker.id, before)
            return f"no pull request: {one_line(exc.message, 300)}"
        return _pending(dd, worker.id, pending, exc.message)
    except LooopbotError as exc:
        return _pending(dd, worker.id, pending, exc.message)
    write(dd, worker.id, PrRecord(pull.state, pull.number, pull.url))
    if pull.made:
        verb = "opened"
    elif not pull.ours:
        verb = "found (opened by hand, left as it is)"
    else:
        verb = "updated"
    return f"draft pull request #{pull.number} {verb} for {worker.branch}: {pull.url}"


def _publish(
    dd: DataDir, config: Config, worker: Worker, known: int | None, client: GitHubClient | None
) -> Pull:
    from looopbot import remote
    from looopbot.github import drafts
    from looopbot.workers.publish import push_branch

    # The PR needs the branch on GitHub: pushed whether or not the loop's own push is on.
    pushed = push_branch(dd, worker, always=True)
    if pushed is not None and not pushed.ok:
        raise LooopbotError(pushed.message)
    up = remote.upstream(dd, config)
    if client is None:
        client = connect(dd, config)
    commits, more = _commits(dd, worker)
    draft = draft_for(
        worker.id,
        worker.branch,
        _task(dd, worker.id),
        drafts.Verdict(worker.exit_code, worker.verify, worker.verdict),
        commits,
        more=more,
    )
    base = pr_base(up, worker.base_branch)
    return drafts.publish(client, worker.id, worker.branch, base, draft, known=known)


def pr_base(up: Upstream, base_branch: str) -> str:
    """The branch a worker's PR goes to: where the branch forked from, as the remote names
    it (git.branch, the upstream's name), unless the data repo has moved to another branch
    since."""
    return up.branch if base_branch == up.local else base_branch


def draft_for(
    wid: str, branch: str, task: str, run: Verdict, commits: list[str], *, more: int
) -> Draft:
    """The draft PR's title and body, no secret in them: briefs and commit subjects are
    anyone's words, and they leave for GitHub."""
    from looopbot.github import drafts
    from looopbot.redact import redactor

    scrub = redactor()
    draft = drafts.compose(wid, branch, task, run, commits, more=more)
    return drafts.Draft(scrub(draft.title), scrub(draft.body))


def connect(dd: DataDir, config: Config) -> GitHubClient:
    """A client for the data repo's GitHub repository; raises GitHubUnavailable or
    LooopbotError (no token, no repository)."""
    from looopbot.github import client, repo

    settings = config.github
    assert settings is not None
    wait = min(_MAX_WAIT, config.limits.network_timeout)
    return client.connect(
        settings,
        repo.resolve(dd, config, settings),
        max_wait=wait,
        timeout=min(_TIMEOUT, config.limits.network_timeout),
    )


def _pending(dd: DataDir, wid: str, pending: PrRecord, why: str) -> str:
    said = one_line(why, 300)
    write(dd, wid, pending._replace(error=said))
    return f"pull request pending (a later beat retries): {said}"


def _restore(dd: DataDir, wid: str, before: PrRecord | None) -> None:
    if before is not None:
        write(dd, wid, before)
    else:
        with contextlib.suppress(FileNotFoundError):
            (record.paths(dd, wid).dir / PR_FILE).unlink()


def _task(dd: DataDir, wid: str) -> str:
    from looopbot.workers.contract import task_of

    raw = read_bytes_or_none(record.paths(dd, wid).brief) or b""
    return task_of(raw.decode("utf-8", errors="replace"))


def _commits(dd: DataDir, worker: Worker, shown: int = 50) -> tuple[list[str], int]:
    """The branch's own commits, oldest first, as "<short sha> <subject>"; and how many more
    there are than `shown`."""
    assert dd.repo_root is not None
    root = dd.repo_root
    base = f"refs/heads/{worker.base_branch}"
    if not gitcli.run(root, "rev-parse", "--verify", "--quiet", base, check=False).ok:
        base = "HEAD"
    span = f"{base}..refs/heads/{worker.branch}"
    total = int(gitcli.out(root, "rev-list", "--count", span).strip() or 0)
    out = gitcli.out(root, "log", "--reverse", f"--max-count={shown}", "--format=%h %s", span)
    return out.splitlines(), max(0, total - shown)


def _with_repo(dd: DataDir) -> DataDir:
    # The supervisor knows only the data dir.
    return dd if dd.repo_root is not None else DataDir(dd.root, find_repo_root(dd.root))


# --- at every beat (housekeeping) -----------------------------------------------------------


def housekeeping(dd: DataDir, config: Config) -> list[str]:
    """Retry pending PRs and read the state of open ones, for finished workers. Lines for
    the beat's journal: a retry that worked, and each distinct failure once."""
    from looopbot.github.client import GitHubUnavailable

    if not enabled(config):
        return []
    said: list[str] = []
    client: GitHubClient | None = None
    for wid in record.ids(dd):
        found = read(dd, wid)
        if found is None or found.state not in ("pending", "open"):
            continue
        try:
            worker = record.read(dd, wid)
        except record.Unreadable:
            continue
        # A live worker's PR is the supervisor's to write as it ends: no race for pr.json.
        worker = None if worker is None else record.effective(worker)
        if worker is None or worker.live:
            continue
        try:
            if client is None:
                client = connect(dd, config)
            if found.state == "pending":
                # Lost: its supervisor died in the PR step, which it takes only for a run
                # that was due (pending is written first), so the retry is still owed.
                if due(worker) or worker.state == "lost":
                    line = deliver(dd, config, worker, client)
                    now = read(dd, wid)
                    if line and now is not None and now.state != "pending":
                        said.append(f"worker {wid}: {line}")
            else:
                _refresh(dd, wid, found, client)
        except (GitHubUnavailable, LooopbotError) as exc:
            now = read(dd, wid) or found
            write(dd, wid, now._replace(error=one_line(exc.message, 300)))
        except OSError as exc:  # the worker's folder: reported, and tried again next beat
            said.append(f"worker {wid}: pull request step failed: {one_line(str(exc), 300)}")
            continue
        now = read(dd, wid)
        if now is not None and now.error and now.error != now.reported:
            said.append(f"worker {wid}: pull request {now.state}: {now.error}")
            write(dd, wid, now._replace(reported=now.error))
    return said


def _refresh(dd: DataDir, wid: str, found: PrRecord, client: GitHubClient) -> None:
    from looopbot.github import drafts

    assert found.number is not None
    got = drafts.refresh(client, found.number, wid, found.etag or None)
    if got is None:  # unchanged (304)
        if found.error:
            write(dd, wid, found._replace(error="", reported=""))
        return
    pull, etag = got
    write(dd, wid, found._replace(state=pull.state, url=pull.url, etag=etag, error="", reported=""))
