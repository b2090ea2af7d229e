"""Draft pull requests for workers on GitHub Actions (`github.pull_requests: true`).

A local worker's supervisor opens its PR as the worker ends (workers.delivery). A worker on
Actions has no supervisor here: its run pushes the branch and ends. So the beat that reads
the run's end (workers.actions_state) opens the PR — when the run succeeded (the worker
exited 0 and its verify, if declared, passed: the run's conclusion says both) and the branch
holds commits beyond its base, the brief's own commits not counted. Then, every beat until
it is merged or closed, the PR's state is read conditionally (a 304 costs no rate limit),
so `sys-workers` shows `pr: merged` once a human merged it.

All of it lives in the sys-workers snapshot, which is committed: a fresh clone or an
Actions beat knows the PR's number, and GitHub finds an open one again by its head anyway.
A failure leaves the PR `pending`, retried by the next beat, its reason in `detail`.
"""

from __future__ import annotations

from typing import Any

from looopbot import gitcli
from looopbot.config import Config
from looopbot.datadir import DataDir
from looopbot.errors import LooopbotError
from looopbot.github.client import GitHubClient, GitHubUnavailable
from looopbot.text import one_line
from looopbot.workers.onactions import BRIEF, BRIEF_TRAILER, ActionsWorker

# `none`: GitHub found nothing to pull — the base holds the work already (merged by hand).
FINAL = ("merged", "closed", "none")
STATES = ("pending", "open", *FINAL)
_SHOWN = 50  # commits listed in the PR's body; the rest are counted


def due(item: dict[str, Any], ahead: int | None) -> bool:
    """Does this worker's run deserve a PR: it succeeded, and left commits."""
    return item.get("state") == "completed" and item.get("conclusion") == "success" and bool(ahead)


def settled(last: Any) -> bool:
    """A PR that is merged or closed is never asked about again."""
    return isinstance(last, dict) and last.get("state") in FINAL


def deliver(
    dd: DataDir,
    config: Config,
    client: GitHubClient,
    worker: ActionsWorker,
    *,
    last: Any,
    saved: dict[str, Any],
    renew: bool,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The worker's PR, opened or read now: (its `pr` signal item {state, number}, what
    goes into `detail`). `last` is the item the last snapshot held; `saved` the worker's
    scratch entry (the PR's ETag); `renew`: the run has just ended, so the PR is opened
    or its body brought up to date. Never raises for GitHub."""
    from looopbot.github import drafts

    prior = last if isinstance(last, dict) and last.get("state") in STATES else None
    number = prior.get("number") if prior is not None else None
    number = number if isinstance(number, int) and not isinstance(number, bool) else None
    if prior is not None and settled(prior) and not renew:
        return prior, {}
    try:
        if not renew and prior is not None and prior["state"] == "open" and number is not None:
            got = drafts.refresh(client, number, worker.id, saved.get("pr_etag"))
            if got is None:
                return prior, {}
            pull, saved["pr_etag"] = got
        else:
            pull = _publish(dd, config, client, worker, number)
    except (GitHubUnavailable, LooopbotError) as exc:
        why = one_line(exc.message, 300)
        if isinstance(exc, GitHubUnavailable) and exc.kind == "empty":
            return {"state": "none"}, {"pr_error": why}
        if prior is not None and prior["state"] == "open":
            return prior, {"pr_error": why}  # still open, as far as anyone knows
        return {"state": "pending", **({"number": number} if number else {})}, {"pr_error": why}
    return {"state": pull.state, "number": pull.number}, {"pr_url": pull.url}


def _publish(
    dd: DataDir, config: Config, client: GitHubClient, worker: ActionsWorker, known: int | None
) -> Any:
    from looopbot import remote
    from looopbot.github import drafts
    from looopbot.workers import delivery
    from looopbot.workers.contract import task_of

    up = remote.upstream(dd, config)
    root = dd.repo_root
    assert root is not None
    brief = gitcli.run(root, "show", f"{worker.brief_commit}:{BRIEF}", check=False)
    task = task_of(brief.stdout.decode("utf-8", errors="replace")) if brief.ok else ""
    span = own_commits(dd, up.remote, worker)
    listed = gitcli.run(
        root, "log", "--reverse", "--format=%h %s", *span, check=False
    ).stdout.decode()
    commits = listed.splitlines()
    draft = delivery.draft_for(
        worker.id,
        worker.branch,
        task,
        drafts.Verdict(0, worker.verify, "pass" if worker.verify else None),
        commits[:_SHOWN],
        more=max(0, len(commits) - _SHOWN),
    )
    base = delivery.pr_base(up, worker.base_branch)
    return drafts.publish(client, worker.id, worker.branch, base, draft, known=known)


def own_commits(dd: DataDir, remote_name: str, worker: ActionsWorker) -> list[str]:
    """`git log`/`rev-list` arguments for the worker's own commits on its fetched branch:
    beyond its base, the brief's commits left out."""
    from looopbot import remote

    # A shallow clone (an Actions checkout) may lack the base: count from HEAD then.
    base = remote.rev(dd, worker.base) or "HEAD"
    mirror = f"refs/remotes/{remote_name}/{worker.branch}"
    return ["--invert-grep", f"--grep=^{BRIEF_TRAILER}: ", mirror, f"^{base}"]
