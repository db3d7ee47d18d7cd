"""``edgedev completion bash|zsh|tcsh``: a shell completion script, made from the parser.

Install it once, for example ``edgedev completion bash > ~/.local/share/bash-completion/
completions/edgedev`` (bash) or ``edgedev completion zsh > "${fpath[1]}/_edgedev"`` (zsh).
"""

from __future__ import annotations

import argparse

import shtab

HELP = "print a shell completion script (bash, zsh or tcsh)"


def add_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``completion``."""
    parser.add_argument("shell", choices=("bash", "zsh", "tcsh"), help="the shell")


def run(args: argparse.Namespace) -> int:
    """Print the script on standard output."""
    from edgedev.cli import build_parser  # the whole parser, this command included

    print(shtab.complete(build_parser(), shell=args.shell))
    return 0
