"""The beat commit, built in-process with dulwich; beat history from trailers (DESIGN §9).

The git libraries split by job, and this is the one place that says so:
- dulwich (here) does in-process object and ref work on the hot path — a beat commit built
  from HEAD's tree plus exactly the paths the beat wrote, HEAD advanced by compare-and-swap,
  trailers read back — without spawning git for the commit itself.
- the git CLI (`looopbot.gitcli`, through the one subprocess helper and the one git
  environment) does what must honour the user's whole git setup: the index (split index,
  sparse checkout, intent-to-add: `looopbot.gitindex`), worktrees, `git init`, status.
"""

from __future__ import annotations

import contextlib
import os
import stat
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, TypeVar

from looopbot import gitcli, gitindex
from looopbot.changes import Changes
from looopbot.datadir import DataDir
from looopbot.errors import LooopbotError
from looopbot.fsutil import COARSE_CLOCK_S
from looopbot.gitstate import check_committable, git_dir

T = TypeVar("T")

if TYPE_CHECKING:
    from dulwich.object_store import BaseObjectStore
    from dulwich.objects import Commit, ObjectID
    from dulwich.refs import Ref
    from dulwich.repo import Repo

TRAILER_KEYS = (
    "Looopbot-Run",
    "Looopbot-Outcome",
    "Looopbot-Action",
    "Looopbot-World",
    "Looopbot-Cost-USD",
)
_CAS_ATTEMPTS = 5
REF_LOCK_WAIT_S = 1.0  # how long a branch's ref lock held by another process is waited out
_REF_LOCK_POLL_S = 0.01
STALE_LOCK_S = 2.0  # a ref lock is held for microseconds; an empty one this old was abandoned


class Trailers(NamedTuple):
    run: str
    outcome: str
    action: str | None = None
    world: str | None = None
    cost_usd: float | None = None

    def render(self) -> str:
        lines = [f"Looopbot-Run: {self.run}", f"Looopbot-Outcome: {self.outcome}"]
        if self.action:
            lines.append(f"Looopbot-Action: {self.action}")
        if self.world:
            lines.append(f"Looopbot-World: {self.world}")
        if self.cost_usd is not None:
            lines.append(f"Looopbot-Cost-USD: {self.cost_usd:.6f}")
        return "\n".join(lines)


def message(subject: str, trailers: Trailers) -> str:
    subject = " ".join(subject.split())
    if len(subject) > 200:
        subject = subject[:199] + "…"
    return f"{subject}\n\n{trailers.render()}\n"


def _open(dd: DataDir) -> Repo:
    from dulwich.repo import Repo

    assert dd.repo_root is not None
    return Repo(str(dd.repo_root))


def _local_tz() -> int:
    return -time.altzone if time.daylight and time.localtime().tm_isdst else -time.timezone


def new_commit(
    tree: ObjectID,
    parents: list[ObjectID],
    ident: bytes,
    msg: str,
    *,
    when: int,
    tz: int = 0,
) -> Commit:
    """A commit object (not yet stored): the one builder for beat and claim commits."""
    from dulwich.objects import Commit

    commit = Commit()
    commit.tree = tree
    commit.parents = parents
    commit.author = commit.committer = ident
    commit.author_time = commit.commit_time = when
    commit.author_timezone = commit.commit_timezone = tz
    commit.encoding = b"UTF-8"
    commit.message = msg.encode()
    return commit


def commit_changes(dd: DataDir, changes: Changes, msg: str, author: tuple[str, str]) -> str | None:
    """Commit exactly what `changes` wrote, on top of HEAD, while holding the index lock.

    Returns the new commit id, or None when the tree would not change (never an empty
    commit). Everything else — the rest of the index, the user's staged and unstaged
    edits — is left exactly as it was. A commit a killed record left in flight is finished
    (or found not to have landed) first.
    """
    from dulwich.file import FileLocked
    from dulwich.refs import HEADREF

    with _locked(dd) as (repo, gitdir):
        if changes.commit_intent is not None:
            _finish_interrupted(dd, repo, gitdir, changes)
        if not changes.paths:
            changes.done()
            return None
        ident = f"{author[0]} <{author[1]}>".encode()
        attempts = 0
        ref_deadline = time.monotonic() + REF_LOCK_WAIT_S
        while attempts < _CAS_ATTEMPTS:
            head = repo.refs.follow(HEADREF)[1]
            built = _build(dd, repo, changes, head, ident=ident, msg=msg)
            if built is None:
                changes.done()
                return None
            commit, moves = built
            branch = _head_target(repo)
            changes.committing(
                {
                    "ref": branch.decode(),
                    "old": head.decode() if head else None,
                    "new": commit.id.decode(),
                    "moves": [[m.path, _pair(m.old), _pair(m.new)] for m in moves],
                }
            )
            reflog = b"commit: " + msg.splitlines()[0].encode()
            prepared = gitindex.prepare(dd.repo_root or dd.root, gitdir, moves)
            try:
                # The reflog names the bot (and dulwich need not look the user up: ~4 ms).
                if head is None:
                    moved = repo.refs.add_if_new(branch, commit.id, committer=ident, message=reflog)
                else:
                    moved = repo.refs.set_if_equals(
                        HEADREF, head, commit.id, committer=ident, message=reflog
                    )
            except FileLocked:
                gitindex.discard(prepared)
                # Another process is moving the branch right now (git holds a ref lock
                # for an instant, and waits core.filesRefLockTimeout for one itself).
                if time.monotonic() < ref_deadline:
                    time.sleep(_REF_LOCK_POLL_S)
                    continue
                raise LooopbotError(
                    f"{branch.decode()} is locked by another git process; this beat's "
                    "files stay pending and the next beat commits them"
                ) from None
            if moved:
                gitindex.install(gitdir, prepared)
                changes.done()
                return commit.id.decode()
            gitindex.discard(prepared)
            # Someone committed meanwhile: rebuild on top of theirs, never over it.
            attempts += 1
        raise LooopbotError("HEAD kept moving while committing the beat; try again")


def finish_interrupted(dd: DataDir, changes: Changes) -> None:
    """Settle the commit a killed record left in flight (call before writing anything)."""
    with _locked(dd) as (repo, gitdir):
        _finish_interrupted(dd, repo, gitdir, changes)


@contextlib.contextmanager
def _locked(dd: DataDir) -> Iterator[tuple[Repo, Path]]:
    """The repo (dulwich) and its git dir, with the index lock held (looopbot.gitindex)."""
    check_committable(dd)
    assert dd.repo_root is not None
    gitdir = git_dir(dd.repo_root)
    repo = _open(dd)
    try:
        with gitindex.locked(gitdir):
            yield repo, gitdir
    finally:
        repo.close()


def _build(
    dd: DataDir,
    repo: Repo,
    changes: Changes,
    head: ObjectID | None,
    *,
    ident: bytes,
    msg: str,
) -> tuple[Commit, list[gitindex.Move]] | None:
    """The commit of `changes` on top of `head`, its objects stored; None if no change."""
    from dulwich.object_store import commit_tree_changes
    from dulwich.objects import Blob, Commit, Tree

    store = repo.object_store
    if head is not None:
        parent = store[head]
        assert isinstance(parent, Commit)
        base_tree: ObjectID | Tree = parent.tree
        old_tree: ObjectID = parent.tree
    else:
        base_tree = Tree()  # an unborn branch: the first commit
        old_tree = base_tree.id
    todo: list[tuple[bytes, int | None, ObjectID | None]] = []
    moves: list[gitindex.Move] = []
    filtered = _filtered(dd, sorted(changes.paths))
    for rel in sorted(changes.paths):
        if not changes.inside(rel):
            continue  # never follow a link out of the data dir into a commit
        repo_path = dd.repo_path(rel)
        before = lookup(repo, old_tree if head is not None else None, repo_path.encode())
        old_blob = store[before[1]] if before is not None else None
        base = old_blob.data if isinstance(old_blob, Blob) else None
        if base is not None and repo_path in filtered and changes.lines(rel) is not None:
            # Lines go on top of HEAD's file as the user sees it; the filter cleans the sum.
            at = f"{head.decode() if head else 'HEAD'}:{repo_path}"
            base = gitcli.run(dd.repo_root or dd.root, "cat-file", "--filters", at).stdout
        data = changes.content(rel, base)
        full = dd.root / rel
        if data is None:
            if before is None:
                continue  # removing what HEAD never held (written, never committed) is no change
            todo.append((repo_path.encode(), None, None))
            moves.append(gitindex.Move(repo_path, _entry(before), None))
            continue
        try:
            st = os.lstat(full)
        except FileNotFoundError:
            st = None
        executable = st is not None and stat.S_ISREG(st.st_mode) and bool(st.st_mode & stat.S_IXUSR)
        if repo_path in filtered:
            blob_id = _cleaned(dd, repo_path, data)
        else:
            blob = Blob.from_string(data)
            _objects(store, partial(store.add_object, blob))
            blob_id = blob.id
        mode = 0o100755 if executable else 0o100644
        todo.append((repo_path.encode(), mode, blob_id))
        lines = changes.lines(rel) or []
        appended = "".join(line + "\n" for line in lines).encode()
        new_entry = gitindex.Entry(mode, blob_id.decode())
        moves.append(gitindex.Move(repo_path, _entry(before), new_entry, appended))
    # commit_tree_changes mutates a Tree object it is given; the old id was taken above.
    new_tree = _objects(store, partial(commit_tree_changes, store, base_tree, todo))
    if head is not None and new_tree == old_tree:
        return None
    if head is None and not todo:
        return None
    commit = new_commit(
        new_tree,
        [head] if head is not None else [],
        ident,
        msg,
        when=int(time.time()),
        tz=_local_tz(),
    )
    _objects(store, partial(store.add_object, commit))
    return commit, [m for m in moves if m.old != m.new]


def lookup(repo: Repo, tree: ObjectID | None, path: bytes) -> tuple[int, ObjectID] | None:
    """(mode, sha) of `path` in `tree`, or None."""
    from dulwich.errors import NotTreeError
    from dulwich.object_store import tree_lookup_path

    if tree is None:
        return None
    try:
        return tree_lookup_path(repo.object_store.__getitem__, tree, path)
    except (KeyError, NotTreeError):
        return None


def head_id(repo: Repo) -> ObjectID | None:
    """The commit HEAD points at, or None on an unborn branch."""
    from dulwich.refs import HEADREF

    return repo.refs.follow(HEADREF)[1]


def file_at(repo: Repo, commit: ObjectID, path: bytes) -> bytes | None:
    """A regular file's bytes in `commit` (a symlink, a submodule or a tree is None)."""
    import stat

    from dulwich.objects import Blob, Commit

    found = repo[commit]
    assert isinstance(found, Commit)
    entry = lookup(repo, found.tree, path)
    if entry is None or not stat.S_ISREG(entry[0]):
        return None
    blob = repo[entry[1]]
    return blob.as_raw_string() if isinstance(blob, Blob) else None


def _entry(found: tuple[int, ObjectID] | None) -> gitindex.Entry | None:
    return gitindex.Entry(found[0], found[1].decode()) if found is not None else None


def _pair(entry: gitindex.Entry | None) -> list[object] | None:
    return [entry.mode, entry.sha] if entry is not None else None


def _filtered(dd: DataDir, rels: list[str]) -> set[str]:
    """The repo paths among `rels` with a `filter` attribute (git-crypt, LFS, a whitespace
    cleaner): git stores what the filter makes of them, so must we."""
    if dd.repo_root is None or not rels:
        return set()
    paths = [dd.repo_path(rel) for rel in rels]
    out = gitcli.run(dd.repo_root, "check-attr", "-z", "filter", "--", *paths).stdout
    fields = out.split(b"\0")
    found = set()
    for i in range(0, len(fields) - 2, 3):
        if fields[i + 2] not in (b"unspecified", b"unset"):
            found.add(os.fsdecode(fields[i]))
    return found


def _cleaned(dd: DataDir, repo_path: str, data: bytes) -> ObjectID:
    """Store `data` as git would for `repo_path`: through its clean filter."""
    from dulwich.objects import ObjectID

    assert dd.repo_root is not None
    made = gitcli.run(
        dd.repo_root, "hash-object", "-w", "--stdin", f"--path={repo_path}", stdin=data
    )
    return ObjectID(made.stdout.strip())


def _is_sha(value: bytes) -> bool:
    return len(value) == 40 and all(c in b"0123456789abcdef" for c in value)


def _moves_of(repo: Repo, sha: ObjectID, paths: list[str]) -> list[gitindex.Move]:
    """What commit `sha` changed at `paths`, against its first parent."""
    from dulwich.objects import Commit

    commit = repo.object_store[sha]
    assert isinstance(commit, Commit)
    parent = repo.object_store[commit.parents[0]] if commit.parents else None
    old_tree = parent.tree if isinstance(parent, Commit) else None
    moves = []
    for path in paths:
        before = _entry(lookup(repo, old_tree, path.encode()))
        after = _entry(lookup(repo, commit.tree, path.encode()))
        if before != after:
            moves.append(gitindex.Move(path, before, after))
    return moves


def _finish_interrupted(dd: DataDir, repo: Repo, gitdir: Path, changes: Changes) -> None:
    """A record was killed while committing: finish its commit if it landed, else let the
    pending paths go into this one. Runs under the index lock."""
    from dulwich.objects import ObjectID
    from dulwich.refs import Ref

    intent = changes.commit_intent or {}
    try:
        ref = Ref(str(intent["ref"]).encode())
        new = ObjectID(str(intent["new"]).encode())
        paths = [str(m[0]) for m in intent["moves"]]
    except (KeyError, TypeError, ValueError, IndexError):
        paths, ref, new = [], Ref(b""), ObjectID(b"")
    if not (ref.startswith(b"refs/heads/") and _is_sha(new)) or any(
        "\0" in p or "\n" in p for p in paths
    ):
        changes.commit_intent = None  # unreadable: the pending paths are committed again
        return
    lock = Path(os.fsdecode(repo.refs.refpath(ref)) + ".lock")  # type: ignore[attr-defined]
    with contextlib.suppress(OSError):
        held = lock.read_bytes().strip()
        # Holding the id we meant to write, it is ours; empty (dulwich buffers the id until it
        # closes the lock), it may be anyone's for an instant, so only one made before this
        # record began (by the record it takes over, dead: we hold the lock it held) or an
        # old one goes.
        mtime = lock.stat().st_mtime
        if held == new or (
            held == b""
            and (mtime < changes.started - COARSE_CLOCK_S or time.time() - mtime > STALE_LOCK_S)
        ):
            lock.unlink()
    head = repo.refs.follow(ref)[1]
    if head == new:
        # The entries come from the commit itself, never from the (hand-editable) file.
        gitindex.update(dd.repo_root or dd.root, gitdir, _moves_of(repo, new, paths))
        changes.landed()
    elif head is not None and _reaches(repo, head, new):
        changes.landed()  # landed, and someone committed on top since: their index now
    else:
        changes.commit_intent = None


def _reaches(repo: Repo, head: ObjectID, target: ObjectID, depth: int = 200) -> bool:
    """Whether `target` is among the recent first-parent ancestors of `head`."""
    from dulwich.objects import Commit

    sha: ObjectID | None = head
    for _ in range(depth):
        if sha is None:
            return False
        if sha == target:
            return True
        try:
            commit = repo.object_store[sha]
        except KeyError:
            return False  # a shallow clone's edge
        assert isinstance(commit, Commit)
        sha = commit.parents[0] if commit.parents else None
    return False


def _objects(store: BaseObjectStore, fn: Callable[[], T]) -> T:
    """Run `fn`, which writes loose objects, past locks a killed beat abandoned.

    dulwich writes each loose object through `<sha>.lock`; a kill -9 mid-write leaves it,
    and the next write of the same object (same bytes, same name) would fail forever.
    Objects are content-addressed, so whoever holds such a lock writes exactly what we
    would: removing it is safe.
    """
    from dulwich.file import FileLocked

    objects = Path(getattr(store, "path", "")).resolve()
    for _ in range(8):
        try:
            return fn()
        except FileLocked as exc:
            lock = Path(os.fsdecode(exc.lockfilename)).resolve()
            if objects not in lock.parents:
                raise
            lock.unlink(missing_ok=True)
    return fn()


def _head_target(repo: Repo) -> Ref:
    from dulwich.refs import HEADREF, Ref

    raw = repo.refs.read_ref(HEADREF) or b""
    return Ref(raw[len(b"ref: ") :].strip()) if raw.startswith(b"ref: ") else HEADREF


def _trailers(message: bytes) -> dict[str, str]:
    found: dict[str, str] = {}
    for line in message.decode("utf-8", errors="replace").splitlines():
        key, sep, value = line.partition(": ")
        if sep and key in TRAILER_KEYS:
            found[key] = value.strip()
    return found


class Beat(NamedTuple):
    commit: str
    time: int
    subject: str
    trailers: dict[str, str]


def history(dd: DataDir, limit: int) -> Iterator[Beat]:
    """Beat commits, newest first, read from HEAD until `limit` are found."""
    from dulwich.objects import Commit
    from dulwich.refs import HEADREF

    if dd.repo_root is None:
        return
    repo = _open(dd)
    try:
        head = repo.refs.follow(HEADREF)[1]
        if head is None:
            return
        found = 0
        for entry in repo.get_walker(include=[head]):
            commit = entry.commit
            assert isinstance(commit, Commit)
            trailers = _trailers(commit.message)
            if "Looopbot-Run" not in trailers:
                continue
            subject = commit.message.decode("utf-8", errors="replace").splitlines()[0]
            yield Beat(commit.id.decode(), commit.commit_time, subject, trailers)
            found += 1
            if found >= limit:
                return
    finally:
        repo.close()
