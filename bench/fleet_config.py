"""The fleet a benchmark runs: device files for the mapper, register images for the servers.

Every device has the same ``properties`` sensors, a realistic mix of Modbus encodings (float32,
scaled int16, uint16, int32) in holding registers. Two layouts of the same properties:

* ``coalesced`` (and ``sqlite``, the same with the mapper's SQLite outbox): the properties
  sit back to back, and the driver reads them in the fewest requests the protocol allows
  (125 registers each);
* ``baseline``: the same registers with ``coalesce: false`` on the device, so the driver
  reads one property per request, as the anchors do.

Both are ordinary KubeEdge Device files: the baseline is a configuration a user can write.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from edgedev_modbus.codec import DataType, Table, encode_registers
from edgedev_modbus.plan import ReadItem, plan_reads

MODES = ("coalesced", "baseline", "sqlite", "dmi")
NAMESPACE = "fleet"
MODEL = "fleet-sensor"
UNITS_PER_PORT = 100
"""Devices served behind one TCP port (distinct slave ids), as behind a Modbus gateway."""

# (model type, dataType, registers, scale): cycled over the properties.
_KINDS: tuple[tuple[str, DataType, int, float], ...] = (
    ("FLOAT", DataType.FLOAT32, 2, 1.0),
    ("FLOAT", DataType.INT16, 1, 0.1),
    ("INT", DataType.UINT16, 1, 1.0),
    ("INT", DataType.INT32, 2, 1.0),
)


@dataclass(frozen=True, slots=True)
class Prop:
    """One property: its name, kind and address in one layout."""

    name: str
    model_type: str
    data_type: DataType
    count: int
    scale: float
    offset: int


@dataclass(frozen=True, slots=True)
class Unit:
    """Where one device is served: server process, port and slave id."""

    name: str
    server: int
    port: int
    slave: int


def properties(count: int) -> list[Prop]:
    """The properties of every device, back to back from holding register 0."""
    props, offset = [], 0
    for i in range(count):
        model_type, data_type, width, scale = _KINDS[i % len(_KINDS)]
        props.append(Prop(f"p{i:03d}", model_type, data_type, width, scale, offset))
        offset += width
    return props


def register_span(props: list[Prop]) -> int:
    """Holding registers a device needs (the highest address used, plus one)."""
    return max(p.offset + p.count for p in props)


def blocks_per_cycle(props: list[Prop], mode: str) -> int:
    """Requests the driver needs per device per cycle: the minimum the plan allows."""
    if mode == "baseline":
        return len(props)
    items = [ReadItem(p.name, Table.HOLDING, p.offset, p.count) for p in props]
    return len(plan_reads(items, max_gap=16))


def assign(devices: int, servers: int, ports: list[list[int]]) -> list[Unit]:
    """Spread ``devices`` evenly over the servers, ``UNITS_PER_PORT`` per port."""
    units = []
    for index in range(devices):
        server = index % servers
        local = index // servers
        port = ports[server][local // UNITS_PER_PORT]
        units.append(Unit(f"dev-{index:05d}", server, port, local % UNITS_PER_PORT + 1))
    return units


def ports_needed(devices: int, servers: int) -> list[int]:
    """How many ports each server process listens on."""
    per_server = [len(range(s, devices, servers)) for s in range(servers)]
    return [max(1, -(-n // UNITS_PER_PORT)) for n in per_server]


def write_devices(
    path: Path,
    units: list[Unit],
    props: list[Prop],
    mode: str,
    cycle_ms: int,
    timeout_ms: int,
    push: str | None = None,
) -> None:
    """Write the DeviceModel and one Device per unit as a multi-document YAML file.

    ``push``: a ``pushMethod`` in YAML flow style given to every property (bench ``--sink``).
    """
    lines = [
        "apiVersion: devices.kubeedge.io/v1beta1",
        "kind: DeviceModel",
        f"metadata: {{name: {MODEL}, namespace: {NAMESPACE}}}",
        "spec:",
        "  protocol: modbus",
        "  properties:",
    ]
    lines += [
        f"    - {{name: {p.name}, type: {p.model_type}, accessMode: ReadOnly}}" for p in props
    ]
    gap = ", coalesce: false" if mode == "baseline" else ""
    visitors = []
    for p in props:
        scale = f", scale: {p.scale}" if p.scale != 1 else ""
        visitors.append(
            f"    - {{name: {p.name}, collectCycle: {cycle_ms}, visitors: {{protocolName: modbus, "
            f"configData: {{register: HoldingRegister, offset: {p.offset}, limit: {p.count}, "
            f"dataType: {p.data_type.value}{scale}}}}}"
            + (f", pushMethod: {push}" if push else "")
            + "}"
        )
    for unit in units:
        lines += [
            "---",
            "apiVersion: devices.kubeedge.io/v1beta1",
            "kind: Device",
            f"metadata: {{name: {unit.name}, namespace: {NAMESPACE}}}",
            "spec:",
            f"  deviceModelRef: {{name: {MODEL}}}",
            "  protocol:",
            "    protocolName: modbus",
            f"    configData: {{ip: 127.0.0.1, port: {unit.port}, slaveID: {unit.slave}, "
            f"timeout: {timeout_ms}{gap}}}",
            "  properties:",
            *visitors,
        ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def frames(props: list[Prop], count: int, seed: int = 8) -> list[list[int]]:
    """``count`` register images of one device: sensor-like values that change every frame."""
    rng = random.Random(seed)
    span = register_span(props)
    images = []
    for _ in range(count):
        words = [0] * span
        for p in props:
            value: int | float
            if p.data_type is DataType.FLOAT32:
                value = round(rng.uniform(-40.0, 120.0), rng.choice((1, 2, 3)))
            elif p.data_type is DataType.INT16:
                value = rng.randint(-400, 900)
            elif p.data_type is DataType.UINT16:
                value = rng.randint(0, 65535)
            else:
                value = rng.randint(-(2**31), 2**31 - 1)
            words[p.offset : p.offset + p.count] = encode_registers(value, p.data_type, p.count)
        images.append(words)
    return images
