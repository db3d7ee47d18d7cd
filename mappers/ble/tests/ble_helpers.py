"""Builders of BLE Device files, a running fleet, and twin predicates, for the BLE tests."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio

from edgedev import Bus, DeviceSpec, Mapper
from edgedev.bus._outbox import Message
from edgedev.mqtt import KubeEdgeMqtt
from edgedev.testing import (
    Recorder,
    device_model,
    device_property,
    free_port,
    load_documents,
    unique_root,
    write_documents,
)
from edgedev.testing import device as kube_device
from edgedev.wire import dumps, new_event_id, now_ms
from edgedev_ble import BleSimulator

TIMEOUT = 20.0  # two cores shared with other test runs: be generous


def model(name: str, props: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return device_model(name, "ble", props)


def device(
    name: str,
    model_name: str,
    mac: str,
    port: int | None,
    props: Sequence[dict[str, Any]],
    **config: Any,
) -> dict[str, Any]:
    data: dict[str, Any] = {"macAddress": mac, **config}
    if port is not None:
        data["backend"] = f"sim://127.0.0.1:{port}"
    return kube_device(name, model_name, "ble", data, props)


def visit(name: str, uuid_: str, cycle: int = 200, **config: Any) -> dict[str, Any]:
    return device_property(name, "ble", cycle, {"characteristicUUID": uuid_, **config})


def write_yaml(tmp_path: Path, docs: Sequence[dict[str, Any]]) -> Path:
    return write_documents(tmp_path, docs, prefix="ble")


def load(tmp_path: Path, docs: Sequence[dict[str, Any]]) -> list[DeviceSpec]:
    return load_documents(tmp_path, docs)


def root() -> str:
    return unique_root("ble")


def twin_values(message: Message) -> dict[str, str]:
    twin = json.loads(message.payload)["twin"]
    return {name: entry["actual"]["value"] for name, entry in twin.items() if "actual" in entry}


def reports(device_id: str, name: str, value: str | None = None) -> Callable[[Message], bool]:
    """A predicate: a twin/update of ``device_id`` that carries ``name`` (= ``value``)."""

    def check(message: Message) -> bool:
        if not message.topic.endswith(f"/device/{device_id}/twin/update"):
            return False
        values = twin_values(message)
        return name in values and (value is None or values[name] == value)

    return check


def state(device_id: str, word: str) -> Callable[[Message], bool]:
    """A predicate: ``device_id`` reported ``word`` on state/update."""

    def check(message: Message) -> bool:
        return (
            message.topic.endswith(f"/device/{device_id}/state/update")
            and json.loads(message.payload)["state"] == word
        )

    return check


def delta(values: dict[str, str], types: dict[str, str]) -> bytes:
    """A ``twin/update/delta`` as KubeEdge's DeviceTwin sends it to a mapper."""
    ts = now_ms()
    return dumps(
        {
            "event_id": new_event_id(),
            "timestamp": ts,
            "twin": {
                name: {
                    "expected": {"value": value, "metadata": {"timestamp": ts}},
                    "metadata": {"type": types[name]},
                }
                for name, value in values.items()
            },
            "delta": values,
        }
    )


@asynccontextmanager
async def fleet(
    devices: Sequence[DeviceSpec],
    url: str,
    topic_root: str,
    *,
    prepare: Callable[[BleSimulator], None] | None = None,
) -> AsyncIterator[tuple[BleSimulator, Mapper, Bus, Recorder]]:
    """Simulated peripherals for ``devices``, a mapper for them, and a recorder of the bus."""
    sim = BleSimulator(devices)
    if prepare is not None:
        prepare(sim)
    mapper = Mapper(
        devices, transports=[KubeEdgeMqtt(url, topic_root=topic_root)], name=f"m-{topic_root}"
    )
    async with anyio.create_task_group() as tg:
        await tg.start(sim.run)
        async with Bus(url) as bus, Recorder(bus, f"{topic_root}/#") as recorder:
            await tg.start(mapper.run)
            yield sim, mapper, bus, recorder
        tg.cancel_scope.cancel()


__all__ = [
    "TIMEOUT",
    "delta",
    "device",
    "fleet",
    "free_port",
    "load",
    "model",
    "reports",
    "root",
    "state",
    "twin_values",
    "visit",
    "write_yaml",
]
