"""The stateful half of the fake GitHub: one repository's issues, comments, reactions,
labels, pull requests, collaborators and Actions workflow runs, answering REST calls.

Objects are built from the recorded payloads (github3.py raises IncompleteResponse on a
missing key, so every object is whole) with the fields this repository owns filled in, and
every URL in them is this repository's own. A test changes the world the way a human would —
`open_issue`, `comment`, `set_permission`, `finish_run` — and looks at what the bot did in
`issues`, `comments`, `reactions`, `pulls`, `dispatches` and `runs`.

Answers are `(status, body)`; the server in fakegithub.py adds ETags, 304s and `Link`
pages for lists. Authorship comes from the request's token (`users`, default: the bot).
"""

from __future__ import annotations

import copy
import json
import re
import threading
from collections.abc import Callable
from typing import Any, NamedTuple

DOCS = "https://docs.github.com/rest"
RECORDED_BASE = "https://api.github.com"
BOT = "looopbot-bot"
_WRITERS = ("OWNER", "MEMBER", "COLLABORATOR")
_REACTIONS = ("+1", "-1", "laugh", "confused", "heart", "hooray", "rocket", "eyes")

Answer = tuple[int, Any]


class Request(NamedTuple):
    method: str
    path: str
    query: dict[str, str]
    body: Any  # parsed JSON, or None
    user: str  # the login the token belongs to


def _fixture(name: str) -> Any:
    from fakegithub import fixture  # one loader for both halves

    return fixture(name)


class FakeRepo:
    """One repository on the fake GitHub, e.g. `fake.repo("octocat/Hello-World")`."""

    def __init__(self, full_name: str, base_url: str, lock: threading.RLock) -> None:
        self.full_name = full_name
        self.base = base_url
        self.api = f"{base_url}/repos/{full_name}"
        self.html = f"https://github.com/{full_name}"
        self.lock = lock
        self.default_branch = "main"
        self.issues: dict[int, dict[str, Any]] = {}  # pull requests are issues too
        self.comments: dict[int, dict[str, Any]] = {}
        self.reactions: dict[int, list[dict[str, Any]]] = {}  # comment id -> reactions
        self.labels: dict[str, dict[str, Any]] = {}
        self.pulls: dict[int, dict[str, Any]] = {}
        self.permissions: dict[str, str] = {BOT: "write"}  # login -> admin|write|read|none
        self.workflows: set[str] = set()  # files a dispatch may name, e.g. looopbot-worker.yml
        self.dispatches: list[dict[str, Any]] = []  # bodies of accepted dispatches
        self.runs: dict[int, dict[str, Any]] = {}
        self.cancelled: list[int] = []
        # Answers for the next dispatches instead of a 204 (status, body), e.g. a 422
        # GitHub gives for an input the workflow does not declare.
        self.dispatch_failures: list[Answer] = []
        self._ids = 1000
        self._clock = 0

    # -- what a human (or GitHub itself) does ------------------------------------------

    def open_issue(
        self,
        title: str,
        body: str = "",
        *,
        labels: tuple[str, ...] = (),
        user: str = "octocat",
        association: str = "OWNER",
    ) -> dict[str, Any]:
        with self.lock:
            return self._new_issue(title, body, list(labels), user, association)

    def comment(
        self, number: int, body: str, *, user: str = "octocat", association: str = "OWNER"
    ) -> dict[str, Any]:
        """A comment on issue or pull request `number`, as `user` writes it."""
        with self.lock:
            return self._new_comment(number, body, user, association)

    def edit_comment(self, cid: int, body: str) -> None:
        """Its author edits comment `cid`: the body and `updated_at` change, `created_at` stays."""
        with self.lock:
            self.comments[cid].update(body=body, body_text=body, updated_at=self._now())

    def edit_issue(self, number: int, **fields: Any) -> None:
        with self.lock:
            self.issues[number].update(fields)
            self.issues[number]["updated_at"] = self._now()

    def set_permission(self, user: str, permission: str) -> None:
        with self.lock:
            self.permissions[user] = permission

    def finish_run(self, run_id: int, conclusion: str = "success") -> None:
        """The Actions run ends (success, failure, cancelled…)."""
        with self.lock:
            run = self.runs[run_id]
            run.update(status="completed", conclusion=conclusion, updated_at=self._now())

    def start_run(self, run_id: int) -> None:
        with self.lock:
            self.runs[run_id].update(status="in_progress", updated_at=self._now())

    def rerun(self, run_id: int) -> None:
        """A human presses "Re-run": the same run, its next attempt, started now."""
        with self.lock:
            run = self.runs[run_id]
            now = self._now()
            run.update(
                status="queued",
                conclusion=None,
                run_attempt=run["run_attempt"] + 1,
                run_started_at=now,
                updated_at=now,
            )

    def merge_pull(self, number: int, *, user: str = "octocat") -> None:
        """A human merges pull request `number` (the bot never does)."""
        with self.lock:
            now = self._now()
            pull = self.pulls[number]
            pull.update(state="closed", merged=True, merged_at=now, closed_at=now, updated_at=now)
            pull["merged_by"] = self._user(user)
            issue = self.issues[number]
            issue.update(state="closed", closed_at=now, updated_at=now)
            issue["pull_request"]["merged_at"] = now

    def close_pull(self, number: int) -> None:
        """A human closes pull request `number` without merging it."""
        with self.lock:
            now = self._now()
            self.pulls[number].update(state="closed", closed_at=now, updated_at=now)
            self.issues[number].update(state="closed", closed_at=now, updated_at=now)

    def comments_on(self, number: int) -> list[dict[str, Any]]:
        with self.lock:
            return [c for c in self.comments.values() if c["fake_number"] == number]

    # -- REST ---------------------------------------------------------------------------

    def routes(self) -> list[tuple[str, str, Callable[..., Answer]]]:
        """(method, path pattern below /repos/{owner}/{name}, handler) in match order."""
        return [
            ("GET", r"", self._get_repo),
            ("GET", r"/issues", self._list_issues),
            ("POST", r"/issues", self._create_issue),
            ("GET", r"/issues/comments", self._list_repo_comments),
            ("GET", r"/issues/comments/(\d+)", self._get_comment),
            ("PATCH", r"/issues/comments/(\d+)", self._edit_comment),
            ("GET", r"/issues/comments/(\d+)/reactions", self._list_reactions),
            ("POST", r"/issues/comments/(\d+)/reactions", self._react),
            ("GET", r"/issues/(\d+)", self._get_issue),
            ("PATCH", r"/issues/(\d+)", self._edit_issue),
            ("GET", r"/issues/(\d+)/comments", self._list_comments),
            ("POST", r"/issues/(\d+)/comments", self._create_comment),
            ("GET", r"/issues/(\d+)/labels", self._issue_labels),
            ("POST", r"/issues/(\d+)/labels", self._add_labels),
            ("GET", r"/labels", self._list_labels),
            ("POST", r"/labels", self._create_label),
            ("GET", r"/collaborators/([^/]+)/permission", self._permission),
            ("GET", r"/pulls", self._list_pulls),
            ("POST", r"/pulls", self._create_pull),
            ("GET", r"/pulls/(\d+)", self._get_pull),
            ("PATCH", r"/pulls/(\d+)", self._edit_pull),
            ("POST", r"/actions/workflows/([^/]+)/dispatches", self._dispatch),
            ("GET", r"/actions/workflows/([^/]+)/runs", self._list_workflow_runs),
            ("GET", r"/actions/runs", self._list_runs),
            ("GET", r"/actions/runs/(\d+)", self._get_run),
            ("POST", r"/actions/runs/(\d+)/cancel", self._cancel_run),
        ]

    def answer(self, request: Request, rest: str) -> Answer | None:
        """The answer to `request` for the path `rest` below this repository, or None
        when no route matches (the server then says 404)."""
        for method, pattern, handler in self.routes():
            match = re.fullmatch(pattern, rest)
            if match and method == request.method:
                with self.lock:
                    return handler(request, *match.groups())
        return None

    def _get_repo(self, _req: Request) -> Answer:
        owner, name = self.full_name.split("/")
        repo = _fixture("repo_example.json")
        text = json.dumps(repo).replace("octocat/Hello-World", self.full_name)
        repo = json.loads(text.replace(RECORDED_BASE, self.base))
        repo.update(name=name, full_name=self.full_name, default_branch=self.default_branch)
        repo["owner"]["login"] = owner
        return 200, repo

    def _list_issues(self, req: Request) -> Answer:
        state = req.query.get("state", "open")
        wanted = {x for x in req.query.get("labels", "").split(",") if x}
        found = [
            self._public(i)
            for i in self.issues.values()
            if (state == "all" or i["state"] == state)
            and wanted <= {label["name"] for label in i["labels"]}
            and (req.query.get("creator") in (None, i["user"]["login"]))
        ]
        key = "created_at" if req.query.get("sort") == "created" else "updated_at"
        if req.query.get("sort") in (None, "created", "updated"):
            found.sort(key=lambda i: (i[key], i["number"]), reverse=True)
            if req.query.get("direction") == "asc":
                found.reverse()
        return 200, found

    def _create_issue(self, req: Request) -> Answer:
        body = req.body or {}
        if not isinstance(body.get("title"), str) or not body["title"]:
            return _invalid("title", "missing_field")
        for name in body.get("labels") or []:
            self._label(name)
        issue = self._new_issue(
            body["title"], body.get("body") or "", body.get("labels") or [], req.user, "OWNER"
        )
        return 201, self._public(issue)

    def _get_issue(self, _req: Request, number: str) -> Answer:
        issue = self.issues.get(int(number))
        return (200, self._public(issue)) if issue else _not_found()

    def _edit_issue(self, req: Request, number: str) -> Answer:
        issue = self.issues.get(int(number))
        if issue is None:
            return _not_found()
        body = req.body or {}
        for key in ("title", "body", "state"):
            if key in body:
                issue[key] = body[key]
        if "labels" in body:
            issue["labels"] = [self._label(n) for n in body["labels"]]
        issue["updated_at"] = self._now()
        return 200, self._public(issue)

    def _list_comments(self, req: Request, number: str) -> Answer:
        if int(number) not in self.issues:
            return _not_found()
        since = req.query.get("since", "")
        found = [c for c in self.comments_on(int(number)) if c["updated_at"] >= since]
        return 200, [self._public(c) for c in found]

    def _list_repo_comments(self, req: Request) -> Answer:
        since = req.query.get("since", "")
        found = [self._public(c) for c in self.comments.values() if c["updated_at"] >= since]
        found.sort(key=lambda c: (c["created_at"], c["id"]))
        if req.query.get("direction") == "desc":
            found.reverse()
        return 200, found

    def _create_comment(self, req: Request, number: str) -> Answer:
        if int(number) not in self.issues:
            return _not_found()
        text = (req.body or {}).get("body")
        if not isinstance(text, str) or not text:
            return _invalid("body", "missing_field")
        # An app's bot (github-actions[bot]) is no member of the repository.
        association = "NONE" if req.user.endswith("[bot]") else "OWNER"
        return 201, self._public(self._new_comment(int(number), text, req.user, association))

    def _get_comment(self, _req: Request, cid: str) -> Answer:
        found = self.comments.get(int(cid))
        return (200, self._public(found)) if found else _not_found()

    def _edit_comment(self, req: Request, cid: str) -> Answer:
        found = self.comments.get(int(cid))
        if found is None:
            return _not_found()
        found["body"] = (req.body or {}).get("body", found["body"])
        found["updated_at"] = self._now()
        return 200, self._public(found)

    def _list_reactions(self, _req: Request, cid: str) -> Answer:
        if int(cid) not in self.comments:
            return _not_found()
        return 200, self.reactions.get(int(cid), [])

    def _react(self, req: Request, cid: str) -> Answer:
        if int(cid) not in self.comments:
            return _not_found()
        content = (req.body or {}).get("content")
        if content not in _REACTIONS:
            return _invalid("content", "invalid")
        mine = self.reactions.setdefault(int(cid), [])
        for had in mine:  # GitHub answers 200 with the same reaction: one per user and kind
            if had["user"]["login"] == req.user and had["content"] == content:
                return 200, had
        reaction = {
            "id": self._id(),
            "node_id": "REA_fake",
            "user": self._user(req.user),
            "content": content,
            "created_at": self._now(),
        }
        mine.append(reaction)
        return 201, reaction

    def _issue_labels(self, _req: Request, number: str) -> Answer:
        issue = self.issues.get(int(number))
        return (200, issue["labels"]) if issue else _not_found()

    def _add_labels(self, req: Request, number: str) -> Answer:
        issue = self.issues.get(int(number))
        if issue is None:
            return _not_found()
        names = req.body.get("labels") if isinstance(req.body, dict) else req.body
        for name in names or []:
            if name not in {label["name"] for label in issue["labels"]}:
                issue["labels"].append(self._label(name))
        return 200, issue["labels"]

    def _list_labels(self, _req: Request) -> Answer:
        return 200, list(self.labels.values())

    def _create_label(self, req: Request) -> Answer:
        name = (req.body or {}).get("name")
        if not isinstance(name, str) or not name:
            return _invalid("name", "missing_field")
        if name in self.labels:
            return _invalid("name", "already_exists")
        return 201, self._label(name, (req.body or {}).get("color", "ededed"))

    def _permission(self, _req: Request, login: str) -> Answer:
        permission = self.permissions.get(login, "none")
        return 200, {
            "permission": permission,
            "role_name": permission,
            "user": self._user(login),
        }

    def _list_pulls(self, req: Request) -> Answer:
        state = req.query.get("state", "open")
        head = req.query.get("head")
        found = [
            self._public(p)
            for p in self.pulls.values()
            if (state == "all" or p["state"] == state)
            and (head is None or p["head"]["label"] == head)
            and (req.query.get("base") in (None, p["base"]["ref"]))
        ]
        found.sort(key=lambda p: p["number"], reverse=True)
        return 200, found

    def _create_pull(self, req: Request) -> Answer:
        body = req.body or {}
        for key in ("title", "head", "base"):
            if not isinstance(body.get(key), str) or not body[key]:
                return _invalid(key, "missing_field")
        owner = self.full_name.split("/")[0]
        head = body["head"] if ":" in body["head"] else f"{owner}:{body['head']}"
        for pull in self.pulls.values():
            if pull["state"] == "open" and pull["head"]["label"] == head:
                return 422, {
                    "message": "Validation Failed",
                    "errors": [
                        {
                            "resource": "PullRequest",
                            "code": "custom",
                            "message": f"A pull request already exists for {head}.",
                        }
                    ],
                    "documentation_url": DOCS,
                }
        issue = self._new_issue(body["title"], body.get("body") or "", [], req.user, "OWNER")
        number = issue["number"]
        issue["pull_request"] = {
            "url": f"{self.api}/pulls/{number}",
            "html_url": f"{self.html}/pull/{number}",
            "diff_url": f"{self.html}/pull/{number}.diff",
            "patch_url": f"{self.html}/pull/{number}.patch",
            "merged_at": None,
        }
        issue["draft"] = bool(body.get("draft"))
        pull = json.loads(
            json.dumps(_fixture("pull_request_example.json"))
            .replace("octocat/Hello-World", self.full_name)
            .replace(RECORDED_BASE, self.base)
            .replace("/1347", f"/{number}")
        )
        pull.update(
            id=self._id(),
            number=number,
            state="open",
            title=body["title"],
            body=body.get("body") or "",
            draft=bool(body.get("draft")),
            user=self._user(req.user),
            labels=[],
            created_at=issue["created_at"],
            updated_at=issue["updated_at"],
            closed_at=None,
            merged_at=None,
            merged=False,
            mergeable=None,
            mergeable_state="unknown",
        )
        pull["head"] = {**pull["head"], "label": head, "ref": head.split(":", 1)[1]}
        pull["base"] = {**pull["base"], "label": f"{owner}:{body['base']}", "ref": body["base"]}
        self.pulls[number] = pull
        return 201, self._public(pull)

    def _get_pull(self, _req: Request, number: str) -> Answer:
        pull = self.pulls.get(int(number))
        return (200, self._public(pull)) if pull else _not_found()

    def _edit_pull(self, req: Request, number: str) -> Answer:
        pull = self.pulls.get(int(number))
        if pull is None:
            return _not_found()
        body = req.body or {}
        for key in ("title", "body", "state"):
            if key in body:
                pull[key] = self.issues[int(number)][key] = body[key]
        pull["updated_at"] = self.issues[int(number)]["updated_at"] = self._now()
        return 200, self._public(pull)

    def _dispatch(self, req: Request, workflow: str) -> Answer:
        if self.dispatch_failures:
            return self.dispatch_failures.pop(0)
        if workflow not in self.workflows:
            return _not_found()
        body = req.body or {}
        if not isinstance(body.get("ref"), str) or not body["ref"]:
            return _invalid("ref", "missing_field")
        inputs = body.get("inputs") or {}
        if not isinstance(inputs, dict) or len(inputs) > 10:
            return _invalid("inputs", "invalid")
        self.dispatches.append({"workflow": workflow, **copy.deepcopy(body)})
        run_id = self._id()
        now = self._now()
        self.runs[run_id] = {
            "id": run_id,
            "name": workflow.removesuffix(".yml").removesuffix(".yaml"),
            "node_id": "WFR_fake",
            "head_branch": body["ref"],
            "head_sha": "6dcb09b5b57875f334f61aebed695e2e4193db5e",
            "path": f".github/workflows/{workflow}",
            "display_title": inputs.get("worker", workflow),
            "run_number": len(self.runs) + 1,
            "run_attempt": 1,
            "event": "workflow_dispatch",
            "status": "queued",
            "conclusion": None,
            "workflow_id": 161335,
            "url": f"{self.api}/actions/runs/{run_id}",
            "html_url": f"{self.html}/actions/runs/{run_id}",
            "cancel_url": f"{self.api}/actions/runs/{run_id}/cancel",
            "created_at": now,
            "updated_at": now,
            "run_started_at": now,
            "actor": self._user(req.user),
            "triggering_actor": self._user(req.user),
            "inputs": copy.deepcopy(inputs),  # not in GitHub's payload: for tests only
        }
        return 204, None

    def _runs_payload(self, req: Request, runs: list[dict[str, Any]]) -> Answer:
        if "branch" in req.query:
            runs = [r for r in runs if r["head_branch"] == req.query["branch"]]
        if "event" in req.query:
            runs = [r for r in runs if r["event"] == req.query["event"]]
        if "status" in req.query:  # GitHub's `status` takes a status or a conclusion
            runs = [r for r in runs if req.query["status"] in (r["status"], r["conclusion"])]
        runs = sorted(runs, key=lambda r: r["id"], reverse=True)
        public = [{k: v for k, v in r.items() if k != "inputs"} for r in runs]
        return 200, {"total_count": len(public), "workflow_runs": public}

    def _list_workflow_runs(self, req: Request, workflow: str) -> Answer:
        runs = [r for r in self.runs.values() if r["path"].endswith(f"/{workflow}")]
        return self._runs_payload(req, runs)

    def _list_runs(self, req: Request) -> Answer:
        return self._runs_payload(req, list(self.runs.values()))

    def _get_run(self, _req: Request, run_id: str) -> Answer:
        run = self.runs.get(int(run_id))
        if run is None:
            return _not_found()
        return 200, {k: v for k, v in run.items() if k != "inputs"}

    def _cancel_run(self, _req: Request, run_id: str) -> Answer:
        run = self.runs.get(int(run_id))
        if run is None:
            return _not_found()
        if run["status"] == "completed":
            return 409, {"message": "Cannot cancel a workflow run that is completed."}
        self.cancelled.append(int(run_id))
        run.update(status="completed", conclusion="cancelled", updated_at=self._now())
        return 202, {}

    # -- building objects ---------------------------------------------------------------

    def _now(self) -> str:
        # A clock that moves one second per change: orders and `since` work, tests are exact.
        self._clock += 1
        minutes, seconds = divmod(self._clock, 60)
        hours, minutes = divmod(minutes, 60)
        return f"2026-12-06T{hours % 24:02d}:{minutes:02d}:{seconds:02d}Z"

    def _id(self) -> int:
        self._ids += 1
        return self._ids

    def _user(self, login: str) -> dict[str, Any]:
        return user(login, self.base)

    def _label(self, name: str, color: str = "ededed") -> dict[str, Any]:
        if name not in self.labels:
            self.labels[name] = {
                "id": self._id(),
                "node_id": "LA_fake",
                "url": f"{self.api}/labels/{name}",
                "name": name,
                "color": color,
                "default": False,
                "description": None,
            }
        return self.labels[name]

    def _new_issue(
        self, title: str, body: str, labels: list[str], user: str, association: str
    ) -> dict[str, Any]:
        number = max([*self.issues, 0]) + 1
        issue = json.loads(
            json.dumps(_fixture("issue_example.json"))
            .replace("octocat/Hello-World", self.full_name)
            .replace(RECORDED_BASE, self.base)
            .replace("/1347", f"/{number}")
        )
        now = self._now()
        issue.update(
            id=self._id(),
            number=number,
            title=title,
            body=body,
            body_text=body,
            body_html=body,
            state="open",
            user=self._user(user),
            labels=[self._label(n) for n in labels],
            author_association=association,
            comments=0,
            created_at=now,
            updated_at=now,
            closed_at=None,
            closed_by=None,
            pull_request=None,
        )
        del issue["pull_request"]
        self.issues[number] = issue
        return issue

    def _new_comment(self, number: int, body: str, user: str, association: str) -> dict[str, Any]:
        cid = self._id()
        now = self._now()
        found = json.loads(json.dumps(_fixture("comment_example.json")).replace(RECORDED_BASE, ""))
        found.update(
            id=cid,
            body=body,
            body_text=body,
            body_html=body,
            author_association=association,
            user=self._user(user),
            created_at=now,
            updated_at=now,
            url=f"{self.api}/issues/comments/{cid}",
            html_url=f"{self.html}/issues/{number}#issuecomment-{cid}",
            issue_url=f"{self.api}/issues/{number}",
            fake_number=number,
        )
        for key in ("path", "position", "line", "commit_id"):
            found.pop(key, None)
        self.comments[cid] = found
        self.issues[number]["comments"] += 1
        self.issues[number]["updated_at"] = now
        return found

    def _public(self, obj: dict[str, Any]) -> dict[str, Any]:
        return {k: copy.deepcopy(v) for k, v in obj.items() if not k.startswith("fake_")}


def user(login: str, base_url: str) -> dict[str, Any]:
    """A whole user object for `login`."""
    found: dict[str, Any] = json.loads(
        json.dumps(_fixture("user_example.json"))
        .replace("octocat", login)
        .replace(RECORDED_BASE, base_url)
    )
    found["id"] = sum(map(ord, login))
    found["type"] = "Bot" if login.endswith("[bot]") else "User"
    return found


def _not_found() -> Answer:
    return 404, {"message": "Not Found", "documentation_url": DOCS}


def _invalid(field: str, code: str) -> Answer:
    return 422, {
        "message": "Validation Failed",
        "errors": [{"resource": "Issue", "field": field, "code": code}],
        "documentation_url": DOCS,
    }


def writer(association: str) -> bool:
    """Whether GitHub's author association means write access (for test expectations)."""
    return association in _WRITERS
