"""A whole GitHub world for the sensor, served on a FakeGitHub: the recorded issue list, the
repository, and for the default branch and each open pull request the check runs and
statuses, each PR's page and reviews, and the repository's comments — all whole recorded
payloads with the fields that matter changed. Change an attribute, call `serve()` again:
an unchanged payload keeps its ETag (and gets 304s), a changed one does not."""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass, field
from typing import Any

from fakegithub import FakeGitHub, fixture

OWNER_REPO = "octocat/Hello-World"
REPO = f"/repos/{OWNER_REPO}"
ISSUES = f"{REPO}/issues"
COMMENTS = f"{REPO}/issues/comments"
BRANCH = "master"  # repo_example.json's default_branch
BRANCH_REF = f"heads/{BRANCH}"


def sha(seed: object) -> str:
    return hashlib.sha1(str(seed).encode()).hexdigest()


def check_run(name: str, conclusion: str | None, head: str, run_id: int = 1) -> dict[str, Any]:
    run = fixture("check_run_example.json")
    run.update(
        id=run_id,
        name=name,
        head_sha=head,
        status="completed" if conclusion else "in_progress",
        conclusion=conclusion,
        html_url=f"https://github.com/{OWNER_REPO}/runs/{run_id}",
        url=f"https://api.github.com{REPO}/check-runs/{run_id}",
    )
    return run


def status(context: str, state: str, status_id: int = 1) -> dict[str, Any]:
    raw = fixture("repos_combined_status_example.json")["statuses"][0]
    raw.update(id=status_id, context=context, state=state, description=f"{context}: {state}")
    return raw


def review(user: str, state: str, review_id: int) -> dict[str, Any]:
    # The shape of GET /repos/{o}/{r}/pulls/{n}/reviews items in the full media type
    # github3.py asks for (body_html, body_text).
    return {
        "id": review_id,
        "node_id": f"PRR_{review_id}",
        "user": {**fixture("user_example.json"), "login": user},
        "body": "",
        "body_html": "",
        "body_text": "",
        "state": state,
        "html_url": f"https://github.com/{OWNER_REPO}/pull/1#pullrequestreview-{review_id}",
        "pull_request_url": f"https://api.github.com{REPO}/pulls/1",
        "author_association": "COLLABORATOR",
        "submitted_at": f"2026-01-01T00:00:{review_id % 60:02d}Z",
        "commit_id": sha(review_id),
    }


def comment(comment_id: int, body: str, author: str = "octocat", issue: int = 1) -> dict[str, Any]:
    raw = fixture("comment_example.json")
    raw.update(
        id=comment_id,
        body=body,
        body_text=body,
        body_html=body,
        html_url=f"https://github.com/{OWNER_REPO}/issues/{issue}#issuecomment-{comment_id}",
        url=f"https://api.github.com{REPO}/issues/comments/{comment_id}",
        issue_url=f"https://api.github.com{REPO}/issues/{issue}",
        user={**raw["user"], "login": author},
        created_at=f"2026-01-01T00:{comment_id // 60 % 60:02d}:{comment_id % 60:02d}Z",
    )
    return raw


@dataclass
class Pull:
    head: str
    mergeable_state: str = "clean"
    reviews: list[dict[str, Any]] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)
    statuses: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class World:
    fake: FakeGitHub
    pages: list[list[dict[str, Any]]] = field(
        default_factory=lambda: [
            fixture("issues_list_page1.json"),
            fixture("issues_list_page2.json"),
        ]
    )
    branch_runs: list[list[dict[str, Any]]] = field(
        default_factory=lambda: [[check_run("build", "success", sha("main"))]]
    )
    branch_statuses: list[dict[str, Any]] = field(default_factory=list)
    pulls: dict[int, Pull] = field(default_factory=dict)
    comments: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        for number in self.pull_numbers():
            self.pulls[number] = Pull(head=sha(number))
        self.serve()

    def open_items(self) -> list[dict[str, Any]]:
        return [i for page in self.pages for i in page if i["state"] == "open"]

    def pull_numbers(self) -> list[int]:
        return [i["number"] for i in self.open_items() if "pull_request" in i]

    def item(self, number: int) -> dict[str, Any]:
        return next(i for page in self.pages for i in page if i["number"] == number)

    def serve(self) -> None:
        fake = self.fake
        fake.serve(REPO, "repo_example.json")
        fake.serve(ISSUES, *self.pages)
        self._serve_checks(BRANCH_REF, sha("main"), self.branch_runs, self.branch_statuses)
        for number, pull in self.pulls.items():
            page = fixture("pull_request_example.json")
            page["number"] = number
            page["head"]["sha"] = pull.head
            page["mergeable_state"] = pull.mergeable_state
            page["mergeable"] = {"clean": True, "unknown": None}.get(pull.mergeable_state, False)
            fake.serve(f"{REPO}/pulls/{number}", page)
            fake.serve(f"{REPO}/pulls/{number}/reviews", pull.reviews)
            self._serve_checks(pull.head, pull.head, [pull.runs], pull.statuses)
        fake.serve(COMMENTS, self.comments)

    def _serve_checks(
        self, ref: str, head: str, runs: list[list[dict[str, Any]]], statuses: list[dict[str, Any]]
    ) -> None:
        total = sum(len(page) for page in runs)
        self.fake.serve(
            f"{REPO}/commits/{ref}/check-runs",
            *[{"total_count": total, "check_runs": page} for page in runs],
        )
        combined = fixture("repos_combined_status_example.json")
        combined.update(
            sha=head,
            statuses=statuses,
            total_count=len(statuses),
            state="failure"
            if any(s["state"] in ("failure", "error") for s in statuses)
            else "success",
        )
        self.fake.serve(f"{REPO}/commits/{ref}/status", combined)

    def add_pull(self, number: int) -> None:
        """A new open pull request, most recently updated."""
        item = copy.deepcopy(next(i for i in self.open_items() if "pull_request" in i))
        item.update(number=number, updated_at="2030-01-01T00:00:00Z")
        self.pages[0].insert(0, item)
        self.pulls[number] = Pull(head=sha(number))
