"""Builders of Modbus Device files and a running fleet, for the Modbus tests."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio

from edgedev import Bus, DeviceSpec, Mapper
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
    mapper = Mapper(
        devices, transports=[KubeEdgeMqtt(url, topic_root=topic_root)], name=f"m-{topic_root}"
    )
    async with anyio.create_task_group() as tg:
        await tg.start(sim.run)
        async with Bus(url) as bus, Recorder(bus, f"{topic_root}/#") as recorder:
            await tg.start(mapper.run)
            yield sim, mapper, recorder
        tg.cancel_scope.cancel()


class TcpProxy:
    """A TCP proxy to ``target`` that accepts at most ``limit`` connections at a time.

    Like a Modbus gateway that serves few clients: a connection beyond the limit is closed at
    once. ``peak`` is the most connections held at one time, ``refused`` those turned away.
    """

    def __init__(self, target_port: int, limit: int) -> None:
        self.port = free_port()
        self.target_port = target_port
        self.limit = limit
        self.open = 0
        self.peak = 0
        self.refused = 0

    async def run(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=self.port)
        async with listener:
            task_status.started()
            await listener.serve(self._serve)

    async def _serve(self, client: Any) -> None:
        async with client:
            if self.open >= self.limit:
                self.refused += 1
                return
            self.open += 1
            self.peak = max(self.peak, self.open)
            try:
                async with (
                    await anyio.connect_tcp("127.0.0.1", self.target_port) as server,
                    anyio.create_task_group() as tg,
                ):

                    async def pipe(a: Any, b: Any) -> None:
                        async for chunk in a:
                            await b.send(chunk)
                        tg.cancel_scope.cancel()

                    tg.start_soon(pipe, client, server)
                    tg.start_soon(pipe, server, client)
            except (OSError, anyio.BrokenResourceError, anyio.EndOfStream):
                pass
            finally:
                self.open -= 1


def reports(recorder: Recorder, device_id: str) -> list[int]:
    """The timestamps (ms) of ``device_id``'s twin updates so far."""
    suffix = f"/{device_id}/twin/update"
    return [
        json.loads(m.payload)["timestamp"] for m in recorder.messages if m.topic.endswith(suffix)
    ]


__all__ = [
    "TcpProxy",
    "device",
    "fleet",
    "free_port",
    "load",
    "model",
    "reports",
    "root",
    "visit",
    "write_yaml",
]
