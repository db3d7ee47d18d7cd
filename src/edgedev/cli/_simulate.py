"""``edgedev simulate -f FILE...``: serve every Device in the files at its own address."""

from __future__ import annotations

import argparse

import anyio

from edgedev._errors import PluginError
from edgedev.cli._common import add_file_option, load_or_report, run_async
from edgedev.simulate import simulate

HELP = "serve simulated devices for the Devices in the files"


def add_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``simulate``."""
    add_file_option(parser)


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT or SIGTERM."""
    devices = load_or_report(args.files)
    if devices is None:
        return 1

    async def main() -> int:
        try:
            async with anyio.create_task_group() as tg:
                await tg.start(simulate, devices)
                print(f"simulating {len(devices)} device(s); Ctrl-C stops", flush=True)
                await anyio.sleep_forever()
        except PluginError as exc:
            print(f"error: {exc}")
            return 1
        return 0

    return run_async(main)
