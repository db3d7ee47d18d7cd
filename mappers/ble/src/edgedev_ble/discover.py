"""``edgedev discover ble [ADDRESS]``: the peripherals around, or one peripheral's GATT table.

Without an address it scans and lists what advertises (address, RSSI, name, services); with
one it connects, as the driver does (the same adapter lock and cache, the same bleak backend
seam), and makes a Device of its characteristics (:mod:`edgedev_ble.gatt`). Only scans,
connections and the GATT table the connection brings: no characteristic is read or written.
"""

from __future__ import annotations

import argparse
from collections import Counter
from typing import Any

from edgedev._text import plural
from edgedev.discover import (
    DeviceDraft,
    Discoverer,
    Discovery,
    Options,
    PropertyDraft,
    Summary,
    UsageError,
    positive_int,
    settings,
)
from edgedev.drivers import DeviceError
from edgedev_ble.config import BleProtocol, parse_backend
from edgedev_ble.gatt import Found, characteristic_property

SCAN_TIMEOUT = 5000
"""Milliseconds a scan listens, or a connection may take, unless ``--timeout`` says."""


class BleDiscoverer(Discoverer):
    """Lists the peripherals around, or makes a Device of one peripheral's characteristics."""

    help = "scan for BLE peripherals, or make a Device of one peripheral's characteristics"
    description = """\
Without ADDRESS, scan for --timeout and list what advertises: address, RSSI, name and
advertised services (on stdout; no documents). With ADDRESS, connect and make a Device of
the peripheral's characteristics: those the Bluetooth SIG assigned typed with their formats
(temperature 0x2A6E, humidity 0x2A6F, battery level 0x2A19, pressure 0x2A6D ...), the others
as raw bytes (hex); read, notify and indicate make a property (notified where it notifies),
write makes it ReadWrite. No characteristic is read or written."""

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """The peripheral, and how to reach it."""
        parser.add_argument(
            "address", nargs="?", help="the peripheral's address (AA:BB:CC:DD:EE:FF); none: scan"
        )
        parser.add_argument(
            "--backend",
            metavar="NAME",
            help="default (the platform's Bluetooth), or sim://HOST:PORT (edgedev simulate's "
            "peripherals); else EDGEDEV_BLE_BACKEND decides",
        )
        parser.add_argument("--adapter", metavar="NAME", help="the BlueZ adapter (hci0)")
        parser.add_argument(
            "--timeout",
            type=positive_int,
            metavar="MS",
            help=f"how long to scan, or to find and connect (default {SCAN_TIMEOUT}; written "
            "into the Device when given)",
        )

    async def discover(self, args: argparse.Namespace, options: Options) -> Discovery:
        """Scan, or connect and read the GATT table."""
        if args.backend is not None:
            try:
                parse_backend(args.backend)
            except ValueError as exc:
                raise UsageError(f"--backend: {exc}") from None
        if args.address is None:
            return await self._scan(args)
        given = {"backend": args.backend, "adapter": args.adapter}
        config: dict[str, Any] = {"macAddress": args.address}
        config.update({key: value for key, value in given.items() if value})
        if args.timeout is not None:
            config["timeout"] = args.timeout
        cfg = settings(BleProtocol, {**config, "timeout": args.timeout or SCAN_TIMEOUT})
        config["macAddress"] = cfg.mac_address
        return await self._table(cfg, config)

    @staticmethod
    async def _scan(args: argparse.Namespace) -> Discovery:
        import anyio
        from bleak import BleakScanner
        from bleak.backends.device import BLEDevice
        from bleak.backends.scanner import AdvertisementData

        from edgedev_ble.adapter import Adapter
        from edgedev_ble.driver import _device_errors

        backend = _backend(args.backend)
        adapter = Adapter.get(backend, args.adapter)
        seen: dict[str, tuple[BLEDevice, AdvertisementData]] = {}

        def heard(device: BLEDevice, adv: AdvertisementData) -> None:
            seen[device.address.upper()] = (device, adv)

        seconds = (args.timeout or SCAN_TIMEOUT) / 1000
        summary = Summary(target=f"BLE via {backend.name}")
        summary.sent("scan")
        with _device_errors(f"scanning via {backend.name}"):
            async with adapter.lock:
                scanner = BleakScanner(
                    heard, bluez=adapter.bluez_scanner_args, backend=backend.scanner
                )
                async with scanner:
                    await anyio.sleep(seconds)
        lines = [f"{'ADDRESS':<17}  {'RSSI':>4}  {'NAME':<24}  SERVICES"]
        for address, (device, adv) in sorted(seen.items()):
            name = adv.local_name or device.name or ""
            services = ",".join(adv.service_uuids) or "-"
            lines.append(f"{address:<17}  {adv.rssi:>4}  {name:<24}  {services}")
        summary.note(f"scanned {seconds:g} s: {plural(len(seen), 'peripheral')}")
        return Discovery([], summary, listing=lines)

    @staticmethod
    async def _table(cfg: BleProtocol, config: dict[str, Any]) -> Discovery:
        from bleak import BleakClient

        from edgedev_ble.adapter import Adapter
        from edgedev_ble.driver import _device_errors

        backend = _backend(cfg.backend)
        adapter = Adapter.get(backend, cfg.adapter)
        where = f"{cfg.mac_address} via {backend.name}"
        summary = Summary(target=where)
        with _device_errors(where):
            async with adapter.lock:
                summary.sent("scan")
                found = await adapter.find(cfg.mac_address, cfg.timeout / 1000)
                if found is None:
                    raise DeviceError(f"{where}: not found by scanning")
                client = BleakClient(
                    found,
                    timeout=cfg.timeout / 1000,
                    bluez=adapter.bluez_client_args,
                    backend=backend.client,
                )
                summary.sent("connect")
                await client.connect()
            try:
                name = client.name or cfg.mac_address
                chars = [
                    Found(str(char.uuid), str(service.uuid), list(char.properties))
                    for service in client.services
                    for char in service.characteristics
                ]
            finally:
                await client.disconnect()
        shared = Counter(c.uuid for c in chars)
        properties: list[PropertyDraft] = []
        for char in chars:
            made = characteristic_property(char, shared=shared[char.uuid] > 1)
            if isinstance(made, str):
                summary.skip(f"characteristic {char.uuid} (service {char.service})", made)
            else:
                properties.append(made)
        services = plural(len({c.service for c in chars}), "service")
        summary.note(f"{name}: {plural(len(chars), 'characteristic')} in {services}")
        devices = [DeviceDraft(name, properties, config)] if properties else []
        return Discovery(devices, summary)


def _backend(name: str | None) -> Any:
    from edgedev_ble.adapter import resolve_backend

    try:
        return resolve_backend(name)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
