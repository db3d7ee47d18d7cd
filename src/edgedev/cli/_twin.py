"""``edgedev twin get NS/NAME`` and ``edgedev twin set NS/NAME PROP=VALUE...``.

Both ask the twin agent over MQTT and print its answer. ``set`` exits 0 when the agent
accepted the update, 1 when it refused it (400, 404, 409, 500), 2 when no agent answered.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from typing import Any

from edgedev._process import run_async
from edgedev.agent import BrokerUnreachable, ask, desired_request
from edgedev.bus import Channel, Topics, split_device_id
from edgedev.cli._common import add_bus_options
from edgedev.twin import PropertyType, is_pending
from edgedev.wire import new_event_id, parse_type, twin_get

HELP = "read a device twin, or set desired values"

NO_ANSWER = 2
"""Exit code when no agent answered in time, or the broker was not reached."""


def device_id(text: str) -> str:
    """Parse ``NS/NAME`` (a bare ``NAME`` is in namespace ``default``), for argparse."""
    try:
        ns, name = split_device_id(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return f"{ns}/{name}"


def assignment(text: str) -> tuple[str, str | None]:
    """Parse ``PROP=VALUE``; ``PROP=null`` clears the desired value, for argparse."""
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not PROP=VALUE")
    return name.strip(), None if value == "null" else value


def add_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``twin get`` and ``twin set``."""
    sub = parser.add_subparsers(dest="twin_command", required=True, metavar="ACTION")
    get = sub.add_parser("get", help="print a device's twin", description="print a device's twin")
    set_ = sub.add_parser(
        "set",
        help="set desired values (PROP=null clears one)",
        description="set desired values (PROP=null clears one); exit 1 when refused",
    )
    for p in (get, set_):
        p.add_argument("device", type=device_id, metavar="NS/NAME")
        add_bus_options(p)
        p.add_argument(
            "--timeout", type=float, default=5.0, metavar="S", help="wait S seconds for the agent"
        )
        p.add_argument("--json", action="store_true", help="print the agent's answer as JSON")
    set_.add_argument("values", type=assignment, nargs="+", metavar="PROP=VALUE")
    set_.add_argument(
        "--version",
        type=int,
        default=None,
        metavar="N",
        help="the version last seen: refused with 409 when the twin has moved on",
    )


def render(twin: Mapping[str, Any]) -> str:
    """A twin's properties as a table: desired, reported, version, pending, last error."""
    lines = [f"{'PROPERTY':<16} {'DESIRED':>12} {'REPORTED':>14} {'VERSION':>7}  NOTE"]
    for name in sorted(twin):
        entry = twin[name] or {}
        desired = (entry.get("expected") or {}).get("value")
        reported = (entry.get("actual") or {}).get("value")
        note = ""
        type_ = parse_type((entry.get("metadata") or {}).get("type", "")) or PropertyType.STRING
        if is_pending(desired, reported, type_):
            note = "pending"
        error = entry.get("error")
        if error:
            note = f"write failed: {error.get('reason', '')}"
        lines.append(
            f"{name:<16} {desired if desired is not None else '':>12} "
            f"{reported if reported is not None else '':>14} {entry.get('version', ''):>7}  {note}"
        )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Ask the agent; print its answer."""
    topics = Topics(args.topic_root)
    event_id = new_event_id()
    if args.twin_command == "get":
        request = (Channel.TWIN_GET, twin_get(event_id=event_id), event_id)
        answer = Channel.TWIN_GET_RESULT
    else:
        request = desired_request(dict(args.values), args.version)
        answer = Channel.TWIN_RESULT

    async def main() -> int:
        try:
            body = await ask(args.broker, topics, args.device, request, answer, args.timeout)
        except BrokerUnreachable:
            print(
                f"error: the MQTT broker at {args.broker} was not reached within "
                f"{args.timeout:g} s (is it running? `edgedev broker` starts one)",
                file=sys.stderr,
            )
            return NO_ANSWER
        if body is None:
            print(
                f"error: the broker at {args.broker} is up, but no twin agent answered for "
                f"{args.device} within {args.timeout:g} s (is `edgedev agent` running, on "
                f"topic root {args.topic_root}?)",
                file=sys.stderr,
            )
            return NO_ANSWER
        if args.json:
            print(json.dumps(body, indent=2))
        if body.get("code") is not None:
            if not args.json:
                print(f"refused ({body['code']}): {body.get('reason', '')}", file=sys.stderr)
            return 1
        if not args.json:
            print(f"{args.device}")
            print(render(body.get("twin") or {}))
        return 0

    return run_async(main)
