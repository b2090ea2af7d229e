"""Built-in runner presets (DESIGN §6). A `runners.<name>` entry in looopbot.yaml overrides
any of these fields. `tick` runs under `bash -c` with the prompt on stdin and must leave one
decision (a file or JSON on stdout); `worker` gets `{prompt_file}` substituted.

Every flag was checked against the real CLI's `--help` and a real non-interactive run:
claude-code 2.1.197 (the last release that runs on node 20), codex 0.169.0, gemini-cli
0.61.0, pi-coding-agent 0.73.1. Notes from those runs:
- claude: `-p --output-format json` prints one result event; with no login it prints
  `{"type":"result","is_error":true,"result":"Not logged in · Please run /login",…}` and
  exits 1. `stream-json` needs `--verbose`. `--dangerously-skip-permissions` refuses to run
  as root unless IS_SANDBOX=1.
- codex: `exec -` reads the prompt from stdin; `--json` prints JSONL events; outside a git
  repo it needs `--skip-git-repo-check`; it reports tokens, not dollars (no cost preset:
  with a budget set, give it a `cost:` spec or the budget fails closed).
- gemini: headless runs need `--skip-trust` (else exit 55); errors come as JSON on stderr;
  it reports tokens, not dollars.
- pi: `-p --mode json` prints JSONL events; cost is the sum of assistant `message_end`
  events' `message.usage.cost.total`; an API error still exits 0 with stopReason "error".
- opencode (opencode-ai 1.18.33): `run --format json` reads the message from stdin when no
  positional is given and prints JSONL events; each `step_finish` event's `part.cost` is
  that step's USD, so cost is their sum. `--auto` approves tool permissions (workers only).
  An API error comes, after opencode's own retries, as one `{"type":"error","error":
  {"name":"APIError","data":{"message","statusCode","isRetryable"}}}` line and exit 1.
  Offline it retries its provider for ever, printing nothing: limits.tick_timeout ends it.

`retry_match` is the transient failure of each CLI (rate limits, overload) as its output
shows it; anything else is not retried.
"""

from __future__ import annotations

from typing import Any, NamedTuple

# Rate limits and overload, as HTTP codes and as the APIs' error names.
RETRY_MATCH = r"(?i)rate.?limit|overloaded|too many requests|resource.?exhausted|\b(429|529)\b"

PRESETS: dict[str, dict[str, Any]] = {
    "claude": {
        "tick": "claude -p --output-format json",
        "worker": (
            "claude -p --dangerously-skip-permissions --output-format stream-json --verbose"
            " < {prompt_file}"
        ),
        "cost": {"type": "result", "pointer": "/total_cost_usd", "mode": "total"},
        # Anthropic's API: 429 rate_limit_error, 529 overloaded_error.
        "retry_match": r"(?i)rate_limit_error|overloaded_error|rate limit|\b(429|529)\b",
    },
    "codex": {
        "tick": "codex exec --json --skip-git-repo-check --ephemeral -",
        "worker": (
            "codex exec --json --skip-git-repo-check --dangerously-bypass-approvals-and-sandbox"
            " - < {prompt_file}"
        ),
        "cost": None,
        "retry_match": r"(?i)\b429\b|too many requests|rate.?limit|overloaded|server_error",
    },
    "gemini": {
        "tick": 'gemini -p "" --output-format json --skip-trust',
        "worker": 'gemini --yolo --skip-trust -p "" --output-format stream-json < {prompt_file}',
        "cost": None,
        # Google's API: 429 RESOURCE_EXHAUSTED, 503 UNAVAILABLE ("model is overloaded").
        "retry_match": r"(?i)RESOURCE_EXHAUSTED|\b(429|503)\b|overloaded|rate.?limit",
    },
    "pi": {
        "tick": "pi -p --mode json --no-session",
        "worker": "pi -p --mode json < {prompt_file}",
        "cost": {"type": "message_end", "pointer": "/message/usage/cost/total", "mode": "sum"},
    },
    "opencode": {
        "tick": "opencode run --format json",
        "worker": "opencode run --format json --auto < {prompt_file}",
        "cost": {"type": "step_finish", "pointer": "/part/cost", "mode": "sum"},
        # Its error event says whether the provider's error is retryable (429, 529…).
        "retry_match": r'"isRetryable":\s*true|rate_limit_error|overloaded_error',
    },
    # The offline example decider shipped with looopbot: for trying the loop, not deciding.
    "example": {
        "tick": '"$LOOOPBOT_BIN" example-decider',
        "worker": '"$LOOOPBOT_BIN" example-decider --worker {prompt_file}',
        "cost": None,
    },
}


class CliInstall(NamedTuple):
    """How a preset's CLI gets onto a fresh machine (the GitHub Actions workflow): the npm
    package pinned to the version checked above, and the API key it reads — the secret's
    name in the repo and the environment variable the CLI wants it in."""

    package: str
    secret: str
    env: str


CLI: dict[str, CliInstall] = {
    "claude": CliInstall(
        "@anthropic-ai/claude-code@2.1.197", "ANTHROPIC_API_KEY", "ANTHROPIC_API_KEY"
    ),
    # `codex exec` reads its key from CODEX_API_KEY; the secret keeps OpenAI's usual name.
    "codex": CliInstall("@openai/codex@0.169.0", "OPENAI_API_KEY", "CODEX_API_KEY"),
    "gemini": CliInstall("@google/gemini-cli@0.61.0", "GEMINI_API_KEY", "GEMINI_API_KEY"),
    # pi reads the key of its provider; Anthropic is its default.
    "pi": CliInstall(
        "@mariozechner/pi-coding-agent@0.73.1", "ANTHROPIC_API_KEY", "ANTHROPIC_API_KEY"
    ),
    # opencode reads the key of each provider it is given; pick the model with `-m`.
    "opencode": CliInstall("opencode-ai@1.18.33", "ANTHROPIC_API_KEY", "ANTHROPIC_API_KEY"),
    # `example` ships inside looopbot: nothing to install, no key.
}
