"""A worker's dashboard thread (`workers.backend: actions`, DESIGN §10): how the loop talks
to a worker that runs on GitHub Actions, which has no stdin on this machine.

Whatever is said to such a worker is a comment on the dashboard issue addressed to it:
`/answer <worker>[#<n>] <text>` (the answer to its open question, or plain input when it
asked nothing — the rule `looopbot answer` follows) and `/keys <worker> <key>…`. A human
writes them; the loop posts them for `looopbot answer`, steer_session and send_key. The
worker's run reads them and hands each to its agent's stdin once (workers.onthread), and
posts the worker's questions there as the flag comments the loop posts for local workers.
One place, in plain sight, where the humans who watch the loop already look.

Who may speak to a worker: whoever has write access (the author association says so and
the permission endpoint confirms, as for `/answer` to a local worker), and
github-actions[bot] — a loop that runs as a scheduled workflow posts as it, and on this
repository only this repository's workflows can. A worker's own run holds that identity
too (its job's token): a worker on Actions is trusted like a collaborator, which is why
the loop never merges and a merged pull request stays a human's act.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from looopbot.config import Config
from looopbot.datadir import DataDir
from looopbot.errors import LooopbotError
from looopbot.github import answers
from looopbot.github.client import GitHubClient, GitHubUnavailable

if TYPE_CHECKING:
    from looopbot.workers.onactions import ActionsWorker

ACTIONS_BOT = "github-actions[bot]"
# Failures after which a POST may have been taken all the same.
_UNSURE = ("unreachable", "server", "broken")


def trusted(client: GitHubClient, comment: answers.Comment) -> bool:
    """Whether the comment's author may speak to a worker."""
    if comment.bot and comment.login == ACTIONS_BOT:
        return True
    return answers.writes(client, comment)


def unheard(client: GitHubClient, worker: ActionsWorker, comment: answers.Comment) -> str | None:
    """Why no run of `worker` will ever hear `comment` — its run had ended before the
    comment was made (a re-run hears only what is said after it starts) — or None when
    one may. A beat leaves the rest to the run; this, it must answer: nobody else would.
    May raise GitHubUnavailable (the beat asks again next time)."""
    from looopbot.github import actions
    from looopbot.github.calls import call
    from looopbot.workers import onactions

    run = actions.newest_run(client, onactions.WORKFLOW, worker.branch).run
    if run is None or run.id <= worker.after_run or run.status != "completed":
        return None  # dispatched or running: its run hears what is said since its start
    with client.talking(f"read {worker.id}'s run"):
        got = call(client, "GET", f"/repos/{client.repo}/actions/runs/{run.id}")
    data = got.data if isinstance(got.data, dict) else {}
    ended = data.get("updated_at")
    if data.get("status") != "completed" or not isinstance(ended, str) or not ended:
        return None  # re-run meanwhile
    if not comment.created_at or comment.created_at <= ended:
        return None  # said while it ran: the run judged it, or may have
    return f"worker `{worker.id}` is not running on GitHub Actions (its run is over)"


class Relayed(NamedTuple):
    url: str  # the comment's page
    number: int  # the dashboard issue's


def relay(dd: DataDir, config: Config, wid: str, body: str) -> Relayed:
    """Post `body` (an `/answer` or `/keys` line for worker `wid`) on the dashboard, after
    checking that the worker's run is there to hear it."""
    from looopbot.github import actions, dashboard, loop
    from looopbot.workers import onactions

    parsed = answers.parse(body)
    if not isinstance(parsed, answers.Parsed):
        # What its run would not take is refused here, before anything is posted.
        why = parsed.why if parsed is not None else "not a command"
        raise LooopbotError(f"cannot say that to worker '{wid}' on the dashboard: {why}")
    settings = config.github
    if settings is None or not settings.dashboard:
        raise LooopbotError(
            f"worker '{wid}' runs on GitHub Actions: what is said to it goes through the "
            "dashboard issue, and github.dashboard is off — turn it on in looopbot.yaml"
        )
    worker = onactions.read(dd, wid)
    assert worker is not None  # the caller found it
    client = onactions.client_for(dd, config)
    try:
        run = actions.newest_run(client, onactions.WORKFLOW, worker.branch).run
        if run is None or run.id <= worker.after_run or run.status == "completed":
            state = "not started yet" if run is None or run.id <= worker.after_run else "over"
            raise LooopbotError(
                f"worker '{wid}' is not running on GitHub Actions (its run is {state}) — "
                "nothing would hear it"
            )
        with client.talking("find the dashboard issue"):
            issue = dashboard.find(client, loop.known_issue(dd, config))
        if issue is None:
            raise LooopbotError(
                "there is no dashboard issue yet — a beat with github.dashboard on opens it"
            )
    except GitHubUnavailable as exc:
        raise LooopbotError(f"worker '{wid}' did not hear it: {exc.message}") from None
    try:
        with client.talking(f"post to {wid}'s dashboard thread"):
            from looopbot.github.calls import call

            got = call(
                client,
                "POST",
                f"/repos/{client.repo}/issues/{issue.number}/comments",
                body={"body": body},
            )
    except GitHubUnavailable as exc:
        if exc.kind not in _UNSURE:
            raise LooopbotError(f"worker '{wid}' did not hear it: {exc.message}") from None
        # A POST that timed out or met a 5xx may have made the comment all the same, and
        # its run hears it: "did not hear it" would invite saying it twice.
        raise LooopbotError(
            f"worker '{wid}' may or may not hear it: {exc.message} — look at the dashboard "
            f"(issue #{issue.number}) before saying it again"
        ) from None
    url = got.data.get("html_url") if isinstance(got.data, dict) else None
    return Relayed(str(url or issue.html_url), issue.number)
