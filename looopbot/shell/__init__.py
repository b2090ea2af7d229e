"""run_shell's deny-list (DESIGN §6): commands refused unless the operator sets
`limits.allow_dangerous_shell` — sudo, rm -rf of / or ~, force-push to main/master, a download
piped to a shell, mkfs, dd or a redirect to a disk device, shutdown/reboot, a fork bomb,
merging a pull request.

A deny-list is a speed bump, not a sandbox: it catches a confused decider, not a determined
one (a script written to a file and run next beat is out of its sight). The real switch is
`limits.allowed_actions`: leave run_shell out of it (e.g. in CI) and no command runs at all.

It works on a parsed command, not on its text: tree-sitter-bash (MIT) gives the syntax tree;
quotes and escapes are removed as bash would, wrappers (env, timeout, xargs, sudo …) are peeled
off, and `sh -c`/`eval` strings, substitutions, subshells and functions are followed. What it
cannot parse, or whose command name is only known when it runs (`$X -rf /`), it refuses.
bashlex was the other parser; it is GPL-3 and unmaintained since 2023.
"""

from __future__ import annotations


def denied(cmd: str) -> str | None:
    """The reason `cmd` is refused, or None."""
    # Imported here: tree-sitter loads a compiled grammar, which an unchanged beat (no
    # run_shell) must not pay for.
    from looopbot.shell.rules import UNKNOWABLE, reason
    from looopbot.shell.syntax import Refusal, programs

    try:
        found = programs(cmd)
    except Refusal as refusal:
        return str(refusal)
    except RecursionError:  # `$($($(…)))` thousands deep
        return "cannot parse: nested too deeply"
    reasons = [why for ran in found if (why := reason(ran.program, ran.fed)) is not None]
    # `\`reboot\`` runs reboot and then a command named by its output: say reboot.
    known = [why for why in reasons if why not in UNKNOWABLE]
    return (known or reasons)[0] if reasons else None
