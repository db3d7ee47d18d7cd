"""The ``edgedev`` command line: one module per command, registered in ``COMMANDS``."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from types import ModuleType

from edgedev._logging import add_logging_options, setup_logging
from edgedev._version import __version__
from edgedev.broker import command as _broker
from edgedev.cli import (
    _agent,
    _completion,
    _demo,
    _discover,
    _run,
    _simulate,
    _twin,
    _validate,
    _watch,
    _web,
)
from edgedev.cli._common import resolve_bus_options

COMMANDS: dict[str, ModuleType] = {
    "run": _run,
    "simulate": _simulate,
    "validate": _validate,
    "demo": _demo,
    "discover": _discover,
    "broker": _broker,
    "agent": _agent,
    "twin": _twin,
    "watch": _watch,
    "view": _web,
    "completion": _completion,
}
"""Command name to module; each module has ``HELP``, ``add_parser(parser)``, ``run(args)``.

A module may set ``LOG_LEVEL`` (the long-running commands say ``logging.INFO``); the others
log warnings only unless ``-v`` is given.
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command."""
    parser = argparse.ArgumentParser(
        prog="edgedev", description="Connect field devices to edge platforms as device twins."
    )
    parser.add_argument("--version", action="version", version=f"edgedev {__version__}")
    add_logging_options(parser, top=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in COMMANDS.items():
        command = sub.add_parser(name, help=module.HELP, description=module.HELP)
        add_logging_options(command, top=False)
        module.add_parser(command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = build_parser().parse_args(argv)
    module = COMMANDS[args.command]
    setup_logging(
        args.verbose,
        quiet=args.quiet,
        log_format=args.log_format,
        default=getattr(module, "LOG_LEVEL", logging.WARNING),
    )
    refused = resolve_bus_options(args)
    if refused is not None:
        return refused
    try:
        code: int = module.run(args)
    except BaseException as exc:
        if not _only_broken_pipes(exc):
            raise
        return _reader_went_away()
    return code


EXIT_BROKEN_PIPE = 128 + 13
"""What a shell reports for a command ended by SIGPIPE (``seq 1 9999 | head -1``)."""


def _only_broken_pipes(exc: BaseException) -> bool:
    """Whether ``exc`` is a :class:`BrokenPipeError`, or a group holding only those."""
    if isinstance(exc, BaseExceptionGroup):
        return all(_only_broken_pipes(e) for e in exc.exceptions)
    return isinstance(exc, BrokenPipeError)


def _reader_went_away() -> int:
    """End quietly when the reader of stdout has gone (``edgedev watch | head``).

    Python flushes stdout again at exit, which would raise once more: it goes to
    ``/dev/null`` instead.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return EXIT_BROKEN_PIPE


if __name__ == "__main__":
    sys.exit(main())
