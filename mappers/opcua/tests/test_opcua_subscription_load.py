"""Subscriptions at load: every value an OPC-UA server publishes reaches the mapper's sinks.

One asyncua server with 3,000 Double variables (30 devices x 100), monitored at 1 s; the server
writes every variable once a second, a distinct value each round, and the test checks that each
value written reached the sinks, none twice. asyncua's default subscription stream (a queue of
1,000 that drops the oldest) lost two thirds of each round here, and said nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import pytest
from opcua_helpers import device, load, model, portal, root, url, visit

from edgedev import DeviceSpec, Mapper
from edgedev.mapper import Reading, ReportSink, StateChanges
from edgedev.mqtt import KubeEdgeMqtt
from edgedev.twin import DeviceState

pytestmark = pytest.mark.broker

DEVICES = 30
NODES = 100
ROUNDS = 4
BASE = 10_000.0  # round r writes BASE * r + index: distinct from every other write


class Server:
    """An asyncua server of DEVICES x NODES Doubles (``ns=2;s=d{d}.n{n}``) that can write
    every one of them in a round."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.server: Any = None
        self.variables: list[Any] = []

    async def start(self) -> None:
        from asyncua import Server as UaServer
        from asyncua import ua

        server = UaServer()
        await server.init()
        server.set_endpoint(self.address)
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        idx = await server.register_namespace("urn:edgedev:test:load")
        for d in range(DEVICES):
            folder = await server.nodes.objects.add_object(ua.NodeId(f"d{d}", idx), f"d{d}")
            for n in range(NODES):
                node_id = ua.NodeId(f"d{d}.n{n}", idx)
                self.variables.append(await folder.add_variable(node_id, f"n{n}", 0.0))
        await server.start()
        self.server = server

    async def write_round(self, number: int) -> None:
        from asyncua import ua

        for i, var in enumerate(self.variables):
            value = ua.DataValue(ua.Variant(BASE * number + i, ua.VariantType.Double))
            await self.server.write_attribute_value(var.nodeid, value)

    def monitored(self) -> int:
        """Monitored items the server holds, over all subscriptions."""
        subs = self.server.iserver.subscription_service.subscriptions.values()
        return sum(len(s.monitored_item_srv._monitored_items) for s in subs)

    async def stop(self) -> None:
        await self.server.stop()


class Collect(ReportSink):
    """Every value the mapper's runners hand to their sinks, by device and property."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, str], list[float]] = {}
        self.count = 0
        self.changed = anyio.Event()

    def readings(self, device: DeviceSpec, readings: Sequence[Reading]) -> None:
        for r in readings:
            assert isinstance(r.value, float)
            self.values.setdefault((device.id, r.name), []).append(r.value)
        self.count += len(readings)
        self.changed.set()
        self.changed = anyio.Event()

    async def wait(self, enough: Any, timeout: float) -> None:
        """Until ``enough()`` holds, or ``timeout`` seconds (then the test says what came)."""
        with anyio.move_on_after(timeout):
            while not enough():
                await self.changed.wait()


def fleet(tmp_path: Path, address: str) -> list[DeviceSpec]:
    props = [{"name": f"n{n}", "type": "DOUBLE", "accessMode": "ReadOnly"} for n in range(NODES)]
    docs: list[dict[str, Any]] = [model("meter", props)]
    for d in range(DEVICES):
        visits = [visit(f"n{n}", f"ns=2;s=d{d}.n{n}", cycle=1000) for n in range(NODES)]
        docs.append(device(f"d{d}", "meter", address, visits, mode="subscribe", timeout=10000))
    return load(tmp_path, docs)


async def test_3000_items_at_1s_every_value_delivered(tmp_path: Path, mqtt_url: str) -> None:
    address = url()
    devices = fleet(tmp_path, address)
    server = Server(address)
    collect = Collect()
    written: dict[tuple[str, str], list[float]] = {}
    for r in range(1, ROUNDS + 1):
        for i in range(DEVICES * NODES):
            key = (devices[i // NODES].id, f"n{i % NODES}")
            written.setdefault(key, []).append(BASE * r + i)
    with portal() as p:
        p.call(server.start)
        try:
            transport = KubeEdgeMqtt(mqtt_url, topic_root=root())
            changes = StateChanges()
            mapper = Mapper(devices, transports=[transport], sinks=[collect, changes])
            async with anyio.create_task_group() as tg:
                await tg.start(mapper.run)
                with anyio.fail_after(60):  # the server's count, in its own thread
                    while True:
                        if server.monitored() == DEVICES * NODES:
                            break
                        await anyio.sleep(0.1)
                with anyio.fail_after(30):  # the server holds them before the devices hear back
                    await changes.wait_until(
                        lambda: all(r.state is DeviceState.ONLINE for r in mapper.runners.values())
                    )
                for r in range(1, ROUNDS + 1):
                    began = anyio.current_time()
                    await anyio.to_thread.run_sync(p.call, server.write_round, r)
                    await anyio.sleep(max(0.0, 1.0 - (anyio.current_time() - began)))

                def arrived() -> int:
                    return sum(1 for values in collect.values.values() for v in values if v >= BASE)

                await collect.wait(lambda: arrived() >= ROUNDS * DEVICES * NODES, timeout=30)
                await anyio.sleep(1.5)  # a publish later: nothing more, nothing twice
                subscriptions = len(server.server.iserver.subscription_service.subscriptions)
                mapper.stop()
        finally:
            p.call(server.stop)
    got = {key: [v for v in values if v >= BASE] for key, values in collect.values.items()}
    missing = {k: sorted(set(w) - set(got.get(k, []))) for k, w in written.items()}
    missing = {k: v for k, v in missing.items() if v}
    print(f"figures: {arrived()} values of {ROUNDS} rounds x {DEVICES * NODES} items")
    lost = sum(map(len, missing.values()))
    assert not missing, f"{lost} values lost, e.g. {next(iter(missing.items()))}"
    assert got == written  # each once, in the order written
    assert mapper.drops.totals == {}
    assert subscriptions == DEVICES * NODES // 1000  # split at 1,000 items each
