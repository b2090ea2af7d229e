"""What an open pull request's page says beyond the issue list: whether it can merge, what
its reviewers decided, and what its head commit is (whose checks the sensor reads)."""

from __future__ import annotations

from typing import Any

from looopbot.github.conditional import Reader

UNKNOWN = "unknown"
# The review states that decide; COMMENTED and PENDING say nothing about approval.
_DECIDING = frozenset({"APPROVED", "CHANGES_REQUESTED", "DISMISSED"})


def read(reader: Reader, repo: str, number: int) -> dict[str, Any]:
    """`{head_sha, mergeable_state, review_decision}` of pull request `number`."""
    pull = reader.one(reader.url(f"/repos/{repo}/pulls/{number}"), _pull)
    pages = reader.pages(
        reader.url(f"/repos/{repo}/pulls/{number}/reviews", per_page=100), _reviews
    )
    return {**pull, "review_decision": decision([r for page in pages for r in page])}


def decision(reviews: list[dict[str, Any]]) -> str:
    """GitHub's reviewDecision, which REST lacks, from the reviews in the order given
    (GitHub lists them oldest first): each reviewer's last deciding review counts — a
    later approval lifts their own earlier request for changes, a dismissal lifts either."""
    last: dict[str, str] = {}
    for review in reviews:
        if review["state"] in _DECIDING:
            last[review["user"]] = review["state"]
    states = set(last.values())
    if "CHANGES_REQUESTED" in states:
        return "changes_requested"
    if "APPROVED" in states:
        return "approved"
    # Whether the base branch requires a review at all would cost another request (and an
    # admin token): "nobody decided yet" reads the same either way.
    return "review_required"


def settled(fresh: str, last: str | None) -> str:
    """The mergeable state to show. GitHub computes mergeability lazily: a first look, and
    the first look after each push to the PR or its base, says `unknown` while a background
    job runs. Taken at its word that flaps clean → unknown → clean, waking the loop twice for
    nothing; so while GitHub says unknown the last known state stands (a real change still
    shows on the next beat, when GitHub has computed it). Only a PR never seen known is
    `unknown`."""
    if fresh == UNKNOWN and last:
        return last
    return fresh


def _pull(body: Any, gh: Any) -> dict[str, Any]:
    from github3.pulls import PullRequest

    pull = PullRequest(body, gh)  # github3 checks the shape: a missing key is an error
    return {
        "head_sha": pull.head.sha,
        # `mergeable: null` comes with mergeable_state "unknown"; trust the state alone.
        "mergeable_state": pull.mergeable_state or UNKNOWN,
    }


def _reviews(body: Any, gh: Any) -> list[dict[str, Any]]:
    from github3.pulls import PullReview

    # A review by a deleted account has no user (github3 cannot parse it): it cannot be
    # anyone's last word.
    reviews = [PullReview(raw, gh) for raw in body if raw.get("user")]
    return [{"user": r.user.login, "state": r.state} for r in reviews]
