"""The Modbus mapper end to end: real pymodbus servers, a real broker, KubeEdge payloads."""

from __future__ import annotations

import itertools
import json
import struct
from pathlib import Path
from typing import Any

import anyio
import pytest
from modbus_helpers import device, fleet, free_port, load, model, root, visit

from edgedev import Bus, Mapper
from edgedev.health import mapper_metrics, render
from edgedev.mqtt import KubeEdgeMqtt
from edgedev.testing import Recorder, topic_endswith
from edgedev_modbus import ModbusSimulator
from edgedev_modbus.codec import Table

pytestmark = pytest.mark.broker


def words(fmt: str, value: Any) -> list[int]:
    """Big-endian register words of ``value`` packed with struct format ``fmt``."""
    data = struct.pack(">" + fmt, value)
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]


def swap_bytes(ws: list[int]) -> list[int]:
    return [((w & 0xFF) << 8) | (w >> 8) for w in ws]


# name, model type, visitor configData, raw words to put (table, offset), expected value, type
# (value None: left out of the report, as EdgeCore refuses ints beyond int64)
CASES: list[tuple[str, str, dict[str, Any], list[int], str | None, str]] = [
    ("i16", "INT", {"offset": 0, "limit": 1}, words("h", -1234), "-1234", "int"),
    ("u16", "INT", {"offset": 1, "dataType": "uint16"}, words("H", 65000), "65000", "int"),
    (
        "i32",
        "INT",
        {"offset": 2, "limit": 2, "isRegisterSwap": True},
        words("i", -123456)[::-1],
        "-123456",
        "int",
    ),
    (
        "u32",
        "INT",
        {"offset": 4, "dataType": "uint32", "isSwap": True},
        swap_bytes(words("I", 4_000_000_000)),
        "4000000000",
        "int",
    ),
    ("i64", "INT", {"offset": 6, "limit": 4}, words("q", -(2**40)), str(-(2**40)), "int"),
    (
        "u64",
        "INT",
        {"offset": 10, "dataType": "uint64"},
        words("Q", 2**63 - 5),
        str(2**63 - 5),
        "int",
    ),
    ("u64big", "INT", {"offset": 29, "dataType": "uint64"}, words("Q", 2**63 + 5), None, "int"),
    (
        "f32",
        "FLOAT",
        {"offset": 14, "limit": 2, "isSwap": True, "isRegisterSwap": True},
        swap_bytes(words("f", 23.5))[::-1],
        "23.5",
        "float",
    ),
    ("f32b", "FLOAT", {"offset": 16, "dataType": "float32"}, words("f", 0.1), "0.1", "float"),
    (
        "f64",
        "DOUBLE",
        {"offset": 18, "limit": 4},
        words("d", 3.141592653589793),
        "3.141592653589793",
        "float",  # EdgeCore knows no "double"
    ),
    ("flag", "BOOLEAN", {"offset": 22}, [1], "true", "boolean"),
    ("name", "STRING", {"offset": 23, "limit": 4}, [0x4544, 0x4745, 0x3031, 0], "EDGE01", "string"),
    ("scaled", "FLOAT", {"offset": 27, "dataType": "int16", "scale": 0.1}, [235], "23.5", "float"),
    ("scaled_i", "INT", {"offset": 28, "limit": 1, "scale": 10}, words("h", -7), "-70", "int"),
]


async def test_every_type_arrives_decoded_on_the_right_topic(tmp_path: Path, mqtt_url: str):
    port = free_port()
    props = [{"name": n, "type": t, "accessMode": "ReadOnly"} for n, t, *_ in CASES]
    props += [
        {"name": "coil", "type": "BOOLEAN"},
        {"name": "input", "type": "BOOLEAN", "accessMode": "ReadOnly"},
        {"name": "ir", "type": "INT", "accessMode": "ReadOnly"},
    ]
    visits = [visit(n, register="HoldingRegister", **c) for n, _, c, *_ in CASES]
    visits += [
        visit("coil", register="CoilRegister", offset=3),
        visit("input", register="DiscreteInputRegister", offset=5),
        visit("ir", register="InputRegister", offset=2, dataType="uint16"),
    ]
    devices = load(
        tmp_path, [model("all-types", props), device("types", "all-types", port, visits)]
    )
    topic_root = root()
    sim = ModbusSimulator(devices)
    sim.freeze("default/types")
    for _, _, config, raw, _, _ in CASES:
        sim.set_words("default/types", Table.HOLDING, config["offset"], raw)
    sim.set_words("default/types", Table.COIL, 3, [1])
    sim.set_words("default/types", Table.DISCRETE_INPUT, 5, [1])
    sim.set_words("default/types", Table.INPUT, 2, [4242])
    mapper = Mapper(devices, transports=[KubeEdgeMqtt(mqtt_url, topic_root=topic_root)])
    async with anyio.create_task_group() as tg:
        await tg.start(sim.run)
        async with Bus(mqtt_url) as bus, Recorder(bus, f"{topic_root}/#") as recorder:
            await tg.start(mapper.run)
            message = await recorder.wait_for(topic_endswith("/twin/update"))
            metrics = render(mapper_metrics(mapper))
        tg.cancel_scope.cancel()

    assert message.topic == f"{topic_root}/device/default/types/twin/update"
    payload = json.loads(message.payload)
    assert isinstance(payload["event_id"], str) and payload["event_id"]
    assert isinstance(payload["timestamp"], int)
    twin = payload["twin"]
    for name, _, _, _, value, type_ in CASES:
        if value is None:
            assert name not in twin
            continue
        assert twin[name]["actual"]["value"] == value, name
        assert twin[name]["metadata"]["type"] == type_, name
        assert abs(twin[name]["actual"]["metadata"]["timestamp"] - payload["timestamp"]) < 1000
    assert twin["coil"]["actual"]["value"] == "true"
    assert twin["input"]["actual"]["value"] == "true"
    assert twin["ir"]["actual"]["value"] == "4242"
    # u64big, counted for /metrics
    refused = 'edgedev_twin_values_refused_total{device="default/types",transport="mqtt"} '
    assert refused + "0" not in metrics and refused in metrics


async def test_one_read_request_per_contiguous_block(tmp_path: Path, mqtt_url: str):
    port = free_port()
    names = [f"p{i}" for i in range(40)]
    props = [{"name": n, "type": "INT", "accessMode": "ReadOnly"} for n in names]
    # 30 contiguous holding registers, 5 input registers, 5 coils far apart from each other
    visits = [
        visit(n, cycle=100, register="HoldingRegister", offset=i) for i, n in enumerate(names[:30])
    ]
    visits += [
        visit(n, cycle=100, register="InputRegister", offset=10 + i)
        for i, n in enumerate(names[30:35])
    ]
    props[35:] = [{"name": n, "type": "BOOLEAN", "accessMode": "ReadOnly"} for n in names[35:]]
    visits += [
        visit(n, cycle=100, register="CoilRegister", offset=1000 * i)
        for i, n in enumerate(names[35:])
    ]
    devices = load(
        tmp_path, [model("blocks", props), device("blocks", "blocks", port, visits, maxGap=16)]
    )
    async with fleet(devices, mqtt_url, root()) as (sim, _, recorder):
        updates = topic_endswith("/twin/update")
        await recorder.wait_for(updates)
        sim.requests.clear()
        seen = len(recorder.messages)
        await recorder.wait_count(lambda m: updates(m) and m in recorder.messages[seen:], 5)
        requests = list(sim.requests)
    reads = [r for r in requests if r.is_read]
    cycles = max(1, len([r for r in reads if r.table is Table.HOLDING]))
    # per cycle: 1 holding block (30 registers), 1 input block, 5 coil blocks (1000 apart)
    assert len(reads) in range(7 * cycles - 6, 7 * cycles + 7)  # cycles cut at the edges
    holding = [r for r in reads if r.table is Table.HOLDING]
    assert all((r.address, r.count) == (0, 30) for r in holding)
    assert all((r.address, r.count) == (10, 5) for r in reads if r.table is Table.INPUT)
    assert len(holding) == len([r for r in reads if r.table is Table.INPUT])
    assert len([r for r in reads if r.table is Table.COIL]) in range(5 * cycles - 4, 5 * cycles + 5)


async def test_gaps_up_to_max_gap_share_a_request(tmp_path: Path, mqtt_url: str):
    props = [{"name": n, "type": "INT", "accessMode": "ReadOnly"} for n in ("a", "b", "c")]
    visits = [
        visit("a", register="HoldingRegister", offset=0),
        visit("b", register="HoldingRegister", offset=10),
        visit("c", register="HoldingRegister", offset=40),
    ]
    devices = load(
        tmp_path, [model("gaps", props), device("gaps", "gaps", free_port(), visits, maxGap=16)]
    )
    async with fleet(devices, mqtt_url, root()) as (sim, _, recorder):
        await recorder.wait_for(topic_endswith("/twin/update"))
        first = [(r.address, r.count) for r in sim.requests if r.is_read][:2]
    assert first == [(0, 11), (40, 1)]


async def _reports_of(recorder: Recorder, device_id: str) -> list[float]:
    return [
        json.loads(m.payload)["timestamp"] / 1000
        for m in recorder.messages
        if m.topic.endswith(f"/{device_id}/twin/update")
    ]


async def test_stopped_server_goes_offline_and_comes_back_while_others_keep_cycle(
    tmp_path: Path, mqtt_url: str
):
    port_a, port_b = free_port(), free_port()
    props = [{"name": "v", "type": "INT", "accessMode": "ReadOnly"}]
    devices = load(
        tmp_path,
        [
            model("m", props),
            device(
                "a",
                "m",
                port_a,
                [visit("v", cycle=100, register="HoldingRegister", offset=0)],
                timeout=300,
            ),
            device(
                "b",
                "m",
                port_b,
                [visit("v", cycle=100, register="HoldingRegister", offset=0)],
                timeout=300,
            ),
        ],
    )
    dev_a, dev_b = devices
    topic_root = root()
    sim_b = ModbusSimulator([dev_b])
    mapper = Mapper(devices, transports=[KubeEdgeMqtt(mqtt_url, topic_root=topic_root)])
    state_a = topic_endswith("/default/a/state/update")

    def is_state(state: str) -> Any:
        return lambda m: state_a(m) and json.loads(m.payload)["state"] == state

    async with anyio.create_task_group() as tg:
        await tg.start(sim_b.run)
        async with Bus(mqtt_url) as bus, Recorder(bus, f"{topic_root}/#") as recorder:
            scope_a = anyio.CancelScope()
            sim_a = ModbusSimulator([dev_a])

            async def serve_a(*, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
                with scope_a:
                    await sim_a.run(task_status=task_status)

            await tg.start(serve_a)
            await tg.start(mapper.run)
            await recorder.wait_for(is_state("online"), timeout=10)
            scope_a.cancel()
            # server a is gone: a goes offline, b keeps reporting every 100 ms
            offline = await recorder.wait_for(is_state("offline"), timeout=10)
            index = recorder.messages.index(offline)
            sim_a2 = ModbusSimulator([dev_a])
            # let b run through several cycles while a is down
            await recorder.wait_count(
                lambda m: (
                    m.topic.endswith("/default/b/twin/update")
                    and recorder.messages.index(m) > index
                ),
                8,
            )
            await tg.start(sim_a2.run)
            await recorder.wait_for(is_state("online"), after=index, timeout=15)
            back = len(recorder.messages)
            await recorder.wait_for(topic_endswith("/default/a/twin/update"), after=back, timeout=5)
        tg.cancel_scope.cancel()

    stamps = await _reports_of(recorder, "default/b")
    gaps = [later - earlier for earlier, later in itertools.pairwise(stamps)]
    assert len(stamps) >= 10, "b reported through a's outage and return"
    assert max(gaps) < 0.2, f"b paused for {max(gaps):.3f} s while a was down"
    assert mapper.runners["default/a"].reconnects == 1


async def test_writes_reach_the_device_and_are_refused_when_out_of_range_or_read_only(
    tmp_path: Path, mqtt_url: str
):
    props = [
        {"name": "setpoint", "type": "FLOAT", "minimum": "10", "maximum": "30"},
        {"name": "relay", "type": "BOOLEAN"},
        {"name": "temp", "type": "FLOAT", "accessMode": "ReadOnly"},
        {"name": "big", "type": "INT"},
    ]
    visits = [
        visit("setpoint", register="HoldingRegister", offset=0, dataType="int16", scale=0.1),
        visit("relay", register="CoilRegister", offset=2),
        visit("temp", register="InputRegister", offset=0, dataType="int16", scale=0.1),
        visit("big", register="HoldingRegister", offset=4, dataType="uint32", isRegisterSwap=True),
    ]
    devices = load(tmp_path, [model("w", props), device("w", "w", free_port(), visits)])
    async with fleet(devices, mqtt_url, root()) as (sim, mapper, recorder):
        await recorder.wait_for(topic_endswith("/twin/update"))
        runner = mapper.runners["default/w"]

        result = await runner.desired.write("setpoint", "22.5")
        assert result.ok and result.value == "22.5"
        assert sim.words("default/w", Table.HOLDING, 0, 1) == [225]
        reported = await recorder.wait_for(
            lambda m: (
                m.topic.endswith("/twin/update")
                and json.loads(m.payload)["twin"].get("setpoint", {}).get("actual", {}).get("value")
                == "22.5"
            )
        )
        assert reported

        assert (await runner.desired.write("relay", "true")).ok
        assert sim.words("default/w", Table.COIL, 2, 1) == [1]

        assert (await runner.desired.write("big", "70000")).ok
        assert sim.words("default/w", Table.HOLDING, 4, 2) == [70000 & 0xFFFF, 70000 >> 16]

        too_high = await runner.desired.write("setpoint", "31")
        assert not too_high.ok and "maximum" in (too_high.reason or "")
        read_only = await runner.desired.write("temp", "20")
        assert not read_only.ok and "ReadOnly" in (read_only.reason or "")
        not_a_number = await runner.desired.write("setpoint", "warm")
        assert not not_a_number.ok
        assert sim.words("default/w", Table.HOLDING, 0, 1) == [225]


async def test_properties_written_together_are_read_back_in_one_request(
    tmp_path: Path, mqtt_url: str
):
    names = [f"sp{i}" for i in range(10)]
    props = [{"name": n, "type": "INT"} for n in names]
    visits = [
        visit(n, cycle=60_000, register="HoldingRegister", offset=i, dataType="uint16")
        for i, n in enumerate(names)
    ]
    devices = load(tmp_path, [model("w", props), device("w", "w", free_port(), visits)])
    async with fleet(devices, mqtt_url, root()) as (sim, mapper, recorder):
        await recorder.wait_for(topic_endswith("/twin/update"))  # read once: the next in 60 s
        runner = mapper.runners["default/w"]
        sim.requests.clear()
        results = {}

        async def write(name: str, value: str) -> None:
            results[name] = await runner.desired.write(name, value)

        async with anyio.create_task_group() as tg:  # wanted in one turn of the runner
            for i, name in enumerate(names):
                tg.start_soon(write, name, str(100 + i))
        assert all(r.ok for r in results.values())
        assert sim.words("default/w", Table.HOLDING, 0, 10) == list(range(100, 110))
        reads = [r for r in sim.requests if r.is_read]
        assert len(sim.requests) - len(reads) == 10  # one write each
        assert [(r.address, r.count) for r in reads] == [(0, 10)]  # read back at once


async def test_report_cycle_and_on_change_with_deadband(tmp_path: Path, mqtt_url: str):
    props = [{"name": n, "type": "FLOAT", "accessMode": "ReadOnly"} for n in ("slow", "level")]
    visits = [
        {
            **visit("slow", cycle=100, register="HoldingRegister", offset=0, dataType="uint16"),
            "reportCycle": 1000,
        },
        {
            **visit("level", cycle=100, register="HoldingRegister", offset=1, dataType="uint16"),
            "reportOnChange": True,
            "deadband": 5,
        },
    ]
    devices = load(tmp_path, [model("rc", props), device("rc", "rc", free_port(), visits)])
    sim = ModbusSimulator(devices)
    sim.freeze("default/rc")
    sim.set_words("default/rc", Table.HOLDING, 0, [10, 50])
    topic_root = root()
    mapper = Mapper(devices, transports=[KubeEdgeMqtt(mqtt_url, topic_root=topic_root)])

    def reports(recorder: Recorder, name: str) -> list[str]:
        return [
            p["twin"][name]["actual"]["value"]
            for p in recorder.json(topic_endswith("/twin/update"))
            if name in p["twin"]
        ]

    async with anyio.create_task_group() as tg:
        await tg.start(sim.run)
        async with Bus(mqtt_url) as bus, Recorder(bus, f"{topic_root}/#") as recorder:
            await tg.start(mapper.run)
            await recorder.wait_for(topic_endswith("/twin/update"))
            assert reports(recorder, "level") == ["50.0"]
            sim.set_words("default/rc", Table.HOLDING, 1, [53])  # within the deadband
            await sim.wait_requests(len(sim.requests) + 5)  # five more cycles read the device
            assert reports(recorder, "level") == ["50.0"]
            mark = len(recorder.messages)
            sim.set_words("default/rc", Table.HOLDING, 1, [56])  # beyond it: reported at once
            await recorder.wait_for(
                lambda m: m.topic.endswith("/twin/update") and b'"level"' in m.payload, after=mark
            )
            assert reports(recorder, "level") == ["50.0", "56.0"]
            # "slow" is read every 100 ms but reported every second
            await recorder.wait_count(
                lambda m: m.topic.endswith("/twin/update") and b'"slow"' in m.payload, 2, timeout=3
            )
        tg.cancel_scope.cancel()
    slow = [
        p["timestamp"] for p in recorder.json(topic_endswith("/twin/update")) if "slow" in p["twin"]
    ]
    assert 900 <= slow[1] - slow[0] <= 1100
    assert len(sim.requests) >= 10


async def test_rtu_devices_share_one_serial_line(tmp_path: Path, mqtt_url: str):
    """RTU frames over pyserial's socket:// line: two slaves on one bus, one connection."""
    line = f"socket://127.0.0.1:{free_port()}"
    props = [{"name": "v", "type": "INT", "accessMode": "ReadOnly"}]
    docs: list[dict[str, Any]] = [model("rtu", props)]
    for slave in (1, 2):
        doc = device(
            f"rtu-{slave}",
            "rtu",
            0,
            [visit("v", cycle=100, register="InputRegister", offset=0)],
            slaveID=slave,
        )
        config = doc["spec"]["protocol"]["configData"]
        del config["ip"], config["port"]
        config.update(serialPort=line, baudRate=115200, parity="even")
        docs.append(doc)
    devices = load(tmp_path, docs)
    async with fleet(devices, mqtt_url, root()) as (sim, _, recorder):
        sim.freeze("default/rtu-1")
        sim.freeze("default/rtu-2")
        sim.set_words("default/rtu-1", Table.INPUT, 0, [111])
        sim.set_words("default/rtu-2", Table.INPUT, 0, [222])
        for name, value in (("rtu-1", "111"), ("rtu-2", "222")):
            await recorder.wait_for(
                lambda m, name=name, value=value: (
                    m.topic.endswith(f"/{name}/twin/update")
                    and json.loads(m.payload)["twin"]["v"]["actual"]["value"] == value
                )
            )
    assert {r.device for r in sim.requests} == {"default/rtu-1", "default/rtu-2"}


async def test_a_gateway_whose_slave_is_gone_gives_offline_then_online(
    tmp_path: Path, mqtt_url: str
):
    props = [{"name": "v", "type": "INT", "accessMode": "ReadOnly"}]
    port = free_port()
    devices = load(
        tmp_path,
        [
            model("m", props),
            device("g", "m", port, [visit("v", cycle=100, register="HoldingRegister", offset=0)]),
        ],
    )
    topic_root = root()
    sim = ModbusSimulator(devices)
    mapper = Mapper(devices, transports=[KubeEdgeMqtt(mqtt_url, topic_root=topic_root)])
    state = topic_endswith("/default/g/state/update")

    def is_state(value: str) -> Any:
        return lambda m: state(m) and json.loads(m.payload)["state"] == value

    async with anyio.create_task_group() as tg:
        await tg.start(sim.run)
        async with Bus(mqtt_url) as bus, Recorder(bus, f"{topic_root}/#") as recorder:
            await tg.start(mapper.run)
            await recorder.wait_for(is_state("online"), timeout=15)
            sim.fail("default/g", 11)  # gateway target device failed to respond
            index = len(recorder.messages)
            await recorder.wait_for(is_state("offline"), after=index, timeout=15)
            sim.fail("default/g", None)
            index = len(recorder.messages)
            await recorder.wait_for(is_state("online"), after=index, timeout=15)
            await recorder.wait_for(
                topic_endswith("/default/g/twin/update"), after=index, timeout=15
            )
        tg.cancel_scope.cancel()
