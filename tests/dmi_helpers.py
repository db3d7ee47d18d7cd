"""A mapper in DMI mode against a fake EdgeCore, with Modbus devices, for the DMI tests."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any

import anyio
from anyio.abc import TaskStatus

from edgedev import Mapper
from edgedev.dmi import DmiSink, DmiSource, EdgeCoreLink, TokenBucket
from edgedev.testing import device, device_model, device_property, unique_root
from edgedev.testing.dmi import FakeEdgeCore

MODBUS_PROPS = [
    {"name": "temperature", "type": "FLOAT", "accessMode": "ReadOnly"},
    {"name": "setpoint", "type": "FLOAT", "minimum": "10", "maximum": "30"},
]


def modbus_model(name: str = "thermo", props: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return device_model(name, "modbus", props or MODBUS_PROPS)


def modbus_device(
    name: str, port: int, *, setpoint: str | None = None, cycle: int = 200, model: str = "thermo"
) -> dict[str, Any]:
    setpoint_prop = device_property(
        "setpoint",
        "modbus",
        cycle,
        {"register": "HoldingRegister", "offset": 0, "dataType": "int16", "scale": 0.1},
    )
    if setpoint is not None:
        setpoint_prop["desired"] = {"value": setpoint}
    return device(
        name,
        model,
        "modbus",
        {"ip": "127.0.0.1", "port": port},
        [
            device_property(
                "temperature",
                "modbus",
                cycle,
                {"register": "InputRegister", "offset": 0, "dataType": "int16", "scale": 0.1},
            ),
            setpoint_prop,
        ],
    )


@contextmanager
def socket_dir() -> Iterator[str]:
    """A short directory for unix sockets (their paths are limited to ~100 bytes)."""
    path = tempfile.mkdtemp(prefix="dmi-", dir="/tmp")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@dataclass
class DmiMapper:
    mapper: Mapper
    sink: DmiSink
    sources: dict[str, DmiSource]


@asynccontextmanager
async def dmi_mapper(
    url: str, core: FakeEdgeCore, directory: str, *protocols: str, bucket: TokenBucket | None = None
) -> AsyncIterator[DmiMapper]:
    """A mapper registered for ``protocols`` with ``core`` (as ``edgedev run --dmi`` runs)."""
    sources: dict[str, DmiSource] = {}

    def desired(device_id: str) -> dict[str, str]:
        for source in sources.values():
            if device_id in source.desired:
                return source.desired[device_id]
        return {}

    sink = DmiSink(EdgeCoreLink(core.socket), desired, bucket=bucket)
    root = unique_root()
    mapper = Mapper([], broker=url, topic_root=root, name=f"m-{root}", sinks=[sink])
    for protocol in protocols or ("modbus",):
        sources[protocol] = DmiSource(
            mapper, sink, protocol, mapper_socket=f"{directory}/{protocol}.sock"
        )
    stopped = anyio.Event()

    async def run_mapper(*, task_status: TaskStatus[Mapper]) -> None:
        try:
            await mapper.run(task_status=task_status)
        finally:
            stopped.set()

    async with anyio.create_task_group() as tg:
        await tg.start(run_mapper)
        for source in sources.values():
            await tg.start(source.run)
        try:
            yield DmiMapper(mapper, sink, sources)
        finally:
            mapper.stop()  # devices report offline, the sink flushes, then the sources end
            with anyio.fail_after(10):
                await stopped.wait()
            tg.cancel_scope.cancel()
