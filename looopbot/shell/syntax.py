"""From a bash command line to the programs it runs, on tree-sitter-bash's syntax tree: word
values with quotes and escapes removed, every place a command can hide (substitutions,
subshells, compound commands, functions, heredocs fed to a shell, `sh -c`/`eval` strings
parsed again), and which programs read the output of a download."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from functools import cache

from tree_sitter import Language, Node, Parser

from looopbot.shell.programs import (
    DOWNLOADS,
    HOME,
    SHELL_READERS,
    UNKNOWN,
    Program,
    resolve,
)
from looopbot.shell.rules import is_device

# `bash -c "bash -c '…'"` may nest; past this depth the string is refused, not followed.
MAX_DEPTH = 4
# tree-sitter-bash 0.25.1's scanner calls isdigit() on the character after `{` (brace_start),
# which is undefined past U+00FF and segfaults the process for some code points above U+FFFF
# (tree-sitter/tree-sitter-bash#337). No shell syntax lies above U+007F, so every character
# above U+00FF is parsed as this stand-in: the tree has the same shape, and no command on the
# deny-list is spelt with such characters.
LATIN1 = re.compile(r"[^\x00-\xff]")
ELSEWHERE = "\x9a"
WRITE_OPS = frozenset({">", ">>", ">|", "&>", "&>>", "<>", ">&"})


class Refusal(Exception):
    """Raised while walking when a finding needs no program rule (a parse error, a fork
    bomb, a write to a disk): the message is the reason."""


@dataclass(frozen=True)
class Ran:
    """A program and whether its input may be a download (a pipe or a substitution)."""

    program: Program
    fed: bool = False


@cache
def _parser() -> Parser:
    import tree_sitter_bash

    return Parser(Language(tree_sitter_bash.language()))


def programs(script: str, depth: int = 0) -> list[Ran]:
    """Every program `script` runs, outermost first."""
    if depth > MAX_DEPTH:
        raise Refusal(f"cannot parse: shell strings nested more than {MAX_DEPTH} deep")
    root = _parser().parse(LATIN1.sub(ELSEWHERE, script).encode()).root_node
    if root.has_error:
        raise Refusal("cannot parse")
    return _walk(root, depth)


def _feeds(items: list[Ran]) -> bool:
    return any(item.program.name in DOWNLOADS for item in items)


def _fed(items: list[Ran]) -> list[Ran]:
    return [replace(item, fed=True) for item in items]


def _walk(node: Node, depth: int) -> list[Ran]:
    match node.type:
        case "command":
            return _command(node, depth)
        case "pipeline":
            # A download at any stage feeds every later stage (`curl x | tee f | sh`).
            found: list[Ran] = []
            for stage in node.named_children:
                ran = _walk(stage, depth)
                found += _fed(ran) if _feeds(found) else ran
            return found
        case "redirected_statement":
            return _redirected(node, depth)
        case "function_definition":
            _fork_bomb(node)
        case "file_redirect":
            ops = [c.type for c in node.children if not c.is_named]
            target = node.child_by_field_name("destination")
            if WRITE_OPS.intersection(ops) and target is not None and is_device(word(target)):
                raise Refusal("writing to a disk device")
        case "comment":
            return []
    return [ran for child in node.named_children for ran in _walk(child, depth)]


def _command(node: Node, depth: int) -> list[Ran]:
    words: list[str] = []
    feeding: list[Ran] = []  # commands in its arguments and redirects: they feed it
    others: list[Ran] = []  # commands in its variable assignments
    for child in node.named_children:
        if child.type == "variable_assignment":
            others += _walk(child, depth)
        elif child.type.endswith("redirect"):
            feeding += _walk(child, depth)
        elif child.type != "comment":
            target = child.named_children[0] if child.type == "command_name" else child
            words.append(word(target))
            feeding += _walk(target, depth)
    return _run(resolve(words), _feeds(feeding), depth) + feeding + others


def _run(program: Program, fed: bool, depth: int) -> list[Ran]:
    """The program, and what it runs in turn: command strings and find -exec commands."""
    found = [Ran(program, fed)]
    for script in program.scripts:
        found += _fed(programs(script, depth + 1)) if fed else programs(script, depth + 1)
    for argv in program.execs:
        found += _run(resolve(argv), fed, depth + 1)
    return found


def _redirected(node: Node, depth: int) -> list[Ran]:
    """A command with redirects. What a redirect reads (`sh < <(curl x)`) feeds the body; a
    heredoc may carry the rest of a pipeline (`cat <<EOF | sh`), and is read as a script
    when a shell reads it."""
    body = node.child_by_field_name("body")
    ran = [] if body is None else _walk(body, depth)
    feeding: list[Ran] = []
    later: list[Ran] = []
    heredocs: list[str] = []
    for child in node.named_children:
        if child == body:
            continue
        if child.type != "heredoc_redirect":
            feeding += _walk(child, depth)
            continue
        for part in child.named_children:
            if part.type == "heredoc_body":
                heredocs.append(_heredoc_text(part))
                feeding += _walk(part, depth)
            elif part.type not in {"heredoc_start", "heredoc_end"}:
                later += _walk(part, depth)
    ran = _fed(ran) if _feeds(feeding) else ran
    later = _fed(later) if _feeds(ran + feeding) else later
    found = ran + feeding + later
    if any(item.program.name in SHELL_READERS for item in ran + later):
        for text in heredocs:
            found += programs(text, depth + 1)
    return found


def _heredoc_text(body: Node) -> str:
    """A heredoc as the shell reading it sees it: the expansions bash makes first (in an
    unquoted heredoc) become unknowns."""
    out: list[str] = []
    at = body.start_byte
    source = body.text or b""
    for part in body.named_children:
        if part.type != "heredoc_content":
            out.append(source[at - body.start_byte : part.start_byte - body.start_byte].decode())
            out.append(word(part))
            at = part.end_byte
    out.append(source[at - body.start_byte :].decode())
    return "".join(out)


def _fork_bomb(node: Node) -> None:
    """A function that starts itself in a pipeline or in the background (`:(){ :|:& };:`)
    doubles its processes each generation."""
    name = node.child_by_field_name("name")
    if name is None:
        return
    stack = list(node.named_children[1:])
    while stack:
        cur = stack.pop()
        stack += cur.named_children
        call = cur.child_by_field_name("name") if cur.type == "command" else None
        if call is None or word(call.named_children[0]) != word(name):
            continue
        piped = cur.parent is not None and cur.parent.type == "pipeline"
        if piped or (cur.next_sibling is not None and cur.next_sibling.type == "&"):
            raise Refusal("fork bomb")


def word(node: Node) -> str:
    """A word's value as bash passes it to the command: quotes and escapes removed; each
    expansion (unknown until it runs) becomes UNKNOWN, `$HOME` becomes HOME."""
    text = (node.text or b"").decode()
    match node.type:
        case "word" | "number":
            return re.sub(r"\\(.)", r"\1", text.replace("\\\n", ""), flags=re.DOTALL)
        case "raw_string":
            return text[1:-1]
        case "ansi_c_string":
            return _ansi_c(text[2:-1])
        case "string_content":
            return re.sub(r'\\([$`"\\])', r"\1", text.replace("\\\n", ""))
        case "string" | "translated_string" | "concatenation":
            return "".join(word(part) for part in node.named_children)
        case "simple_expansion" | "expansion" if text in {"$HOME", "${HOME}"}:
            return HOME
    return UNKNOWN


_ANSI_C = re.compile(r"\\(x[0-9a-fA-F]{1,2}|u[0-9a-fA-F]{1,4}|U[0-9a-fA-F]{1,8}|[0-7]{1,3}|c.|.)")
_ANSI_C_SIMPLE = {"a": "\a", "b": "\b", "e": "\x1b", "E": "\x1b", "f": "\f", "n": "\n"}
_ANSI_C_SIMPLE |= {"r": "\r", "t": "\t", "v": "\v"}


def _ansi_c(body: str) -> str:
    """The value of `$'…'` (`$'\\x73udo'` is sudo)."""

    def one(m: re.Match[str]) -> str:
        esc = m.group(1)
        if esc[0] in "xuU" and len(esc) > 1:
            return chr(min(int(esc[1:], 16), 0x10FFFF))
        if esc[0] in "01234567":
            return chr(int(esc, 8) & 0xFF)
        if esc[0] == "c" and len(esc) == 2:
            return chr(ord(esc[1].upper()) & 0x1F)
        return _ANSI_C_SIMPLE.get(esc, esc)

    return _ANSI_C.sub(one, body)
