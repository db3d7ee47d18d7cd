"""``edgedev run -f FILE... --broker URL``: map the devices in the files to device twins."""

from __future__ import annotations

import argparse
import os

from edgedev.cli._common import add_bus_options, add_file_option, load_or_report, run_async
from edgedev.mapper._mapper import Mapper

HELP = "run mappers for the devices in the files"


def add_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``run``."""
    add_file_option(parser)
    add_bus_options(parser)
    parser.add_argument(
        "--node",
        default=os.environ.get("EDGEDEV_NODE"),
        metavar="NAME",
        help="edge node name; devices bound to other nodes are skipped (env EDGEDEV_NODE)",
    )
    parser.add_argument("--name", metavar="NAME", help="this mapper's name on the bus")


def run(args: argparse.Namespace) -> int:
    """Run until SIGINT or SIGTERM."""
    devices = load_or_report(args.files)
    if devices is None:
        return 1
    mapper = Mapper(
        devices, broker=args.broker, topic_root=args.topic_root, node=args.node, name=args.name
    )
    if not mapper.devices:
        print(f"no devices for node {args.node!r} in {', '.join(args.files)}")
        return 1

    async def main() -> int:
        await mapper.run()
        return 0

    return run_async(main)
