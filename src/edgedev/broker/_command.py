"""``edgedev broker`` and ``python -m edgedev.broker``: the embedded broker as a command.

It prints its URL once it accepts connections, and the lines that attach the other commands
to it. For production, run mosquitto (see docs/reliability.md, "Securing the bus").
"""

from __future__ import annotations

import argparse
import logging
import sys

import anyio

from edgedev._process import run_async
from edgedev.broker import EmbeddedBroker

HELP = "run the embedded MQTT broker (for trying edgedev; mosquitto for production)"
LOG_LEVEL = logging.INFO


def add_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``broker``."""
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=1883, help="TCP port; 0 lets the system choose (1883)"
    )
    parser.add_argument(
        "--persist",
        metavar="FILE",
        help="keep retained messages in FILE across restarts (default: keep nothing)",
    )


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT or SIGTERM."""

    async def main() -> int:
        try:
            broker = EmbeddedBroker(args.host, args.port, persistence=args.persist)
            async with broker:
                print(f"edgedev broker listening on {broker.url}", flush=True)
                print(
                    f"  attach: edgedev run -f FILE --broker {broker.url}\n"
                    f"          edgedev watch --broker {broker.url}\n"
                    "  Ctrl-C stops",
                    flush=True,
                )
                await anyio.sleep_forever()
        except OSError as exc:
            print(f"error: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
            return 1
        return 0

    return run_async(main)
