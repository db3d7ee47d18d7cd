"""The BLE driver on bleak: connect by address, read, subscribe to notifications, write.

bleak is imported here at module level, but it loads its platform backend (BlueZ through
dbus-fast on Linux) only when a scan or connection starts: importing the driver works on a
machine without Bluetooth or D-Bus, and such a machine only sees its devices go offline.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Iterator, Mapping, Sequence

import anyio
from bleak import BleakClient
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.exc import BleakDeviceNotFoundError, BleakError, BleakGATTProtocolError

from edgedev.drivers import (
    DeviceError,
    Driver,
    Endpoints,
    Expectations,
    Report,
    WriteRefused,
    fractional_scale,
    value_problems,
    value_warnings,
)
from edgedev.twin import Sample, Value
from edgedev_ble.adapter import Adapter, resolve_backend
from edgedev_ble.codec import Codec
from edgedev_ble.config import BleDeviceSpec, BlePropertySpec, BleProtocol, BleVisitor

log = logging.getLogger("edgedev.ble")

_PUSHING = frozenset({"notify", "indicate"})


_NO_DBUS = (
    " (no system D-Bus: is bluetoothd running, and /run/dbus/system_bus_socket there, or "
    "mounted into the container?)"
)


@contextlib.contextmanager
def _device_errors(where: str, hint: str = "") -> Iterator[None]:
    """Map bleak's and the OS's failures to :class:`DeviceError` at the driver's boundary."""
    try:
        yield
    except (FileNotFoundError, ConnectionRefusedError) as exc:
        raise DeviceError(f"{where}: {exc}{hint}") from exc
    except (BleakError, OSError, EOFError) as exc:
        raise DeviceError(f"{where}: {exc or type(exc).__name__}") from exc


class BleDriver(Driver[BleProtocol, BleVisitor]):
    """Bluetooth Low Energy peripherals through bleak (BlueZ, CoreBluetooth, WinRT, simulator).

    ``connect`` finds the peripheral (cached after the first scan) and connects, one device
    at a time per adapter. Properties on characteristics that notify (or indicate) are pushed
    (:meth:`watch`), the others are read every ``collectCycle``; several properties on one
    characteristic share one read. A lost connection ends :meth:`watch` and fails reads, so
    the runtime reports the device offline and reconnects with backoff, which subscribes again.
    """

    protocol_config = BleProtocol
    visitor_config = BleVisitor

    def __init__(self, device: BleDeviceSpec, endpoints: Endpoints | None = None) -> None:
        super().__init__(device, endpoints)
        self._codecs = {p.name: Codec.of(device.id, p) for p in device.properties}
        self._expect = Expectations(device.properties) or None
        self._client: BleakClient | None = None
        self._chars: dict[str, BleakGATTCharacteristic] = {}
        self._lost = anyio.Event()
        self._warned: set[str] = set()

    @classmethod
    def check_property(cls, prop: BlePropertySpec) -> list[tuple[str, str]]:
        """Check that the visitor's decoding and value keys suit the property's type."""
        codec = Codec(prop.type, prop.visitor)
        return Codec.check(prop.type, prop.visitor) or value_problems(prop, codec.raw_kind())

    @classmethod
    def held_value(cls, prop: BlePropertySpec, value: Value) -> Value:
        """What a read gives back after ``value`` is written: encoded, then decoded.

        So a ``format``'s width and precision (a ``sint16`` in hundredths holds 21.55, not
        21.555) and the value keys say what the characteristic holds. A value built into the
        characteristic's current bytes (a ``dataConverter``) is taken as it is: only the
        connected device tells.

        Raises:
            ValueError: the value has no encoding here (too large, not a ``dataWrite`` key).
        """
        if prop.visitor.data_converter is not None:
            return value
        codec = Codec.of("", prop)
        return codec.decode(codec.encode(value))

    @classmethod
    def property_warnings(cls, prop: BlePropertySpec) -> list[tuple[str, str]]:
        """Readings EdgeCore refuses: an INT with fractions, mapping texts beyond its charset.

        ``scale`` applies to a numeric ``format`` only; elsewhere it changes nothing.
        """
        visitor = prop.visitor
        fmt = visitor.format
        if visitor.plain and (fmt is None or not fmt.is_number):
            return []
        if visitor.mapping is None and (fmt is None or not fmt.is_number):
            return fractional_scale(prop, 1.0, visitor.value_offset, visitor.base)
        return value_warnings(prop)

    @property
    def where(self) -> str:
        """The device and its address, for messages."""
        return f"{self.device.id} ({self.config.mac_address})"

    # connection ----------------------------------------------------------------------------
    async def connect(self) -> None:
        """Find the peripheral (scan unless cached) and connect, holding the adapter's lock."""
        cfg = self.config
        try:
            backend = resolve_backend(cfg.backend)
        except ValueError as exc:
            raise DeviceError(f"{self.where}: {exc}") from None
        adapter = Adapter.get(backend, cfg.adapter)
        self._lost = anyio.Event()
        hint = "" if backend.simulated else _NO_DBUS
        with _device_errors(self.where, hint):
            async with adapter.lock:
                found = await adapter.find(cfg.mac_address, cfg.timeout / 1000)
                if found is None:
                    raise DeviceError(f"{self.where}: not found by scanning")
                client = BleakClient(
                    found,
                    self._on_disconnect,
                    timeout=cfg.timeout / 1000,
                    pair=cfg.pair,
                    bluez=adapter.bluez_client_args,
                    backend=backend.client,
                )
                self._client = client  # closed by close() even if connect is cancelled
                try:
                    await client.connect()
                except BleakDeviceNotFoundError:
                    adapter.forget(cfg.mac_address)
                    raise
        self._chars = {}
        for prop in self.device.properties:
            char = self._find(prop)
            if char is None:
                log.warning(
                    "%s: no characteristic %s for %s",
                    self.where,
                    prop.visitor.characteristic_uuid,
                    prop.name,
                )
            else:
                self._chars[prop.name] = char
        log.info("%s connected via %s", self.where, backend.name)

    def _find(self, prop: BlePropertySpec) -> BleakGATTCharacteristic | None:
        assert self._client is not None
        visitor = prop.visitor
        services = self._client.services
        if visitor.service_uuid is not None:
            service = services.get_service(visitor.service_uuid)
            return (
                None if service is None else service.get_characteristic(visitor.characteristic_uuid)
            )
        try:
            return services.get_characteristic(visitor.characteristic_uuid)
        except BleakError:  # the UUID is in several services: take the first
            for service in services:
                char = service.get_characteristic(visitor.characteristic_uuid)
                if char is not None:
                    return char
        return None

    def _on_disconnect(self, _client: BleakClient) -> None:
        log.info("%s disconnected", self.where)
        self._lost.set()

    async def close(self) -> None:
        """Disconnect; never raises."""
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.disconnect()

    def _connected(self) -> BleakClient:
        if self._client is None or self._lost.is_set() or not self._client.is_connected:
            raise DeviceError(f"{self.where}: not connected")
        return self._client

    # reads ---------------------------------------------------------------------------------
    def pushes(self, prop: BlePropertySpec) -> bool:
        """Notified properties: ``notify`` unset or true, on a characteristic that notifies.

        A property with ``notify: true`` on a characteristic that does not notify is polled
        (with a warning) rather than leaving the whole device offline.
        """
        notify = prop.visitor.notify
        char = self._chars.get(prop.name)
        offers = char is not None and bool(_PUSHING & set(char.properties))
        if notify and char is not None and not offers:
            if prop.name not in self._warned:
                self._warned.add(prop.name)
                log.warning("%s: %s does not notify; polling %s", self.where, char.uuid, prop.name)
            return False
        return offers if notify is None else notify

    async def read(self, properties: Sequence[BlePropertySpec]) -> Mapping[str, Value | Sample]:
        """Read each characteristic once and decode every property on it."""
        client = self._connected()
        by_char: dict[int, list[BlePropertySpec]] = {}
        for prop in properties:
            char = self._chars.get(prop.name)
            if char is not None and "read" in char.properties:
                by_char.setdefault(char.handle, []).append(prop)
        values: dict[str, Value | Sample] = {}
        for group in by_char.values():
            char = self._chars[group[0].name]
            with _device_errors(self.where):
                try:
                    data = bytes(await client.read_gatt_char(char))
                except BleakGATTProtocolError as exc:
                    log.warning("%s: reading %s refused: %s", self.where, char.uuid, exc)
                    continue
            self._decode(group, data, values)
        if self._expect is not None:
            self._expect.check(values)
        return values

    def _decode(
        self, props: Sequence[BlePropertySpec], data: bytes, into: dict[str, Value | Sample]
    ) -> None:
        """Each property's value in ``data``; one that cannot be decoded is Bad, and why."""
        for prop in props:
            try:
                into[prop.name] = self._codecs[prop.name].decode(data)
            except ValueError as exc:
                log.debug("%s: %s: cannot decode %s: %s", self.where, prop.name, data.hex(), exc)
                into[prop.name] = Sample.bad(f"cannot decode the value: {exc}")

    async def watch(self, properties: Sequence[BlePropertySpec], report: Report) -> None:
        """Subscribe to every notifying characteristic; report each value until disconnected.

        The current value of a readable characteristic is reported at once, so that a twin
        does not wait for the first notification.
        """
        client = self._connected()
        by_char: dict[int, list[BlePropertySpec]] = {}
        for prop in properties:
            char = self._chars.get(prop.name)
            if char is None:
                continue
            if not _PUSHING & set(char.properties):
                raise DeviceError(f"{self.where}: {char.uuid} ({prop.name}) does not notify")
            by_char.setdefault(char.handle, []).append(prop)

        for group in by_char.values():
            char = self._chars[group[0].name]
            with _device_errors(self.where):
                await client.start_notify(char, functools.partial(self._notified, group, report))
                if "read" in char.properties:
                    self._notified(group, report, char, await client.read_gatt_char(char))
        await self._lost.wait()
        raise DeviceError(f"{self.where}: disconnected")

    def _notified(
        self,
        group: Sequence[BlePropertySpec],
        report: Report,
        _char: BleakGATTCharacteristic,
        data: bytearray,
    ) -> None:
        values: dict[str, Value | Sample] = {}
        self._decode(group, bytes(data), values)
        for name, value in values.items():
            report(name, value)

    # writes --------------------------------------------------------------------------------
    async def write(self, prop: BlePropertySpec, value: Value) -> None:
        """Encode ``value`` and write it, with or without response."""
        client = self._connected()
        char = self._chars.get(prop.name)
        if char is None:
            raise WriteRefused(f"{self.where}: {prop.name} has no characteristic")
        visitor = prop.visitor
        codec = self._codecs[prop.name]
        can_ack, can_command = (
            "write" in char.properties,
            "write-without-response" in (char.properties),
        )
        if not (can_ack or can_command):
            raise WriteRefused(f"{char.uuid} cannot be written")
        response = visitor.write_with_response
        if response is None:
            response = can_ack
        if visitor.bit is not None and "read" not in char.properties:
            raise WriteRefused(
                f"{prop.name}: {char.uuid} cannot be read, so bit {visitor.bit} cannot be "
                "written without changing the others"
            )
        current = b""
        with _device_errors(self.where):
            if codec.needs_current and "read" in char.properties:
                current = bytes(await client.read_gatt_char(char))
            try:
                data = codec.encode(value, current)
            except ValueError as exc:
                raise WriteRefused(f"{prop.name}: {exc}") from None
            try:
                await client.write_gatt_char(char, data, response=response)
            except BleakGATTProtocolError as exc:
                raise WriteRefused(f"{self.where} refused the write: {exc}") from None
