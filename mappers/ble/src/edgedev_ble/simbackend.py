"""A bleak backend that reaches ``edgedev simulate``'s peripherals instead of a radio.

:func:`sim_backend` gives a :class:`~bleak.backends.client.BaseBleakClient` and a
:class:`~bleak.backends.scanner.BaseBleakScanner` subclass bound to one simulator address;
passed as ``backend=`` to :class:`bleak.BleakClient` and :class:`bleak.BleakScanner`, they
make bleak's public API (and so the driver, unchanged) talk to simulated peripherals over the
line protocol of :mod:`edgedev_ble.wire`.

bleak is asyncio-only, so this module uses asyncio streams. Each connected client (and each
running scanner) owns one reader task, started by ``connect``/``start`` and ended by
``disconnect``/``stop`` or by the simulator closing the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable
from typing import Any

from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient, NotifyCallback
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, AdvertisementDataCallback, BaseBleakScanner
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import BleakDeviceNotFoundError, BleakError, BleakGATTProtocolError

from edgedev_ble import wire

log = logging.getLogger("edgedev.ble.sim")


class _Link:
    """One line-protocol connection: requests matched to replies, events to a callback."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        on_event: Callable[[dict[str, Any]], None],
        on_lost: Callable[[], None],
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._on_event = on_event
        self._on_lost = on_lost
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._next_id = 0
        self.open = True
        self._task = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def open_to(
        cls,
        endpoint: tuple[str, int],
        on_event: Callable[[dict[str, Any]], None],
        on_lost: Callable[[], None],
    ) -> _Link:
        reader, writer = await asyncio.open_connection(*endpoint, limit=wire.MAX_LINE)
        return cls(reader, writer, on_event, on_lost)

    async def _read(self) -> None:
        try:
            while True:
                line = await self._reader.readline()
                if not line:
                    break
                message = wire.load(line)
                future = self._pending.pop(message.get("id", -1), None)
                if future is not None:
                    if not future.done():
                        future.set_result(message)
                else:
                    self._on_event(message)
        except (OSError, ValueError, asyncio.LimitOverrunError) as exc:
            log.debug("simulator link failed: %r", exc)
        finally:
            was_open = self.open
            self._shut()
            if was_open:
                self._on_lost()

    def _shut(self) -> None:
        self.open = False
        for future in self._pending.values():
            if not future.done():
                future.set_exception(BleakError("disconnected from the simulated peripheral"))
        self._pending.clear()
        self._writer.close()

    def send(self, message: dict[str, Any]) -> None:
        """Send ``message`` without waiting for a reply."""
        if not self.open:
            raise BleakError("not connected")
        self._writer.write(wire.dump(message))

    async def request(self, message: dict[str, Any]) -> dict[str, Any]:
        """Send ``message`` and return the reply.

        Raises:
            BleakGATTProtocolError: the peripheral refused with an ATT error.
            BleakError: any other refusal, or the link closed.
        """
        if not self.open:
            raise BleakError("not connected")
        self._next_id += 1
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[self._next_id] = future
        self._writer.write(wire.dump({**message, "id": self._next_id}))
        await self._writer.drain()
        reply = await future
        if "error" in reply:
            if isinstance(reply.get("att"), int):
                raise BleakGATTProtocolError(reply["att"])
            raise BleakError(str(reply["error"]))
        return reply

    def abort(self) -> None:
        """Close the connection at once (no loss is reported); the reader task ends by itself."""
        if self.open:
            self._shut()
        self._task.cancel()

    async def close(self) -> None:
        """Close the connection (no loss is reported) and end the reader task."""
        if self.open:
            self._shut()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, OSError):
            await self._task
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()


class SimBleakClient(BaseBleakClient):
    """A bleak client backend for one simulated peripheral.

    Class attribute ``endpoint`` (``(host, port)``) is set by :func:`sim_backend`.
    """

    endpoint: tuple[str, int] = ("127.0.0.1", 5030)

    def __init__(
        self,
        address_or_ble_device: BLEDevice | str,
        *,
        disconnected_callback: Callable[[], None] | None = None,
        timeout: float = 10.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            address_or_ble_device, disconnected_callback=disconnected_callback, timeout=timeout
        )
        self._link: _Link | None = None
        self._name = self.address
        self._callbacks: dict[int, NotifyCallback] = {}

    @property
    def name(self) -> str:
        """The peripheral's name."""
        return self._name

    @property
    def mtu_size(self) -> int:
        """The simulated MTU (the BLE 4.2 data length)."""
        return 247

    @property
    def is_connected(self) -> bool:
        """Whether the peripheral is connected."""
        return self._link is not None and self._link.open

    def _link_or_fail(self) -> _Link:
        if self._link is None or not self._link.open:
            raise BleakError("not connected")
        return self._link

    async def connect(self, pair: bool, **kwargs: Any) -> None:
        """Connect and build the GATT table from the simulator's answer."""
        link = await _Link.open_to(self.endpoint, self._on_event, self._on_lost)
        try:
            reply = await link.request({"op": "connect", "address": self.address})
        except BaseException as exc:
            link.abort()  # no await: this may be a cancellation
            if isinstance(exc, BleakError) and not isinstance(exc, BleakGATTProtocolError):
                raise BleakDeviceNotFoundError(self.address, f"{self.address} not found") from None
            raise
        self._link = link
        self._name = str(reply.get("name") or self.address)
        self.services = _services(reply.get("services", []), self)

    async def disconnect(self) -> None:
        """Disconnect (the disconnected callback is not called: this was asked for)."""
        link, self._link = self._link, None
        self._callbacks.clear()
        if link is not None:
            await link.close()

    async def pair(self, *args: Any, **kwargs: Any) -> None:
        """Simulated peripherals need no pairing."""

    async def unpair(self) -> None:
        """Simulated peripherals need no pairing."""

    async def read_gatt_char(
        self, characteristic: BleakGATTCharacteristic, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        """Read a characteristic's value."""
        reply = await self._link_or_fail().request({"op": "read", "handle": characteristic.handle})
        return bytearray(wire.hex_bytes(reply.get("value", "")))

    async def read_gatt_descriptor(
        self, descriptor: BleakGATTDescriptor, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        """Simulated peripherals have no descriptors."""
        raise BleakGATTProtocolError(wire.ATT_INVALID_HANDLE)

    async def write_gatt_char(
        self, characteristic: BleakGATTCharacteristic, data: Any, response: bool
    ) -> None:
        """Write with response (waits for the peripheral) or without (returns at once)."""
        message = {
            "op": "write",
            "handle": characteristic.handle,
            "value": bytes(data).hex(),
            "response": response,
        }
        link = self._link_or_fail()
        if response:
            await link.request(message)
        else:
            link.send({**message, "id": 0})

    async def write_gatt_descriptor(self, descriptor: BleakGATTDescriptor, data: Any) -> None:
        """Simulated peripherals have no descriptors."""
        raise BleakGATTProtocolError(wire.ATT_INVALID_HANDLE)

    async def start_notify(
        self, characteristic: BleakGATTCharacteristic, callback: NotifyCallback, **kwargs: Any
    ) -> None:
        """Subscribe to notifications of a characteristic."""
        self._callbacks[characteristic.handle] = callback
        await self._link_or_fail().request(
            {"op": "notify", "handle": characteristic.handle, "on": True}
        )

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        """Unsubscribe."""
        self._callbacks.pop(characteristic.handle, None)
        await self._link_or_fail().request(
            {"op": "notify", "handle": characteristic.handle, "on": False}
        )

    def _on_event(self, message: dict[str, Any]) -> None:
        if message.get("op") != "notification":
            return
        callback = self._callbacks.get(message.get("handle", -1))
        if callback is not None:
            callback(bytearray(wire.hex_bytes(message.get("value", ""))))

    def _on_lost(self) -> None:
        self._callbacks.clear()
        if self._disconnected_callback is not None:
            self._disconnected_callback()


def _services(entries: list[dict[str, Any]], client: SimBleakClient) -> BleakGATTServiceCollection:
    collection = BleakGATTServiceCollection()
    for entry in entries:
        service = BleakGATTService(None, int(entry["handle"]), str(entry["uuid"]))
        collection.add_service(service)
        for char in entry.get("characteristics", []):
            collection.add_characteristic(
                BleakGATTCharacteristic(
                    None,
                    int(char["handle"]),
                    str(char["uuid"]),
                    list(char.get("properties", [])),
                    lambda: client.mtu_size - 3,
                    service,
                )
            )
    return collection


class SimBleakScanner(BaseBleakScanner):
    """A bleak scanner backend that sees the simulator's present peripherals.

    Class attribute ``endpoint`` (``(host, port)``) is set by :func:`sim_backend`.
    """

    endpoint: tuple[str, int] = ("127.0.0.1", 5030)

    def __init__(
        self,
        detection_callback: AdvertisementDataCallback | None,
        service_uuids: list[str] | None,
        scanning_mode: str = "active",
        **kwargs: Any,
    ) -> None:
        super().__init__(detection_callback, service_uuids)
        self._link: _Link | None = None

    async def start(self) -> None:
        """Start receiving the simulator's advertisements."""
        self.seen_devices = {}
        self._link = await _Link.open_to(self.endpoint, self._on_event, lambda: None)
        self._link.send({"op": "scan"})

    async def stop(self) -> None:
        """Stop scanning."""
        link, self._link = self._link, None
        if link is not None:
            await link.close()

    def _on_event(self, message: dict[str, Any]) -> None:
        if message.get("op") != "adv":
            return
        address = str(message["address"])
        uuids = [str(u) for u in message.get("services", [])]
        adv = AdvertisementData(
            local_name=message.get("name"),
            manufacturer_data={},
            service_data={},
            service_uuids=uuids,
            tx_power=None,
            rssi=int(message.get("rssi", -60)),
            platform_data=(),
        )
        device = self.create_or_update_device(address, address, message.get("name"), None, adv)
        if self.is_allowed_uuid(uuids):
            self.call_detection_callbacks(device, adv)


@functools.cache
def sim_backend(host: str, port: int) -> tuple[type[SimBleakClient], type[SimBleakScanner]]:
    """Client and scanner backends bound to the simulator at ``host:port``.

    Pass them as ``BleakClient(..., backend=client)`` and ``BleakScanner(..., backend=scanner)``.
    """
    endpoint = {"endpoint": (host, port)}
    client = type(f"SimBleakClient_{port}", (SimBleakClient,), endpoint)
    scanner = type(f"SimBleakScanner_{port}", (SimBleakScanner,), endpoint)
    return client, scanner


async def control(
    host: str, port: int, address: str, *, present: bool, stay_away: bool = True
) -> None:
    """Take the simulated peripheral at ``address`` away (``present=False``) or back.

    Going away disconnects its clients; with ``stay_away`` it also stops advertising and
    refuses connections until it is brought back. Works on a separately started
    ``edgedev simulate``.

    Raises:
        BleakError: the simulator has no such peripheral.
        OSError: nothing serves ``host:port``.
    """
    link = await _Link.open_to((host, port), lambda _message: None, lambda: None)
    try:
        if present:
            await link.request({"op": "return", "address": address})
        else:
            await link.request({"op": "drop", "address": address, "stayAway": stay_away})
    finally:
        await link.close()
