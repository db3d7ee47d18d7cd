"""``edgedev simulate -f FILE...``: serve every Device in the files at its own address."""

from __future__ import annotations

import argparse
import logging
import sys

import anyio

from edgedev._errors import PluginError
from edgedev._process import run_async
from edgedev._text import plural
from edgedev.cli._common import add_file_option, load_or_report
from edgedev.simulate import AnySimulator, simulate

HELP = "serve simulated devices for the Devices in the files"
LOG_LEVEL = logging.INFO


def add_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``simulate``."""
    add_file_option(parser)


def served(running: list[AnySimulator]) -> str:
    """What the simulators serve, a line per device: protocol, address, device id."""
    rows = [
        (device.protocol, simulator.address(device), device.id)
        for simulator in running
        for device in simulator.devices
    ]
    width = max((len(address) for _, address, _ in rows), default=0)
    count = sum(len(s.devices) for s in running)
    lines = [f"simulating {plural(count, 'device')}:"]
    lines += [f"  {protocol:<7} {address:<{width}}  {device}" for protocol, address, device in rows]
    lines.append("Ctrl-C stops")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT or SIGTERM."""
    devices = load_or_report(args.files)
    if devices is None:
        return 1

    async def main() -> int:
        try:
            async with anyio.create_task_group() as tg:
                running = await tg.start(simulate, devices)
                print(served(running), flush=True)
                await anyio.sleep_forever()
        except PluginError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        return 0

    return run_async(main)
