"""A mapper in DMI mode against a fake EdgeCore, with Modbus devices, for the DMI tests."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any

import anyio
from anyio.abc import TaskStatus

from edgedev import (
    DeviceSpec,
    Driver,
    Mapper,
    PropertySpec,
    ProtocolConfig,
    VisitorConfig,
    WriteRefused,
)
from edgedev._plugins import Registry
from edgedev.dmi import Dmi, DmiSink, DmiSource, TokenBucket
from edgedev.drivers import AnyDriver
from edgedev.mqtt import KubeEdgeMqtt
from edgedev.sinks import SinkFactory, SinkOptions
from edgedev.testing import device, device_model, device_property, unique_root
from edgedev.testing.dmi import FakeEdgeCore
from edgedev.twin import Value

MODBUS_PROPS = [
    {"name": "temperature", "type": "FLOAT", "accessMode": "ReadOnly"},
    {"name": "setpoint", "type": "FLOAT", "minimum": "10", "maximum": "30"},
]


def reported(document: dict[str, Any], *, state_cycle: int = 600_000) -> dict[str, Any]:
    """A Device written to be reported to EdgeCore: ``reportToCloud`` on its properties, and
    a ``stateReport`` (a state every ``state_cycle`` ms: 10 minutes, none within a test).

    KubeEdge leaves both false when the Device says nothing, and then nothing is reported.
    """
    for prop in document["spec"]["properties"]:
        prop.setdefault("reportToCloud", True)
    document["spec"].setdefault("stateReport", {"reportToCloud": True, "reportCycle": state_cycle})
    return document


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
    return reported(
        device(
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
    )


class CounterProtocol(ProtocolConfig):
    start: int = 0


class CounterVisitor(VisitorConfig):
    pass


class CounterDriver(Driver[CounterProtocol, CounterVisitor]):
    """A device in memory whose every property counts up at each read: always a new value."""

    protocol_config = CounterProtocol
    visitor_config = CounterVisitor
    count = 0

    async def connect(self) -> None:
        self.count = self.config.start

    async def close(self) -> None:
        pass

    async def read(self, properties: Sequence[PropertySpec]) -> Mapping[str, Value]:
        self.count += 1
        return {p.name: self.count for p in properties}

    async def write(self, prop: PropertySpec, value: Value) -> None:
        raise WriteRefused("counters are read-only")


def counter_drivers() -> Registry[AnyDriver]:
    registry: Registry[AnyDriver] = Registry("edgedev.test-no-entry-points", Driver)
    registry.register("counter", CounterDriver)
    return registry


def counter_docs(count: int, cycle: int = 1000, properties: int = 1) -> list[dict[str, Any]]:
    """A model and ``count`` devices of the ``counter`` protocol, INT properties ``n0``..."""
    names = [f"n{i}" for i in range(properties)]
    docs = [device_model("counter", "counter", [{"name": n, "type": "INT"} for n in names])]
    for i in range(count):
        props = [device_property(n, "counter", cycle, {}) for n in names]
        docs.append(reported(device(f"c{i}", "counter", "counter", {"start": i}, props)))
    return docs


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
    dmi: Dmi

    @property
    def sink(self) -> DmiSink:
        return self.dmi.sink

    @property
    def sources(self) -> dict[str, DmiSource]:
        return self.dmi.sources


@asynccontextmanager
async def dmi_mapper(
    url: str,
    core: FakeEdgeCore,
    directory: str,
    *protocols: str,
    bucket: TokenBucket | None = None,
    drivers: Registry[AnyDriver] | None = None,
    files: Sequence[DeviceSpec] = (),
) -> AsyncIterator[DmiMapper]:
    """A mapper registered for ``protocols`` with ``core`` (as ``edgedev run --dmi`` runs)."""
    dmi = Dmi(
        protocols or ("modbus",),
        socket=core.socket,
        mapper_socket=f"{directory}/{{protocol}}.sock",
        bucket=bucket,
        drivers=drivers,
    )
    root = unique_root()
    mapper = Mapper(
        files,
        transports=[KubeEdgeMqtt(url, topic_root=root), dmi],
        name=f"m-{root}",
        drivers=drivers,
        sinks_for=SinkFactory(SinkOptions(linger=0.2)),  # pushMethod targets, as devices come
    )
    stopped = anyio.Event()

    async def run_mapper(*, task_status: TaskStatus[Mapper]) -> None:
        try:
            await mapper.run(task_status=task_status)
        finally:
            stopped.set()

    async with anyio.create_task_group() as tg:
        await tg.start(run_mapper)
        try:
            yield DmiMapper(mapper, dmi)
        finally:
            mapper.stop()  # devices report offline, EdgeCore hears it, then the sources end
            with anyio.fail_after(10):
                await stopped.wait()
            tg.cancel_scope.cancel()
