"""run_shell's deny-list (DESIGN §6): commands that are never run unless the operator sets
`limits.allow_dangerous_shell`. It is a seat belt against a confused decider, not a sandbox:
the real guard is that irreversible moves go to a human."""

from __future__ import annotations

import re

_ROOTISH = r"(?:/|/\*|~|~/|~/\*|\$HOME|\$\{HOME\}|\"\$HOME\"|/\.\*?)"
_DENY: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (why, re.compile(pattern))
    for why, pattern in (
        ("sudo", r"(?:^|[\s;&|(`$])sudo\b"),
        (
            "rm -rf of / or ~",
            r"\brm\s+(?:-{1,2}[\w-]+\s+)*-[a-zA-Z]*[rR][a-zA-Z]*\s+(?:-{1,2}[\w-]+\s+)*"
            + _ROOTISH
            + r"(?:\s|$|;|&|\|)",
        ),
        (
            "rm -rf of / or ~",
            r"\brm\s+(?:-{1,2}[\w-]+\s+)*--recursive\b.*\s" + _ROOTISH + r"(?:\s|$|;|&|\|)",
        ),
        (
            "force-push to main/master",
            r"\bgit\b[^;&|]*\bpush\b[^;&|]*(?:\s(?:-f|--force|--force-with-lease)(?:=\S*)?\b"
            r"[^;&|]*\b(?:main|master)\b|\s\+(?:refs/heads/)?(?:main|master)\b"
            r"|\b(?:main|master)\b[^;&|]*\s(?:-f|--force)\b)",
        ),
        (
            "curl/wget piped to a shell",
            r"\b(?:curl|wget)\b[^|;&]*\|\s*(?:sudo\s+)?(?:env\s+)?(?:ba|z|da|k|fi)?sh\b",
        ),
        ("mkfs", r"\bmkfs(?:\.\w+)?\b"),
        ("dd to a device", r"\bdd\b[^;&|]*\bof=/dev/"),
        ("shutdown/reboot", r"(?:^|[\s;&|(])(?:shutdown|reboot|poweroff|halt)\b"),
        ("shutdown/reboot", r"(?:^|[\s;&|(])(?:init|telinit)\s+[06]\b"),
        ("fork bomb", r":\s*\(\s*\)\s*\{[^}]*:\s*\|\s*:"),
        ("overwriting a disk device", r">\s*/dev/(?:sd|nvme|hd|vd|xvd|mmcblk)"),
    )
)


def denied(cmd: str) -> str | None:
    """The reason `cmd` is refused, or None."""
    for why, pattern in _DENY:
        if pattern.search(cmd):
            return why
    return None
