"""``edgedev view``: the twins as a live web page, fed from the bus like ``watch``.

Needs the ``edgedev[web]`` extra (Starlette and uvicorn). Serves on 127.0.0.1:8088 by
default, read-only unless started with ``--allow-writes``.
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

import anyio

from edgedev._process import run_async
from edgedev.bus import BrokerURL
from edgedev.cli._common import add_bus_options, add_file_option, load_or_report
from edgedev.config import DeviceSpec
from edgedev.view import ViewError

if TYPE_CHECKING:
    from edgedev.view import ViewFeed, ViewServer

HELP = "serve a live web page of every twin (needs edgedev[web])"

NO_EXTRA = "error: the web view needs its extra: pip install 'edgedev[web]'"


def add_web_options(parser: argparse.ArgumentParser) -> None:
    """``--host``, ``--port``, ``--allow-writes`` and ``--history`` (``view``, ``demo --web``)."""
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        metavar="ADDR",
        help="address to serve the page on (default 127.0.0.1: this machine only)",
    )
    parser.add_argument(
        "--port", type=int, default=8088, metavar="PORT", help="port (default 8088, 0: any)"
    )
    parser.add_argument(
        "--allow-writes",
        action="store_true",
        help="let the page set desired values through the twin agent (default: read-only)",
    )
    parser.add_argument(
        "--history",
        type=float,
        default=10.0,
        metavar="MIN",
        help="minutes of history charted per property (default 10)",
    )


def add_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``view``."""
    add_bus_options(parser)
    add_web_options(parser)
    add_file_option(parser, required=False)
    parser.add_argument(
        "--sparkplug",
        default=None,
        metavar="GROUP/EDGE_NODE",
        help="show one Sparkplug B edge node's devices, as a SCADA host sees them (read-only; "
        "needs edgedev[sparkplug])",
    )
    parser.add_argument("--seconds", type=float, metavar="S", help="stop after S seconds")


def make_server(
    args: argparse.Namespace,
    broker: str | BrokerURL,
    devices: Sequence[DeviceSpec],
    feed: ViewFeed | None = None,
) -> ViewServer | None:
    """The view server the options ask for; ``None`` (reported) without the web extra."""
    try:
        from edgedev.view import ViewServer
    except ImportError:
        print(NO_EXTRA, file=sys.stderr)
        return None
    return ViewServer(
        broker,
        args.topic_root,
        host=args.host,
        port=args.port,
        allow_writes=args.allow_writes,
        devices=devices,
        window=max(args.history, 0.1) * 60.0,
        feed=feed,
    )


def announce(server: ViewServer) -> None:
    """Say where the page is, and whether it writes."""
    writes = "writes on" if server.allow_writes else "read-only; --allow-writes to set values"
    print(f"web view: {server.url} ({writes})", flush=True)


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT or ``--seconds``."""
    devices = load_or_report(args.files) if args.files else []
    if devices is None:
        return 1
    feed = None
    if args.sparkplug is not None:
        if args.allow_writes:
            print("error: the Sparkplug view is read-only: no --allow-writes", file=sys.stderr)
            return 2
        try:
            from edgedev.cli._sparkplug import SparkplugFeed
            from edgedev.sparkplug import EdgeNode
        except ImportError:
            print("error: --sparkplug needs edgedev[sparkplug] (protobuf)", file=sys.stderr)
            return 1
        try:
            feed = SparkplugFeed(EdgeNode.parse(args.sparkplug))
        except ValueError as exc:
            print(f"error: --sparkplug: {exc}", file=sys.stderr)
            return 2
    server = make_server(args, args.broker, devices, feed)
    if server is None:
        return 1

    async def main() -> int:
        try:
            sock = server.bind()
        except ViewError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        async with anyio.create_task_group() as tg:
            await tg.start(functools.partial(server.run, sock=sock))
            announce(server)
            if args.seconds is not None:
                await anyio.sleep(args.seconds)
                tg.cancel_scope.cancel()
        return 0

    return run_async(main)
