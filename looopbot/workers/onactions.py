"""Workers on GitHub Actions (`workers.backend: actions`, DESIGN §8, §10).

A start pushes the worker's branch — with a lease, so the remote decides who holds the id
across clones, as it does for claims — carrying the brief as one commit, then dispatches
`looopbot-worker.yml` on that branch with the worker id as its only input. The brief rides
on the branch, not in the input: inputs are capped (65,535 characters in all), shown in the
run's page and easy to mangle; a commit is none of that, and the run checks it out anyway.

The record is committed in the data repo at `workers/<id>.json`, in the beat that started
the worker: a fresh clone, or the next beat in a fresh Actions checkout, must know the
worker exists, and local scratch would be gone. It holds only what never changes (branch,
base, start time, the newest run on the branch before this start); the live state is the
run's, read from the Actions API each beat and found again by branch, so nothing is written
back while a worker runs.

A dispatch that fails puts everything back: the branch on the remote and here return to
where they were (the lease released), and no record is written — nothing half-started is
left for a later beat to misread.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from typing import Any, NamedTuple

from looopbot import gitcli
from looopbot.changes import Changes
from looopbot.config import Config
from looopbot.datadir import DataDir
from looopbot.errors import LooopbotError
from looopbot.github.client import GitHubClient, GitHubUnavailable
from looopbot.ids import is_valid_id
from looopbot.redact import redact
from looopbot.workers.record import branch as branch_of

WORKFLOW = "looopbot-worker.yml"
RECORDS = "workers"  # data-dir relative: workers/<id>.json (committed)
BRIEF = ".looopbot/worker-brief.md"  # on the worker's branch
VERIFY = ".looopbot/worker-verify"  # its verify command, when it has one (same commit)
BRIEF_TRAILER = "Looopbot-Brief"  # marks the commits that add or drop the brief
_MAX_WAIT = 60.0
_TIMEOUT = 10.0


class ActionsWorker(NamedTuple):
    id: str
    branch: str
    base: str  # the commit the branch forked from
    base_branch: str
    started_at: float
    after_run: int  # the newest run on the branch before this start (0: none): ours is newer
    brief_commit: str
    verify: str | None = None
    backend: str = "actions"

    def to_json(self) -> str:
        return json.dumps(self._asdict(), sort_keys=True, indent=1) + "\n"


def record_rel(wid: str) -> str:
    return f"{RECORDS}/{wid}.json"


def read(dd: DataDir, wid: str) -> ActionsWorker | None:
    """The record of Actions worker `wid`, None when there is none or it is not one of ours
    (a hand-edited file must not build refs or requests)."""
    try:
        data = json.loads(dd.path(record_rel(wid)).read_bytes())
        worker = ActionsWorker(**{k: data[k] for k in ActionsWorker._fields if k in data})
    except (OSError, ValueError, TypeError):
        return None
    fine = (
        worker.id == wid
        and worker.branch == branch_of(wid)
        and worker.backend == "actions"
        and isinstance(worker.after_run, int)
        and isinstance(worker.started_at, (int, float))
        and all(isinstance(getattr(worker, k), str) for k in ("base", "base_branch"))
        and isinstance(worker.brief_commit, str)
        and isinstance(worker.verify, (str, type(None)))
    )
    return worker if fine else None


def records(dd: DataDir) -> list[ActionsWorker]:
    try:
        names = sorted(p.name for p in (dd.root / RECORDS).iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []
    found = []
    for name in names:
        wid = name.removesuffix(".json")
        if name.endswith(".json") and is_valid_id(wid):
            worker = read(dd, wid)
            if worker is not None:
                found.append(worker)
    return found


def elsewhere(dd: DataDir, wid: str) -> ActionsWorker | None:
    """The record of `wid` when it is a worker on GitHub Actions and not one of this
    machine's (a local record, even an unreadable one, is the local worker's)."""
    from looopbot.workers import record

    try:
        if record.read(dd, wid) is not None:
            return None
    except record.Unreadable:
        return None
    return read(dd, wid)


def refuse_stdin(wid: str) -> LooopbotError:
    """What needs the worker's process here: a restart, its own questions, its log."""
    return LooopbotError(
        f"worker '{wid}' runs on GitHub Actions, not here — answers, steering and keys go "
        "to it through its dashboard thread (github.dashboard); its questions are asked "
        f"from its run; 'looopbot worker stop {wid}' cancels the run"
    )


def client_for(
    dd: DataDir, config: Config, sleep: Callable[[float], None] = time.sleep
) -> GitHubClient:
    """The GitHub client for workers on Actions; `sleep` waits out rate limits."""
    from looopbot.github import repo
    from looopbot.github.client import connect

    settings = config.github
    if settings is None:  # config validation requires it for this backend
        raise LooopbotError("workers.backend: actions needs a 'github:' section in looopbot.yaml")
    limit = config.limits.network_timeout
    return connect(
        settings,
        repo.resolve(dd, config, settings),
        max_wait=min(_MAX_WAIT, limit),
        timeout=min(_TIMEOUT, limit),
        sleep=sleep,
    )


# --- start ----------------------------------------------------------------------------------


def start(
    dd: DataDir,
    config: Config,
    changes: Changes,
    wid: str,
    *,
    prompt: str,
    verify: str | None,
    now: float | None = None,
) -> ActionsWorker:
    """Push the worker's branch with its brief and dispatch its run; the record goes into
    `changes` (the beat's or the hand move's commit)."""
    from looopbot import remote
    from looopbot.github import actions
    from looopbot.workers import contract

    now = time.time() if now is None else now
    root = _root(dd)
    client = client_for(dd, config)
    name = branch_of(wid)
    ref = f"refs/heads/{name}"
    earlier = read(dd, wid)
    newest = actions.newest_run(client, WORKFLOW, name).run
    if newest is not None and newest.status != "completed":
        raise LooopbotError(
            f"worker '{wid}' is already {newest.status} on GitHub Actions ({newest.url}) — "
            f"stop it ('looopbot worker stop {wid}') or choose another id"
        )
    if earlier is not None and (newest is None or newest.id <= earlier.after_run):
        raise LooopbotError(
            f"worker '{wid}' was dispatched and its run has not shown up yet — wait for it "
            f"(if it never shows, remove {record_rel(wid)} to free the id)"
        )
    up = remote.upstream(dd, config)
    theirs = _remote_ref(dd, up.remote, ref)
    mirror = f"refs/remotes/{up.remote}/{name}"
    if theirs is not None:
        # An earlier run of this id pushed work: the worker continues from it.
        _fetch(dd, up.remote, ref, mirror)
    mine = remote.rev(dd, ref)
    head = gitcli.out(root, "rev-parse", "--verify", "HEAD^{commit}").strip()
    tip = theirs or mine or head
    base = _merge_base(root, tip, head)
    # Unlike a local worker's brief (scratch), this one is committed and pushed: it is
    # redacted like everything else looopbot commits.
    text = redact(contract.brief(prompt))
    files = {BRIEF: text, **({VERIFY: redact(verify) + "\n"} if verify else {})}
    brief = _brief_commit(dd, config, tip, wid, files=files, now=now)
    try:
        remote.lease_push(dd, up.remote, ref, brief, theirs)
    except remote.RemoteFailed as exc:
        if exc.kind == remote.MOVED:
            raise LooopbotError(
                f"worker '{wid}': {name} changed on {up.remote} meanwhile (another clone "
                "started it?) — nothing was dispatched; try again"
            ) from None
        raise LooopbotError(
            f"worker '{wid}': cannot push {name} to {up.remote} — nothing was dispatched: "
            f"{exc.message}"
        ) from None
    _set_ref(root, ref, brief, mine)
    _mirror(root, mirror, brief)
    try:
        actions.dispatch(client, WORKFLOW, name, {"worker": wid})
    except GitHubUnavailable as exc:
        undone = _undo(dd, _Pushed(up.remote, ref, mirror, brief, theirs, mine))
        why = _why(exc, client)
        raise LooopbotError(f"worker '{wid}' was not started: {why}{undone}") from None
    worker = ActionsWorker(
        id=wid,
        branch=name,
        base=base,
        base_branch=up.local,
        started_at=round(now, 3),
        after_run=newest.id if newest is not None else 0,
        brief_commit=brief,
        verify=verify or None,
    )
    changes.write(record_rel(wid), worker.to_json())
    return worker


def _why(exc: GitHubUnavailable, client: GitHubClient) -> str:
    if exc.kind == "not-found":
        # GitHub dispatches only workflows that are on the default branch.
        return (
            f"GitHub has no {WORKFLOW} on the default branch of {client.repo} (404) — run "
            "'looopbot github install', commit and push it"
        )
    return exc.message


class _Pushed(NamedTuple):
    """A start's push, to be undone: the branch's ref here and its mirror, what each held
    before (None: absent) and the brief commit they hold now."""

    remote: str
    ref: str
    mirror: str
    brief: str
    theirs: str | None  # the remote's, before
    mine: str | None  # the local branch's, before


def _undo(dd: DataDir, p: _Pushed) -> str:
    """Put the branch back as it was (the remote's with a lease on our own push); what a
    human must know if that failed."""
    from looopbot import remote

    root = _root(dd)
    try:
        remote.lease_push(dd, p.remote, p.ref, p.theirs, p.brief)
    except remote.RemoteFailed as exc:
        return f"; {p.ref} on {p.remote} still holds its brief ({exc.message}) — remove it by hand"
    _set_ref(root, p.ref, p.mine, p.brief)
    _mirror(root, p.mirror, p.theirs)
    return ""


def _root(dd: DataDir) -> Any:
    if dd.repo_root is None:
        raise LooopbotError(f"{dd.root} is not inside a git repository — workers need one")
    return dd.repo_root


def _remote_ref(dd: DataDir, remote_name: str, ref: str) -> str | None:
    from looopbot import remote

    try:
        return remote.remote_ref(dd, remote_name, ref)
    except remote.RemoteFailed as exc:
        raise LooopbotError(
            f"cannot reach {remote_name}, where Actions workers' branches live: {exc.message}"
        ) from None


def _fetch(dd: DataDir, remote_name: str, ref: str, mirror: str) -> None:
    from looopbot.config import load

    got = gitcli.run(
        _root(dd),
        *("fetch", "--quiet", "--no-tags", "--no-write-fetch-head", remote_name),
        f"+{ref}:{mirror}",
        timeout=load(dd).limits.network_timeout,
        check=False,
    )
    if not got.ok:
        raise LooopbotError(f"cannot fetch {ref} from {remote_name}")


def _merge_base(root: Any, tip: str, head: str) -> str:
    got = gitcli.run(root, "merge-base", tip, head, check=False)
    return got.stdout.decode().strip() if got.ok and got.stdout.strip() else head


def _set_ref(root: Any, ref: str, new: str | None, old: str | None) -> None:
    """Compare-and-swap a local ref (None: absent)."""
    zero = "0" * 40
    if new is None:
        gitcli.run(root, "update-ref", "-d", ref, old or "", check=False)
    else:
        gitcli.run(root, "update-ref", ref, new, old or zero, check=False)


def _mirror(root: Any, mirror: str, value: str | None) -> None:
    """The remote-tracking copy: what the remote holds now, as far as we know."""
    if value is None:
        gitcli.run(root, "update-ref", "-d", mirror, check=False)
    else:
        gitcli.run(root, "update-ref", mirror, value, check=False)


def _brief_commit(
    dd: DataDir, config: Config, tip: str, wid: str, *, files: dict[str, str], now: float
) -> str:
    """A commit on `tip` that adds the brief (and the verify command), referenced by
    nothing yet."""
    from dulwich.object_store import commit_tree_changes, tree_lookup_path
    from dulwich.objects import Blob, Commit, ObjectID
    from dulwich.repo import Repo

    from looopbot.config import author_identity
    from looopbot.gitstore import new_commit

    name, email = author_identity(config.author)
    repo = Repo(str(_root(dd)))
    try:
        parent = repo[ObjectID(tip.encode())]
        assert isinstance(parent, Commit)
        blobs = {rel: Blob.from_string(text.encode()) for rel, text in files.items()}
        for blob in blobs.values():
            repo.object_store.add_object(blob)
        edits: list[tuple[bytes, int | None, ObjectID | None]] = [
            (rel.encode(), 0o100644, blob.id) for rel, blob in blobs.items()
        ]
        if VERIFY not in files:
            # A verify left by an earlier start of this id goes: this start declares none.
            with contextlib.suppress(KeyError):
                tree_lookup_path(repo.__getitem__, parent.tree, VERIFY.encode())
                edits.append((VERIFY.encode(), None, None))
        tree = commit_tree_changes(repo.object_store, parent.tree, edits)
        message = f"looopbot: brief for worker {wid}\n\n{BRIEF_TRAILER}: {wid}\n"
        commit = new_commit(tree, [parent.id], f"{name} <{email}>".encode(), message, when=int(now))
        repo.object_store.add_object(commit)
        return commit.id.decode()
    finally:
        repo.close()


# --- stop -----------------------------------------------------------------------------------


def stop(dd: DataDir, config: Config, worker: ActionsWorker) -> str:
    """Cancel the worker's run; what happened, for the journal."""
    from looopbot.github import actions

    client = client_for(dd, config)
    run = actions.newest_run(client, WORKFLOW, worker.branch).run
    if run is None or run.id <= worker.after_run:
        raise LooopbotError(
            f"the run of worker '{worker.id}' has not shown up on GitHub yet — try again in a "
            "minute"
        )
    if run.status == "completed":
        return f"its run {run.id} had already completed ({run.conclusion})"
    if not actions.cancel(client, run.id):
        return f"its run {run.id} had already completed"
    return f"cancelled its run {run.id}"
