"""Simulated peripherals: a GATT table built from a Device, values that change over time.

No I/O: :mod:`edgedev_ble.simulator` serves these over sockets. Each characteristic named
by a property's visitor exists once (properties on the same UUID share its value, each in
its own field). Read-only properties follow :func:`edgedev.simulate.signals.signal`; writable
ones start at their desired value and keep what is written.

Characteristic properties: ``read`` always; ``notify`` when a property on it has
``notify: true``, or leaves ``notify`` unset and is ReadOnly (a sensor); ``write`` and
``write-without-response`` when a property on it is writable (one of them when
``writeWithResponse`` says which). A notifying characteristic notifies every
``collectCycle`` of its fastest property.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from edgedev.drivers import WriteRefused
from edgedev.simulate.signals import initial, signal
from edgedev.twin import Value
from edgedev_ble.codec import Codec
from edgedev_ble.config import BleDeviceSpec, BlePropertySpec, BleVisitor

log = logging.getLogger("edgedev.ble.simulator")

DEFAULT_SERVICE = "0ed9e000-b1e0-4b1e-8000-00805f9b34fb"
"""Service of the characteristics whose visitor names no ``serviceUUID``."""


@dataclass(frozen=True, slots=True)
class Write:
    """One write a simulated peripheral received."""

    device: str
    characteristic: str
    data: bytes
    response: bool


@dataclass(slots=True)
class Characteristic:
    """One simulated characteristic and the properties that live in its value."""

    uuid: str
    handle: int
    service: str
    properties: list[str]
    value: bytes = b""
    props: list[BlePropertySpec] = field(default_factory=list)
    period: float = 1.0

    @property
    def notifies(self) -> bool:
        """Whether it offers notifications."""
        return "notify" in self.properties


class Peripheral:
    """One simulated BLE peripheral.

    Attributes:
        spec: the Device it simulates.
        address: its Bluetooth address (``macAddress``).
        present: whether it advertises and accepts connections.
        frozen: whether its sensors stopped changing.
    """

    def __init__(self, spec: BleDeviceSpec, clock: Callable[[], float]) -> None:
        cfg = spec.config
        self.spec = spec
        self.address = cfg.mac_address
        self.name = spec.name
        self.present = True
        self.frozen = False
        self._clock = clock
        self._codecs: dict[str, Codec] = {}
        self.by_handle: dict[int, Characteristic] = {}
        self.of_property: dict[str, Characteristic] = {}
        self.services: dict[str, int] = {}
        handle = 1
        by_key: dict[tuple[str, str], Characteristic] = {}
        for prop in spec.properties:
            visitor = prop.visitor
            self._codecs[prop.name] = Codec.of(spec.id, prop)
            service = visitor.service_uuid or DEFAULT_SERVICE
            if service not in self.services:
                self.services[service] = handle
                handle += 1
            key = (service, visitor.characteristic_uuid)
            char = by_key.get(key)
            if char is None:
                char = by_key[key] = Characteristic(
                    visitor.characteristic_uuid, handle, service, ["read"], period=3600.0
                )
                self.by_handle[handle] = char
                handle += 2  # a value handle and a CCCD, as on a real GATT server
            char.props.append(prop)
            self.of_property[prop.name] = char
            _add_properties(char, prop, visitor)
        for char in self.by_handle.values():
            char.properties.sort()
            for prop in char.props:
                start = initial(prop) if prop.writable else signal(prop, 0.0, key=spec.id)
                self._place(char, prop, start)
        self.writes: list[Write] = []

    def _place(self, char: Characteristic, prop: BlePropertySpec, value: Value) -> None:
        try:
            char.value = self._codecs[prop.name].place(value, char.value)
        except (ValueError, WriteRefused) as exc:
            log.debug("%s: cannot simulate %s=%r: %s", self.spec.id, prop.name, value, exc)

    def refresh(self, char: Characteristic) -> bytes:
        """Move the sensors on ``char`` to the present; return its value."""
        if not self.frozen:
            now = self._clock()
            for prop in char.props:
                if not prop.writable:
                    self._place(char, prop, signal(prop, now, key=self.spec.id))
        return char.value

    def set(self, prop: str, value: Value) -> Characteristic:
        """Put ``value`` into property ``prop``'s field; the characteristic is returned."""
        char = self.of_property[prop]
        self._place(char, self.spec.property(prop), value)
        return char

    def get(self, prop: str) -> Value:
        """The value of property ``prop`` as the peripheral holds it now."""
        return self._codecs[prop].decode(self.of_property[prop].value)

    def write(self, char: Characteristic, data: bytes, response: bool) -> None:
        """A client wrote ``data`` (recorded in :attr:`writes`)."""
        char.value = bytes(data)
        self.writes.append(Write(self.spec.id, char.uuid, bytes(data), response))

    def gatt(self) -> list[dict[str, object]]:
        """The GATT table as the wire protocol's ``connect`` reply carries it."""
        services: list[dict[str, object]] = []
        for uuid, handle in self.services.items():
            chars = [
                {"uuid": c.uuid, "handle": c.handle, "properties": c.properties}
                for c in self.by_handle.values()
                if c.service == uuid
            ]
            services.append({"uuid": uuid, "handle": handle, "characteristics": chars})
        return services


def _add_properties(char: Characteristic, prop: BlePropertySpec, visitor: BleVisitor) -> None:
    if visitor.notify or (visitor.notify is None and not prop.writable):
        if "notify" not in char.properties:
            char.properties.append("notify")
        char.period = min(char.period, max(prop.collect_cycle, 0.05))
    if prop.writable:
        kinds = {
            None: ("write", "write-without-response"),
            True: ("write",),
            False: ("write-without-response",),
        }[visitor.write_with_response]
        char.properties.extend(k for k in kinds if k not in char.properties)
