"""``edgedev watch [NS/NAME]``: every twin, state and membership message, as it passes."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time

import anyio

from edgedev.bus._client import Bus
from edgedev.bus._topics import DeviceTopic, NodeTopic, Topics
from edgedev.cli._common import add_bus_options, run_async
from edgedev.cli._twin import device_id
from edgedev.view._state import TwinView
from edgedev.wire import new_event_id

HELP = "print twin traffic live (one device, or all)"


def add_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``watch``."""
    parser.add_argument("device", nargs="?", type=device_id, metavar="NS/NAME")
    add_bus_options(parser)
    parser.add_argument(
        "--table", action="store_true", help="redraw a table of the twins instead of lines"
    )
    parser.add_argument("--count", type=int, metavar="N", help="stop after N messages")
    parser.add_argument("--seconds", type=float, metavar="S", help="stop after S seconds")


def line(topics: Topics, topic: str, payload: bytes, when: float) -> str:
    """One message as a line: time, device (or node), channel, compact payload."""
    parsed = topics.parse(topic)
    if isinstance(parsed, DeviceTopic):
        who, what = parsed.device_id, parsed.channel.value
    elif isinstance(parsed, NodeTopic):
        who, what = f"node {parsed.node}", parsed.channel.value
    else:
        who, what = topic, ""
    try:
        text = json.dumps(json.loads(payload), separators=(",", ":"), ensure_ascii=False)
    except ValueError:
        text = payload.decode(errors="replace")
    stamp = dt.datetime.fromtimestamp(when).strftime("%H:%M:%S.%f")[:-3]
    return f"{stamp} {who} {what} {text}"


def run(args: argparse.Namespace) -> int:
    """Print until SIGINT, ``--count`` messages or ``--seconds``."""
    topics = Topics(args.topic_root)
    filters = [topics.all_devices(args.device)]
    if args.device is None:
        filters.append(f"{topics.root}/node/#")
    view = TwinView(topics)
    tty = sys.stdout.isatty()

    async def main() -> int:
        seen = 0
        async with (
            Bus(args.broker, client_id=f"edgedev-watch-{new_event_id()[:12]}") as bus,
            bus.subscribe(*filters) as messages,
        ):
            with anyio.move_on_after(args.seconds if args.seconds is not None else float("inf")):
                async for message in messages:
                    if args.table:
                        view.apply(message.topic, message.payload)
                        prefix = "\x1b[H\x1b[2J" if tty else ""
                        print(prefix + view.render(), flush=True)
                    else:
                        text = line(topics, message.topic, message.payload, time.time())
                        print(text, flush=True)
                    seen += 1
                    if args.count is not None and seen >= args.count:
                        break
        return 0

    return run_async(main)
