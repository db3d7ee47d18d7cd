"""``edgedev run -f FILE... --broker URL``: map the devices in the files to device twins.

``SIGHUP`` loads the files again: new devices start, changed ones restart, removed ones stop
(reported offline); the others keep their cycle.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sqlite3
import sys

import anyio
from anyio.abc import TaskStatus

from edgedev._text import plural
from edgedev.bus._outbox import MemoryOutbox, Outbox
from edgedev.bus._sqlite_outbox import SqliteOutbox
from edgedev.cli._common import add_bus_options, add_file_option, load_or_report, run_async
from edgedev.health import HealthError, mapper_health, serving
from edgedev.mapper._mapper import Mapper
from edgedev.mapper._source import FileSource
from edgedev.sinks import (
    QUEUE_LIMIT,
    HttpLayout,
    InfluxFields,
    MysqlLayout,
    SinkOptions,
    build_sinks,
)
from edgedev.twin._state import DeviceState

HELP = "run mappers for the devices in the files"
LOG_LEVEL = logging.INFO

log = logging.getLogger("edgedev.mapper")

SUMMARY_PERIOD = 300.0
"""Seconds between two summary lines of a running mapper."""

DEFAULT_QUEUE_LIMIT = 100_000
"""Messages kept while the broker is away (``--queue-limit``)."""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {value}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"not a port number: {value}")
    return value


def add_health_option(parser: argparse.ArgumentParser) -> None:
    """``--health-port PORT``: serve /healthz, /readyz and /metrics (env EDGEDEV_HEALTH_PORT)."""
    parser.add_argument(
        "--health-port",
        type=_port,
        default=os.environ.get("EDGEDEV_HEALTH_PORT") or None,  # argparse applies type
        metavar="PORT",
        help="serve HTTP /healthz, /readyz and /metrics on PORT (env EDGEDEV_HEALTH_PORT; "
        "off by default)",
    )


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
    parser.add_argument(
        "--data-dir",
        default=os.environ.get("EDGEDEV_DATA_DIR"),
        metavar="DIR",
        help="keep the queue of unsent reports in DIR/outbox.sqlite3, so that it survives a "
        "restart (env EDGEDEV_DATA_DIR; in memory when absent)",
    )
    parser.add_argument(
        "--queue-limit",
        type=_positive_int,
        default=os.environ.get("EDGEDEV_QUEUE_LIMIT") or DEFAULT_QUEUE_LIMIT,
        metavar="N",
        help="messages kept while the broker is away; beyond, the oldest is dropped, counted "
        f"and logged (env EDGEDEV_QUEUE_LIMIT, default {DEFAULT_QUEUE_LIMIT})",
    )
    add_health_option(parser)
    add_sink_options(parser)


def add_sink_options(parser: argparse.ArgumentParser) -> None:
    """Mapper-wide settings of the pushMethod/dbMethod sinks (docs/sinks.md)."""
    group = parser.add_argument_group("pushMethod and dbMethod sinks")
    group.add_argument(
        "--http-layout",
        choices=[x.value for x in HttpLayout],
        default=os.environ.get("EDGEDEV_HTTP_LAYOUT") or HttpLayout.FORM.value,
        help="body of pushMethod.http requests: form (upstream's, one request per device and "
        "cycle) or json (one request per batch) (env EDGEDEV_HTTP_LAYOUT)",
    )
    group.add_argument(
        "--mysql-layout",
        choices=[x.value for x in MysqlLayout],
        default=os.environ.get("EDGEDEV_MYSQL_LAYOUT") or MysqlLayout.TABLE_PER_PROPERTY.value,
        help="dbMethod.mysql tables: table-per-property (upstream's) or single-table "
        "(env EDGEDEV_MYSQL_LAYOUT)",
    )
    group.add_argument(
        "--influxdb-fields",
        choices=[x.value for x in InfluxFields],
        default=os.environ.get("EDGEDEV_INFLUXDB_FIELDS") or InfluxFields.STRING.value,
        help="dbMethod.influxdb2 field values: string (upstream's) or typed "
        "(env EDGEDEV_INFLUXDB_FIELDS)",
    )
    group.add_argument(
        "--sink-queue-limit",
        type=_positive_int,
        default=os.environ.get("EDGEDEV_SINK_QUEUE_LIMIT") or QUEUE_LIMIT,
        metavar="N",
        help="values each sink target keeps while it is unreachable; beyond, the oldest are "
        f"dropped and counted (env EDGEDEV_SINK_QUEUE_LIMIT, default {QUEUE_LIMIT})",
    )


def sink_options(args: argparse.Namespace) -> SinkOptions:
    """The :class:`~edgedev.sinks.SinkOptions` of ``run``'s arguments."""
    return SinkOptions(
        http_layout=HttpLayout(args.http_layout),
        mysql_layout=MysqlLayout(args.mysql_layout),
        influx_fields=InfluxFields(args.influxdb_fields),
        queue_limit=args.sink_queue_limit,
    )


def make_outbox(data_dir: str | None, limit: int) -> Outbox:
    """A :class:`SqliteOutbox` in ``data_dir``, or a :class:`MemoryOutbox` without one."""
    if data_dir:
        return SqliteOutbox(data_dir, limit=limit)
    return MemoryOutbox(limit)


def run(args: argparse.Namespace) -> int:
    """Run until SIGINT or SIGTERM; reload the files on SIGHUP."""
    devices = load_or_report(args.files)
    if devices is None:
        return 1
    gc.freeze()  # the loaded specs live as long as the process: keep them out of GC passes
    try:
        outbox = make_outbox(args.data_dir, args.queue_limit)
    except (OSError, sqlite3.Error) as exc:
        print(f"error: cannot open the queue in {args.data_dir}: {exc}", file=sys.stderr)
        return 1
    mapper = Mapper(
        devices,
        broker=args.broker,
        topic_root=args.topic_root,
        node=args.node,
        name=args.name,
        outbox=outbox,
        sinks=build_sinks(devices, sink_options(args)),
    )
    if not mapper.devices:
        outbox.close()
        print(f"no devices for node {args.node!r} in {', '.join(args.files)}")
        return 1

    async def main() -> int:
        try:
            async with (
                serving(mapper_health(mapper), args.health_port),
                anyio.create_task_group() as tg,
            ):

                async def run_mapper(*, task_status: TaskStatus[Mapper]) -> None:
                    await mapper.run(task_status=task_status)
                    tg.cancel_scope.cancel()  # stopped: the file source and the narrator end too

                await tg.start(run_mapper)
                tg.start_soon(FileSource(args.files).run, mapper)
                tg.start_soon(narrate, mapper)
        except HealthError as exc:
            outbox.close()
            print(f"error: {exc}", file=sys.stderr)
            return 1
        log.info("mapper %s stopped", mapper.name)
        return 0

    return run_async(main, stop=mapper.stop)


async def narrate(mapper: Mapper, period: float = SUMMARY_PERIOD) -> None:
    """Say when every device has been tried once, then a summary line every ``period`` s."""
    began = anyio.current_time()
    runners = list(mapper.runners.values())
    tried = anyio.Event()

    def on_state(_state: DeviceState | None) -> None:
        if all(r.state != DeviceState.UNKNOWN for r in runners):
            tried.set()

    for runner in runners:
        runner.on_state.append(on_state)
    on_state(None)
    await tried.wait()
    online = sum(r.state == DeviceState.ONLINE for r in runners)
    log.info(
        "started %s in %.1f s: %d online, %d not",
        plural(len(runners), "device"),
        anyio.current_time() - began,
        online,
        len(runners) - online,
    )
    reads, since = sum(r.reads for r in runners), anyio.current_time()
    while True:
        await anyio.sleep(period)
        runners = list(mapper.runners.values())  # devices come and go on SIGHUP
        now, total = anyio.current_time(), sum(r.reads for r in runners)
        queued = len(mapper.bus.outbox) if mapper.bus is not None else 0
        log.info(
            "%d of %s online, %.1f reads/s, %s queued for the broker",
            sum(r.state == DeviceState.ONLINE for r in runners),
            plural(len(runners), "device"),
            (total - reads) / (now - since),
            plural(queued, "message"),
        )
        reads, since = total, now
