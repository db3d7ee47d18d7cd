"""Devices on one OPC-UA server share one session: batched reads, one subscription.

Sessions and subscriptions are counted at the server (asyncua's internal server keeps them).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import anyio
import pytest
from opcua_helpers import (
    Served,
    count_reads,
    device,
    load,
    model,
    portal,
    root,
    state_of,
    url,
    visit,
)

from edgedev import Bus, DeviceSpec, Mapper
from edgedev.mqtt import KubeEdgeMqtt
from edgedev.testing import Recorder, topic_endswith
from edgedev_opcua import OpcuaSimulator

pytestmark = pytest.mark.broker

DEVICES = 20
PROPS = ("a", "b", "c")
LIMIT = 25  # MaxNodesPerRead set on the server: 60 nodes a cycle need 3 reads


def fleet(tmp_path: Path, address: str, **config: Any) -> list[DeviceSpec]:
    docs: list[dict[str, Any]] = [
        model("m", [{"name": n, "type": "INT", "accessMode": "ReadOnly"} for n in PROPS])
    ]
    for i in range(DEVICES):
        visits = [visit(n, f"ns=2;s=d{i}.{n}", cycle=500) for n in PROPS]
        docs.append(device(f"d{i}", "m", address, visits, timeout=2000, **config))
    return load(tmp_path, docs)


def sessions(server: Any) -> int:
    """Client sessions open at an asyncua server."""
    return len(server.iserver._external_sessions)


def subscriptions(server: Any) -> int:
    """Subscriptions alive at an asyncua server."""
    return len(server.iserver.subscription_service.subscriptions)


def set_limit(served: Served, address: str, value: int) -> None:
    from asyncua import ua

    limit = ua.NodeId(11705)  # Server_ServerCapabilities_OperationLimits_MaxNodesPerRead
    data = ua.DataValue(ua.Variant(value, ua.VariantType.UInt32))
    served.call(served.sim.servers[address].write_attribute_value, limit, data)


async def wait_reports(recorder: Recorder, devices: list[DeviceSpec], count: int) -> None:
    def enough() -> bool:
        return all(
            sum(m.topic.endswith(f"/{d.id}/twin/update") for m in recorder.messages) >= count
            for d in devices
        )

    while not enough():
        await recorder.wait_for(lambda m: True, after=len(recorder.messages), timeout=15)


async def test_20_devices_one_session_reads_batched_to_the_server_limit(
    tmp_path: Path, mqtt_url: str
) -> None:
    address = url()
    devices = fleet(tmp_path, address)
    node_ids = set()
    with portal() as p:
        server = await anyio.to_thread.run_sync(lambda: Served(OpcuaSimulator(devices), p).start())
        try:
            opcua = server.sim.servers[address]
            for d in devices:
                node_ids |= {server.sim.node_id(d.id, n) for n in PROPS}
            await anyio.to_thread.run_sync(set_limit, server, address, LIMIT)
            counter = count_reads(opcua)
            topic_root = root()
            mapper = Mapper(devices, transports=[KubeEdgeMqtt(mqtt_url, topic_root=topic_root)])
            async with (
                anyio.create_task_group() as tg,
                Bus(mqtt_url) as bus,
                Recorder(bus, f"{topic_root}/#") as recorder,
            ):
                await tg.start(mapper.run)
                await wait_reports(recorder, devices, 3)  # past the first reads at connect
                mark = len(counter.of(node_ids))
                first = pick_reports(recorder, devices[0])
                await recorder.wait_count(
                    topic_endswith(f"/{devices[0].id}/twin/update"), first + 4, timeout=15
                )
                steady = counter.of(node_ids)[mark:]
                held = sessions(opcua)
                mapper.stop()
        finally:
            await anyio.to_thread.run_sync(server.stop)
    assert held == 1
    assert mapper.endpoints.opened == 1
    sizes = [len(r) for r in steady]
    print(f"figures: request sizes over 4 cycles {sizes}")
    per_cycle = math.ceil(DEVICES * len(PROPS) / LIMIT)
    cycles = 4
    assert max(sizes) <= LIMIT
    # every cycle reads its 60 nodes in 3 requests (a cycle at either end may be cut)
    assert per_cycle * (cycles - 1) <= len(sizes) <= per_cycle * (cycles + 1), sizes
    assert sum(sizes) / len(sizes) >= DEVICES * len(PROPS) / per_cycle - 1, sizes


def pick_reports(recorder: Recorder, d: DeviceSpec) -> int:
    return sum(m.topic.endswith(f"/{d.id}/twin/update") for m in recorder.messages)


async def test_20_devices_in_subscribe_mode_share_one_subscription(
    tmp_path: Path, mqtt_url: str
) -> None:
    address = url()
    devices = fleet(tmp_path, address, mode="subscribe")
    with portal() as p:
        server = await anyio.to_thread.run_sync(lambda: Served(OpcuaSimulator(devices), p).start())
        try:
            opcua = server.sim.servers[address]
            counter = count_reads(opcua)
            node_ids = {server.sim.node_id(d.id, n) for d in devices for n in PROPS}
            topic_root = root()
            mapper = Mapper(devices, transports=[KubeEdgeMqtt(mqtt_url, topic_root=topic_root)])
            async with (
                anyio.create_task_group() as tg,
                Bus(mqtt_url) as bus,
                Recorder(bus, f"{topic_root}/#") as recorder,
            ):
                await tg.start(mapper.run)
                await wait_reports(recorder, devices, 2)
                held = sessions(opcua), subscriptions(opcua)
                mapper.stop()
        finally:
            await anyio.to_thread.run_sync(server.stop)
    assert held == (1, 1)
    assert counter.of(node_ids) == []  # pushed, never polled


async def test_a_server_restart_brings_all_its_devices_back_on_one_new_session(
    tmp_path: Path, mqtt_url: str
) -> None:
    address = url()
    devices = fleet(tmp_path, address)
    topic_root = root()
    mapper = Mapper(devices, transports=[KubeEdgeMqtt(mqtt_url, topic_root=topic_root)])
    names = [d.id.split("/")[1] for d in devices]
    with portal() as p:
        first = await anyio.to_thread.run_sync(lambda: Served(OpcuaSimulator(devices), p).start())
        async with (
            anyio.create_task_group() as tg,
            Bus(mqtt_url) as bus,
            Recorder(bus, f"{topic_root}/#") as recorder,
        ):
            await tg.start(mapper.run)
            for name in names:
                await recorder.wait_for(state_of(name, "online"), timeout=15)
            await anyio.to_thread.run_sync(first.stop)
            for name in names:
                await recorder.wait_for(state_of(name, "offline"), timeout=15)
            mark = len(recorder.messages)
            second = await anyio.to_thread.run_sync(
                lambda: Served(OpcuaSimulator(devices), p).start()
            )
            try:
                for name in names:
                    await recorder.wait_for(state_of(name, "online"), after=mark, timeout=30)
                held = sessions(second.sim.servers[address])
                reconnects = {r.reconnects for r in mapper.runners.values()}
                mapper.stop()
            finally:
                await anyio.to_thread.run_sync(second.stop)
    assert held == 1
    assert reconnects == {1}
    assert mapper.endpoints.opened == 2  # the first session, and one new for all


def monitored_items(server: Any) -> int:
    """Monitored items over every subscription at an asyncua server."""
    subs = server.iserver.subscription_service.subscriptions.values()
    return sum(len(s.monitored_item_srv._monitored_items) for s in subs)


async def test_a_device_leaving_removes_its_monitored_items_only(tmp_path: Path) -> None:
    from edgedev.drivers import Endpoints
    from edgedev_opcua import OpcuaDriver

    address = url()
    one, two = fleet(tmp_path, address, mode="subscribe")[:2]
    with portal() as p:
        server = await anyio.to_thread.run_sync(
            lambda: Served(OpcuaSimulator([one, two]), p).start()
        )
        opcua = server.sim.servers[address]
        try:
            endpoints = Endpoints()
            async with endpoints:
                first, second = OpcuaDriver(one, endpoints), OpcuaDriver(two, endpoints)
                await first.connect()
                await second.connect()
                assert len(endpoints) == 1
                counts = (sessions(opcua), subscriptions(opcua), monitored_items(opcua))
                assert counts == (1, 1, 2 * len(PROPS))
                got: list[tuple[str, Any]] = []
                arrived = anyio.Event()

                def report(name: str, value: Any) -> None:
                    got.append((name, value))
                    arrived.set()

                async with anyio.create_task_group() as tg:
                    tg.start_soon(second.watch, two.properties, report)
                    await first.close()
                    # the second device keeps the session and the subscription, with its items
                    counts = (sessions(opcua), subscriptions(opcua), monitored_items(opcua))
                    assert counts == (1, 1, len(PROPS))
                    got.clear()
                    await anyio.to_thread.run_sync(server.call, server.sim.set, two.id, "a", 4242)
                    with anyio.fail_after(10):
                        while ("a", 4242) not in got:
                            await arrived.wait()
                            arrived = anyio.Event()
                    tg.cancel_scope.cancel()  # the runtime stops watching, then closes
                await second.close()
                assert len(endpoints) == 0 and sessions(opcua) == 0
        finally:
            await anyio.to_thread.run_sync(server.stop)


def set_limits(served: Served, address: str, **limits: int) -> None:
    """Write ``ServerCapabilities`` limits (by :data:`LIMIT_NODES` name) at the server."""
    from asyncua import ua

    from edgedev_opcua.subscriptions import LIMIT_NODES

    server = served.sim.servers[address]
    for name, value in limits.items():
        data = ua.DataValue(ua.Variant(value, ua.VariantType.UInt32))
        served.call(server.write_attribute_value, ua.NodeId(LIMIT_NODES[name]), data)


def record_item_calls(server: Any) -> list[int]:
    """Hook the server to record the size of each CreateMonitoredItems call it serves."""
    sizes: list[int] = []
    service = server.iserver.subscription_service
    original = service.create_monitored_items

    async def create(params: Any) -> Any:
        sizes.append(len(params.ItemsToCreate))
        return await original(params)

    service.create_monitored_items = create
    return sizes


async def test_subscriptions_split_where_the_server_says(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """MaxMonitoredItemsPerSubscription 25, MaxMonitoredItemsPerCall 10, 2 subscriptions per
    session: 60 items make 2 full subscriptions in calls of at most 10; 10 are refused."""
    from edgedev.drivers import Endpoints
    from edgedev_opcua import OpcuaDriver

    address = url()
    devices = fleet(tmp_path, address, mode="subscribe")
    with portal() as p:
        server = await anyio.to_thread.run_sync(lambda: Served(OpcuaSimulator(devices), p).start())
        opcua = server.sim.servers[address]
        try:
            await anyio.to_thread.run_sync(
                lambda: set_limits(
                    server, address, items_per_subscription=25, items_per_call=10, subscriptions=2
                )
            )
            calls = record_item_calls(opcua)
            async with Endpoints() as endpoints:
                drivers = [OpcuaDriver(d, endpoints) for d in devices]
                for driver in drivers:
                    await driver.connect()
                counts = (sessions(opcua), subscriptions(opcua), monitored_items(opcua))
                for driver in drivers:
                    await driver.close()
        finally:
            await anyio.to_thread.run_sync(server.stop)
    assert counts == (1, 2, 50)
    assert sum(calls) == 50 and max(calls) <= 10, calls
    refusals = [r for r in caplog.records if "cannot monitor" in r.getMessage()]
    assert len(refusals) == 10
    assert "BadTooManySubscriptions" in refusals[0].getMessage()
    assert any("allows 2 subscriptions per session" in r.getMessage() for r in caplog.records)
