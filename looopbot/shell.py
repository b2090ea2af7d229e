"""run_shell's deny-list (DESIGN §6): commands that are never run unless the operator sets
`limits.allow_dangerous_shell`. It is a seat belt against a confused decider, not a sandbox:
the real guard is that irreversible moves go to a human."""

from __future__ import annotations

import re
import shlex

# / or ~ or $HOME, with or without a trailing slash, quotes, or a glob of everything in it.
_ROOTISH = r"(?:/|\"?(?:~|\$HOME|\$\{HOME\})/?\"?)(?:\*|\.\*?)?"
# A branch that is main or master itself (not feature/main-fix, not mainline).
_MAIN = r"(?:refs/heads/)?(?:main|master)(?=$|[\s;&|)])"
_FORCE = r"(?:-f|--force(?:-with-lease)?(?:=\S*)?)(?=$|\s)"
# Where a command starts: a command word there is run, the same word as an argument is not
# (`grep reboot notes.md` is fine).
_CMD = r"(?:^|[;&|(`\n]|\$\()\s*(?:(?:sudo|exec|nohup|env|command|time)\s+(?:-\S+\s+)*)*"
_CMD += r"(?:/usr)?(?:/s?bin/)?"
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
            rf"\bgit\b[^;&|]*\bpush\b(?:[^;&|]*\s{_FORCE}[^;&|]*[\s:]{_MAIN}"
            rf"|[^;&|]*\s\+(?:[^\s:]*:)?{_MAIN}"
            rf"|[^;&|]*[\s:]{_MAIN}[^;&|]*\s{_FORCE})",
        ),
        (
            "curl/wget piped to a shell",
            r"\b(?:curl|wget)\b[^|;&]*\|\s*(?:sudo\s+)?(?:env\s+)?(?:ba|z|da|k|fi)?sh\b",
        ),
        ("mkfs", r"\bmkfs(?:\.\w+)?\b"),
        ("dd to a device", r"\bdd\b[^;&|]*\bof=/dev/"),
        ("shutdown/reboot", _CMD + r"(?:shutdown|reboot|poweroff|halt)(?=$|[\s;&|)`])"),
        ("shutdown/reboot", r"\bsystemctl\s+(?:-\S+\s+)*(?:reboot|poweroff|halt|kexec)\b"),
        ("shutdown/reboot", _CMD + r"(?:init|telinit)\s+[06](?=$|[\s;&|)`])"),
        ("fork bomb", r":\s*\(\s*\)\s*\{[^}]*:\s*\|\s*:"),
        ("overwriting a disk device", r">\s*/dev/(?:sd|nvme|hd|vd|xvd|mmcblk)"),
    )
)


def _bare_force_push(cmd: str) -> bool:
    """`git push --force [remote]` names no branch, so it force-pushes the current one —
    in a data repo, usually main."""
    for segment in re.split(r"[;&|\n]+", cmd):
        try:
            words = shlex.split(segment)
        except ValueError:
            words = segment.split()
        if "git" not in words or "push" not in words[words.index("git") :]:
            continue
        after = words[words.index("push", words.index("git")) + 1 :]
        forced = any(re.fullmatch(_FORCE, w) for w in after)
        positional = [w for w in after if not w.startswith("-")]
        if forced and len(positional) <= 1:
            return True
    return False


def denied(cmd: str) -> str | None:
    """The reason `cmd` is refused, or None."""
    for why, pattern in _DENY:
        if pattern.search(cmd):
            return why
    if _bare_force_push(cmd):
        return "force-push to main/master"
    return None
