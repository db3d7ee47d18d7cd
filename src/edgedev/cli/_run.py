"""``edgedev run``: map devices to device twins.

Devices come from files (``-f FILE...``) and, with ``--dmi``, from KubeEdge's EdgeCore over
DMI (one registration per ``--protocol``). ``SIGHUP`` loads the files again: new devices
start, changed ones restart, removed ones stop (reported offline); the others keep their
cycle, and the devices EdgeCore gave are left as they are.
"""

from __future__ import annotations

import argparse
import functools
import gc
import logging
import os
import socket
import sqlite3
import sys
from collections.abc import Sequence

import anyio
from anyio.abc import TaskStatus

from edgedev._errors import EdgedevError
from edgedev._process import run_async
from edgedev._text import plural
from edgedev.bus import MEMORY_MAX_BYTES, MemoryOutbox, Outbox, SqliteOutbox, topic_level_problem
from edgedev.cli._common import (
    add_bus_options,
    add_file_option,
    duration,
    load_or_report,
    megabytes,
    port_number,
)
from edgedev.cli._rest import NO_REST_EXTRA, add_rest_options, rest_server
from edgedev.config import DeviceSpec
from edgedev.discover import positive_int
from edgedev.health import DEFAULT_HOST, HealthError, mapper_health, serving
from edgedev.mapper import FileSource, Mapper, StateChanges, TwinTransport
from edgedev.mqtt import KubeEdgeMqtt
from edgedev.rest import RestError
from edgedev.sinks import (
    QUEUE_LIMIT,
    HttpLayout,
    InfluxFields,
    MysqlLayout,
    SinkFactory,
    SinkOptions,
)
from edgedev.twin import DeviceState

DEFAULT_DMI_SOCKET = "/etc/kubeedge/dmi.sock"
_TRUE = ("1", "true", "yes", "on")

HELP = "run mappers for the devices in the files, or for those EdgeCore sends over DMI"
LOG_LEVEL = logging.INFO

log = logging.getLogger("edgedev.mapper")

SUMMARY_PERIOD = 300.0
"""Seconds between two summary lines of a running mapper."""

DEFAULT_QUEUE_LIMIT = 100_000
"""Messages kept while the broker is away (``--queue-limit``)."""
DEFAULT_OUTBOX_MB = 512
"""MiB the queue may take on disk (``--outbox-max-mb``)."""
DEFAULT_OUTBOX_TTL = "7d"
"""How long a message may wait for the broker (``--outbox-ttl``)."""


def _topic_level(text: str) -> str:
    problem = topic_level_problem(text, "the name")
    if problem is not None:
        raise argparse.ArgumentTypeError(problem)
    return text


def mapper_name(args: argparse.Namespace, devices: Sequence[DeviceSpec]) -> str:
    """``--name``, or ``edgedev-{protocols}-{node}``: the same at every start, one per mapper.

    The name is the mapper's MQTT client id and a level of its retained announcement's
    topic: a name that changed at each start would leave one announcement behind per start,
    and two mappers of one name take the broker connection from each other. Mappers of one
    protocol on one node need a ``--name`` each.
    """
    if args.name:
        return str(args.name)
    node = args.node or socket.gethostname()
    protocols = [*(args.protocols or args.env_protocols)] if args.dmi else []
    served = [d for d in devices if args.node is None or d.node_name in (None, args.node)]
    protocols += sorted({d.protocol for d in served})
    return "-".join(["edgedev", *dict.fromkeys(protocols), node])


def add_health_option(parser: argparse.ArgumentParser) -> None:
    """``--health-port PORT`` and ``--health-host HOST``: serve /healthz, /readyz, /metrics."""
    parser.add_argument(
        "--health-port",
        type=port_number,
        default=os.environ.get("EDGEDEV_HEALTH_PORT") or None,  # argparse applies type
        metavar="PORT",
        help="serve HTTP /healthz, /readyz and /metrics on PORT (env EDGEDEV_HEALTH_PORT; "
        "off by default)",
    )
    parser.add_argument(
        "--health-host",
        default=os.environ.get("EDGEDEV_HEALTH_HOST", DEFAULT_HOST),
        metavar="HOST",
        help="address the health endpoint listens on (env EDGEDEV_HEALTH_HOST; default "
        f"{DEFAULT_HOST}, every address, so that kubelet can probe the pod's IP; 127.0.0.1 "
        "keeps it off the network)",
    )


def add_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``run``."""
    add_file_option(parser, required=False)
    add_bus_options(parser)
    parser.add_argument(
        "--node",
        default=os.environ.get("EDGEDEV_NODE"),
        metavar="NAME",
        help="edge node name; devices bound to other nodes are skipped (env EDGEDEV_NODE)",
    )
    parser.add_argument(
        "--name",
        type=_topic_level,
        default=os.environ.get("EDGEDEV_MAPPER_NAME") or None,
        metavar="NAME",
        help="this mapper's name on the bus, the same at every start (env "
        "EDGEDEV_MAPPER_NAME; default edgedev-PROTOCOLS-NODE: mappers of one protocol on "
        "one node need one each)",
    )
    parser.add_argument(
        "--data-dir",
        default=os.environ.get("EDGEDEV_DATA_DIR"),
        metavar="DIR",
        help="keep the queue of unsent reports in DIR/outbox.sqlite3, so that it survives a "
        "restart (env EDGEDEV_DATA_DIR; in memory when absent)",
    )
    parser.add_argument(
        "--cache-dir",
        default=os.environ.get("EDGEDEV_CACHE_DIR"),
        metavar="DIR",
        help="keep the resolved devices in DIR, so that the next start with unchanged files "
        "skips parsing them (env EDGEDEV_CACHE_DIR; default DIR/cache of --data-dir when "
        "given, else $XDG_CACHE_HOME/edgedev or ~/.cache/edgedev)",
    )
    parser.add_argument(
        "--no-cache",
        action="store_true",
        help="parse the files at every start, keep no cache",
    )
    parser.add_argument(
        "--queue-limit",
        type=positive_int,
        default=os.environ.get("EDGEDEV_QUEUE_LIMIT") or DEFAULT_QUEUE_LIMIT,
        metavar="N",
        help="messages kept while the broker is away; beyond, the oldest is dropped, counted "
        f"and logged (env EDGEDEV_QUEUE_LIMIT, default {DEFAULT_QUEUE_LIMIT})",
    )
    parser.add_argument(
        "--outbox-max-mb",
        type=megabytes,
        default=os.environ.get("EDGEDEV_OUTBOX_MAX_MB") or DEFAULT_OUTBOX_MB,
        metavar="MB",
        help="most MiB the queue takes on disk (with --data-dir; in memory at most "
        f"{MEMORY_MAX_BYTES // 2**20} MiB); beyond, the oldest readings are dropped first, "
        "counted and logged; 0: no bound "
        f"(env EDGEDEV_OUTBOX_MAX_MB, default {DEFAULT_OUTBOX_MB})",
    )
    parser.add_argument(
        "--outbox-ttl",
        type=duration,
        default=os.environ.get("EDGEDEV_OUTBOX_TTL") or DEFAULT_OUTBOX_TTL,
        metavar="AGE",
        help="messages older than AGE (90s, 30m, 12h, 7d) are dropped unsent, counted and "
        f"logged; 0: no bound (env EDGEDEV_OUTBOX_TTL, default {DEFAULT_OUTBOX_TTL})",
    )
    parser.add_argument(
        "--max-connections",
        type=positive_int,
        default=os.environ.get("EDGEDEV_MAX_CONNECTIONS") or None,
        metavar="N",
        help="connections per endpoint where a protocol can use several, such as a Modbus TCP "
        "gateway (env EDGEDEV_MAX_CONNECTIONS; default 1; a device's maxConnections wins)",
    )
    add_health_option(parser)
    add_rest_options(parser)
    dmi = parser.add_argument_group("KubeEdge DMI (EdgeCore v1.15+; needs edgedev[dmi])")
    dmi.add_argument(
        "--dmi",
        action="store_true",
        default=os.environ.get("EDGEDEV_DMI", "").lower() in _TRUE,
        help="register with EdgeCore over DMI and run the devices it sends (env EDGEDEV_DMI=1)",
    )
    protocols = os.environ.get("EDGEDEV_PROTOCOLS", "")
    dmi.add_argument(
        "--protocol",
        dest="protocols",
        action="append",
        default=None,
        metavar="NAME",
        help="a protocol to register for, repeatable (env EDGEDEV_PROTOCOLS, comma-separated)",
    )
    dmi.set_defaults(env_protocols=[p.strip() for p in protocols.split(",") if p.strip()])
    dmi.add_argument(
        "--dmi-socket",
        default=os.environ.get("EDGEDEV_DMI_SOCKET", DEFAULT_DMI_SOCKET),
        metavar="PATH",
        help=f"EdgeCore's DMI socket (env EDGEDEV_DMI_SOCKET, default {DEFAULT_DMI_SOCKET})",
    )
    dmi.add_argument(
        "--mapper-socket",
        default=os.environ.get("EDGEDEV_MAPPER_SOCKET"),
        metavar="PATH",
        help="the socket this mapper serves EdgeCore on; '{protocol}' in it is replaced "
        "(env EDGEDEV_MAPPER_SOCKET, default /etc/kubeedge/edgedev-{protocol}.sock)",
    )
    sparkplug = parser.add_argument_group(
        "Sparkplug B (for SCADA hosts; needs edgedev[sparkplug]; docs/sparkplug.md)"
    )
    sparkplug.add_argument(
        "--sparkplug",
        default=os.environ.get("EDGEDEV_SPARKPLUG") or None,
        metavar="GROUP/EDGE_NODE",
        help="be Sparkplug edge node GROUP/EDGE_NODE on the same broker, each device a "
        "Sparkplug device (env EDGEDEV_SPARKPLUG)",
    )
    sparkplug.add_argument(
        "--sparkplug-host",
        default=os.environ.get("EDGEDEV_SPARKPLUG_HOST") or None,
        metavar="HOST_ID",
        help="the primary host application: births wait until its STATE says online (env "
        "EDGEDEV_SPARKPLUG_HOST)",
    )
    parser.add_argument(
        "--no-kubeedge-topics",
        dest="kubeedge_topics",
        action="store_false",
        default=os.environ.get("EDGEDEV_KUBEEDGE_TOPICS", "1").lower() in _TRUE,
        help="leave KubeEdge's device topics out (with --dmi or --sparkplug; env "
        "EDGEDEV_KUBEEDGE_TOPICS=0)",
    )
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
        type=positive_int,
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


def make_outbox(args: argparse.Namespace) -> Outbox:
    """A :class:`SqliteOutbox` in ``--data-dir``, or a :class:`MemoryOutbox` without one.

    Bounded by ``--queue-limit``, ``--outbox-max-mb`` (in memory, by
    :data:`~edgedev.bus._outbox.MEMORY_MAX_BYTES` too) and ``--outbox-ttl``.

    Raises:
        ValueError: ``--outbox-max-mb`` too small to hold a message.
        OSError, sqlite3.Error: the queue cannot be opened.
    """
    max_bytes = int(args.outbox_max_mb * 2**20)
    ttl = args.outbox_ttl or None
    if args.data_dir:
        return SqliteOutbox(args.data_dir, limit=args.queue_limit, max_bytes=max_bytes, ttl=ttl)
    memory = min(max_bytes, MEMORY_MAX_BYTES) if max_bytes else MEMORY_MAX_BYTES
    return MemoryOutbox(args.queue_limit, max_bytes=memory, ttl=ttl)


def transports_of(args: argparse.Namespace, outbox: Outbox) -> list[TwinTransport]:
    """The twin transports ``run``'s arguments ask for: KubeEdge's topics, DMI, Sparkplug B.

    Raises:
        ValueError: ``--dmi`` without a protocol, protocols sharing one mapper socket, or an
            invalid Sparkplug id.
        ImportError: ``--dmi`` or ``--sparkplug`` without its extra installed (the message
            names the extra).
        OSError, sqlite3.Error: Sparkplug's history cannot be kept in ``--data-dir``.
    """
    transports: list[TwinTransport] = []
    if args.kubeedge_topics:
        transports.append(KubeEdgeMqtt(args.broker, topic_root=args.topic_root, outbox=outbox))
    if args.dmi:
        try:
            from edgedev.dmi import Dmi
        except ImportError as exc:
            raise ImportError(
                f"--dmi needs grpcio and protobuf: {_install('dmi')} ({exc})"
            ) from exc

        protocols = list(dict.fromkeys(args.protocols or args.env_protocols))
        transports.append(Dmi(protocols, socket=args.dmi_socket, mapper_socket=args.mapper_socket))
    if args.sparkplug:
        try:
            from edgedev.sparkplug import Sparkplug
        except ImportError as exc:
            raise ImportError(
                f"--sparkplug needs protobuf: {_install('sparkplug')} ({exc})"
            ) from exc

        transports.append(
            Sparkplug(
                args.sparkplug,
                args.broker,
                host=args.sparkplug_host,
                data_dir=args.data_dir,
                client_id=f"{args.name}-sparkplug" if args.name else None,
            )
        )
    elif args.sparkplug_host:
        raise ValueError("--sparkplug-host needs --sparkplug GROUP/EDGE_NODE")
    return transports


def _install(extra: str) -> str:
    return f"pip install 'edgedev[{extra}]'"


def cache_dir(args: argparse.Namespace) -> str | None:
    """Where the loader keeps the resolved devices (``None``: nowhere, ``--no-cache``)."""
    if args.no_cache:
        return None
    if args.cache_dir:
        return str(args.cache_dir)
    if args.data_dir:  # a folder of its own, private even where the volume is not (local-path)
        return os.path.join(args.data_dir, "cache")
    home = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(home, "edgedev")


def run(args: argparse.Namespace) -> int:
    """Run until SIGINT or SIGTERM; reload the files on SIGHUP."""
    if not args.files and not args.dmi:
        print("error: give -f FILE..., or --dmi to take devices from EdgeCore", file=sys.stderr)
        return 2
    if args.dmi and not (args.protocols or args.env_protocols):
        print("error: --dmi needs --protocol NAME (or EDGEDEV_PROTOCOLS)", file=sys.stderr)
        return 2
    devices = load_or_report(args.files, cache=cache_dir(args)) if args.files else []
    if devices is None:
        return 1
    gc.freeze()  # the loaded specs live as long as the process: keep them out of GC passes
    try:
        outbox = make_outbox(args)
    except ValueError as exc:
        print(f"error: --outbox-max-mb: {exc}", file=sys.stderr)
        return 2
    except (OSError, sqlite3.Error) as exc:
        print(f"error: cannot open the queue in {args.data_dir}: {exc}", file=sys.stderr)
        return 1
    try:
        transports = transports_of(args, outbox)
    except ValueError as exc:
        outbox.close()
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (ImportError, OSError, sqlite3.Error) as exc:
        outbox.close()
        print(f"error: {exc}", file=sys.stderr)
        return 1
    changes = StateChanges()  # for the narrator
    try:
        mapper = Mapper(
            devices,
            transports=transports,
            node=args.node,
            name=mapper_name(args, devices),
            max_connections=args.max_connections,
            sinks=[changes],
            sinks_for=SinkFactory(sink_options(args)),  # the pushMethod targets, as devices come
        )
    except ValueError as exc:  # a node name that cannot be a topic level
        outbox.close()
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not args.dmi and not mapper.devices:
        outbox.close()
        print(f"no devices for node {args.node!r} in {', '.join(args.files)}")
        return 1
    health = mapper_health(mapper)
    try:
        rest = rest_server(args, mapper)
    except ImportError:
        outbox.close()
        print(NO_REST_EXTRA, file=sys.stderr)
        return 1
    except RestError as exc:
        outbox.close()
        print(f"error: {exc}", file=sys.stderr)
        return 2

    async def main() -> int:
        try:
            for transport in transports:  # one line and exit 1 when another process holds
                await transport.claim()  # what a transport needs alone (DMI's mapper socket)
        except EdgedevError as exc:
            outbox.close()
            print(f"error: {exc}", file=sys.stderr)
            return 1
        try:
            rest_socket = rest.bind() if rest is not None else None
            async with (
                serving(health, args.health_port, args.health_host),
                anyio.create_task_group() as tg,
            ):

                async def run_mapper(*, task_status: TaskStatus[Mapper]) -> None:
                    try:
                        await mapper.run(task_status=task_status)
                    finally:
                        tg.cancel_scope.cancel()  # stopped: the file source and narrator end too

                await tg.start(run_mapper)
                if rest is not None:
                    await tg.start(functools.partial(rest.run, sock=rest_socket))
                if args.files:
                    tg.start_soon(FileSource(args.files).run, mapper)
                tg.start_soon(narrate, mapper, changes, outbox)
        except (HealthError, RestError) as exc:
            outbox.close()
            print(f"error: {exc}", file=sys.stderr)
            return 1
        log.info("mapper %s stopped", mapper.name)
        return 0

    return run_async(main, stop=mapper.stop)


async def narrate(
    mapper: Mapper, changes: StateChanges, outbox: Outbox, period: float = SUMMARY_PERIOD
) -> None:
    """Say when every device has been tried once, then a summary line every ``period`` s.

    ``changes`` is one of the mapper's sinks, ``outbox`` the MQTT transport's. The first line
    is left out when the mapper starts with no device (with ``--dmi`` they come once
    EdgeCore has accepted the registration).
    """
    began = anyio.current_time()
    runners = list(mapper.runners.values())
    if runners:
        await changes.wait_until(lambda: all(r.state != DeviceState.UNKNOWN for r in runners))
        online = sum(r.state == DeviceState.ONLINE for r in runners)
        log.info(
            "started %s in %.1f s: %d online, %d not",
            plural(len(runners), "device"),
            anyio.current_time() - began,
            online,
            len(runners) - online,
        )
    # reads counted per runner: devices come and go (SIGHUP, EdgeCore), a restarted one anew
    reads, since = {r: r.reads for r in runners}, anyio.current_time()
    while True:
        await anyio.sleep(period)
        runners = list(mapper.runners.values())
        now = anyio.current_time()
        done = sum(r.reads - reads.get(r, 0) for r in runners)
        queued = len(outbox)
        log.info(
            "%d of %s online, %.1f reads/s, %s queued for the broker",
            sum(r.state == DeviceState.ONLINE for r in runners),
            plural(len(runners), "device"),
            done / (now - since),
            plural(queued, "message"),
        )
        reads, since = {r: r.reads for r in runners}, now
