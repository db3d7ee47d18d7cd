"""``edgedev demo``: an embedded broker, a simulated fleet, the mappers and the twin agent.

Needs no broker and no hardware: every installed mapper contributes its simulator's demo
devices. Every few seconds the demo sets a new desired value on a writable property (the
thermostat's setpoint, a Modbus holding register), and the table shows it go round the loop:
desired, delta, write, read back, reported. With ``--seconds N`` it stops by itself.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import math
import socket
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from edgedev._plugins import install_hint
from edgedev._ports import free_port
from edgedev._process import run_async
from edgedev.agent import Agent
from edgedev.broker import EmbeddedBroker
from edgedev.bus import DEFAULT_ROOT, BrokerURL, Bus, Channel, Topics
from edgedev.cli._common import add_bus_options, load_or_report
from edgedev.cli._web import add_web_options, announce, make_server
from edgedev.config import DeviceSpec, PropertySpec
from edgedev.mapper import Mapper, TwinTransport
from edgedev.mqtt import KubeEdgeMqtt
from edgedev.simulate import simulate, simulators
from edgedev.view import TwinView, ViewError
from edgedev.wire import desired_update

if TYPE_CHECKING:
    from anyio.streams.memory import MemoryObjectReceiveStream

    from edgedev.bus import Message
    from edgedev.view import ViewServer

HELP = "run a simulated fleet end to end, no broker or hardware needed"

WRITE_PERIOD = 4.0
"""Seconds between two desired values that the demo sets."""


def add_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``demo``."""
    parser.add_argument(
        "--seconds",
        type=float,
        default=None,
        metavar="N",
        help="stop after N seconds (default: run until Ctrl-C)",
    )
    add_bus_options(parser, embedded=True)
    parser.add_argument(
        "--web",
        action="store_true",
        help="show the fleet as a web page instead of a table (needs edgedev[web]); with "
        "--allow-writes the page sets values and the demo sets none itself",
    )
    add_web_options(parser)
    parser.add_argument(
        "--sparkplug",
        default=None,
        metavar="GROUP/EDGE_NODE",
        help="the demo's devices as Sparkplug B edge node GROUP/EDGE_NODE too (needs "
        "edgedev[sparkplug]; docs/sparkplug.md)",
    )


def demo_files(directory: Path) -> list[str]:
    """Write every installed simulator's demo fleet into ``directory``; the file names."""
    files = []
    for name in simulators.names():
        text = simulators.get(name).demo_yaml(free_port)
        if text:
            path = directory / f"{name}.yaml"
            path.write_text(text, encoding="utf-8")
            files.append(str(path))
    return files


def write_target(devices: list[DeviceSpec]) -> tuple[DeviceSpec, PropertySpec] | None:
    """The property the demo writes: a writable number with a minimum and a maximum.

    Modbus devices come first (the thermostat's setpoint, a holding register).
    """
    for device in sorted(devices, key=lambda d: d.protocol != "modbus"):
        for prop in device.properties:
            if (
                prop.writable
                and prop.type.is_number
                and prop.minimum is not None
                and prop.maximum is not None
            ):
                return device, prop
    return None


def write_values(prop: PropertySpec) -> list[str]:
    """The values the demo sets in turn: a quarter and three quarters of the range."""
    assert prop.minimum is not None and prop.maximum is not None
    low, high = prop.minimum, prop.maximum
    values = [low + (high - low) * f for f in (0.25, 0.75, 0.5)]
    return [str(round(v)) if prop.type.name == "INT" else f"{v:.1f}" for v in values]


async def _write_loop(bus: Bus, topics: Topics, devices: list[DeviceSpec], view: TwinView) -> None:
    """Set a new desired value every :data:`WRITE_PERIOD` seconds, as an app would."""
    target = write_target(devices)
    if target is None:
        return
    device, prop = target
    values = write_values(prop)
    topic = topics.device(device.id, Channel.TWIN_UPDATE)
    for turn in range(1_000_000):
        await anyio.sleep(WRITE_PERIOD)
        value = values[turn % len(values)]
        bus.publish(topic, desired_update({prop.name: value}))
        view.footer = f"demo: set {device.id} {prop.name}={value} (desired), watch it be reported"


def attach_line(url: str, topic_root: str, sparkplug: str | None = None) -> str:
    """How to look at the demo from another terminal."""
    root = "" if topic_root == DEFAULT_ROOT else f" --topic-root '{topic_root}'"
    line = f"demo broker: {url}  (from another terminal: edgedev watch --broker {url}{root})"
    if sparkplug is not None:
        line += (
            f"\nSparkplug B edge node {sparkplug}  (edgedev watch --sparkplug {sparkplug} "
            f"--broker {url}, or any Sparkplug host on that broker)"
        )
    return line


async def _show(
    bus: Bus,
    messages: MemoryObjectReceiveStream[Message],
    topics: Topics,
    seconds: float | None,
    devices: list[DeviceSpec],
    header: str,
) -> None:
    view = TwinView(topics)
    tty = sys.stdout.isatty()
    if tty:
        view.header = header  # the screen is redrawn: keep the line on it
    else:
        print(header, flush=True)  # once, at once: a log gets the renders below it
    period = 0.25 if tty else 5.0

    async def draw() -> None:
        while True:
            await anyio.sleep(period)
            text = view.render()
            if tty:
                sys.stdout.write("\x1b[H\x1b[2J" + text + "\n")
            else:
                sys.stdout.write(text + "\n\n")
            sys.stdout.flush()

    async with anyio.create_task_group() as tg:
        tg.start_soon(draw)
        tg.start_soon(_write_loop, bus, topics, devices, view)
        with anyio.move_on_after(seconds if seconds is not None else float("inf")):
            async for message in messages:
                view.apply(message.topic, message.payload)
        tg.cancel_scope.cancel()
    print(view.render())


async def _serve_web(
    web: ViewServer,
    sock: socket.socket | None,
    bus: Bus,
    url: str | BrokerURL,
    args: argparse.Namespace,
    devices: list[DeviceSpec],
) -> None:
    """The fleet as a web page (``--web``); the demo writes only while the page cannot."""
    async with anyio.create_task_group() as tg:
        await tg.start(functools.partial(web.run, bus=bus, sock=sock))
        announce(web)
        if not web.allow_writes:
            tg.start_soon(_write_loop, bus, web.topics, devices, web.view)
        await anyio.sleep(args.seconds if args.seconds is not None else math.inf)
        tg.cancel_scope.cancel()


def run(args: argparse.Namespace) -> int:
    """Run the demo."""
    with tempfile.TemporaryDirectory(prefix="edgedev-demo-") as tmp:
        files = demo_files(Path(tmp))
        if not files:
            print(
                f"no mapper is installed: `{install_hint('modbus')}` (or another mapper)",
                file=sys.stderr,
            )
            return 1
        devices = load_or_report(files)
        if devices is None:
            return 1
        topics = Topics(args.topic_root)
        if args.sparkplug is not None:
            try:
                from edgedev.sparkplug import EdgeNode, Sparkplug
            except ImportError:
                print("error: --sparkplug needs edgedev[sparkplug] (protobuf)", file=sys.stderr)
                return 1
            try:
                EdgeNode.parse(args.sparkplug)
            except ValueError as exc:
                print(f"error: --sparkplug: {exc}", file=sys.stderr)
                return 2
        web = make_server(args, "", devices) if args.web else None
        if args.web and web is None:
            return 1
        try:
            sock = web.bind() if web is not None else None
        except ViewError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1

        scopes: list[anyio.CancelScope] = []

        def stop() -> None:
            # Ctrl-C or SIGTERM: end the fleet as --seconds does, so that its mappers say
            # offline (and Sparkplug's NDEATH goes out) while the embedded broker still serves
            if scopes:
                scopes[-1].cancel()

        async def main() -> int:
            with anyio.CancelScope() as whole:
                scopes.append(whole)
                await _run_fleet()
            return 0

        async def _run_fleet() -> None:
            async with contextlib.AsyncExitStack() as stack:
                url: str | BrokerURL | None = args.broker
                if url is None:
                    broker = await stack.enter_async_context(EmbeddedBroker("127.0.0.1", 0))
                    url = broker.url
                async with anyio.create_task_group() as tg:
                    scopes.append(tg.cancel_scope)
                    await tg.start(simulate, devices)
                    await tg.start(
                        Agent(
                            devices,
                            broker=url,
                            topic_root=args.topic_root,
                            name="edgedev-demo-agent",
                        ).run
                    )
                    transports: list[TwinTransport] = [
                        KubeEdgeMqtt(url, topic_root=args.topic_root)
                    ]
                    if args.sparkplug is not None:
                        transports.append(Sparkplug(args.sparkplug, url))
                    mapper = Mapper(devices, transports=transports, name="edgedev-demo")
                    header = attach_line(str(url), args.topic_root, args.sparkplug)
                    async with Bus(url, client_id="edgedev-demo-view") as bus:
                        if web is None:
                            # subscribed before the mapper starts: every state is seen once
                            with anyio.move_on_after(10):
                                await bus.wait_connected()
                            async with bus.subscribe(topics.all_devices()) as messages:
                                await tg.start(mapper.run)
                                await _show(bus, messages, topics, args.seconds, devices, header)
                        else:
                            await tg.start(mapper.run)
                            print(header, flush=True)
                            await _serve_web(web, sock, bus, url, args, devices)
                    tg.cancel_scope.cancel()

        return run_async(main, stop=stop)
