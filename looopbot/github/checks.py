"""Failing checks on a commit: check runs (`/commits/{ref}/check-runs`) and commit statuses
(`/commits/{ref}/status`), the two ways CI reports to GitHub.

Which checks fail, and how, is the news (`{kind, name, state}`, the signal); where to look
and when it happened is not (URL, time, title: the detail) — a re-run that fails the same
way must not wake the loop again.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from looopbot.github.conditional import Reader
from looopbot.text import one_line

# A check run "completed" with one of these did not pass. neutral/skipped/stale did not fail.
FAILED_RUN = frozenset({"failure", "timed_out", "cancelled", "action_required", "startup_failure"})
FAILED_STATUS = frozenset({"failure", "error"})
_TEXT_CAP = 200


def branch_ref(branch: str) -> str:
    """A branch as a commits-API ref: `heads/NAME` is never mistaken for a tag or a sha,
    and keeps a name with slashes (`release/v2`) in one path."""
    return quote(f"heads/{branch}", safe="/")


def failing(reader: Reader, repo: str, ref: str) -> list[dict[str, Any]]:
    """The failing check runs and statuses of commit `ref`, sorted, each
    `{kind, name, state, url, at, title}` (`signal` takes the first three)."""
    base = f"/repos/{repo}/commits/{ref}"
    # filter=latest: one run per name, the last — an old red run that a re-run fixed is gone.
    runs = reader.pages(
        reader.url(f"{base}/check-runs", filter="latest", per_page=100), _failed_runs
    )
    # The combined status is already the latest per context; 100 contexts is page 1's most.
    statuses = reader.one(reader.url(f"{base}/status", per_page=100), _failed_statuses)
    found = [run for page in runs for run in page] + statuses
    return sorted(found, key=lambda f: (f["kind"], f["name"], f["state"]))


def signal(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"kind": f["kind"], "name": f["name"], "state": f["state"]} for f in found]


def _failed_runs(body: Any, gh: Any) -> list[dict[str, Any]]:
    from github3.checks import CheckRun

    out = []
    for raw in body["check_runs"]:
        run = CheckRun(raw, gh)  # github3 checks the shape: a missing key is an error
        if run.status == "completed" and run.conclusion in FAILED_RUN:
            out.append(
                {
                    "kind": "check",
                    "name": run.name,
                    "state": run.conclusion,
                    "url": run.html_url,
                    "at": raw["completed_at"],
                    "title": one_line(run.output.title or "", _TEXT_CAP),
                }
            )
    return out


def _failed_statuses(body: Any, gh: Any) -> list[dict[str, Any]]:
    from github3.repos.status import CombinedStatus

    combined = CombinedStatus(body, gh)
    return [
        {
            "kind": "status",
            "name": status.context,
            "state": status.state,
            "url": status.target_url or "",
            "at": raw["updated_at"],
            "title": one_line(status.description or "", _TEXT_CAP),
        }
        for status, raw in zip(combined.statuses, body["statuses"], strict=True)
        if status.state in FAILED_STATUS
    ]
