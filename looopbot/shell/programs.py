"""What a simple command really runs, from its words alone: wrappers (`env`, `timeout`, `sudo`
…) peeled off with their options, and the command strings it hands to a shell (`sh -c`,
`eval`, `env -S`, `alias`, `trap`, `watch`) for the caller to parse in turn."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

# Stand-ins for what only bash knows when it runs: a word's expansion (`$X`, `$(…)`), and
# `$HOME`/`${HOME}` kept apart so that `rm -rf "$HOME"/` is still recognised. The C1 controls
# PU1/PU2 ("private use"): no real command contains them, tree-sitter reads them as word
# characters when a command string carrying them is parsed again, and they are below U+0100
# (see syntax.LATIN1).
UNKNOWN = "\x91"
HOME = "\x92"

SHELLS = frozenset(
    {"sh", "bash", "rbash", "zsh", "dash", "ksh", "mksh", "pdksh", "ash", "fish", "csh", "tcsh"}
    | {"yash", "posh"}
)
# Commands that run what they read, which makes them the wrong end of a pipe from a download.
SHELL_READERS = SHELLS | {"eval", "source", "."}
DOWNLOADS = frozenset({"curl", "wget"})
PRIVILEGED = frozenset({"sudo", "doas", "su", "pkexec", "run0"})


@dataclass(frozen=True)
class Options:
    """How a command spells its options, enough to find where its operands start."""

    takes_value: str = ""  # short options with a value: `-n 5` or `-n5`
    long_values: frozenset[str] = frozenset()  # long options with a value: `--signal KILL`
    operands: int = 0  # operands before the wrapped command (timeout's duration)
    assignments: bool = False  # NAME=VALUE words before the wrapped command (env, sudo)
    inert: str = ""  # a short option that means the command is not run (`command -v`)
    plus: bool = False  # `+o name` is an option too (shells)


def _long(*names: str) -> frozenset[str]:
    return frozenset(f"--{name}" for name in names)


WRAPPERS: dict[str, Options] = {
    "env": Options("uCSP", _long("unset", "chdir", "split-string"), assignments=True),
    "nice": Options("n", _long("adjustment")),
    "nohup": Options(),
    "timeout": Options("sk", _long("signal", "kill-after"), operands=1),
    "xargs": Options(
        "adEILnPs",
        _long("arg-file", "delimiter", "max-args", "max-procs", "max-chars", "process-slot-var"),
    ),
    "command": Options(inert="vV"),
    "builtin": Options(),
    "exec": Options("a"),
    "time": Options("fo", _long("format", "output")),
    "stdbuf": Options("ioe", _long("input", "output", "error")),
    "busybox": Options(),
    "setsid": Options(),
    "ionice": Options("cnpPu", _long("class", "classdata", "pid", "pgid", "uid")),
    "unbuffer": Options(),
    "coproc": Options(),
    "sudo": Options(
        "ugCDprtTUR",
        _long("user", "group", "close-from", "chdir", "prompt", "role", "type", "other-user"),
        assignments=True,
    ),
    "doas": Options("uC"),
    "pkexec": Options("", _long("user")),
    "run0": Options("uDg", _long("user", "chdir", "group", "description", "slice", "setenv")),
}
_SHELL_OPTIONS = Options("oO", _long("rcfile", "init-file"), plus=True)
_FISH_OPTIONS = Options("Cc", _long("init-command", "command"))
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")


@dataclass(frozen=True)
class Program:
    """A simple command with its wrappers peeled off. `argv` is empty when nothing runs
    (`command -v sudo`, `env` alone) or when what runs is in `scripts`."""

    argv: tuple[str, ...]
    privileged: bool = False  # reached through sudo, doas, su …
    scripts: tuple[str, ...] = ()  # command strings it runs: parse them as shell too
    execs: tuple[tuple[str, ...], ...] = field(default=())  # commands it runs: find -exec

    @property
    def name(self) -> str:
        """The basename bash would look up (`/usr/bin/sudo` runs sudo), lower-cased because a
        case-insensitive file system (macOS) finds `SUDO` too."""
        return self.argv[0].rsplit("/", 1)[-1].lower() if self.argv else ""


def parse_options(args: Sequence[str], spec: Options) -> tuple[int, set[str], dict[str, str]]:
    """Where the operands start in `args`, the flags seen, and the values of options that take
    one (keyed `-x` or `--long`). Stops at `--` or the first operand, as getopt does with
    POSIXLY_CORRECT — which is how every wrapper here reads its own options."""
    flags: set[str] = set()
    values: dict[str, str] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            return i + 1, flags, values
        if spec.assignments and _ASSIGNMENT.match(arg):
            i += 1
        elif arg.startswith("--"):
            name, eq, value = arg.partition("=")
            if not eq and name in spec.long_values and i + 1 < len(args):
                i, value = i + 1, args[i + 1]
            flags.add(name)
            values[name] = value
            i += 1
        elif len(arg) > 1 and (arg[0] == "-" or (spec.plus and arg[0] == "+")):
            for j, ch in enumerate(arg[1:], start=2):
                flags.add(f"-{ch}")
                if ch in spec.takes_value:
                    value = arg[j:]
                    if not value and i + 1 < len(args):
                        i, value = i + 1, args[i + 1]
                    values[f"-{ch}"] = value
                    break
            i += 1
        elif arg == "-" and spec.assignments:  # `env -` is `env -i`
            i += 1
        else:
            break
    return i, flags, values


def permuted(args: Sequence[str], spec: Options) -> tuple[list[str], set[str]]:
    """Operands and flags of a command that, like GNU getopt, reads options after operands too
    (`git push origin main -f`)."""
    operands: list[str] = []
    flags: set[str] = set()
    i = 0
    while i < len(args):
        start, seen, _ = parse_options(args[i:], spec)
        flags |= seen
        if start and args[i + start - 1] == "--":  # all operands after it
            return operands + list(args[i + start :]), flags
        i += start
        if i < len(args):
            operands.append(args[i])
            i += 1
    return operands, flags


def resolve(argv: Sequence[str]) -> Program:
    """The program `argv` really runs, through any chain of wrappers."""
    words = tuple(argv)
    privileged = False
    while words:
        name = Program(words).name
        spec = WRAPPERS.get(name)
        if spec is None:
            break
        privileged = privileged or name in PRIVILEGED
        start, flags, values = parse_options(words[1:], spec)
        if any(f"-{ch}" in flags for ch in spec.inert):
            return Program((), privileged)
        split = values.get("-S", values.get("--split-string"))
        rest = words[1 + start + spec.operands :]
        if name == "env" and split is not None:
            # `env -S 'sudo ls'` splits the string into words itself: read it as shell words.
            return Program((), privileged, (" ".join([split, *map(_quote, rest)]),))
        words = rest
    if Program(words).name in {"su", "watch"}:
        return _string_runner(words, privileged)
    return Program(words, privileged, _scripts(words), _find_execs(words))


def _string_runner(words: tuple[str, ...], privileged: bool) -> Program:
    """`su [user] -c CMD` and `watch [options] CMD…` run a command string through a shell."""
    if Program(words).name == "su":
        _, _, values = parse_options(words[1:], Options("cgsG", _long("command", "shell")))
        script = values.get("-c", values.get("--command"))
        return Program(words, True, () if script is None else (script,))
    start, _, _ = parse_options(words[1:], Options("nd", _long("interval")))
    return Program(words, privileged, (" ".join(words[1 + start :]),))


def _scripts(words: tuple[str, ...]) -> tuple[str, ...]:
    """The command strings a shell, `eval`, `alias` or `trap` will run."""
    name, args = Program(words).name, words[1:]
    if name in SHELLS:
        spec = _FISH_OPTIONS if name == "fish" else _SHELL_OPTIONS
        start, flags, values = parse_options(args, spec)
        scripts = [v for k, v in values.items() if k in {"-c", "-C", "--command", "--init-command"}]
        if "-c" in flags and "-c" not in values and start < len(args):
            scripts.append(args[start])  # `bash -c STRING [name args…]`, also `bash -ec …`
        return tuple(scripts)
    if name == "eval":
        return (" ".join(args),) if args else ()
    if name == "alias":  # an alias is a command string for later lines to run
        return tuple(a.partition("=")[2] for a in args if _ASSIGNMENT.match(a))
    if name == "trap":  # `trap [--] CMD SIGNAL…`
        args = args[1:] if args[:1] == ("--",) else args
        return (args[0],) if args and args[0] not in {"-", "-l", "-p"} else ()
    return ()


def _find_execs(words: tuple[str, ...]) -> tuple[tuple[str, ...], ...]:
    """`find … -exec CMD ARGS… ;` (or `+`, or -execdir/-ok/-okdir) runs CMD."""
    if Program(words).name != "find":
        return ()
    found: list[tuple[str, ...]] = []
    i = 0
    while i < len(words):
        if words[i] in {"-exec", "-execdir", "-ok", "-okdir"}:
            end = i + 1
            while end < len(words) and words[end] not in {";", "+"}:
                end += 1
            found.append(words[i + 1 : end])
            i = end
        i += 1
    return tuple(found)


def _quote(word: str) -> str:
    return "'" + word.replace("'", "'\\''") + "'"
