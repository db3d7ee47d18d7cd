"""``python -m edgedev.broker [--host H] [--port P]``: the same as ``edgedev broker``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from edgedev._logging import add_logging_options, setup_logging
from edgedev.broker._command import HELP, LOG_LEVEL, add_parser, run


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` as ``edgedev broker`` does and serve; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m edgedev.broker", description=HELP)
    add_logging_options(parser, top=True)
    add_parser(parser)
    args = parser.parse_args(argv)
    setup_logging(args.verbose, quiet=args.quiet, log_format=args.log_format, default=LOG_LEVEL)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
