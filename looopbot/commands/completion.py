"""`looopbot completion SHELL`: a completion script generated from the argparse parser.

shtab writes static scripts: a TAB costs the shell a function call, never a Python start
(argcomplete, the other choice, runs the program on every TAB).
"""

from __future__ import annotations

import argparse

from looopbot.errors import EXIT_OK

SHELLS = ("bash", "zsh", "fish")


def completion(args: argparse.Namespace) -> int:
    import shtab

    from looopbot.cli import parser

    print(shtab.complete(parser(), shell=args.shell), end="")
    return EXIT_OK
