"""``edgedev validate -f FILE...``: check files, exit 0 when valid and 1 otherwise.

Besides errors, it prints warnings: what loads but deserves a look (deprecated places, cycles
that look like nanoseconds, a pushMethod.anomalyDetection, which is not served) and what
KubeEdge's EdgeCore would refuse in a twin report (a property name outside its charset, a
desired value it would refuse). STRING and BYTES properties, whose readings EdgeCore may
refuse, are counted in one note, and listed with ``-v``.
"""

from __future__ import annotations

import argparse
import sys

from edgedev._errors import Problem
from edgedev._text import plural
from edgedev.cli._common import add_file_option, load_or_report
from edgedev.config import DeviceSpec
from edgedev.twin import PropertyType
from edgedev.wire import MAX_VALUE, key_refusal

HELP = "check Device and DeviceModel files"


def add_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``validate``."""
    add_file_option(parser)


def edgecore_warnings(device: DeviceSpec) -> list[tuple[str, str]]:
    """``(field, message)`` for each thing of ``device`` that EdgeCore would refuse."""
    found = []
    for i, prop in enumerate(device.properties):
        at = f"spec.properties[{i}]"
        why = key_refusal(prop.name)
        if why is not None:
            found.append((f"{at}.name", f"EdgeCore refuses {why}: this property is never reported"))
    return found  # a desired value no report carries is an error (the loader's desired rule)


def edgecore_notes(device: DeviceSpec) -> list[tuple[str, str]]:
    """``(field, message)`` for each property whose readings EdgeCore may refuse.

    Not mistakes: a STRING reading with a space, or a BYTES reading too long, is left out of
    the twin report (and counted in /metrics); most are fine. ``validate`` counts them and
    lists them with ``-v``.
    """
    found = []
    for i, prop in enumerate(device.properties):
        if prop.type is PropertyType.STRING:
            found.append(
                (
                    f"spec.properties[{i}].name",
                    f"STRING property {prop.name!r}: EdgeCore accepts only letters, digits and "
                    f"-_.,:/@# up to {MAX_VALUE} characters; a reading with others (a space) "
                    f"is left out of the twin report and counted in /metrics",
                )
            )
        elif prop.type is PropertyType.BYTES:
            found.append(
                (
                    f"spec.properties[{i}].name",
                    f"BYTES property {prop.name!r} travels as hex text: EdgeCore refuses values "
                    f"over {MAX_VALUE // 2} bytes, which are left out of the twin report",
                )
            )
    return found


def run(args: argparse.Namespace) -> int:
    """Validate and print a summary."""
    warnings: list[Problem] = []
    devices = load_or_report(args.files, warnings)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if devices is None:
        return 1
    notes = 0
    for device in devices:
        for field, message in edgecore_warnings(device):
            print(
                f"warning: {device.source}: Device {device.id}, field {field}: {message}",
                file=sys.stderr,
            )
        for field, message in edgecore_notes(device):
            notes += 1
            if args.verbose:
                print(
                    f"note: {device.source}: Device {device.id}, field {field}: {message}",
                    file=sys.stderr,
                )
    if notes and not args.verbose:
        print(
            f"note: {plural(notes, 'STRING or BYTES property', 'STRING or BYTES properties')}: "
            "EdgeCore leaves out of twin reports the readings outside its charset or size "
            "(-v lists them)",
            file=sys.stderr,
        )
    props = sum(len(d.properties) for d in devices)
    counts = [
        plural(len(devices), "device"),
        plural(props, "property", "properties"),
        plural(len(args.files), "file"),
    ]
    print("ok: {}, {} in {}".format(*counts))
    return 0
