"""``edgedev agent [-f FILE...] [--db PATH]``: the edge-side twin service."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from edgedev._process import run_async
from edgedev.agent import Agent, AgentLimits, StoreError
from edgedev.cli._common import add_bus_options, add_file_option, load_or_report, megabytes
from edgedev.cli._run import add_health_option
from edgedev.health import HealthError, agent_health, serving

HELP = "keep device twins in SQLite and drive mappers to the desired values"
LOG_LEVEL = logging.INFO


def default_db() -> str:
    """``$EDGEDEV_DB``, else ``$EDGEDEV_DATA_DIR/twins.db``, else the user's data directory."""
    if os.environ.get("EDGEDEV_DB"):
        return os.environ["EDGEDEV_DB"]
    if os.environ.get("EDGEDEV_DATA_DIR"):
        return str(Path(os.environ["EDGEDEV_DATA_DIR"]) / "twins.db")
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return str(Path(data) / "edgedev" / "twins.db")


def add_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``agent``."""
    add_file_option(parser, required=False)
    add_bus_options(parser)
    parser.add_argument(
        "--db",
        default=default_db(),
        metavar="PATH",
        help="the SQLite file of the twins (env EDGEDEV_DB, else $EDGEDEV_DATA_DIR/twins.db, "
        "else ~/.local/share/edgedev/twins.db); ':memory:' keeps nothing",
    )
    parser.add_argument(
        "--node",
        default=os.environ.get("EDGEDEV_NODE"),
        metavar="NAME",
        help="edge node name; devices bound to other nodes are skipped (env EDGEDEV_NODE)",
    )
    limits = AgentLimits()
    for option, field, what in (
        ("--max-payload", "max_payload", "bytes of one message"),
        ("--max-depth", "max_depth", "JSON nesting of one message"),
        ("--max-properties", "max_properties", "properties in one twin/update"),
        ("--max-devices", "max_devices", "devices of one node"),
        ("--max-state-ids", "max_state_ids", "device ids in one mapper/state"),
        ("--new-ids-per-minute", "new_ids_per_minute", "new devices a minute from one mapper"),
    ):
        parser.add_argument(
            option,
            type=int,
            default=getattr(limits, field),
            metavar="N",
            help=f"most {what} accepted (default %(default)s)",
        )
    parser.add_argument(
        "--db-max-mb",
        type=megabytes,
        default=os.environ.get("EDGEDEV_DB_MAX_MB") or limits.max_store_bytes // 2**20,
        metavar="MB",
        help="most MiB the twins take in --db; beyond, new devices and properties from the "
        "bus are refused (counted, logged), known twins keep their updates; 0: no bound "
        "(env EDGEDEV_DB_MAX_MB, default %(default)s)",
    )
    add_health_option(parser)


def run(args: argparse.Namespace) -> int:
    """Serve twins until SIGINT or SIGTERM."""
    devices = load_or_report(args.files) if args.files else []
    if devices is None:
        return 1
    try:
        limits = AgentLimits(
            args.max_payload,
            args.max_depth,
            args.max_properties,
            args.max_devices,
            args.max_state_ids,
            args.new_ids_per_minute,
            int(args.db_max_mb * 2**20),
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    agent = Agent(
        devices,
        broker=args.broker,
        topic_root=args.topic_root,
        db=args.db,
        node=args.node,
        limits=limits,
    )

    async def main() -> int:
        try:
            async with serving(agent_health(agent), args.health_port, args.health_host):
                await agent.run()
        except (StoreError, HealthError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        return 0

    return run_async(main)
