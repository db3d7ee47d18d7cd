"""The OPC-UA mapper end to end: a simulated asyncua server, a real broker, KubeEdge payloads.

One server (in a thread of its own) serves every device of this module, because an asyncua
server takes seconds to start; each test maps its own devices on it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import anyio
import pytest
from opcua_helpers import (
    Served,
    count_reads,
    device,
    load,
    merged,
    model,
    portal,
    root,
    served,
    url,
    visit,
)

from edgedev import Bus, DeviceSpec, Mapper
from edgedev.mqtt import KubeEdgeMqtt
from edgedev.testing import Recorder, topic_endswith

pytestmark = pytest.mark.broker

STAMP = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

# name, model type, OPC-UA dataType, value put on the server, reported value, metadata.type
# (reported None: left out of the report, as EdgeCore would refuse it with the whole message)
TYPES: list[tuple[str, str, str, Any, str | None, str]] = [
    ("flag", "BOOLEAN", "Boolean", True, "true", "boolean"),
    ("sbyte", "INT", "SByte", -12, "-12", "int"),
    ("byte", "INT", "Byte", 200, "200", "int"),
    ("i16", "INT", "Int16", -30000, "-30000", "int"),
    ("u16", "INT", "UInt16", 65000, "65000", "int"),
    ("i32", "INT", "Int32", -2_000_000_000, "-2000000000", "int"),
    ("u32", "INT", "UInt32", 4_000_000_000, "4000000000", "int"),
    ("i64", "INT", "Int64", -(2**40), str(-(2**40)), "int"),
    ("u64", "INT", "UInt64", 2**63 - 5, str(2**63 - 5), "int"),
    ("u64big", "INT", "UInt64", 2**63 + 5, None, "int"),
    ("f32", "FLOAT", "Float", 23.1, "23.1", "float"),
    ("f64", "DOUBLE", "Double", 3.141592653589793, "3.141592653589793", "float"),
    ("text", "STRING", "String", "Linie-1/B@2", "Linie-1/B@2", "string"),
    ("spaced", "STRING", "String", "Linie 1 größer", None, "string"),
    ("stamp", "STRING", "DateTime", STAMP, "2026-01-02T03:04:05Z", "string"),
    ("blob", "BYTES", "ByteString", b"\x01\x02\xff", "0102ff", "string"),
]
REPORTED = sum(1 for *_, value, _ in TYPES if value is not None)
TYPE_MODEL = model(
    "all-types", [{"name": n, "type": t, "accessMode": "ReadOnly"} for n, t, *_ in TYPES]
)
WRITE_MODEL = model(
    "writable",
    [
        {"name": "setpoint", "type": "DOUBLE", "minimum": "10", "maximum": "90"},
        {"name": "speed", "type": "INT", "minimum": "0", "maximum": "200"},
        {"name": "enabled", "type": "BOOLEAN"},
        {"name": "label", "type": "STRING"},
        {"name": "temp", "type": "FLOAT", "accessMode": "ReadOnly"},
    ],
)
COUNT_PROPS = [f"p{i}" for i in range(20)]
BY_PATH = {"protocolName": "opcua", "configData": {"browsePath": "3:Panel/3:Label"}}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, list[DeviceSpec]]]:
    """The module's server and its devices: poll, subscribe, writable and a 20-node one."""
    address = url()
    poll = [visit(n, f"ns=2;i={1000 + i}", dataType=d) for i, (n, _, d, *_) in enumerate(TYPES)]
    sub = [visit(n, f"ns=2;s=Sub.{n}", dataType=d) for n, _, d, *_ in TYPES]
    sub[0]["visitors"]["configData"]["nodeID"] = "nsu=urn:edgedev:test:line;s=Sub.flag"
    writes = [
        visit("setpoint", "ns=3;s=W.setpoint", dataType="Double"),
        visit("speed", "ns=3;s=W.speed", dataType="Byte"),
        visit("enabled", "ns=3;s=W.enabled"),
        {"name": "label", "collectCycle": 200, "visitors": BY_PATH},
        visit("temp", "ns=3;s=W.temp", dataType="Float"),
    ]
    counted = [visit(n, f"ns=2;s=Count.{n}", cycle=100) for n in COUNT_PROPS]
    counted_model = model(
        "counted", [{"name": n, "type": "INT", "accessMode": "ReadOnly"} for n in COUNT_PROPS]
    )
    devices = load(
        tmp_path_factory.mktemp("opcua"),
        [
            TYPE_MODEL,
            WRITE_MODEL,
            counted_model,
            device("types-poll", "all-types", address, poll),
            device("types-sub", "all-types", address, sub, mode="subscribe"),
            device("writable", "writable", address, writes),
            device("counted", "counted", address, counted),
        ],
    )
    with portal() as p, served(devices, p) as server:
        server.sim.freeze("default/types-poll")
        server.sim.freeze("default/types-sub")
        for dev in ("default/types-poll", "default/types-sub"):
            for name, _, _, value, *_ in TYPES:
                server.call(server.sim.set, dev, name, value)
        yield server, devices


def pick(devices: list[DeviceSpec], name: str) -> list[DeviceSpec]:
    return [d for d in devices if d.name == name]


def check_types(twin: dict[str, Any]) -> None:
    for name, _, _, _, value, type_ in TYPES:
        if value is None:
            assert name not in twin
            continue
        assert twin[name]["actual"]["value"] == value, name
        assert twin[name]["metadata"]["type"] == type_, name
        assert isinstance(twin[name]["actual"]["metadata"]["timestamp"], int), name


async def test_every_type_is_read_in_poll_mode(
    fleet: tuple[Served, list[DeviceSpec]], mqtt_url: str
) -> None:
    _, devices = fleet
    topic_root = root()
    mapper = Mapper(
        pick(devices, "types-poll"), transports=[KubeEdgeMqtt(mqtt_url, topic_root=topic_root)]
    )
    async with anyio.create_task_group() as tg:
        async with Bus(mqtt_url) as bus, Recorder(bus, f"{topic_root}/#") as recorder:
            await tg.start(mapper.run)
            message = await recorder.wait_for(topic_endswith("/twin/update"), timeout=15)
            state = await recorder.wait_for(topic_endswith("/state/update"))
        mapper.stop()
    assert message.topic == f"{topic_root}/device/default/types-poll/twin/update"
    assert json.loads(state.payload)["state"] == "online"
    payload = json.loads(message.payload)
    check_types(payload["twin"])  # every property in the one message of the first cycle
    for entry in payload["twin"].values():
        assert abs(entry["actual"]["metadata"]["timestamp"] - payload["timestamp"]) < 2000


async def test_every_type_is_pushed_in_subscribe_mode_without_reads(
    fleet: tuple[Served, list[DeviceSpec]], mqtt_url: str
) -> None:
    server, devices = fleet
    dev = pick(devices, "types-sub")
    counter = count_reads(server.sim.servers[dev[0].config.url])
    node_ids = {server.sim.node_id("default/types-sub", n) for n, *_ in TYPES}
    topic_root = root()
    mapper = Mapper(dev, transports=[KubeEdgeMqtt(mqtt_url, topic_root=topic_root)])
    updates = topic_endswith("/types-sub/twin/update")
    async with anyio.create_task_group() as tg:
        async with Bus(mqtt_url) as bus, Recorder(bus, f"{topic_root}/#") as recorder:
            await tg.start(mapper.run)
            await recorder.wait_for(
                lambda m: updates(m) and len(merged(recorder, "types-sub")) == REPORTED,
                timeout=15,
            )
            state = await recorder.wait_for(topic_endswith("/types-sub/state/update"))
            # a change on the server is pushed by the server, not polled by the mapper
            mark = len(recorder.messages)
            await anyio.to_thread.run_sync(
                server.call, server.sim.set, "default/types-sub", "i32", 77
            )
            pushed = await recorder.wait_for(
                lambda m: updates(m) and b'"i32"' in m.payload, after=mark, timeout=10
            )
        mapper.stop()
    assert json.loads(state.payload)["state"] == "online"
    check_types(merged(recorder, "types-sub", before=mark))
    assert json.loads(pushed.payload)["twin"]["i32"]["actual"]["value"] == "77"
    assert json.loads(pushed.payload)["twin"]["i32"]["metadata"]["type"] == "int"
    assert counter.of(node_ids) == []


async def test_one_read_request_per_cycle_with_every_due_node(
    fleet: tuple[Served, list[DeviceSpec]], mqtt_url: str
) -> None:
    server, devices = fleet
    dev = pick(devices, "counted")
    counter = count_reads(server.sim.servers[dev[0].config.url])
    node_ids = {server.sim.node_id("default/counted", n) for n in COUNT_PROPS}
    topic_root = root()
    mapper = Mapper(dev, transports=[KubeEdgeMqtt(mqtt_url, topic_root=topic_root)])
    updates = topic_endswith("/counted/twin/update")
    async with anyio.create_task_group() as tg:
        async with Bus(mqtt_url) as bus, Recorder(bus, f"{topic_root}/#") as recorder:
            await tg.start(mapper.run)
            await recorder.wait_count(updates, 8, timeout=15)
            runner = mapper.runners["default/counted"]
            requests, reads = counter.of(node_ids), runner.reads
        mapper.stop()
    # each cycle (100 ms, all 20 properties due) is one Read request asking for all 20 nodes
    assert reads >= 8
    assert len(requests) in (reads, reads + 1)  # a cycle may be at the server, not yet counted
    assert all(set(r) == node_ids and len(r) == len(COUNT_PROPS) for r in requests)
    twin = merged(recorder, "counted")
    assert set(twin) == set(COUNT_PROPS)


async def test_writes_use_the_node_type_and_are_range_checked(
    fleet: tuple[Served, list[DeviceSpec]], mqtt_url: str
) -> None:
    from asyncua import ua

    server, devices = fleet
    sim = server.sim
    topic_root = root()
    mapper = Mapper(
        pick(devices, "writable"), transports=[KubeEdgeMqtt(mqtt_url, topic_root=topic_root)]
    )
    async with anyio.create_task_group() as tg:
        async with Bus(mqtt_url) as bus, Recorder(bus, f"{topic_root}/#") as recorder:
            await tg.start(mapper.run)
            await recorder.wait_for(topic_endswith("/writable/twin/update"), timeout=15)
            runner = mapper.runners["default/writable"]

            result = await runner.desired.write("setpoint", "72.5")
            assert result.ok and result.value == "72.5"
            assert sim.get("default/writable", "setpoint") == 72.5
            await recorder.wait_for(
                lambda m: (
                    m.topic.endswith("/writable/twin/update")
                    and b'"setpoint"' in m.payload
                    and json.loads(m.payload)["twin"]["setpoint"]["actual"]["value"] == "72.5"
                )
            )

            assert (await runner.desired.write("speed", "150")).ok
            assert (await runner.desired.write("enabled", "true")).ok
            assert (await runner.desired.write("label", "north-line")).ok
            spaced = await runner.desired.write("label", "north line")  # no report carries it
            assert not spaced.ok and "the character ' '" in (spaced.reason or "")
            served_values = {
                n: sim.get("default/writable", n) for n in ("speed", "enabled", "label")
            }
            assert served_values == {"speed": 150, "enabled": True, "label": "north-line"}
            # the value went out as the node's own type (Byte), not as a Python int (Int64)
            speed = sim.servers[runner.spec.config.url].read_attribute_value(
                sim.node_id("default/writable", "speed")
            )
            assert speed.Value.VariantType == ua.VariantType.Byte

            too_high = await runner.desired.write("speed", "201")
            assert not too_high.ok and "maximum" in (too_high.reason or "")
            read_only = await runner.desired.write("temp", "20")
            assert not read_only.ok and "ReadOnly" in (read_only.reason or "")
            not_a_number = await runner.desired.write("setpoint", "warm")
            assert not not_a_number.ok
            assert sim.get("default/writable", "speed") == 150
            assert sim.get("default/writable", "setpoint") == 72.5
        mapper.stop()


async def test_a_server_limit_on_nodes_per_read_splits_a_cycle_as_little_as_it_allows(
    fleet: tuple[Served, list[DeviceSpec]], mqtt_url: str
) -> None:
    from asyncua import ua

    server, devices = fleet
    dev = pick(devices, "counted")
    opcua_server = server.sim.servers[dev[0].config.url]
    limit = ua.NodeId(11705)  # Server_ServerCapabilities_OperationLimits_MaxNodesPerRead

    def set_limit(value: int) -> None:
        data = ua.DataValue(ua.Variant(value, ua.VariantType.UInt32))
        server.call(opcua_server.write_attribute_value, limit, data)

    counter = count_reads(opcua_server)
    node_ids = {server.sim.node_id("default/counted", n) for n in COUNT_PROPS}
    topic_root = root()
    mapper = Mapper(dev, transports=[KubeEdgeMqtt(mqtt_url, topic_root=topic_root)])
    await anyio.to_thread.run_sync(set_limit, 8)
    try:
        async with anyio.create_task_group() as tg:
            async with Bus(mqtt_url) as bus, Recorder(bus, f"{topic_root}/#") as recorder:
                await tg.start(mapper.run)
                await recorder.wait_count(topic_endswith("/counted/twin/update"), 3, timeout=15)
                requests = counter.of(node_ids)
            mapper.stop()
    finally:
        await anyio.to_thread.run_sync(set_limit, 0)
    sizes = [len(r) for r in requests]
    assert sizes[:6] == [8, 8, 4, 8, 8, 4]
    assert set(merged(recorder, "counted")) == set(COUNT_PROPS)
