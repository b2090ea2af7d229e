"""What the dashboard is owed: comments and reactions a failing API did not take, kept in
the dashboard's local scratch record and posted, in order, by a later beat. Losing it (a
fresh clone) loses a reaction or a notification's comment, never an answer or a flag: those
are recorded in git (looopbot.github.answers)."""

from __future__ import annotations

from typing import Any

from looopbot.github.calls import call
from looopbot.github.client import GitHubClient, GitHubUnavailable

_CAP = 100


def send(client: GitHubClient, number: int, op: dict[str, Any]) -> None:
    """Post one comment on issue `number`, or one reaction to a comment; call inside
    `client.talking`."""
    if op["op"] == "react":
        path = f"/repos/{client.repo}/issues/comments/{int(op['comment'])}/reactions"
        call(client, "POST", path, body={"content": op["content"]})
    else:
        call(
            client,
            "POST",
            f"/repos/{client.repo}/issues/{number}/comments",
            body={"body": op["body"]},
        )


def queue(saved: dict[str, Any], op: dict[str, Any]) -> None:
    box = list(saved.get("outbox") or [])
    saved["outbox"] = [*box, op][-_CAP:]


def send_or_queue(client: GitHubClient, saved: dict[str, Any], op: dict[str, Any]) -> None:
    """Post it now, or keep it for a later beat when GitHub fails (or others wait first)."""
    if saved.get("outbox"):
        queue(saved, op)  # in order, behind what is already owed
        return
    try:
        with client.talking("answer on the dashboard"):
            send(client, int(saved["number"]), op)
    except GitHubUnavailable:
        queue(saved, op)


def flush(client: GitHubClient, saved: dict[str, Any], asides: list[str]) -> None:
    """Post what is owed, oldest first, up to the first failure (one line in `asides`)."""
    box = list(saved.get("outbox") or [])
    while box:
        try:
            with client.talking("post what the dashboard is owed"):
                send(client, int(saved["number"]), box[0])
        except GitHubUnavailable as exc:
            asides.append(exc.message)
            break
        box.pop(0)
    saved["outbox"] = box
