"""The ``edgedev`` command line: one module per command, registered in ``COMMANDS``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from types import ModuleType

from edgedev import __version__
from edgedev.cli import _agent, _demo, _run, _simulate, _twin, _validate, _watch, _web
from edgedev.cli._common import setup_logging

COMMANDS: dict[str, ModuleType] = {
    "run": _run,
    "simulate": _simulate,
    "validate": _validate,
    "demo": _demo,
    "agent": _agent,
    "twin": _twin,
    "watch": _watch,
    "view": _web,
}
"""Command name to module; each module has ``HELP``, ``add_parser(parser)``, ``run(args)``."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command."""
    parser = argparse.ArgumentParser(
        prog="edgedev", description="Connect field devices to edge platforms as device twins."
    )
    parser.add_argument("--version", action="version", version=f"edgedev {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in COMMANDS.items():
        module.add_parser(sub.add_parser(name, help=module.HELP, description=module.HELP))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    code: int = COMMANDS[args.command].run(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
