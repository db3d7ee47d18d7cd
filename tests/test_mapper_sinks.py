"""Report sinks: a DeviceRunner hands every value and state to each sink of its Mapper."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import anyio
import pytest

from edgedev import Bus, DeviceSpec, Mapper, Message
from edgedev.bus import MemoryOutbox
from edgedev.mapper import Reading, ReportSink, StateChanges
from edgedev.mapper._device import describe, push_rounds
from edgedev.mqtt import KubeEdgeMqtt
from edgedev.testing import BrokerHandle, Recorder, free_port
from edgedev.twin import DeviceState
from edgedev_modbus import ModbusSimulator
from reliability_helpers import fleet_docs, load_docs, topic_root


class RecordingSink(ReportSink):
    """Remembers every call; tests wait on it with a deadline."""

    def __init__(self) -> None:
        self.readings_seen: list[list[Reading]] = []
        self.twins: list[list[Reading]] = []
        self.states: list[tuple[str, DeviceState, str | None]] = []
        self.running = False
        self.flushed = False
        self.closed = False
        self._changed = anyio.Event()

    def readings(self, device: DeviceSpec, readings: Sequence[Reading]) -> None:
        self.readings_seen.append(list(readings))
        self._changed.set()

    def twin(self, device: DeviceSpec, readings: Sequence[Reading]) -> None:
        self.twins.append(list(readings))
        self._changed.set()

    def state(self, device: DeviceSpec, state: DeviceState, reason: str | None) -> None:
        self.states.append((device.id, state, reason))
        self._changed.set()

    async def run(self) -> None:
        self.running = True
        self._changed.set()
        await anyio.sleep_forever()

    async def flush(self) -> None:
        self.flushed = True

    async def close(self) -> None:
        assert self.flushed, "flushed before closed"
        self.closed = True
        self._changed.set()

    async def wait(self, condition: Callable[[], bool], timeout: float = 15) -> None:
        with anyio.fail_after(timeout):
            while True:
                changed = self._changed = anyio.Event()
                if condition():
                    return
                await changed.wait()


@pytest.mark.broker
async def test_every_sink_gets_readings_twin_reports_and_states(tmp_path: Path, mqtt_url: str):
    devices = load_docs(tmp_path, fleet_docs(["a"], cycle_ms=100))
    sink = RecordingSink()
    root = topic_root()
    mapper = Mapper(devices, transports=[KubeEdgeMqtt(mqtt_url, topic_root=root)], sinks=[sink])
    async with anyio.create_task_group() as tg:
        await tg.start(ModbusSimulator(devices).run)
        async with Bus(mqtt_url) as bus, Recorder(bus, f"{root}/#") as recorder:
            await tg.start(mapper.run)
            await sink.wait(lambda: sink.running and len(sink.twins) >= 3)
            assert sink.states[0] == ("default/a", DeviceState.ONLINE, None)
            assert len(sink.readings_seen) >= 3
            reading = sink.twins[0][0]
            assert (reading.name, reading.text) == ("n", str(reading.value))
            # the MQTT twin publisher is a sink too: the same reading on twin/update
            report = await recorder.wait_for(
                lambda m: m.topic.endswith("/device/default/a/twin/update"), timeout=10
            )
            actual = json.loads(report.payload)["twin"]["n"]["actual"]
            assert actual["metadata"]["timestamp"] == reading.timestamp
            mapper.stop()
            await sink.wait(lambda: sink.closed)
        tg.cancel_scope.cancel()  # the simulator
    assert sink.states[-1][:2] == ("default/a", DeviceState.OFFLINE)


@pytest.mark.broker
async def test_a_device_lost_reports_offline_with_its_reason(tmp_path: Path, mqtt_url: str):
    port = free_port()  # nothing listens there
    devices = load_docs(tmp_path, fleet_docs(["gone"], ports={"gone": port}, timeout=300))
    sink = RecordingSink()
    mapper = Mapper(
        devices, transports=[KubeEdgeMqtt(mqtt_url, topic_root=topic_root())], sinks=[sink]
    )
    async with anyio.create_task_group() as tg:
        await tg.start(mapper.run)
        await sink.wait(lambda: bool(sink.states))
        tg.cancel_scope.cancel()
    device_id, state, reason = sink.states[0]
    assert (device_id, state) == ("default/gone", DeviceState.OFFLINE)
    assert reason, "the reason is never empty"


def test_a_bare_timeout_gets_a_reason_in_words():
    assert describe(TimeoutError(), 3.0) == "timeout, no answer within 3000 ms"
    assert describe(ConnectionRefusedError(111, "refused"), 3.0) == (
        "connection refused: [Errno 111] refused"
    )
    assert describe(OSError(), 3.0) == "OSError"


class SentOutbox(MemoryOutbox):
    """A memory outbox that remembers every message the mapper published."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[Message] = []

    def put(self, message: Message) -> None:
        self.sent.append(message)
        super().put(message)


@pytest.mark.broker
async def test_a_fresh_mapper_says_online_once_per_device(
    tmp_path: Path, fresh_broker: BrokerHandle
):
    """The first connection sends the states queued before it; it does not repeat them."""
    fresh_broker.stop()  # the devices come online before the broker is reached
    names = ["a", "b"]
    devices = load_docs(tmp_path, fleet_docs(names, cycle_ms=100))
    outbox = SentOutbox()
    root = topic_root()
    changes = StateChanges()
    mqtt = KubeEdgeMqtt(fresh_broker.url, topic_root=root, outbox=outbox)
    mapper = Mapper(devices, transports=[mqtt], sinks=[changes])

    def states(name: str) -> list[str]:
        topic = f"{root}/device/default/{name}/state/update"
        return [json.loads(m.payload)["state"] for m in outbox.sent if m.topic == topic]

    async with anyio.create_task_group() as tg:
        await tg.start(ModbusSimulator(devices).run)
        await tg.start(mapper.run)
        with anyio.fail_after(10):
            await changes.wait_until(
                lambda: all(r.state == DeviceState.ONLINE for r in mapper.runners.values())
            )
            fresh_broker.start()
            assert mqtt.bus is not None
            await mqtt.bus.wait_connected()  # its listeners have run when this returns
        assert {name: states(name) for name in names} == {name: ["online"] for name in names}
        tg.cancel_scope.cancel()


def test_pushed_values_are_reported_in_order_one_value_per_property_and_report():
    def r(name: str, value: int) -> tuple[str, Reading]:
        return name, Reading(name, value, str(value), value)

    rounds = push_rounds([r("a", 1), r("b", 2), r("a", 3), r("a", 4), r("b", 5)])
    assert [{n: x.value for n, x in one.items()} for one in rounds] == [
        {"a": 1, "b": 2},
        {"a": 3, "b": 5},
        {"a": 4},
    ]
    assert push_rounds([]) == []
    # a server's backlog, node by node: as few reports as the most values of one property
    backlog = [r(name, v) for name in "abc" for v in range(4)]
    assert [sorted(one) for one in push_rounds(backlog)] == [["a", "b", "c"]] * 4
