"""One Bluetooth adapter shared by every device of the process: one scan or connect at a time.

BlueZ does not scan and connect reliably at the same time, and several devices starting
together would otherwise start several scans. So each adapter (per backend, per event loop)
has one lock that every scan and every connect takes, and one cache of the peripherals its
scans have seen: a scan for one device also finds the others, which then connect at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import weakref
from dataclasses import dataclass

import anyio
from bleak import BleakScanner
from bleak.args.bluez import BlueZClientArgs, BlueZScannerArgs
from bleak.backends.client import BaseBleakClient
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, BaseBleakScanner

from edgedev_ble.config import ENV_BACKEND, parse_backend

log = logging.getLogger("edgedev.ble")


@dataclass(frozen=True, slots=True)
class Backend:
    """Which bleak backend a device uses.

    Attributes:
        name: ``default`` or ``sim://HOST:PORT``.
        client: the client backend class, ``None`` for the platform's.
        scanner: the scanner backend class, ``None`` for the platform's.
    """

    name: str
    client: type[BaseBleakClient] | None = None
    scanner: type[BaseBleakScanner] | None = None

    @property
    def simulated(self) -> bool:
        """Whether this backend reaches simulated peripherals."""
        return self.client is not None


def resolve_backend(configured: str | None) -> Backend:
    """The backend that configData's ``backend`` (else ``EDGEDEV_BLE_BACKEND``) names.

    Raises:
        ValueError: the environment variable names no backend.
    """
    text = configured or os.environ.get(ENV_BACKEND, "").strip() or "default"
    endpoint = parse_backend(text)
    if endpoint is None:
        return Backend("default")
    from edgedev_ble.simbackend import sim_backend

    client, scanner = sim_backend(*endpoint)
    return Backend(f"sim://{endpoint[0]}:{endpoint[1]}", client, scanner)


class Adapter:
    """A Bluetooth adapter as this process's devices share it.

    Attributes:
        lock: held by every scan and every connect on this adapter.
        scans: scans started so far (tests count them).
    """

    _adapters: weakref.WeakKeyDictionary[
        asyncio.AbstractEventLoop, dict[tuple[str, str | None], Adapter]
    ] = weakref.WeakKeyDictionary()

    def __init__(self, backend: Backend, name: str | None) -> None:
        self.backend = backend
        self.name = name
        self.lock = anyio.Lock()
        self.scans = 0
        self._seen: dict[str, BLEDevice] = {}

    @classmethod
    def get(cls, backend: Backend, name: str | None) -> Adapter:
        """The adapter ``name`` (``None``: the default one) of ``backend`` in this loop."""
        loop = asyncio.get_running_loop()
        adapters = cls._adapters.setdefault(loop, {})
        key = (backend.name, name)
        adapter = adapters.get(key)
        if adapter is None:
            adapter = adapters[key] = cls(backend, name)
        return adapter

    @property
    def bluez_scanner_args(self) -> BlueZScannerArgs:
        """``bluez=`` arguments of bleak's scanner for this adapter."""
        return BlueZScannerArgs(adapter=self.name) if self.name else BlueZScannerArgs()

    @property
    def bluez_client_args(self) -> BlueZClientArgs:
        """``bluez=`` arguments of bleak's client for this adapter."""
        return BlueZClientArgs(adapter=self.name) if self.name else BlueZClientArgs()

    def forget(self, address: str) -> None:
        """Drop ``address`` from the cache (it was not found where it was seen)."""
        self._seen.pop(address.upper(), None)

    async def find(self, address: str, seconds: float) -> BLEDevice | None:
        """The peripheral at ``address``: from the cache, else from a scan of ``seconds``.

        Call it holding :attr:`lock`. Every peripheral the scan sees is cached.
        """
        key = address.upper()
        if key in self._seen:
            return self._seen[key]
        found = anyio.Event()

        def seen(device: BLEDevice, _adv: AdvertisementData) -> None:
            self._seen[device.address.upper()] = device
            if device.address.upper() == key:
                found.set()

        self.scans += 1
        log.debug("scanning for %s on %s", address, self.name or "the default adapter")
        scanner = BleakScanner(seen, bluez=self.bluez_scanner_args, backend=self.backend.scanner)
        async with scanner:
            with anyio.move_on_after(seconds):
                await found.wait()
        return self._seen.get(key)
