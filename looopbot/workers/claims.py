"""Named claims: branches as leases (DESIGN §8).

A claim on NAME is branch `looopbot/claim/<name>` pointing at a parentless commit whose tree
holds `claim.json` (holder, host, pid, claimed_at, expires_at). The ref is the lock:

- taking a free name is dulwich's `add_if_new`, which looks for the ref while holding
  `<ref>.lock` (O_CREAT|O_EXCL), so two claimers can never both see "free" and both write;
- renewing, reclaiming a stale claim and unclaiming are compare-and-swap on the commit the
  caller read, so a claim that changed in between is never overwritten or removed.

A claimer that loses either race re-reads the ref and answers from what it finds there.
Claims take no beat lock and make no beat commit: a ref is not a working-tree file, so the
user's working tree, index and HEAD are never touched.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import socket
import time
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, NamedTuple

from looopbot.datadir import DataDir
from looopbot.errors import LooopbotError
from looopbot.ids import check_branch_id, check_id, is_valid_id
from looopbot.workers import record

if TYPE_CHECKING:
    from dulwich.objects import ObjectID
    from dulwich.refs import Ref
    from dulwich.repo import Repo

PREFIX = "refs/heads/looopbot/claim/"
HUMAN = "human"  # the holder when no session is named: stale only by expiry
DEFAULT_TTL = 86400.0
_UNREADABLE = "?"  # the holder of a claim whose claim.json cannot be read: always stale
_ATTEMPTS = 40
_LOCKED_PAUSE = 0.05  # a ref lock is held for microseconds; an abandoned one never clears


class Claim(NamedTuple):
    name: str
    holder: str
    host: str
    claimed_at: float
    expires_at: float
    commit: str


def ref_of(name: str) -> str:
    """The claim's ref; refuses any name that is not a safe id before building anything."""
    check_branch_id(name, "claim name")
    return PREFIX + name


def check_holder(holder: str) -> None:
    # A worker holder names `.looopbot/workers/<holder>/`: it must be safe before any lookup.
    check_id(holder, "session")


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts))


def describe(claim: Claim) -> str:
    where = f" on {claim.host}" if claim.host else ""
    return f"{claim.holder}{where} until {_when(claim.expires_at)}"


class Held(LooopbotError):
    """The name is held by another holder whose claim is not stale."""

    def __init__(self, claim: Claim) -> None:
        super().__init__(
            f"{claim.name} is claimed by {describe(claim)} — wait until it is released or expires"
        )
        self.claim = claim


# --- reading ------------------------------------------------------------------------------


def _open(dd: DataDir) -> Repo:
    from dulwich.repo import Repo

    if dd.repo_root is None:
        raise LooopbotError(f"{dd.root} is not in a git repository — run 'looopbot init'")
    return Repo(str(dd.repo_root))


def _current(repo: Repo, ref: Ref) -> ObjectID | None:
    try:
        return repo.refs[ref]
    except KeyError:
        return None


def _load(repo: Repo, name: str, sha: ObjectID) -> Claim:
    """The claim recorded in commit `sha`; an unreadable one (a hand-made branch, a missing
    object) gets holder "?" and no time left, so it is stale and never blocks anyone."""
    from dulwich.objects import Blob, Commit, Tree

    try:
        commit = repo[sha]
        assert isinstance(commit, Commit)
        tree = repo[commit.tree]
        assert isinstance(tree, Tree)
        blob = repo[tree[b"claim.json"][1]]
        assert isinstance(blob, Blob)
        data = json.loads(blob.data)
        return Claim(
            name,
            str(data["holder"]),
            str(data.get("host") or ""),
            float(data["claimed_at"]),
            float(data["expires_at"]),
            sha.decode(),
        )
    except (KeyError, ValueError, TypeError, AttributeError, AssertionError):
        return Claim(name, _UNREADABLE, "", 0.0, 0.0, sha.decode())


def list_claims(dd: DataDir) -> list[Claim]:
    """Every claim, sorted by name (branches under looopbot/claim/ that are not safe ids,
    made by hand, are not claims and are left alone)."""
    from dulwich.refs import Ref

    if dd.repo_root is None:
        return []
    repo = _open(dd)
    try:
        found = []
        for key in sorted(repo.refs.subkeys(Ref(PREFIX.encode()))):
            name = key.decode("utf-8", errors="replace")
            if not is_valid_id(name):
                continue
            sha = _current(repo, Ref((PREFIX + name).encode()))
            if sha is not None:
                found.append(_load(repo, name, sha))
        return found
    finally:
        repo.close()


def signal(dd: DataDir) -> list[dict[str, str]]:
    """The sys-claims signal: claims sorted by name, each {name, holder}."""
    return [{"name": c.name, "holder": c.holder} for c in list_claims(dd)]


def _holder_gone(dd: DataDir, holder: str, host: str) -> bool:
    """Only a worker we know of can be seen to be gone. Any other holder ("human", a
    person's name given with --session, a worker pruned long ago, a worker of the same
    name on another machine) holds until expiry."""
    if holder == HUMAN or not is_valid_id(holder) or (host and host != socket.gethostname()):
        return False
    try:
        worker = record.read(dd, holder)
    except record.Unreadable:
        return False  # fail closed: a record we cannot read may belong to a live worker
    return worker is not None and not record.effective(worker).live


def is_callers(claim: Claim, holder: str) -> bool:
    """Whether `holder` already holds `claim`. "human" is whoever runs `claim` without a
    session on one machine: the "human" of another host (a claim pulled from the remote)
    is someone else."""
    if claim.holder != holder:
        return False
    return holder != HUMAN or not claim.host or claim.host == socket.gethostname()


def is_stale(dd: DataDir, claim: Claim, now: float) -> bool:
    """Expired, or held by a known worker that is not live (other holders only expire)."""
    return now >= claim.expires_at or _holder_gone(dd, claim.holder, claim.host)


# --- writing ------------------------------------------------------------------------------


def _identity(dd: DataDir) -> bytes:
    from looopbot.config import author_identity, load

    name, email = author_identity(load(dd).author)
    return f"{name} <{email}>".encode()


def _claim_commit(
    repo: Repo, ident: bytes, *, name: str, holder: str, now: float, ttl: float
) -> str:
    """Write the claim's blob, tree and commit (not yet referenced by anything)."""
    from dulwich.objects import Blob, Tree

    from looopbot.gitstore import new_commit

    doc = {
        "name": name,
        "holder": holder,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "claimed_at": round(now, 3),
        "expires_at": round(now + ttl, 3),
    }
    blob = Blob.from_string((json.dumps(doc, sort_keys=True, indent=1) + "\n").encode())
    tree = Tree()
    tree.add(b"claim.json", 0o100644, blob.id)
    commit = new_commit(tree.id, [], ident, f"claim {name} by {holder}\n", when=int(now))
    # Objects before the ref: whoever reads the ref always finds its commit.
    for obj in (blob, tree, commit):
        repo.object_store.add_object(obj)
    return commit.id.decode()


def _open_for_writing(dd: DataDir) -> Repo:
    repo = _open(dd)
    # dulwich makes a reflog's missing folders with a bare mkdir: two first claims at once
    # would have one fail on the other's folder. Make them here, where "exists" is fine.
    logs = os.path.join(repo.commondir(), "logs", *PREFIX.rstrip("/").split("/"))
    os.makedirs(logs, exist_ok=True)
    return repo


def _swap(move: Callable[[], bool]) -> bool:
    """Run one ref update; False when it lost (the caller re-reads and decides again).

    FileLocked: another claimer holds the ref's lock right now. FileNotFoundError: a
    concurrent unclaim removed the ref's now-empty folder between dulwich creating it and
    opening the lock file in it. FileExistsError: a folder made concurrently (see
    _open_for_writing); the update was aborted with its lock.
    """
    from dulwich.file import FileLocked

    try:
        return move()
    except FileLocked:
        time.sleep(_LOCKED_PAUSE)
        return False
    except (FileNotFoundError, FileExistsError):
        return False


def _busy(ref: str) -> LooopbotError:
    return LooopbotError(
        f"{ref} kept changing or stayed locked; try again (a leftover {ref}.lock in the git "
        "dir, from a killed git process, must be removed by hand)"
    )


def _check_ttl(ttl: float) -> None:
    if not (math.isfinite(ttl) and ttl > 0):
        raise LooopbotError(f"--ttl must be a positive number of seconds, not {ttl!r}")


def claim(dd: DataDir, name: str, holder: str, ttl: float, now: float) -> Claim:
    """Take NAME for `holder` for `ttl` seconds; returns the claim now in force (the caller's).

    Free → created; already the caller's → renewed; stale → reclaimed by compare-and-swap
    on the old commit. Held by another live holder → raises Held naming them.
    """
    from dulwich.objects import ObjectID
    from dulwich.refs import Ref

    ref_name = ref_of(name)
    check_holder(holder)
    _check_ttl(ttl)
    ref = Ref(ref_name.encode())
    repo = _open_for_writing(dd)
    shared = _shared(dd)
    try:
        ident = _identity(dd)
        mine: str | None = None
        there = _refresh(dd, repo, shared, ref_name) if shared is not None else None
        reflog = f"claim {name} by {holder}".encode()
        for _attempt in range(_ATTEMPTS):
            old = _current(repo, ref)
            if old is not None:
                current = _load(repo, name, old)
                if not is_callers(current, holder) and not is_stale(dd, current, now):
                    raise Held(current)
            mine = mine or _claim_commit(repo, ident, name=name, holder=holder, now=now, ttl=ttl)
            new = ObjectID(mine.encode())
            if shared is not None:
                # The remote decides: a lease on exactly what we saw there (or its absence).
                if _lease(dd, repo, shared, ref_name, new=mine, expect=there):
                    return _load(repo, name, new)
                there = _refresh(dd, repo, shared, ref_name)
                continue
            if old is None:
                move = partial(repo.refs.add_if_new, ref, new, committer=ident, message=reflog)
            else:
                move = partial(
                    repo.refs.set_if_equals, ref, old, new, committer=ident, message=reflog
                )
            if _swap(move):
                return _load(repo, name, new)
        raise _busy(ref_name)
    finally:
        repo.close()


def unclaim(dd: DataDir, name: str, holder: str, now: float) -> None:
    """Remove NAME's claim: by its holder, or by anyone once it is stale.

    Raises when it is not claimed, or held by another live holder.
    """
    from dulwich.refs import Ref

    ref_name = ref_of(name)
    check_holder(holder)
    ref = Ref(ref_name.encode())
    repo = _open(dd)
    shared = _shared(dd)
    try:
        ident = _identity(dd)
        there = _refresh(dd, repo, shared, ref_name) if shared is not None else None
        for _attempt in range(_ATTEMPTS):
            old = _current(repo, ref)
            if old is None:
                raise LooopbotError(f"{name} is not claimed")
            current = _load(repo, name, old)
            if not is_callers(current, holder) and not is_stale(dd, current, now):
                raise Held(current)
            if shared is not None and there is not None:
                if _lease(dd, repo, shared, ref_name, new=None, expect=there):
                    return
                there = _refresh(dd, repo, shared, ref_name)
                continue
            # Not on the remote (taken here before push was on): released here alone.
            message = f"unclaim {name} by {holder}".encode()
            if _swap(
                partial(repo.refs.remove_if_equals, ref, old, committer=ident, message=message)
            ):
                return
        raise _busy(ref_name)
    finally:
        repo.close()


# --- across clones (push on) ---------------------------------------------------------------


def _shared(dd: DataDir) -> str | None:
    """The remote that decides claims when push is on (git.push / LOOOPBOT_PUSH), else None."""
    from looopbot.config import load
    from looopbot.remote import upstream

    config = load(dd)
    return upstream(dd, config).remote if config.push else None


def _mirror(remote: str, ref: str) -> str:
    """Where the remote's claim `ref` is mirrored locally (what the last fetch saw)."""
    return f"refs/remotes/{remote}/{ref[len('refs/heads/') :]}"


def _refresh(dd: DataDir, repo: Repo, remote: str, ref: str) -> str | None:
    """Make the local claim ref follow the remote's (the remote decides); returns the
    commit the remote holds, None when it holds no such claim. A local claim the remote
    never had (taken before push was on) stays; one it released goes."""
    from dulwich.objects import ObjectID
    from dulwich.refs import Ref

    from looopbot import gitcli
    from looopbot.remote import RemoteFailed, remote_ref

    try:
        theirs = remote_ref(dd, remote, ref)
    except RemoteFailed as exc:
        raise LooopbotError(f"cannot reach {remote}, which decides claims: {exc.message}") from None
    key, mirror = Ref(ref.encode()), Ref(_mirror(remote, ref).encode())
    local, seen = _current(repo, key), _current(repo, mirror)
    if theirs is None:
        if local is not None and local == seen:
            repo.refs.remove_if_equals(key, local)  # released there
        if seen is not None:
            repo.refs.remove_if_equals(mirror, seen)
        return None
    if local != theirs.encode():
        assert dd.repo_root is not None
        fetched = gitcli.run(
            dd.repo_root,
            *("fetch", "--quiet", "--no-tags", "--no-write-fetch-head"),
            *(remote, f"+{ref}:{_mirror(remote, ref)}"),
            check=False,
        )
        if not fetched.ok:
            raise LooopbotError(f"cannot fetch {ref} from {remote}")
    for name in (key, mirror):
        repo.refs.set_if_equals(name, None, ObjectID(theirs.encode()))
    return theirs


def _lease(
    dd: DataDir, repo: Repo, remote: str, ref: str, *, new: str | None, expect: str | None
) -> bool:
    """Set (or delete) `ref` on the remote if it holds exactly `expect` (None: nothing);
    then the local ref and its mirror follow. False when the remote had changed."""
    from dulwich.objects import ObjectID
    from dulwich.refs import Ref

    from looopbot.remote import MOVED, RemoteFailed, lease_push

    try:
        lease_push(dd, remote, ref, new, expect)
    except RemoteFailed as exc:
        if exc.kind != MOVED:
            raise LooopbotError(f"cannot update {ref} on {remote}: {exc.message}") from None
        return False
    for name in (Ref(ref.encode()), Ref(_mirror(remote, ref).encode())):
        if new is None:
            repo.refs.remove_if_equals(name, None)
        else:
            repo.refs.set_if_equals(name, None, ObjectID(new.encode()))
    return True


def reap_stale(dd: DataDir, now: float) -> list[str]:
    """Remove every stale claim (housekeeping); the names removed.

    Each removal is a compare-and-swap on the commit judged stale, so a claim renewed or
    retaken meanwhile stays.
    """
    from dulwich.objects import ObjectID
    from dulwich.refs import Ref

    stale = [c for c in list_claims(dd) if is_stale(dd, c, now)]
    if not stale:
        return []
    ident = _identity(dd)
    repo = _open(dd)
    removed = []
    shared = _shared(dd)
    try:
        for c in stale:
            ref = Ref((PREFIX + c.name).encode())
            old = ObjectID(c.commit.encode())
            seen = _current(repo, Ref(_mirror(shared, ref.decode()).encode())) if shared else None
            if shared is not None and seen == old:
                # Released where it is decided, with a lease on the stale commit: a claim
                # retaken there meanwhile stays. Unreachable: the next beat tries again.
                with contextlib.suppress(LooopbotError):
                    if _lease(dd, repo, shared, ref.decode(), new=None, expect=c.commit):
                        removed.append(c.name)
                continue
            message = f"reap stale claim {c.name} of {c.holder}".encode()
            if _swap(
                partial(repo.refs.remove_if_equals, ref, old, committer=ident, message=message)
            ):
                removed.append(c.name)
        return removed
    finally:
        repo.close()
