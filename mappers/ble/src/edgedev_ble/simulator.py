"""Simulated BLE peripherals for ``edgedev simulate``, ``edgedev demo`` and tests.

The peripherals are served over TCP with the line protocol of :mod:`edgedev_ble.wire`; a
mapper reaches them through bleak's own API with the backend of :mod:`edgedev_ble.simbackend`
(``backend: sim://HOST:PORT`` in configData, or ``EDGEDEV_BLE_BACKEND=sim://HOST:PORT``).
Each Device is served at the address its ``backend`` names, else at the one
``EDGEDEV_BLE_BACKEND`` names, else at ``sim://127.0.0.1:5030``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import anyio
from anyio.abc import ByteStream, SocketAttribute, TaskGroup, TaskStatus
from anyio.streams.buffered import BufferedByteReceiveStream

from edgedev.simulate import Simulator
from edgedev.twin import Value
from edgedev_ble import wire
from edgedev_ble.config import (
    DEFAULT_SIMULATOR,
    ENV_BACKEND,
    BleDeviceSpec,
    BleProtocol,
    BleVisitor,
    parse_backend,
)
from edgedev_ble.peripheral import Characteristic, Peripheral, Write

log = logging.getLogger("edgedev.ble.simulator")

_DEFAULT_ENDPOINT = ("127.0.0.1", int(DEFAULT_SIMULATOR.rpartition(":")[2]))
ADVERTISING_PERIOD = 1.0
"""Seconds between two advertisements of a peripheral to a running scan."""


def serving_address(spec: BleDeviceSpec) -> tuple[str, int]:
    """Where the simulator serves ``spec``: its ``backend``, the environment's, or the default."""
    cfg = spec.config
    for text in (cfg.backend, os.environ.get(ENV_BACKEND)):
        try:
            endpoint = parse_backend(text) if text else None
        except ValueError:  # the environment names no backend: the driver reports it
            endpoint = None
        if endpoint is not None:
            return endpoint
    return _DEFAULT_ENDPOINT


class _Session:
    """One client connection: its outgoing lines, its peripheral and subscriptions."""

    def __init__(self) -> None:
        self.send, self.outgoing = anyio.create_memory_object_stream[bytes](1024)
        self.peripheral: Peripheral | None = None
        self.subscribed: set[int] = set()
        self.scope = anyio.CancelScope()

    def push(self, message: dict[str, Any]) -> None:
        """Queue ``message``; dropped when the client does not keep up (as over the air)."""
        with contextlib.suppress(
            anyio.WouldBlock, anyio.BrokenResourceError, anyio.ClosedResourceError
        ):
            self.send.send_nowait(wire.dump(message))


class BleSimulator(Simulator[BleProtocol, BleVisitor]):
    """BLE peripherals for the Devices given, served to the simulated bleak backend.

    Attributes:
        writes: every write received, in order (tests inspect and clear it).
    """

    def __init__(
        self, devices: Sequence[BleDeviceSpec], clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__(devices)
        self._by_id = {d.id: Peripheral(d, clock) for d in devices}
        self._sites: dict[tuple[str, int], dict[str, Peripheral]] = {}
        for spec in devices:
            site = self._sites.setdefault(serving_address(spec), {})
            site[self._by_id[spec.id].address] = self._by_id[spec.id]
        self._sessions: set[_Session] = set()
        self._changed = anyio.Event()
        self.writes: list[Write] = []
        self.ports: dict[tuple[str, int], int] = {}

    def address(self, device: BleDeviceSpec) -> str:
        """The peripheral's MAC address behind the simulated backend's ``sim://HOST:PORT``."""
        host, port = serving_address(device)
        return f"{self._by_id[device.id].address} at sim://{host}:{port}"

    # control, for tests and the demo ---------------------------------------------------
    def peripheral(self, device_id: str) -> Peripheral:
        """The peripheral that simulates ``device_id``."""
        return self._by_id[device_id]

    def get(self, device_id: str, prop: str) -> Value:
        """The value of ``prop`` on ``device_id`` as the peripheral holds it now."""
        return self._by_id[device_id].get(prop)

    def set(self, device_id: str, prop: str, value: Value) -> None:
        """Set ``prop`` on ``device_id``, and notify subscribers when it notifies."""
        peripheral = self._by_id[device_id]
        char = peripheral.set(prop, value)
        if char.notifies:
            self._notify(peripheral, char)

    def freeze(self, device_id: str) -> None:
        """Stop ``device_id``'s sensors from changing (tests compare exact values)."""
        self._by_id[device_id].frozen = True

    def disconnect(self, device_id: str, *, stay_away: bool = False) -> None:
        """Drop every connection to ``device_id`` (the peripheral disconnects).

        With ``stay_away`` it also stops advertising and refuses connections until
        :meth:`come_back`, as a peripheral out of range or switched off.
        """
        peripheral = self._by_id[device_id]
        if stay_away:
            peripheral.present = False
        for session in list(self._sessions):
            if session.peripheral is peripheral:
                session.scope.cancel()

    def come_back(self, device_id: str) -> None:
        """Make ``device_id`` advertise and accept connections again."""
        self._by_id[device_id].present = True

    def connections(self, device_id: str) -> int:
        """Clients connected to ``device_id`` now."""
        peripheral = self._by_id[device_id]
        return sum(1 for s in self._sessions if s.peripheral is peripheral)

    async def wait_for(self, predicate: Callable[[], bool], *, timeout: float = 10.0) -> None:
        """Return once ``predicate()`` holds; it is checked after every client request.

        Raises:
            TimeoutError: it did not within ``timeout`` seconds.
        """
        with anyio.fail_after(timeout):
            while not predicate():
                await self._changed.wait()

    def _note(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    # serving ---------------------------------------------------------------------------
    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Serve every peripheral until cancelled."""
        async with contextlib.AsyncExitStack() as stack, anyio.create_task_group() as tg:
            for (host, port), site in self._sites.items():
                listener = await anyio.create_tcp_listener(local_host=host, local_port=port)
                await stack.enter_async_context(listener)
                self.ports[(host, port)] = listener.extra(SocketAttribute.local_port)

                async def handle(stream: ByteStream, site: dict[str, Peripheral] = site) -> None:
                    await self._serve(stream, site)

                tg.start_soon(listener.serve, handle, tg)
                log.debug(
                    "simulating %d BLE peripheral(s) at sim://%s:%d (%s)",
                    len(site),
                    host,
                    port,
                    ", ".join(sorted(site)),
                )
            for peripheral in self._by_id.values():
                for char in peripheral.by_handle.values():
                    if char.notifies:
                        tg.start_soon(self._notifier, peripheral, char)
            task_status.started()

    async def _notifier(self, peripheral: Peripheral, char: Characteristic) -> None:
        while True:
            await anyio.sleep(char.period)
            peripheral.refresh(char)
            self._notify(peripheral, char)

    def _notify(self, peripheral: Peripheral, char: Characteristic) -> None:
        message = {"op": "notification", "handle": char.handle, "value": char.value.hex()}
        for session in self._sessions:
            if session.peripheral is peripheral and char.handle in session.subscribed:
                session.push(message)

    async def _serve(self, stream: ByteStream, site: dict[str, Peripheral]) -> None:
        session = _Session()
        self._sessions.add(session)
        try:
            with session.scope:
                async with stream, session.send, session.outgoing, anyio.create_task_group() as tg:
                    tg.start_soon(self._writer, stream, session)
                    await self._reader(stream, session, site, tg)
                    tg.cancel_scope.cancel()
        except* (
            anyio.BrokenResourceError,
            anyio.ClosedResourceError,
            anyio.EndOfStream,
            OSError,
        ) as lost:
            log.debug("a client left: %r", lost.exceptions[0])
        finally:
            self._sessions.discard(session)
            self._note()

    async def _writer(self, stream: ByteStream, session: _Session) -> None:
        async for line in session.outgoing:
            await stream.send(line)

    async def _reader(
        self, stream: ByteStream, session: _Session, site: dict[str, Peripheral], tg: TaskGroup
    ) -> None:
        lines = BufferedByteReceiveStream(stream)
        while True:
            try:
                line = await lines.receive_until(b"\n", wire.MAX_LINE)
            except (anyio.IncompleteRead, anyio.EndOfStream):
                return
            try:
                message = wire.load(line)
                reply = self._handle(message, session, site, tg)
            except (ValueError, KeyError, TypeError) as exc:
                reply = {"error": f"bad request: {exc}"}
                message = {}
            if reply is not None and message.get("id"):
                session.push({**reply, "id": message["id"]})
            self._note()

    def _handle(
        self,
        message: dict[str, Any],
        session: _Session,
        site: dict[str, Peripheral],
        tg: TaskGroup,
    ) -> dict[str, Any] | None:
        op = message.get("op")
        if op == "scan":
            tg.start_soon(self._advertise, session, site)
            return None
        if op in ("drop", "return"):  # control: a peripheral leaves or comes back on demand
            target = site.get(str(message.get("address", "")).upper())
            if target is None:
                return {"error": f"no peripheral {message.get('address')}"}
            if op == "drop":
                self.disconnect(target.spec.id, stay_away=bool(message.get("stayAway", False)))
            else:
                self.come_back(target.spec.id)
            return {"ok": True}
        if op == "connect":
            peripheral = site.get(str(message.get("address", "")).upper())
            if peripheral is None or not peripheral.present:
                return {"error": f"no peripheral {message.get('address')} in range"}
            session.peripheral = peripheral
            return {"ok": True, "name": peripheral.name, "services": peripheral.gatt()}
        peripheral = session.peripheral
        if peripheral is None:
            return {"error": "not connected"}
        char = peripheral.by_handle.get(int(message.get("handle", -1)))
        if char is None:
            return {"error": "no such handle", "att": wire.ATT_INVALID_HANDLE}
        if op == "read":
            return {"ok": True, "value": peripheral.refresh(char).hex()}
        if op == "write":
            response = bool(message.get("response", True))
            kind = "write" if response else "write-without-response"
            if kind not in char.properties:
                return {"error": f"{kind} not permitted", "att": wire.ATT_WRITE_NOT_PERMITTED}
            peripheral.write(char, wire.hex_bytes(message.get("value")), response)
            self.writes.append(peripheral.writes[-1])
            if char.notifies:
                self._notify(peripheral, char)
            return {"ok": True} if response else None
        if op == "notify":
            if not char.notifies:
                return {"error": "notify not supported", "att": wire.ATT_REQUEST_NOT_SUPPORTED}
            if message.get("on", True):
                session.subscribed.add(char.handle)
            else:
                session.subscribed.discard(char.handle)
            return {"ok": True}
        return {"error": f"unknown op {op!r}"}

    async def _advertise(self, session: _Session, site: dict[str, Peripheral]) -> None:
        while True:
            for peripheral in site.values():
                if peripheral.present:
                    session.push(
                        {
                            "op": "adv",
                            "address": peripheral.address,
                            "name": peripheral.name,
                            "rssi": -60,
                            "services": list(peripheral.services),
                        }
                    )
            await anyio.sleep(ADVERTISING_PERIOD)

    @classmethod
    def demo_yaml(cls, allocate_port: Callable[[], int]) -> str:
        """A thermometer whose temperature is notified, and a lamp that takes writes."""
        from importlib.resources import files

        text = files("edgedev_ble").joinpath("demo.yaml").read_text(encoding="utf-8")
        return text.replace("SIM_PORT", str(allocate_port()))
