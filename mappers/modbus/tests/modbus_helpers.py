"""Builders of Modbus Device files and a running fleet, for the Modbus tests."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import yaml

from edgedev import Bus, DeviceSpec, Mapper, load_devices
from edgedev.testing import Recorder, free_port
from edgedev_modbus import ModbusSimulator

API = "devices.kubeedge.io/v1beta1"


def model(name: str, props: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "DeviceModel",
        "metadata": {"name": name},
        "spec": {"protocol": "modbus", "properties": list(props)},
    }


def device(
    name: str, model_name: str, port: int, props: Sequence[dict[str, Any]], **config: Any
) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "Device",
        "metadata": {"name": name},
        "spec": {
            "deviceModelRef": {"name": model_name},
            "protocol": {
                "protocolName": "modbus",
                "configData": {"ip": "127.0.0.1", "port": port, **config},
            },
            "properties": list(props),
        },
    }


def visit(name: str, cycle: int = 200, **config: Any) -> dict[str, Any]:
    return {
        "name": name,
        "collectCycle": cycle,
        "visitors": {"protocolName": "modbus", "configData": config},
    }


def write_yaml(tmp_path: Path, docs: Sequence[dict[str, Any]]) -> Path:
    path = tmp_path / f"devices-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return path


def load(tmp_path: Path, docs: Sequence[dict[str, Any]]) -> list[DeviceSpec]:
    return load_devices([write_yaml(tmp_path, docs)])


def root() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


@asynccontextmanager
async def fleet(
    devices: Sequence[DeviceSpec], url: str, topic_root: str
) -> AsyncIterator[tuple[ModbusSimulator, Mapper, Recorder]]:
    """A simulator for ``devices``, a mapper for them, and a recorder of their topics."""
    sim = ModbusSimulator(devices)
    mapper = Mapper(devices, broker=url, topic_root=topic_root, name=f"m-{topic_root}")
    async with anyio.create_task_group() as tg:
        await tg.start(sim.run)
        async with Bus(url) as bus, Recorder(bus, f"{topic_root}/#") as recorder:
            await tg.start(mapper.run)
            yield sim, mapper, recorder
        tg.cancel_scope.cancel()


__all__ = ["device", "fleet", "free_port", "load", "model", "root", "visit", "write_yaml"]
