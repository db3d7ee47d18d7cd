"""``edgedev validate -f FILE...``: check files, exit 0 when valid and 1 otherwise."""

from __future__ import annotations

import argparse

from edgedev._text import plural
from edgedev.cli._common import add_file_option, load_or_report

HELP = "check Device and DeviceModel files"


def add_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``validate``."""
    add_file_option(parser)


def run(args: argparse.Namespace) -> int:
    """Validate and print a summary."""
    devices = load_or_report(args.files)
    if devices is None:
        return 1
    props = sum(len(d.properties) for d in devices)
    counts = [
        plural(len(devices), "device"),
        plural(props, "property", "properties"),
        plural(len(args.files), "file"),
    ]
    print("ok: {}, {} in {}".format(*counts))
    return 0
