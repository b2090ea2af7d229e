"""The beat commit, built in-process with dulwich; beat history from trailers (DESIGN §9).

The two git libraries split by job, and this is the one place that says so:
- dulwich (here) does in-process object and ref work on the hot path — a beat commit built
  from HEAD's tree plus exactly the paths the beat wrote, HEAD advanced by compare-and-swap,
  trailers read back — without spawning git or touching the user's index beyond those paths.
- GitPython (`looopbot.porcelain`) does porcelain that must honour the user's git setup:
  `git init` (init.defaultBranch), worktrees, fetch/rebase/push with credentials and merge
  drivers.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, TypeVar

from looopbot import gitindex
from looopbot.datadir import DataDir
from looopbot.errors import LooopbotError
from looopbot.gitstate import check_committable

T = TypeVar("T")

if TYPE_CHECKING:
    from dulwich.object_store import BaseObjectStore
    from dulwich.objects import ObjectID
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


def commit_paths(
    dd: DataDir, paths: Iterable[str], msg: str, author: tuple[str, str]
) -> str | None:
    """Commit exactly `paths` (data-dir relative) as they are on disk now, on top of HEAD.

    Returns the new commit id, or None when the tree would not change (never an empty
    commit). Everything else — the rest of the index, the user's staged and unstaged
    edits — is left exactly as it was.
    """
    from dulwich.file import FileLocked
    from dulwich.object_store import commit_tree_changes
    from dulwich.objects import Blob, Commit, Tree
    from dulwich.refs import HEADREF

    check_committable(dd)
    repo = _open(dd)
    try:
        gitindex.recover(dd, repo)
        store = repo.object_store
        changes: list[tuple[bytes, int | None, ObjectID | None]] = []
        for rel in sorted(set(paths)):
            repo_path = dd.repo_path(rel).encode()
            full = dd.root / rel
            try:
                st = os.lstat(full)
            except FileNotFoundError:
                changes.append((repo_path, None, None))
                continue
            if not stat.S_ISREG(st.st_mode):
                continue
            blob = Blob.from_string(full.read_bytes())
            _objects(store, partial(store.add_object, blob))
            mode = 0o100755 if st.st_mode & stat.S_IXUSR else 0o100644
            changes.append((repo_path, mode, blob.id))
        ident = f"{author[0]} <{author[1]}>".encode()
        for _attempt in range(_CAS_ATTEMPTS):
            head = repo.refs.follow(HEADREF)[1]
            if head is not None:
                parent = store[head]
                assert isinstance(parent, Commit)
                base_tree: ObjectID | Tree = parent.tree
            else:
                base_tree = Tree()  # an unborn branch: the first commit
            # commit_tree_changes mutates a Tree object it is given: take the id first.
            old_tree = base_tree if isinstance(base_tree, bytes) else base_tree.id
            # Removing a path HEAD never held (a goal the user wrote but never committed,
            # then archived) is no change; dulwich would raise KeyError on it.
            todo = [
                c
                for c in changes
                if c[1] is not None or (head is not None and gitindex.lookup(repo, old_tree, c[0]))
            ]
            new_tree = _objects(store, partial(commit_tree_changes, store, base_tree, todo))
            if new_tree == old_tree:
                return None
            commit = Commit()
            commit.tree = new_tree
            commit.parents = [head] if head is not None else []
            commit.author = commit.committer = ident
            commit.author_time = commit.commit_time = int(time.time())
            commit.author_timezone = commit.commit_timezone = _local_tz()
            commit.encoding = b"UTF-8"
            commit.message = msg.encode()
            _objects(store, partial(store.add_object, commit))
            reflog = b"commit: " + msg.splitlines()[0].encode()
            branch = _head_target(repo)
            touched = [c[0] for c in changes]
            base = old_tree if head is not None else None
            gitindex.write_intent(
                dd,
                ref=branch,
                old=head,
                new=commit.id,
                old_tree=base,
                new_tree=new_tree,
                paths=touched,
            )
            try:
                if head is None:
                    moved = repo.refs.add_if_new(branch, commit.id, message=reflog)
                else:
                    moved = repo.refs.set_if_equals(HEADREF, head, commit.id, message=reflog)
            except FileLocked:
                raise LooopbotError(
                    f"{branch.decode()} is locked by another git process; this beat's files "
                    "stay pending and the next beat commits them"
                ) from None
            if moved:
                assert dd.repo_root is not None
                if gitindex.refresh(repo, dd.repo_root, base, new_tree, touched):
                    gitindex.clear_intent(dd)
                return commit.id.decode()
            # Someone committed meanwhile: rebuild on top of theirs, never over it.
        raise LooopbotError("HEAD kept moving while committing the beat; try again")
    finally:
        repo.close()


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
