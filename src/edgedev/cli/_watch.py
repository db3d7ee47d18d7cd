"""``edgedev watch [NS/NAME]``: twin traffic as it passes, one readable line per update.

A mapper's report, a desired value set by an application, a delta, a state change or a
refusal each make one line; at the start, each device's state as its mapper left it (retained
on the broker, so that a watch started after the mapper shows it too) and each mapper's
announcement; the agent's echoes of an update (``twin/update/result`` and
``twin/update/document``) and ``twin/get`` traffic add nothing a reader needs and are left out.
``--json`` prints every message as it is, ``--table`` redraws a table in a terminal.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from collections.abc import Callable, Sequence

import anyio
from pydantic import ValidationError

from edgedev._process import run_async
from edgedev.bus import Bus, Channel, DeviceTopic, MapperTopic, Message, NodeTopic, Topics
from edgedev.cli._common import add_bus_options
from edgedev.cli._twin import device_id
from edgedev.view import TwinView
from edgedev.wire import (
    MapperState,
    StateUpdate,
    TwinDelta,
    TwinResult,
    TwinUpdate,
    new_event_id,
)

HELP = "print twin traffic live, a line per update (one device, or all)"


def add_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``watch``."""
    parser.add_argument("device", nargs="?", type=device_id, metavar="NS/NAME")
    add_bus_options(parser)
    shown = parser.add_mutually_exclusive_group()
    shown.add_argument(
        "--table",
        action="store_true",
        help="redraw a table of the twins (in a terminal; elsewhere, print the changes)",
    )
    shown.add_argument("--json", action="store_true", help="print every message as it is")
    parser.add_argument(
        "--sparkplug",
        nargs="?",
        const="",
        default=None,
        metavar="GROUP[/EDGE_NODE]",
        help="decode Sparkplug B traffic instead (of every group, of GROUP, or of one edge "
        "node): births, data named by the births' aliases, deaths, commands, host states "
        "(needs edgedev[sparkplug])",
    )
    parser.add_argument(
        "--no-rebirth",
        action="store_true",
        help="with --sparkplug: never ask an edge node for its births (a watch that joins "
        "mid-session asks, as a host does, to name the metrics of its data)",
    )
    parser.add_argument("--count", type=int, metavar="N", help="stop after N lines")
    parser.add_argument("--seconds", type=float, metavar="S", help="stop after S seconds")


def _stamp(when: float) -> str:
    return dt.datetime.fromtimestamp(when).strftime("%H:%M:%S.%f")[:-3]


def raw_line(topics: Topics, topic: str, payload: bytes, when: float) -> str:
    """One message as it is: time, device (or node), channel, compact payload (``--json``)."""
    parsed = topics.parse(topic)
    if isinstance(parsed, DeviceTopic):
        who, what = parsed.device_id, parsed.channel.value
    elif isinstance(parsed, NodeTopic):
        who, what = f"node {parsed.node}", parsed.channel.value
    elif isinstance(parsed, MapperTopic):
        who, what = f"node {parsed.node}", f"mapper {parsed.mapper}"
    else:
        who, what = topic, ""
    try:
        text = json.dumps(json.loads(payload), separators=(",", ":"), ensure_ascii=False)
    except ValueError:
        text = payload.decode(errors="replace")
    return f"{_stamp(when)} {who} {what} {text}"


def _values(view: TwinView, device: str, update: TwinUpdate) -> list[str]:
    """``name=value`` of every property the update carries, desired and pending marked."""
    parts = []
    known = view.devices.get(device)
    for name, twin in update.twin.items():
        if twin is None:
            parts.append(f"{name}: desired cleared")
            continue
        if twin.error is not None:
            parts.append(f"{name}: write {twin.error.value} failed: {twin.error.reason}")
            continue
        if twin.quality is not None:
            parts.append(f"{name}: {twin.quality.status} ({twin.quality.reason or 'no value'})")
            continue
        if twin.actual is not None and twin.actual.value is not None:
            text = f"{name}={twin.actual.value}"
            quality = twin.actual.metadata.quality
            if quality:
                text += f" ({quality})"
            prop = known.properties.get(name) if known is not None else None
            if prop is not None and prop.pending:
                text += f" (desired {prop.desired}, pending)"
            parts.append(text)
        if "expected" in twin.model_fields_set:
            desired = twin.expected.value if twin.expected is not None else None
            parts.append(f"{name}: desired {'cleared' if desired is None else desired} asked")
    return parts


def _current(view: TwinView, device: str) -> str | None:
    """A device's state as the view derives it: ``online since 12:00:01``, with the reason."""
    seen = view.presence.state(device)
    if seen is None:
        return None
    text = seen.state + (f" since {_stamp(seen.since / 1000)}" if seen.since else "")
    return text + (f": {seen.reason}" if seen.reason else "")


def describe(
    view: TwinView,
    topic: str,
    payload: bytes,
    when: float,
    *,
    retained: bool = False,
    device: str | None = None,
) -> str | None:
    """The line a reader sees for one message, or ``None`` when it adds nothing.

    ``view`` is updated with the message first, so that a report can say what is pending.
    ``retained``: the broker kept the message and delivered it at subscription (a state as
    its mapper left it). ``device``: the one device watched (its mapper's announcement is
    shown only when it says ``offline``, other mappers' never).
    """
    view.apply(topic, payload, when)
    parsed = view.topics.parse(topic)
    head = f"{_stamp(when)} {topic} "
    try:
        if isinstance(parsed, MapperTopic):
            if not payload:
                return None
            mapper = MapperState.model_validate_json(payload)
            if device is not None and (device not in mapper.devices or mapper.state == "online"):
                return None  # one device watched: its mapper only when it stopped or died
            what = f"mapper {mapper.mapper} {mapper.state} ({len(mapper.devices)} devices)"
            return f"{_stamp(when)} node {parsed.node}  {what}"
        if not isinstance(parsed, DeviceTopic):
            return None
        head = f"{_stamp(when)} {parsed.device_id} "
        channel = parsed.channel
        if channel is Channel.STATE_CURRENT:  # live ones repeat state/update
            if not payload:
                return head + "removed from its mapper"
            current = _current(view, parsed.device_id) if retained else None
            return None if current is None else head + current
        if channel is Channel.STATE_UPDATE:
            return head + StateUpdate.model_validate_json(payload).state
        if channel is Channel.TWIN_UPDATE:
            parts = _values(view, parsed.device_id, TwinUpdate.model_validate_json(payload))
            return head + "  ".join(parts) if parts else None
        if channel is Channel.TWIN_DELTA:
            delta = TwinDelta.model_validate_json(payload).delta
            pending = "  ".join(f"{name}={value}" for name, value in sorted(delta.items()))
            return head + (f"delta: write {pending}" if pending else "delta: nothing pending")
        if channel in (Channel.TWIN_RESULT, Channel.TWIN_GET_RESULT):
            result = TwinResult.model_validate_json(payload)
            if result.code is None:
                return None
            return head + f"refused ({result.code}): {result.reason or ''}"
    except ValidationError:
        return head + f"a malformed message ({len(payload)} bytes)"
    return None


def run(args: argparse.Namespace) -> int:
    """Print until SIGINT, ``--count`` lines or ``--seconds``."""
    if args.sparkplug is not None:
        if args.table:
            print("error: --table shows KubeEdge twins; not with --sparkplug", file=sys.stderr)
            return 2
        try:
            from edgedev.cli import _sparkplug
        except ImportError:
            print("error: --sparkplug needs edgedev[sparkplug] (protobuf)", file=sys.stderr)
            return 1
        return _sparkplug.watch(args)
    topics = Topics(args.topic_root)
    # mappers first: their retained announcements say which ones still run
    if args.device is None:
        filters = [f"{topics.root}/node/#", topics.all_devices()]
    else:
        filters = [topics.mapper_filter(), topics.all_devices(args.device)]
    view = TwinView(topics)
    redraw = args.table and sys.stdout.isatty()

    def text_of(message: Message, now: float, publish: Publish) -> str | None:
        if args.json:
            return raw_line(topics, message.topic, message.payload, now)
        if redraw:
            view.apply(message.topic, message.payload, now)
            return "\x1b[H\x1b[2J" + view.render(now)
        return describe(
            view,
            message.topic,
            message.payload,
            now,
            retained=message.retain,
            device=args.device,
        )

    return follow(args, filters, text_of)


Publish = Callable[[str, bytes], object]
"""How a watcher answers on the bus (:meth:`edgedev.bus.Bus.publish`)."""


def follow(
    args: argparse.Namespace,
    filters: Sequence[str],
    text_of: Callable[[Message, float, Publish], str | None],
) -> int:
    """Print ``text_of`` each message of ``filters``, until SIGINT, ``--count`` or ``--seconds``.

    A message that ``text_of`` gives no text for is skipped; ``publish`` answers on the bus.
    """

    async def main() -> int:
        seen = 0
        async with (
            Bus(args.broker, client_id=f"edgedev-watch-{new_event_id()[:12]}") as bus,
            bus.subscribe(*filters) as messages,
        ):
            with anyio.move_on_after(args.seconds if args.seconds is not None else float("inf")):
                async for message in messages:
                    text = text_of(message, time.time(), bus.publish)
                    if text is None:
                        continue
                    print(text, flush=True)
                    seen += 1
                    if args.count is not None and seen >= args.count:
                        break
        return 0

    return run_async(main)
