"""Builders of Modbus Device files and a running fleet, for the Modbus tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio

from edgedev import Bus, DeviceSpec, Mapper
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
from edgedev_modbus import ModbusSimulator


def model(name: str, props: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return device_model(name, "modbus", props)


def device(
    name: str, model_name: str, port: int, props: Sequence[dict[str, Any]], **config: Any
) -> dict[str, Any]:
    config = {"ip": "127.0.0.1", "port": port, **config}
    return kube_device(name, model_name, "modbus", config, props)


def visit(name: str, cycle: int = 200, **config: Any) -> dict[str, Any]:
    return device_property(name, "modbus", cycle, config)


def write_yaml(tmp_path: Path, docs: Sequence[dict[str, Any]]) -> Path:
    return write_documents(tmp_path, docs)


def load(tmp_path: Path, docs: Sequence[dict[str, Any]]) -> list[DeviceSpec]:
    return load_documents(tmp_path, docs)


def root() -> str:
    return unique_root()


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
