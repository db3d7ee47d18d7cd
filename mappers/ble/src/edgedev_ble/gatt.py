"""A GATT table as properties: Bluetooth SIG characteristics typed, others raw. No I/O.

Characteristics the Bluetooth SIG assigned (Assigned Numbers, and the GATT Specification
Supplement for their formats) are decoded as the specification says: Temperature ``0x2A6E``
is a little-endian sint16 in 0.01 degrees Celsius, Humidity ``0x2A6F`` a uint16 in 0.01 %,
Battery Level ``0x2A19`` a uint8 percentage, and so on (:data:`SIG`). Any other
characteristic is its raw value, a ``BYTES`` property the twin shows as hex.

The characteristic's flags decide the rest: ``read``, ``notify`` or ``indicate`` make a
property (notified where it notifies, else polled), ``write`` or ``write-without-response``
make it ``ReadWrite``; one that can only be written has nothing to report and is skipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from edgedev.discover import PropertyDraft
from edgedev.drivers import AccessMode
from edgedev.twin import PropertyType
from edgedev_ble.formats import Format

_BASE = "-0000-1000-8000-00805f9b34fb"
"""The Bluetooth base UUID's tail: a SIG 16-bit UUID ``XXXX`` is ``0000XXXX`` plus this."""
READS = frozenset({"read", "notify", "indicate"})
PUSHES = frozenset({"notify", "indicate"})
WRITES = frozenset({"write", "write-without-response"})
BOOKKEEPING = frozenset({"2a05"})
"""Service Changed: the GATT server's own bookkeeping, not a value of the device."""


@dataclass(frozen=True, slots=True)
class Assigned:
    """How a SIG characteristic's value reads.

    Attributes:
        name: the property name made of it.
        type: the property type.
        format: the field's format.
        scale: what the field's number is multiplied by.
        offset: the byte the field starts at (after a flags byte, for instance).
        unit: the unit of the value.
        minimum: the lowest value the specification allows, as text.
        maximum: the highest.
    """

    name: str
    type: PropertyType
    format: Format
    scale: float = 1.0
    offset: int = 0
    unit: str = ""
    minimum: str | None = None
    maximum: str | None = None


SIG: dict[str, Assigned] = {
    "2a00": Assigned("device_name", PropertyType.STRING, Format.UTF8),
    "2a19": Assigned(
        "battery_level", PropertyType.INT, Format.UINT8, unit="%", minimum="0", maximum="100"
    ),
    "2a1c": Assigned(
        "temperature_measurement", PropertyType.FLOAT, Format.MEDFLOAT32, offset=1, unit="degC"
    ),
    "2a1f": Assigned("temperature_celsius", PropertyType.FLOAT, Format.INT16LE, 0.1, unit="degC"),
    "2a24": Assigned("model_number", PropertyType.STRING, Format.UTF8),
    "2a25": Assigned("serial_number", PropertyType.STRING, Format.UTF8),
    "2a26": Assigned("firmware_revision", PropertyType.STRING, Format.UTF8),
    "2a27": Assigned("hardware_revision", PropertyType.STRING, Format.UTF8),
    "2a28": Assigned("software_revision", PropertyType.STRING, Format.UTF8),
    "2a29": Assigned("manufacturer_name", PropertyType.STRING, Format.UTF8),
    "2a37": Assigned("heart_rate", PropertyType.INT, Format.UINT8, offset=1, unit="bpm"),
    "2a6c": Assigned("elevation", PropertyType.FLOAT, Format.INT24LE, 0.01, unit="m"),
    "2a6d": Assigned("pressure", PropertyType.FLOAT, Format.UINT32LE, 0.1, unit="Pa"),
    "2a6e": Assigned("temperature", PropertyType.FLOAT, Format.INT16LE, 0.01, unit="degC"),
    "2a6f": Assigned(
        "humidity", PropertyType.FLOAT, Format.UINT16LE, 0.01, unit="%", minimum="0", maximum="100"
    ),
    "2a70": Assigned("true_wind_speed", PropertyType.FLOAT, Format.UINT16LE, 0.01, unit="m/s"),
    "2a71": Assigned(
        "true_wind_direction",
        PropertyType.FLOAT,
        Format.UINT16LE,
        0.01,
        unit="deg",
        minimum="0",
        maximum="359.99",
    ),
    "2a76": Assigned("uv_index", PropertyType.INT, Format.UINT8),
    "2a77": Assigned("irradiance", PropertyType.FLOAT, Format.UINT16LE, 0.1, unit="W/m2"),
    "2a7b": Assigned("dew_point", PropertyType.INT, Format.INT8, unit="degC"),
}
"""SIG characteristics by 16-bit UUID (lower-case hex), with their GATT formats.

Heart Rate Measurement (``0x2A37``) is read as its 8-bit form (flags bit 0 clear) and
Temperature Measurement (``0x2A1C``) in Celsius (flags bit 0 clear), the common cases.
"""


def short_uuid(uuid: str) -> str | None:
    """The 16-bit form (``2a6e``) of a UUID on the Bluetooth base, else ``None``."""
    text = uuid.lower()
    if text.startswith("0000") and text.endswith(_BASE):
        return text[4:8]
    return None


@dataclass(frozen=True, slots=True)
class Found:
    """A characteristic of the GATT table.

    Attributes:
        uuid: its UUID, 128-bit form.
        service: its service's UUID.
        flags: its properties (``read``, ``notify``, ``write`` ...).
    """

    uuid: str
    service: str
    flags: Sequence[str]


def characteristic_property(found: Found, *, shared: bool) -> PropertyDraft | str:
    """The property of a characteristic, or why there is none.

    Args:
        found: the characteristic.
        shared: whether its UUID is in more than one service (the visitor then names it).
    """
    flags = {f.lower() for f in found.flags}
    short = short_uuid(found.uuid)
    if short in BOOKKEEPING:
        return "the GATT server's Service Changed indication, not a value of the device"
    if not flags & READS:
        return "it can be written, not read: nothing to report (a command)"
    visitor: dict[str, object] = {"characteristicUUID": short.upper() if short else found.uuid}
    if shared:
        visitor["serviceUUID"] = found.service
    assigned = SIG.get(short or "")
    if assigned is not None:
        name, type_ = assigned.name, assigned.type
        visitor["format"] = assigned.format.value
        if assigned.scale != 1:
            visitor["scale"] = assigned.scale
        if assigned.offset:
            visitor["offset"] = assigned.offset
    else:
        name, type_ = (
            f"char_{(short or found.uuid.replace('-', '')[:8]).lower()}",
            PropertyType.BYTES,
        )
        visitor["format"] = Format.BYTES.value
    visitor["notify"] = bool(flags & PUSHES)
    return PropertyDraft(
        name=name,
        type=type_,
        visitor=visitor,
        access=AccessMode.READ_WRITE if flags & WRITES else AccessMode.READ_ONLY,
        description="" if assigned else f"characteristic {found.uuid} (raw value, hex)",
        unit=assigned.unit if assigned else "",
        minimum=assigned.minimum if assigned else None,
        maximum=assigned.maximum if assigned else None,
    )
