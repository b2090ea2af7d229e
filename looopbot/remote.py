"""The remote: which branch is upstream, fetch, push, lease push, and what a failure means.

Everything here runs the git CLI (looopbot.gitcli, through the one subprocess helper), so
the user's whole setup applies — credential helpers, the `http.extraheader` that
actions/checkout leaves, `url.*.insteadOf`, ssh config, pre-push hooks — with a timeout,
no prompt and no pager. (GitPython's `Git.execute` would run the same binary but cannot
drop an inherited `GIT_DIR`/`GIT_INDEX_FILE` nor kill a hung credential helper's group.)

Nothing here ever force-pushes a branch: the only forced update is a claim ref pushed with
an explicit lease on its exact old value (or on its absence), which is compare-and-swap.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

from looopbot import gitcli, proc
from looopbot.config import Config, load
from looopbot.datadir import DataDir
from looopbot.errors import LooopbotError
from looopbot.redact import redact

CLAIMS = "refs/heads/looopbot/claim/"

# Failure kinds. Only MOVED is worth a fetch-rebase-retry; the rest need a human.
MOVED = "moved"  # the remote branch moved under us (non-fast-forward, stale lease, ref lock)
UNREACHABLE = "unreachable"  # network: DNS, refused, timeout
AUTH = "auth"  # credentials missing or refused
MISSING = "missing"  # no such remote or repository
REFUSED = "refused"  # a hook or branch protection on the remote said no
FAILED = "failed"  # anything else

_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (kind, re.compile(pattern, re.IGNORECASE))
    for kind, pattern in (
        # Order matters. A ref moved or locked under a push is reported by the remote as
        # "[remote rejected] … (cannot lock ref …)", so it goes before the hooks' refusals.
        (
            MOVED,
            r"\(fetch first\)|\(non-fast-forward\)|\(stale info\)|cannot lock ref"
            r"|failed to update ref|incorrect old value|reference already exists",
        ),
        (
            REFUSED,
            r"hook declined|\[remote rejected\]|protected branch|GH006|GH013"
            r"|refusing to allow .* to (create or update|update) workflow",
        ),
        (
            AUTH,
            r"authentication failed|could not read (username|password)|permission denied"
            r"|terminal prompts disabled|invalid username or password|access denied"
            r"|requested url returned error: 40[13]",
        ),
        (
            MISSING,
            r"does not appear to be a git repository|repository(?: .*)? not found|no such remote",
        ),
        (
            UNREACHABLE,
            r"could not resolve host|connection refused|connection timed out|timed out"
            r"|network is unreachable|unable to access|could not read from remote"
            r"|connection reset|no route to host|early eof|the remote end hung up",
        ),
        (MOVED, r"\[rejected\]"),
        # Nothing more specific: a local pre-push hook said no (git names no reason).
        (REFUSED, r"failed to push some refs"),
    )
)


class RemoteFailed(LooopbotError):
    """A fetch or push that failed, with its kind (see above) and git's one line."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def classify(said: str) -> str:
    """The kind of a failure from what git said (stderr, and --porcelain's reason)."""
    for kind, pattern in _PATTERNS:
        if pattern.search(said):
            return kind
    return FAILED


class Upstream(NamedTuple):
    remote: str  # a remote's name, as in `git remote`
    branch: str  # the branch's name on the remote
    local: str  # the local branch it tracks

    @property
    def tracking(self) -> str:
        return f"refs/remotes/{self.remote}/{self.branch}"

    def __str__(self) -> str:
        return f"{self.remote}/{self.branch}"


def _root(dd: DataDir) -> Path:
    if dd.repo_root is None:
        raise LooopbotError(f"{dd.root} is not inside a git repository — run 'looopbot init'")
    return dd.repo_root


def upstream(dd: DataDir, config: Config) -> Upstream:
    """The current branch's upstream, else `origin/<branch>`; git.remote / git.branch in
    looopbot.yaml override. One git call."""
    root = _root(dd)
    head = gitcli.run(root, "symbolic-ref", "-q", "HEAD", check=False)
    ref = head.stdout.decode().strip()
    if not head.ok or not ref.startswith("refs/heads/"):
        raise LooopbotError("HEAD is detached — check out a branch (git switch <branch>) first")
    local = ref[len("refs/heads/") :]
    said = gitcli.out(
        root, "for-each-ref", "--format=%(upstream:remotename)%00%(upstream:remoteref)", ref
    ).strip()
    remote, _, merge = said.partition("\0")
    name = config.remote or remote or "origin"
    # Only a branch on the remote can be pulled and pushed: an upstream set to a tag, a
    # pull request's ref or a bare `refs/heads/` falls back to the branch's own name.
    merged = merge[len("refs/heads/") :] if merge.startswith("refs/heads/") else ""
    branch = config.branch or merged or local
    return Upstream(name, branch, local)


def _network(dd: DataDir, *args: str) -> proc.Result:
    # One fetch or push, its hooks and credential helpers: a hung connection or a pre-push
    # hook that never returns must not hang the beat (its whole process group is killed).
    timeout = load(dd).limits.network_timeout
    return gitcli.run(_root(dd), *args, timeout=timeout, check=False)


def _said(result: proc.Result) -> str:
    if result.timed_out:
        return "timed out: no answer within limits.network_timeout"
    if result.spawn_error:
        return f"could not start git: {result.spawn_error}"
    return result.stderr.decode("utf-8", errors="replace").strip()


def _one_line(said: str, what: str, kind: str = FAILED) -> str:
    """git's most telling line (a rejected ref, its `fatal:`/`error:` line, else the last),
    prefixed; for a refusal, with the last thing the refusing hook said."""
    lines = [line.strip() for line in said.splitlines() if line.strip()]
    plain = [line for line in lines if not line.startswith(("hint:", "To ", "remote: "))]
    telling = [line for line in plain if line.startswith(("fatal:", "error:", "!"))]
    text = (telling or plain or lines or ["no output"])[-1]
    if text.startswith("!"):
        # A `push --porcelain` record: "!<TAB>src:dst<TAB>[remote rejected] (reason)".
        fields = text.split("\t")
        if len(fields) >= 3:
            text = f"{fields[1].rpartition(':')[2]} {fields[2]}"
    if kind == REFUSED:
        # The hook's own words (remote hooks speak through "remote: "): why it said no.
        words = [
            line.removeprefix("remote:").strip()
            for line in lines
            if line not in telling and not line.startswith(("hint:", "To "))
        ]
        words = [w for w in words if w and "hook declined" not in w]
        if words:
            text += f" — {words[-1]}"
    return f"{what}: {text}"


def _fail(result: proc.Result, what: str, extra: str = "") -> RemoteFailed:
    said = _said(result) + ("\n" + extra if extra else "")
    kind = UNREACHABLE if result.timed_out else classify(said)
    # It goes to the output, `tick --json`, the job summary and maybe the journal.
    return RemoteFailed(kind, redact(_one_line(said, what, kind)))


def has_remote(dd: DataDir, name: str) -> bool:
    found = gitcli.run(_root(dd), "config", "--get", f"remote.{name}.url", check=False)
    return found.ok and bool(found.stdout.strip())


def _check_remote(dd: DataDir, name: str) -> None:
    if not has_remote(dd, name):
        raise RemoteFailed(
            MISSING,
            f"no remote named '{name}' — add it (git remote add {name} URL) or name another "
            "in looopbot.yaml (git.remote)",
        )


def fetch(dd: DataDir, up: Upstream, *, claims: bool = True) -> bool:
    """Bring the upstream branch into its remote-tracking ref (and the remote's claims into
    the local claim refs, which the remote decides); False when the remote has no such
    branch (a new, empty repository — or one whose branch was deleted: the tracking ref
    is left as it was, the memory that it existed). Raises RemoteFailed."""
    _check_remote(dd, up.remote)
    mirror = f"refs/remotes/{up.remote}/looopbot/claim/"
    specs = [f"+refs/heads/{up.branch}:{up.tracking}"]
    if claims:
        # The remote's claims land in a mirror first (--prune: one released there goes);
        # the local claims follow it below.
        specs.append(f"+{CLAIMS}*:{mirror}*")
        seen = _refs(dd, mirror)
    args = ["fetch", "--quiet", "--no-tags", "--no-write-fetch-head", "--prune", up.remote]
    result = _network(dd, *args, *specs)
    found = True
    if not result.ok:
        said = _said(result)
        if "couldn't find remote ref" not in said.lower():
            raise _fail(result, f"fetch {up}")
        found = False
        if claims:
            again = _network(dd, *args, specs[1])
            if not again.ok:
                raise _fail(again, f"fetch {up.remote}")
    if claims:
        _follow_claims(dd, seen, _refs(dd, mirror))
    return found


def _refs(dd: DataDir, prefix: str) -> dict[str, str]:
    """{name under prefix: commit} (one for-each-ref)."""
    out = gitcli.out(_root(dd), "for-each-ref", "--format=%(objectname) %(refname)", prefix)
    refs = {}
    for line in out.splitlines():
        sha, _, ref = line.partition(" ")
        refs[ref[len(prefix) :]] = sha
    return refs


def _follow_claims(dd: DataDir, seen: dict[str, str], there: dict[str, str]) -> None:
    """Local claims become what the remote holds: a claim taken there appears, one changed
    there follows, one released there (it was in the mirror, as we hold it) goes. A local
    claim the remote never had — taken before push was on — stays: nothing here deletes
    what nobody released. Each update is compare-and-swap on what we read."""
    from looopbot.ids import is_valid_id

    # Only claims: a hand-made ref under the prefix (`db/x`, not an id) is none of ours,
    # and one that cannot sit beside a claim must not stop every claim from following.
    there = {name: sha for name, sha in there.items() if is_valid_id(name)}
    local = {name: sha for name, sha in _refs(dd, CLAIMS).items() if is_valid_id(name)}
    zero = "0" * 40
    lines = [
        f"update {CLAIMS}{name} {sha} {local.get(name, zero)}"
        for name, sha in there.items()
        if local.get(name) != sha
    ]
    lines += [
        f"delete {CLAIMS}{name} {sha}"
        for name, sha in local.items()
        if name not in there and seen.get(name) == sha
    ]
    if lines:
        # All or nothing; a claim changed here meanwhile fails it, and the next fetch
        # tries again.
        stdin = "".join(line + "\n" for line in lines).encode()
        gitcli.run(_root(dd), "update-ref", "--stdin", stdin=stdin, check=False)


def is_shallow(dd: DataDir) -> bool:
    return gitcli.out(_root(dd), "rev-parse", "--is-shallow-repository").strip() == "true"


def deepen(dd: DataDir, up: Upstream, by: int) -> None:
    """Fetch `by` more commits of history (a shallow clone whose rebase needs a merge base)."""
    spec = f"+refs/heads/{up.branch}:{up.tracking}"
    args = ["fetch", "--quiet", "--no-tags", "--no-write-fetch-head"]
    deeper = ["--unshallow"] if by <= 0 else [f"--deepen={by}"]
    result = _network(dd, *args, *deeper, up.remote, spec)
    if not result.ok:
        raise _fail(result, f"deepen {up}")


def rev(dd: DataDir, name: str) -> str | None:
    """The commit `name` points at, or None."""
    found = gitcli.run(_root(dd), "rev-parse", "-q", "--verify", f"{name}^{{commit}}", check=False)
    return found.stdout.decode().strip() or None if found.ok else None


def counts(dd: DataDir, up: Upstream) -> tuple[int, int] | None:
    """(ahead, behind) of HEAD against the remote-tracking ref as last fetched; None when
    there is none (never fetched, or the remote branch does not exist yet)."""
    if rev(dd, up.tracking) is None:
        return None
    out = gitcli.run(
        _root(dd), "rev-list", "--left-right", "--count", f"HEAD...{up.tracking}", check=False
    )
    if not out.ok:
        return None  # a shallow clone whose histories do not meet yet
    ahead, behind = out.stdout.decode().split()
    return int(ahead), int(behind)


def push(dd: DataDir, up: Upstream, commit: str) -> None:
    """Push `commit` to the upstream branch — never forced. Raises RemoteFailed."""
    root = _root(dd)
    _check_remote(dd, up.remote)
    result = _network(dd, "push", "--porcelain", up.remote, f"{commit}:refs/heads/{up.branch}")
    if result.ok:
        # git updates the remote-tracking ref only for its configured fetch refspecs; ours
        # is explicit (a custom git.branch, a narrow actions/checkout refspec).
        gitcli.run(root, "update-ref", up.tracking, commit, check=False)
        return
    raise _fail(result, f"push {up}", _porcelain(result))


def push_ref(dd: DataDir, remote: str, ref: str) -> None:
    """Push local `ref` to the same name on `remote` — never forced. Raises RemoteFailed."""
    _check_remote(dd, remote)
    result = _network(dd, "push", "--porcelain", remote, f"{ref}:{ref}")
    if not result.ok:
        raise _fail(result, f"push {ref}", _porcelain(result))


def _porcelain(result: proc.Result) -> str:
    """The rejected refs' lines of `push --porcelain` (stdout): `!\tsrc:dst\t[rejected] …`."""
    out = result.stdout.decode("utf-8", errors="replace")
    return "\n".join(line for line in out.splitlines() if line.startswith("!"))


def lease_push(dd: DataDir, remote: str, ref: str, new: str | None, expect: str | None) -> None:
    """Set (or, with `new` None, delete) `ref` on the remote only if it is exactly `expect`
    there now (None: absent). The remote decides, atomically: of any number of clones doing
    this at once, one wins and the others get MOVED. Raises RemoteFailed."""
    lease = f"--force-with-lease={ref}:{expect or ''}"
    spec = f"{new}:{ref}" if new is not None else f":{ref}"
    result = _network(dd, "push", "--porcelain", lease, remote, spec)
    if not result.ok:
        raise _fail(result, f"push {ref}", _porcelain(result))


def remote_ref(dd: DataDir, remote: str, ref: str) -> str | None:
    """What `ref` points at on the remote now (one ls-remote). Raises RemoteFailed."""
    result = _network(dd, "ls-remote", "--refs", remote, ref)
    if not result.ok:
        raise _fail(result, f"ls-remote {remote}")
    for line in result.stdout.decode().splitlines():
        sha, _, name = line.partition("\t")
        if name == ref:
            return sha
    return None


__all__ = [
    "AUTH",
    "FAILED",
    "MISSING",
    "MOVED",
    "REFUSED",
    "UNREACHABLE",
    "RemoteFailed",
    "Upstream",
    "classify",
    "counts",
    "deepen",
    "fetch",
    "is_shallow",
    "lease_push",
    "push",
    "push_ref",
    "remote_ref",
    "rev",
    "upstream",
]
