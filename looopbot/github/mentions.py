"""Comments that mention the bot (`@<github.mention>`) on the repository's issues and PRs.

The handle is a setting, not asked of GitHub: the Actions GITHUB_TOKEN cannot call
`GET /user`, and a personal token's login is its human's — a mention of them is not
necessarily for the bot. The newest 100 comments (page 1, newest first) are read every beat;
the ids of the newest mentions among them are the signal. No time window: a mention stays
in the signal until newer ones push it out, so time passing changes nothing.
"""

from __future__ import annotations

import re
from typing import Any

from looopbot.github.conditional import Reader
from looopbot.text import one_line

# GitHub's mention: `@login` not inside a word, an e-mail address or a path; the login runs
# as far as its characters go, so `@bot-x` mentions bot-x, not bot.
_MENTION = re.compile(r"(?<![\w@./-])@([A-Za-z0-9][A-Za-z0-9-]*(?:\[bot\])?)(?![\w-])")
KEEP = 10  # the newest mentions in the signal
_TEXT_CAP = 500


def read(reader: Reader, repo: str, handle: str) -> list[dict[str, Any]]:
    """The newest mentions of `@handle`, newest first, each `{id, author, association,
    issue, url, created_at, text}`."""
    url = reader.url(
        f"/repos/{repo}/issues/comments", sort="created", direction="desc", per_page=100
    )
    me = handle.lower()
    found = [
        {k: v for k, v in c.items() if k != "mentions"}
        for c in reader.one(url, _comments)
        if me in c["mentions"] and c["author"].lower() != me  # not its own words
    ]
    return sorted(found, key=lambda c: (c["created_at"], c["id"]), reverse=True)[:KEEP]


def mentioned(text: str) -> list[str]:
    """The logins `text` mentions, lower-cased, sorted."""
    return sorted({m.lower() for m in _MENTION.findall(text)})


def _comments(body: Any, gh: Any) -> list[dict[str, Any]]:
    from github3.issues.comment import IssueComment

    out = []
    for raw in body:
        comment = IssueComment(raw, gh)  # github3 checks the shape
        out.append(
            {
                "id": comment.id,
                "author": comment.user.login,
                "association": comment.author_association,
                "issue": int(comment.issue_url.rstrip("/").rsplit("/", 1)[-1]),
                "url": comment.html_url,
                "created_at": raw["created_at"],
                # Who it mentions, not whom we look for: the cache outlives a changed
                # github.mention, and the whole body counts while only its start is kept.
                "mentions": mentioned(comment.body or ""),
                "text": one_line(comment.body or "", _TEXT_CAP),
            }
        )
    return out
