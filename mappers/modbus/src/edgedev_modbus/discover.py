"""``edgedev discover modbus``: the units of a Modbus endpoint, or a vendor map, as Devices.

Two ways: a **survey** probes unit ids and walks their tables for the readable addresses
(:mod:`edgedev_modbus.survey`), a draft with a property per address; a **register map**
(``--map FILE.csv --device NAME --unit N``) turns a vendor's map into a DeviceModel and a
Device (:mod:`edgedev_modbus.regmap`), with no request sent. This module imports no
pymodbus: every ``edgedev`` command builds the parser.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from edgedev.discover import (
    DeviceDraft,
    Discoverer,
    Discovery,
    Options,
    Summary,
    UsageError,
    positive_int,
    settings,
)
from edgedev_modbus.codec import Table
from edgedev_modbus.config import ModbusProtocol
from edgedev_modbus.found import TABLES, text_of, unit_draft
from edgedev_modbus.regmap import MapError, parse_map
from edgedev_modbus.scan import MAX_COUNT, parse_units

PROBE_TIMEOUT = 500
"""Deadline of each request while discovering, ms, unless ``--timeout`` says otherwise."""
DEFAULT_RATE = 100.0
DEFAULT_MAX_ADDRESS = 9999
MAX_MAP_BYTES = 8 * 1024 * 1024


def _tables(text: str) -> list[Table]:
    found = []
    for word in text.split(","):
        table = TABLES.get(word.strip().lower())
        if table is None:
            raise argparse.ArgumentTypeError(
                f"{word.strip()!r} is not a table ({', '.join(TABLES)})"
            )
        if table not in found:
            found.append(table)
    return found


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of requests a second") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"{value}: give 0 (no limit) or more")
    return value


def _address(text: str) -> int:
    value = positive_int(text) if text != "0" else 0
    if value > 65535:
        raise argparse.ArgumentTypeError(f"{value}: the last address is 65535")
    return value


class ModbusDiscoverer(Discoverer):
    """Probes the units of a Modbus endpoint, or converts a vendor register map."""

    help = "probe the units of a Modbus endpoint, or convert a vendor register map (CSV)"
    description = """\
Probe the unit ids of a Modbus TCP endpoint (HOST[:PORT]) or serial line (--serial), ask
each unit that answers what it is (device identification, report server id), find the
readable addresses of its tables, and write a Device per unit with a property per address
(a draft to edit). Only read functions are sent: 1, 2, 3, 4, 17 and 43.

With --map FILE.csv --device NAME --unit N, write the DeviceModel and Device of a vendor's
register map instead (header: name,table,address,type,scale,unit,access,description
[,byteorder,wordorder]); nothing is sent to the device."""

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """The endpoint, what to probe, and how politely."""
        parser.add_argument(
            "target", nargs="?", help="HOST[:PORT] of a Modbus TCP endpoint (port 502)"
        )
        serial = parser.add_argument_group("serial line (Modbus RTU), instead of HOST")
        serial.add_argument("--serial", metavar="DEVICE", help="the serial port (/dev/ttyUSB0)")
        serial.add_argument("--baud", type=positive_int, default=19200, help="(default 19200)")
        serial.add_argument("--parity", choices=("N", "E", "O"), default="N", help="(default N)")
        serial.add_argument("--data-bits", type=int, choices=(7, 8), default=8)
        serial.add_argument("--stop-bits", type=int, choices=(1, 2), default=1)
        survey = parser.add_argument_group("what to probe")
        survey.add_argument(
            "--unit",
            default="1-247",
            metavar="IDS",
            help="unit ids to probe, lists and ranges: 1-247 (the default), 1,2,10-20",
        )
        survey.add_argument(
            "--tables",
            type=_tables,
            default=list(Table),
            metavar="LIST",
            help="tables to scan: coil,discrete,input,holding (the default: all four)",
        )
        survey.add_argument(
            "--max-address",
            type=_address,
            default=DEFAULT_MAX_ADDRESS,
            metavar="N",
            help=f"the last address to look at, inclusive (default {DEFAULT_MAX_ADDRESS})",
        )
        survey.add_argument(
            "--stride",
            type=positive_int,
            default=1,
            metavar="N",
            help="in unused space, read every Nth address only: N times fewer requests, and "
            "a range shorter than N between two of them is missed (default 1: none is)",
        )
        survey.add_argument(
            "--rate",
            type=_rate,
            default=DEFAULT_RATE,
            metavar="N",
            help=f"requests a second at most (default {DEFAULT_RATE:g}; 0: as fast as the "
            "device answers, one at a time)",
        )
        survey.add_argument(
            "--timeout",
            type=positive_int,
            metavar="MS",
            help=f"deadline of each request (default {PROBE_TIMEOUT}; written into the "
            "Devices when given): a unit silent that long is absent",
        )
        mapped = parser.add_argument_group("a vendor register map, instead of probing")
        mapped.add_argument("--map", metavar="FILE.csv", help="the register map")
        mapped.add_argument("--device", metavar="NAME", help="the Device's name")

    @staticmethod
    def endpoint(args: argparse.Namespace) -> tuple[ModbusProtocol, dict[str, Any]]:
        """The endpoint's settings, checked as the driver checks them, and the Devices' own.

        Raises:
            UsageError: no endpoint, two of them, or a setting the driver refuses.
        """
        if (args.target is None) == (args.serial is None):
            raise UsageError("give HOST[:PORT] or --serial DEVICE (one of them)")
        config: dict[str, Any]
        if args.target is not None:
            host, sep, port = args.target.rpartition(":")
            if not sep or "]" in port:
                host, port = args.target, "502"
            host = host.strip("[]")
            if not port.isdigit():
                raise UsageError(f"{args.target!r}: the port is not a number")
            config = {"ip": host, "port": int(port)}
        else:
            config = {
                "serialPort": args.serial,
                "baudRate": args.baud,
                "dataBits": args.data_bits,
                "parity": args.parity,
                "stopBits": args.stop_bits,
            }
        if args.timeout is not None:
            config["timeout"] = args.timeout
        cfg = settings(ModbusProtocol, {**config, "timeout": args.timeout or PROBE_TIMEOUT})
        return cfg, config

    async def discover(self, args: argparse.Namespace, options: Options) -> Discovery:
        """Convert the map, or survey the endpoint."""
        cfg, config = self.endpoint(args)
        try:
            units = parse_units(args.unit)
        except ValueError as exc:
            raise UsageError(f"--unit: {exc}") from None
        for table in args.tables:
            if args.stride > MAX_COUNT[table]:
                raise UsageError(f"--stride {args.stride}: at most {MAX_COUNT[table]} for {table}")
        if args.map is not None or args.device is not None:
            return self._map(args, cfg, config, units)
        return await self._survey(args, cfg, config, units)

    @staticmethod
    def _map(
        args: argparse.Namespace, cfg: ModbusProtocol, config: dict[str, Any], units: list[int]
    ) -> Discovery:
        if args.map is None or args.device is None:
            raise UsageError("--map FILE.csv and --device NAME go together")
        if len(units) != 1:
            raise UsageError("with --map, --unit is the one unit id of the device (--unit 3)")
        path = Path(args.map)
        try:
            if path.stat().st_size > MAX_MAP_BYTES:
                raise UsageError(f"{path}: over {MAX_MAP_BYTES // 1024 // 1024} MB")
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"{path}: {getattr(exc, 'strerror', None) or exc}") from None
        try:
            found = parse_map(text, str(path))
        except MapError as exc:
            raise UsageError(str(exc)) from None
        summary = Summary(target=f"{path} for {cfg.address} unit {units[0]}")
        summary.note(f"{len(found.properties)} rows of {path.name}, no request sent")
        if found.modicon:
            summary.note(
                f"{found.modicon} Modicon addresses (40001 ...) converted to zero-based "
                "protocol addresses of their table"
            )
        device = DeviceDraft(
            name=args.device,
            properties=found.properties,
            protocol_config={**config, "slaveID": units[0]},
            kind=path.stem,
        )
        return Discovery([device], summary)

    async def _survey(
        self,
        args: argparse.Namespace,
        cfg: ModbusProtocol,
        config: dict[str, Any],
        units: list[int],
    ) -> Discovery:
        from edgedev_modbus.driver import open_link
        from edgedev_modbus.survey import Surveyor, table_line

        target = cfg.address if cfg.ip else f"RTU {cfg.address}"
        summary = Summary(target=target)
        link = await open_link(cfg, connections=1)
        drafts: list[DeviceDraft] = []
        try:
            surveyor = Surveyor(link, summary, timeout=cfg.timeout / 1000, rate=args.rate)
            found = []
            for number in units:
                unit = await surveyor.probe(number)
                if unit is not None:
                    found.append(unit)
            summary.note(
                f"probed {len(units)} unit ids: {len(found)} answered"
                + (f" ({', '.join(str(u.unit) for u in found)})" if found else "")
            )
            for unit in found:
                await surveyor.identify(unit)
                for table in args.tables:
                    await surveyor.scan(unit, table, args.max_address, args.stride)
        finally:
            await link.aclose()
        host = (cfg.ip or Path(str(cfg.serial_port)).name).replace(".", "-")
        for unit in found:
            said = ", ".join(text_of(v) for _, v in sorted(unit.identity.items()))
            summary.note(f"unit {unit.unit}: {unit.answer}" + (f"; {said}" if said else ""))
            refusals = {s.stopped for s in unit.scans.values() if not s.ranges}
            if len(unit.scans) > 1 and len(refusals) == 1 and None not in refusals:
                summary.note(f"  every table refused: {refusals.pop()}")
            else:
                for scan in unit.scans.values():
                    summary.note(f"  {table_line(scan)}")
            draft = unit_draft(f"{host}-unit-{unit.unit}", unit, config)
            if draft is None:
                summary.skip(f"unit {unit.unit}", "nothing readable up to --max-address")
            else:
                drafts.append(draft)
        return Discovery(drafts, summary)
