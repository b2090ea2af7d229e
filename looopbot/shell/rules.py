"""The deny-list proper: one program (wrappers already peeled off) → the reason it is refused."""

from __future__ import annotations

import posixpath
import re

from looopbot.shell.programs import (
    HOME,
    SHELL_READERS,
    UNKNOWN,
    Options,
    Program,
    permuted,
)

MERGE = "merging a pull request (a human's act)"
VARIABLE = "the command name is a variable"
PATTERN = "the command name is a pattern"
UNKNOWABLE = frozenset({VARIABLE, PATTERN})  # reasons a more specific one outranks
_PATTERN = re.compile(r"[*?]|\[.*\]|\{.*\}")
_POWER = frozenset({"shutdown", "reboot", "poweroff", "halt"})
_SYSTEMCTL_POWER = frozenset({"reboot", "poweroff", "halt", "kexec", "soft-reboot"})
_SYSTEMCTL = Options(
    "HMtpsnoP",
    frozenset({"--host", "--machine", "--type", "--property", "--signal", "--lines", "--output"})
    | {"--root", "--kill-whom", "--state", "--job-mode", "--message", "--when"},
)
_MAIN = frozenset({"main", "master", "HEAD", "@"})
# git's own options before the subcommand that take a separate value (`git -C dir push`).
_GIT_VALUES = frozenset({"-C", "-c", "--git-dir", "--work-tree", "--namespace", "--config-env"})
_PUSH = Options("o", frozenset({"--repo", "--receive-pack", "--exec", "--push-option"}))
# Devices a command may write to: the bit buckets and streams, not a disk.
_MERGE_ENDPOINT = re.compile(r"/pulls/[^/\s]+/merge\b")
_HARMLESS_DEVICE = re.compile(r"/dev/(?:null|zero|full|stdout|stderr|stdin|tty|fd/.*|pts/.*)")


def reason(program: Program, fed: bool) -> str | None:
    """Why this program must not run, or None."""
    if not program.argv:
        return "sudo" if program.privileged else None
    head, name, args = program.argv[0], program.name, program.argv[1:]
    if UNKNOWN in head or HOME in head:
        return VARIABLE
    if _PATTERN.search(head):
        return PATTERN
    if fed and name in SHELL_READERS:
        return "download piped to a shell"
    if name == "rm" and _rm_root(args):
        return "rm -rf of / or ~"
    if name == "git" and _force_push_to_main(args):
        return "force-push to main/master"
    if _merges_a_pull_request(name, args):
        return MERGE
    if name == "mkfs" or name.startswith("mkfs.") or name == "mke2fs":
        return "mkfs"
    if name == "dd" and any(a.startswith("of=") and is_device(a[3:]) for a in args):
        return "dd to a device"
    if (
        name in _POWER
        or (name == "systemctl" and _systemctl_power(args))
        or (name in {"init", "telinit"} and {"0", "6"}.intersection(args))
    ):
        return "shutdown/reboot"
    return "sudo" if program.privileged else None


def _merges_a_pull_request(name: str, args: tuple[str, ...]) -> bool:
    """`gh pr merge`, or GitHub's merge endpoint named to any client (`gh api`, curl…):
    looopbot never merges — a merged pull request is the human's approval (DESIGN §10)."""
    if name == "gh":
        words = [a for a in args if not a.startswith("-")]
        if words[:2] == ["pr", "merge"]:
            return True
    return any(_MERGE_ENDPOINT.search(a) for a in args)


def is_device(path: str) -> bool:
    """A path under /dev that is not a stream or bit bucket (`//dev/./sda` counts)."""
    if path.startswith("/"):
        path = "/" + posixpath.normpath(path).lstrip("/")
    return path.startswith("/dev/") and not _HARMLESS_DEVICE.fullmatch(path)


def _systemctl_power(args: tuple[str, ...]) -> bool:
    """`systemctl reboot` and friends, or starting their targets (`start reboot.target`)."""
    operands, _ = permuted(args, _SYSTEMCTL)
    if not operands:
        return False
    verb, units = operands[0], operands[1:]
    targets = {f"{power}.target" for power in _SYSTEMCTL_POWER}
    return verb in _SYSTEMCTL_POWER or (
        verb in {"start", "isolate", "restart"} and bool(targets.intersection(units))
    )


def _rm_root(args: tuple[str, ...]) -> bool:
    """rm recursive on / or ~ (however spelt), or with --no-preserve-root. GNU rm reads
    options after operands too (`rm / -rf`), and long options by any unique prefix."""
    recursive = unguarded = False
    targets: list[str] = []
    options = True
    for arg in args:
        if options and arg == "--":
            options = False
        elif options and arg.startswith("--"):
            recursive = recursive or (len(arg) >= 3 and "--recursive".startswith(arg))
            unguarded = unguarded or (len(arg) >= 4 and "--no-preserve-root".startswith(arg))
        elif options and len(arg) > 1 and arg.startswith("-"):
            recursive = recursive or "r" in arg or "R" in arg
        else:
            targets.append(arg)
    return recursive and (unguarded or any(_is_root_or_home(t) for t in targets))


def _is_root_or_home(target: str) -> bool:
    """/, ~ and everything in them: `//`, `/.`, `/usr/..`, `/*`, `~/`, `"$HOME"/*` …"""
    path = target.replace(HOME, "~")
    if UNKNOWN in path:
        return False
    for glob in ("/*", "/.*"):
        if path.endswith(glob):
            path = path[: -len(glob)] or "/"
    if path == "~" or path.startswith("~/"):
        path = "/~" + path[1:]  # home as a folder of its own, so `~/..` is / too
    if not path.startswith("/"):
        return False
    return posixpath.normpath("/" + path.lstrip("/")) in {"/", "/~"}


def _force_push_to_main(args: tuple[str, ...]) -> bool:
    """`git push` forcing main or master: -f in any cluster, --force, --force-with-lease,
    --mirror, a `+` refspec, HEAD, or no refspec at all (it pushes the current branch)."""
    i = 0
    while i < len(args) and args[i].startswith("-"):
        i += 2 if args[i] in _GIT_VALUES else 1
    if i >= len(args) or args[i] != "push":
        return False
    operands, flags = permuted(args[i + 1 :], _PUSH)
    force = bool({"-f", "--force", "--force-with-lease"} & flags)
    # --mirror force-updates every ref; --all with force includes main.
    if "--mirror" in flags or (force and ({"--all", "--branches"} & flags or len(operands) <= 1)):
        return True
    return any(
        (force or spec.startswith("+")) and _names_main(spec.removeprefix("+"))
        for spec in operands[1:]
    )


def _names_main(refspec: str) -> bool:
    """The branch a refspec updates is main, master, or the current one (HEAD)."""
    src, colon, dst = refspec.partition(":")
    branch = dst if colon else src
    return UNKNOWN in branch or HOME in branch or branch.removeprefix("refs/heads/") in _MAIN
