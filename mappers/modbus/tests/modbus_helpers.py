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


@asynccontextmanager
async def fleet_on(spec: DeviceSpec, url: str) -> AsyncIterator[tuple[Mapper, Recorder]]:
    """A mapper for ``spec`` (whose device is served elsewhere) and a recorder of its topics."""
    topic_root = unique_root()
    mapper = Mapper([spec], transports=[KubeEdgeMqtt(url, topic_root=topic_root)])
    async with anyio.create_task_group() as tg:
        async with Bus(url) as bus, Recorder(bus, f"{topic_root}/#") as recorder:
            await tg.start(mapper.run)
            yield mapper, recorder
        tg.cancel_scope.cancel()


class TcpProxy:
    """A TCP proxy to ``target`` that accepts at most ``limit`` connections at a time.

    Like a Modbus gateway that serves few clients: a connection beyond the limit is closed at
    once. ``peak`` is the most connections held at one time, ``refused`` those turned away.
    ``delay``: seconds each answer is held back (a gateway that takes that long per request;
    its connections in parallel).
    """

    def __init__(self, target_port: int, limit: int, delay: float = 0.0) -> None:
        self.port = free_port()
        self.target_port = target_port
        self.limit = limit
        self.delay = delay
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

                    async def pipe(a: Any, b: Any, delay: float) -> None:
                        async for chunk in a:
                            if delay:
                                await anyio.sleep(delay)
                            await b.send(chunk)
                        tg.cancel_scope.cancel()

                    tg.start_soon(pipe, client, server, 0.0)
                    tg.start_soon(pipe, server, client, self.delay)
            except (OSError, anyio.BrokenResourceError, anyio.EndOfStream):
                pass
            finally:
                self.open -= 1


class ForeignServer:
    """A plain pymodbus TCP server (not edgedev's simulator) that records every request.

    One unit (slave id 1) with ``size`` coils, discrete inputs, holding and input registers,
    all zero; ``requests`` holds ``(function code, address, count)`` of each request in order,
    seen through pymodbus' ``trace_pdu``.
    """

    def __init__(self, size: int = 64) -> None:
        self.port = free_port()
        self.size = size
        self.requests: list[tuple[int, int, int]] = []

    def _trace(self, sending: bool, pdu: Any) -> Any:
        if not sending:
            self.requests.append((pdu.function_code, pdu.address, pdu.count))
        return pdu

    @property
    def reads(self) -> list[tuple[int, int, int]]:
        """The read requests (function codes 1 to 4)."""
        return [r for r in self.requests if r[0] in (1, 2, 3, 4)]

    @asynccontextmanager
    async def running(self) -> AsyncIterator[ForeignServer]:
        from pymodbus.server import ModbusTcpServer
        from pymodbus.simulator import DataType, SimData, SimDevice

        n = self.size
        unit = SimDevice(
            1,
            (
                [SimData(0, n, False, DataType.BITS)],
                [SimData(0, n, False, DataType.BITS)],
                [SimData(0, n, 0, DataType.REGISTERS)],
                [SimData(0, n, 0, DataType.REGISTERS)],
            ),
        )
        server = ModbusTcpServer([unit], address=("127.0.0.1", self.port), trace_pdu=self._trace)
        await server.serve_forever(background=True)
        try:
            yield self
        finally:
            with anyio.CancelScope(shield=True):
                await server.shutdown()  # type: ignore[no-untyped-call]

    async def holding(self, address: int, count: int = 1) -> list[int]:
        """Holding registers as a client reads them now (the request is not recorded)."""
        return await self._client(lambda c: c.read_holding_registers(address, count=count))

    async def set_holding(self, address: int, words: Sequence[int]) -> None:
        """Write holding registers as another client would (not recorded)."""
        await self._client(lambda c: c.write_registers(address, list(words)))

    async def _client(self, call: Any) -> Any:
        from pymodbus.client import AsyncModbusTcpClient

        client = AsyncModbusTcpClient("127.0.0.1", port=self.port)
        before = len(self.requests)
        try:
            await client.connect()
            response = await call(client)
        finally:
            client.close()
            del self.requests[before:]
        return getattr(response, "registers", None)


def reports(recorder: Recorder, device_id: str) -> list[int]:
    """The timestamps (ms) of ``device_id``'s twin updates so far."""
    suffix = f"/{device_id}/twin/update"
    return [
        json.loads(m.payload)["timestamp"] for m in recorder.messages if m.topic.endswith(suffix)
    ]


__all__ = [
    "ForeignServer",
    "TcpProxy",
    "device",
    "fleet",
    "fleet_on",
    "free_port",
    "load",
    "model",
    "reports",
    "root",
    "visit",
    "write_yaml",
]
