"""What a Modbus survey found, as drafts of Devices: no I/O.

A unit that answered becomes a Device whose DeviceModel has a property per readable address,
a draft to edit: a bit (``BOOLEAN``) per coil and discrete input, an unsigned 16-bit
register (``INT``, ``dataType: uint16``) per input and holding register, all ``ReadOnly``,
named by table and address (``holding_40``). What the unit says about itself (device
identification, function 43/14; report server id, function 17) goes into the Device's
``metadata.annotations``: the Device CRD has no description field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from edgedev.discover import DeviceDraft, PropertyDraft
from edgedev.twin import PropertyType
from edgedev_modbus.codec import Table
from edgedev_modbus.scan import RangeScan

WORDS = {
    Table.COIL: "coil",
    Table.DISCRETE_INPUT: "discrete",
    Table.INPUT: "input",
    Table.HOLDING: "holding",
}
"""The short name of each table: ``--tables`` and the CSV maps use them, properties too."""
TABLES = {word: table for table, word in WORDS.items()}
PLURALS = {
    Table.COIL: "coils",
    Table.DISCRETE_INPUT: "discrete inputs",
    Table.INPUT: "input registers",
    Table.HOLDING: "holding registers",
}
IDENTIFICATION = {
    0: "vendor-name",
    1: "product-code",
    2: "revision",
    3: "vendor-url",
    4: "product-name",
    5: "model-name",
    6: "user-application-name",
}
"""Device identification objects (function 43/14) by id, as annotation names."""
ANNOTATION_PREFIX = "edgedev/modbus-"


@dataclass(slots=True)
class Unit:
    """One unit id that answered, and what was found on it.

    Attributes:
        unit: the unit id (slave id).
        answer: how it answered the probe (``data``, or the exception).
        identity: the device identification objects it returned, by object id.
        server_id: what report server id returned (the id, then the run indicator).
        scans: the scan of each table looked at.
    """

    unit: int
    answer: str
    identity: dict[int, bytes] = field(default_factory=dict)
    server_id: bytes | None = None
    scans: dict[Table, RangeScan] = field(default_factory=dict)


def text_of(data: bytes) -> str:
    """``data`` as text where it is printable ASCII, else as hex (``0x01ff``)."""
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        return "0x" + data.hex()
    return text.strip() if text.isprintable() else "0x" + data.hex()


def unit_annotations(unit: Unit) -> dict[str, str]:
    """The Device's ``metadata.annotations``: what the unit says about itself."""
    found = {
        ANNOTATION_PREFIX + IDENTIFICATION.get(object_id, f"object-{object_id}"): text_of(value)
        for object_id, value in sorted(unit.identity.items())
    }
    if unit.server_id is not None:
        found[ANNOTATION_PREFIX + "server-id"] = text_of(unit.server_id)
    return {key: value for key, value in found.items() if value}


def ranges_text(ranges: list[tuple[int, int]]) -> str:
    """``0-9, 100-119, 1000`` (inclusive), or ``none``."""
    parts = [str(s) if n == 1 else f"{s}-{s + n - 1}" for s, n in ranges]
    return ", ".join(parts) or "none"


def unit_draft(name: str, unit: Unit, config: Mapping[str, Any]) -> DeviceDraft | None:
    """The Device of ``unit``: a property per readable address; ``None`` if it has none."""
    properties = []
    for table, scan in unit.scans.items():
        word = WORDS[table]
        for start, count in scan.ranges:
            for address in range(start, start + count):
                visitor: dict[str, Any] = {
                    "register": table.value,
                    "offset": address,
                    "limit": 1,
                }
                if not table.is_bit:
                    visitor["dataType"] = "uint16"
                properties.append(
                    PropertyDraft(
                        name=f"{word}_{address}",
                        type=PropertyType.BOOLEAN if table.is_bit else PropertyType.INT,
                        visitor=visitor,
                        minimum=None if table.is_bit else "0",
                        maximum=None if table.is_bit else "65535",
                    )
                )
    if not properties:
        return None
    return DeviceDraft(
        name=name,
        properties=properties,
        protocol_config={**config, "slaveID": unit.unit},
        annotations=unit_annotations(unit),
    )
