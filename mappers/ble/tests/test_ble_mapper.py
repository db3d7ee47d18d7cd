"""The BLE mapper end to end: bleak's API over the simulated backend, a real broker,
KubeEdge payloads. No test touches a Bluetooth adapter: every device names a ``sim://``
backend."""

from __future__ import annotations

from pathlib import Path

import pytest
from ble_helpers import (
    TIMEOUT,
    delta,
    device,
    fleet,
    free_port,
    load,
    model,
    reports,
    root,
    state,
    twin_values,
    visit,
)

from edgedev_ble import BleSimulator

pytestmark = pytest.mark.broker

MAC = "C4:7C:8D:6A:00:01"
ID = "default/tag"


def sensor_tag(tmp_path: Path, port: int, **config: object):
    props = [
        {"name": "temperature", "type": "FLOAT", "accessMode": "ReadOnly"},
        {"name": "humidity", "type": "FLOAT", "accessMode": "ReadOnly"},
        {"name": "body", "type": "FLOAT", "accessMode": "ReadOnly"},
        {"name": "label", "type": "STRING", "accessMode": "ReadOnly"},
        {"name": "count", "type": "INT", "accessMode": "ReadOnly"},
    ]
    visits = [
        # notified (ReadOnly and notify unset); a 60 s cycle shows that it is not polled
        visit("temperature", "2A6E", cycle=60_000, format="int16le", scale=0.01),
        visit("humidity", "2A6F", format="uint16le", scale=0.01, notify=False),
        visit("body", "2A1C", format="medfloat16", offset=1, notify=False),
        visit("label", "2A00", notify=False),
        visit("count", "FFF2", notify=False),
    ]
    return load(tmp_path, [model("tag", props), device("tag", "tag", MAC, port, visits, **config)])


def frozen_with(values: dict[str, object]):
    def prepare(sim: BleSimulator) -> None:
        sim.freeze(ID)
        for name, value in values.items():
            sim.set(ID, name, value)  # type: ignore[arg-type]

    return prepare


async def test_read_and_notified_values_arrive_decoded(tmp_path: Path, mqtt_url: str):
    devices = sensor_tag(tmp_path, free_port())
    values = {"temperature": 21.5, "humidity": 45.67, "body": 36.5, "label": "Tag-1", "count": -7}
    async with fleet(devices, mqtt_url, root(), prepare=frozen_with(values)) as (
        sim,
        mapper,
        _,
        recorder,
    ):
        polled = await recorder.wait_for(reports(ID, "humidity"), timeout=TIMEOUT)
        assert (
            twin_values(polled).items()
            >= {
                "humidity": "45.67",
                "body": "36.5",
                "label": "Tag-1",
                "count": "-7",
            }.items()
        )
        # the notified temperature: its current value once subscribed...
        await recorder.wait_for(reports(ID, "temperature", "21.5"), timeout=TIMEOUT)
        # ...then every notification, long before its 60 s collectCycle
        for value in (23.25, -4.5):
            before = len(recorder.messages)
            sim.set(ID, "temperature", value)
            await recorder.wait_for(
                reports(ID, "temperature", str(value)), after=before, timeout=TIMEOUT
            )
        assert mapper.runners[ID].state == "online"


async def test_every_data_converter_operation_end_to_end(tmp_path: Path, mqtt_url: str):
    port = free_port()
    ops = {
        "add": ({"startIndex": 0, "endIndex": 1}, "Add", 10, "INT", "268"),
        "subtract": ({"startIndex": 3, "endIndex": 2}, "Subtract", 5, "INT", "4655"),
        "multiply": ({"startIndex": 4, "shiftRight": 4}, "Multiply", 2.5, "FLOAT", "25.0"),
        "divide": ({"startIndex": 5, "shiftLeft": 2}, "Divide", 8, "FLOAT", "3.5"),
    }
    props = [{"name": n, "type": t, "accessMode": "ReadOnly"} for n, (*_, t, _v) in ops.items()]
    visits = [
        visit(
            name,
            "FFF1",
            notify=False,
            dataConverter={
                **rng,
                "orderOfOperations": [{"operationType": op, "operationValue": value}],
            },
        )
        for name, (rng, op, value, _, _) in ops.items()
    ]
    devices = load(tmp_path, [model("ops", props), device("ops", "ops", MAC, port, visits)])

    def prepare(sim: BleSimulator) -> None:
        sim.freeze("default/ops")
        sim.peripheral("default/ops").of_property["add"].value = bytes(
            [0x01, 0x02, 0x34, 0x12, 0xA5, 0x07]
        )

    async with fleet(devices, mqtt_url, root(), prepare=prepare) as (_, _, _, recorder):
        message = await recorder.wait_for(reports("default/ops", "add"), timeout=TIMEOUT)
    assert twin_values(message) == {name: expected for name, (*_, expected) in ops.items()}


async def test_desired_values_from_a_delta_are_written_with_and_without_response(
    tmp_path: Path, mqtt_url: str
):
    props = [
        {"name": "led", "type": "STRING"},
        {"name": "level", "type": "INT", "minimum": "0", "maximum": "100"},
        {"name": "setpoint", "type": "FLOAT"},
    ]
    visits = [
        visit("led", "FFE1", dataWrite={"ON": [1], "OFF": [0]}),
        visit("level", "FFE2", format="uint8", writeWithResponse=False),
        visit(
            "setpoint",
            "FFE3",
            dataConverter={
                "startIndex": 0,
                "endIndex": 1,
                "orderOfOperations": [{"operationType": "Divide", "operationValue": 10}],
            },
        ),
    ]
    devices = load(tmp_path, [model("w", props), device("w", "w", MAC, free_port(), visits)])
    topic_root = root()
    async with fleet(devices, mqtt_url, topic_root) as (sim, _, bus, recorder):
        await recorder.wait_for(reports("default/w", "led"), timeout=TIMEOUT)
        before = len(recorder.messages)
        bus.publish(
            f"{topic_root}/device/default/w/twin/update/delta",
            delta(
                {"led": "ON", "level": "42", "setpoint": "21.5"},
                {"led": "string", "level": "int", "setpoint": "float"},
            ),
        )
        for name, value in (("led", "ON"), ("level", "42"), ("setpoint", "21.5")):
            await recorder.wait_for(
                reports("default/w", name, value), after=before, timeout=TIMEOUT
            )
        writes = {(w.characteristic[4:8], w.data, w.response) for w in sim.writes}
        assert writes == {
            ("ffe1", b"\x01", True),  # write with response: the characteristic offers it
            ("ffe2", b"\x2a", False),  # writeWithResponse: false
            ("ffe3", (215).to_bytes(2, "big"), True),
        }
        assert sim.get("default/w", "setpoint") == 21.5

        # out of range: refused before any I/O
        sim.writes.clear()
        before = len(recorder.messages)
        bus.publish(
            f"{topic_root}/device/default/w/twin/update/delta",
            delta({"level": "101", "led": "OFF"}, {"level": "int", "led": "string"}),
        )
        await recorder.wait_for(reports("default/w", "led", "OFF"), after=before, timeout=TIMEOUT)
        assert [w.data for w in sim.writes] == [b"\x00"]


async def test_a_lost_peripheral_goes_offline_then_online_with_notifications_again(
    tmp_path: Path, mqtt_url: str
):
    devices = sensor_tag(tmp_path, free_port(), timeout=2000)
    values = {"temperature": 20.0, "humidity": 40.0}
    async with fleet(devices, mqtt_url, root(), prepare=frozen_with(values)) as (
        sim,
        mapper,
        _,
        recorder,
    ):
        await recorder.wait_for(state(ID, "online"), timeout=TIMEOUT)
        await recorder.wait_for(reports(ID, "temperature", "20.0"), timeout=TIMEOUT)

        sim.disconnect(ID, stay_away=True)  # out of range: no advertising, no connections
        offline = await recorder.wait_for(state(ID, "offline"), timeout=TIMEOUT)
        assert sim.connections(ID) == 0

        sim.come_back(ID)
        index = recorder.messages.index(offline)
        await recorder.wait_for(state(ID, "online"), after=index, timeout=TIMEOUT)
        for value in (24.5, 25.75):  # notifications flow again on the new connection
            before = len(recorder.messages)
            sim.set(ID, "temperature", value)
            await recorder.wait_for(
                reports(ID, "temperature", str(value)), after=before, timeout=TIMEOUT
            )
        assert mapper.runners[ID].reconnects == 1
        assert sim.connections(ID) == 1


async def test_a_dropped_connection_is_noticed_by_a_device_that_only_polls(
    tmp_path: Path, mqtt_url: str
):
    props = [{"name": "count", "type": "INT", "accessMode": "ReadOnly"}]
    visits = [visit("count", "FFF2", cycle=100, notify=False)]
    devices = load(
        tmp_path, [model("p", props), device("p", "p", MAC, free_port(), visits, timeout=2000)]
    )
    async with fleet(devices, mqtt_url, root()) as (sim, mapper, _, recorder):
        await recorder.wait_for(state("default/p", "online"), timeout=TIMEOUT)
        sim.disconnect("default/p")  # drops the link; the peripheral stays in range
        offline = await recorder.wait_for(state("default/p", "offline"), timeout=TIMEOUT)
        index = recorder.messages.index(offline)
        await recorder.wait_for(state("default/p", "online"), after=index, timeout=TIMEOUT)
        after = len(recorder.messages)
        await recorder.wait_for(reports("default/p", "count"), after=after, timeout=TIMEOUT)
        assert mapper.runners["default/p"].reconnects == 1


async def test_several_devices_share_one_adapter(tmp_path: Path, mqtt_url: str):
    port = free_port()
    props = [{"name": "temperature", "type": "FLOAT", "accessMode": "ReadOnly"}]
    docs = [model("t", props)]
    for i in range(4):
        mac = f"C4:7C:8D:6A:00:1{i}"
        docs.append(
            device(
                f"t{i}",
                "t",
                mac,
                port,
                [visit("temperature", "2A6E", format="int16le", scale=0.01)],
            )
        )
    devices = load(tmp_path, docs)
    async with fleet(devices, mqtt_url, root()) as (sim, mapper, _, recorder):
        for i in range(4):
            await recorder.wait_for(reports(f"default/t{i}", "temperature"), timeout=TIMEOUT)
        assert sorted(mapper.online) == [f"default/t{i}" for i in range(4)]
        assert all(sim.connections(f"default/t{i}") == 1 for i in range(4))
        from edgedev_ble import Adapter, resolve_backend

        adapter = Adapter.get(resolve_backend(f"sim://127.0.0.1:{port}"), None)
        assert 1 <= adapter.scans <= 4  # a scan caches every peripheral it sees


async def test_the_environment_picks_the_backend(
    tmp_path: Path, mqtt_url: str, monkeypatch: pytest.MonkeyPatch
):
    port = free_port()
    monkeypatch.setenv("EDGEDEV_BLE_BACKEND", f"sim://127.0.0.1:{port}")
    props = [{"name": "count", "type": "INT", "accessMode": "ReadOnly"}]
    devices = load(
        tmp_path,
        [model("e", props), device("e", "e", MAC, None, [visit("count", "FFF2", notify=False)])],
    )
    async with fleet(devices, mqtt_url, root()) as (sim, _, _, recorder):
        await recorder.wait_for(reports("default/e", "count"), timeout=TIMEOUT)
        assert sim.ports == {("127.0.0.1", port): port}


async def test_notify_asked_of_a_characteristic_that_cannot_is_polled_instead(
    tmp_path: Path, mqtt_url: str
):
    props = [{"name": "count", "type": "INT", "accessMode": "ReadOnly"}]
    visits = [visit("count", "FFF2", cycle=100, notify=True)]
    devices = load(tmp_path, [model("n", props), device("n", "n", MAC, free_port(), visits)])

    def prepare(sim: BleSimulator) -> None:
        sim.peripheral("default/n").of_property["count"].properties.remove("notify")

    async with fleet(devices, mqtt_url, root(), prepare=prepare) as (_, mapper, _, recorder):
        await recorder.wait_count(reports("default/n", "count"), 3, timeout=TIMEOUT)
        assert mapper.runners["default/n"].state == "online"
        assert mapper.runners["default/n"].reads >= 3
