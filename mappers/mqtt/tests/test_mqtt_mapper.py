"""The MQTT mapper end to end: a real broker, a device publisher written here, KubeEdge's documents.

The DeviceModel and Device are those of KubeEdge's proposal of a common MQTT mapper
(kubeedge/kubeedge ``docs/proposals/sig-device-iot/provide-a-commom-mqtt-mapper.md``, commit
16cd8548e: the model at lines 84-99, the device at lines 104-153), keys and values as written
there (the proposal indents them inside a list item; here they start at column 0). The
examples of docs/protocols/mqtt.md are taken from the page as written.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml

from edgedev import Bus, DeviceSpec, Mapper, load_devices
from edgedev.agent import Agent
from edgedev.cli import main
from edgedev.mapper import Reading, ReportSink
from edgedev.mqtt import KubeEdgeMqtt
from edgedev.testing import (
    BrokerHandle,
    Recorder,
    docs_example,
    free_port,
    load_documents,
    unique_root,
)
from edgedev.twin import DeviceState
from edgedev_mqtt import MqttSimulator

pytestmark = pytest.mark.broker

PAGE = Path(__file__).resolve().parents[3] / "docs" / "protocols" / "mqtt.md"

PROPOSAL_MODEL = """\
apiVersion: devices.kubeedge.io/v1beta1
kind: DeviceModel
metadata:
  name: temperature-model
  namespace: default
spec:
  properties:
    - name: temperature
      description: Temperature sensor model
      type: INT
      accessMode: ReadWrite
      maximum: "100"
      minimum: "1"
      unit: "Celsius"
  protocol: mqtt
"""

PROPOSAL_DEVICE = """\
apiVersion: devices.kubeedge.io/v1beta1
kind: Device
metadata:
  name: beta1-device
spec:
  deviceModelRef:
    name: temperature-model
  nodeName: k8s-worker1
  properties:
    - name: temperature
      collectCycle: 10000000000  # The frequency of reporting data to the cloud, once every 10 seconds
      reportCycle: 10000000000   # The frequency of data push to user applications or databases, once every 10 seconds
      reportToCloud: true
      desired:
        value: "30"
      pushMethod:
        mqtt:
          address: tcp://101.133.150.110:1883
          topic: temperature/update/json
          qos: 0
          retained: false
        dbMethod:
          influxdb2:
            influxdb2ClientConfig:
              url: http://127.0.0.1:8086
              org: test-org
              bucket: test-bucket
            influxdb2DataConfig:
              measurement: temperature_stats
              tag:
                unit: temperature
              fieldKey: temperature_value
      visitors:
        protocolName: mqtt
        configData:
            topic: "sensor/data"
            qos: 1
            retain: false
            clientId: "client123"
            username: "user"
            password: "pass"
            cleanSession: true
            keepAlive: 60

  protocol:
    protocolName: mqtt
    configData:
      ip: 101.133.150.110
      port: 1883
"""  # noqa: E501 (the proposal's comments, as written)

DEVICE_ID = "default/beta1-device"


class Twins(ReportSink):
    """The mapper's twin reports and states, to wait for them."""

    def __init__(self) -> None:
        self.reports: list[tuple[str, dict[str, str]]] = []
        self._changed = anyio.Event()

    def twin(self, device: DeviceSpec, readings: Sequence[Reading]) -> None:
        self.reports.append((device.id, {r.name: r.text for r in readings}))
        self._note()

    def state(self, device: DeviceSpec, state: DeviceState, reason: str | None) -> None:
        self._note()

    def _note(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    async def wait_for(self, condition: Callable[[], bool], timeout: float = 10.0) -> None:
        with anyio.fail_after(timeout):
            while not condition():
                await self._changed.wait()

    def values(self, device_id: str, prop: str) -> list[str]:
        return [r[prop] for d, r in self.reports if d == device_id and prop in r]


class DevicePublisher:
    """The device side: publishes values on the broker and (unless told not to) confirms the
    commands it receives by publishing the new value on the value's topic."""

    def __init__(self, bus: Bus, topic: str, commands: str) -> None:
        self.bus, self.topic, self.commands = bus, topic, commands
        self.received: list[bytes] = []
        self.confirm = True
        self._got = anyio.Event()

    async def run(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        async with self.bus.subscribe(self.commands) as messages:
            task_status.started()
            async for message in messages:
                self.received.append(message.payload)
                self._got.set()
                self._got = anyio.Event()
                if self.confirm:
                    self.publish(message.payload)

    def publish(self, payload: bytes | str) -> None:
        self.bus.publish(self.topic, payload)

    async def wait_received(self, count: int) -> None:
        with anyio.fail_after(10):
            while len(self.received) < count:
                await self._got.wait()


def proposal(broker: str) -> list[dict[str, Any]]:
    """The proposal's documents, the broker's address and the push targets made this test's."""
    host, port = broker.removeprefix("mqtt://").rsplit(":", 1)
    text = PROPOSAL_DEVICE.replace("101.133.150.110", host).replace("1883", port)
    text = text.replace("http://127.0.0.1:8086", f"http://127.0.0.1:{free_port()}")
    return [yaml.safe_load(PROPOSAL_MODEL), yaml.safe_load(text)]


@asynccontextmanager
async def mapper(
    specs: list[DeviceSpec], url: str, root: str | None = None
) -> AsyncIterator[tuple[Mapper, Twins]]:
    from edgedev.sinks import SinkFactory, SinkOptions

    twins = Twins()
    root = root or unique_root()
    mapper = Mapper(
        specs,
        transports=[KubeEdgeMqtt(url, topic_root=root)],
        name=f"m-{root}",
        sinks=[twins],
        sinks_for=SinkFactory(SinkOptions(linger=0.2)),
    )
    async with anyio.create_task_group() as tg:
        await tg.start(mapper.run)
        yield mapper, twins
        mapper.stop()


def test_the_proposals_documents_load_as_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    path = tmp_path / "proposal.yaml"
    path.write_text(PROPOSAL_MODEL + "---\n" + PROPOSAL_DEVICE)
    [spec] = load_devices([path])
    assert (spec.id, spec.protocol, spec.node_name) == (DEVICE_ID, "mqtt", "k8s-worker1")
    assert (spec.config.ip, spec.config.port) == ("101.133.150.110", 1883)  # type: ignore[attr-defined]
    [prop] = spec.properties
    visitor: Any = prop.visitor
    assert (visitor.topic, visitor.qos, visitor.commands) == ("sensor/data", 1, "sensor/data/set")
    assert (visitor.client_id, visitor.username, visitor.keep_alive) == ("client123", "user", 60)
    assert (prop.desired, prop.minimum, prop.maximum) == ("30", 1, 100)
    assert prop.push_method is not None and prop.push_method.names == [
        "mqtt",
        "dbMethod.influxdb2",
    ]
    assert main(["validate", "-f", str(path)]) == 0
    assert "ok: 1 device" in capsys.readouterr().out


async def test_the_proposals_desired_value_is_written_once_under_a_twin_agent(
    tmp_path: Path, mqtt_url: str
):
    specs = load_documents(tmp_path, proposal(mqtt_url))
    root = unique_root()
    agent = Agent(specs, broker=mqtt_url, topic_root=root)  # the twin, with the file's desired
    async with Bus(mqtt_url) as bus, anyio.create_task_group() as tg:
        device = DevicePublisher(bus, "sensor/data", "sensor/data/set")
        await tg.start(device.run)
        await tg.start(agent.run)
        async with mapper(specs, mqtt_url, root) as (_, twins):
            await device.wait_received(1)
            assert device.received == [b"30"]
            await twins.wait_for(lambda: "30" in twins.values(DEVICE_ID, "temperature"))
            assert device.received == [b"30"]  # confirmed: not written again
        tg.cancel_scope.cancel()


async def test_the_proposals_device_reports_on_arrival_and_takes_writes(
    tmp_path: Path, mqtt_url: str
):
    specs = load_documents(tmp_path, proposal(mqtt_url))
    async with (
        Bus(mqtt_url) as bus,
        Recorder(bus, "temperature/update/json") as pushed,
        anyio.create_task_group() as tg,
    ):
        device = DevicePublisher(bus, "sensor/data", "sensor/data/set")
        await tg.start(device.run)
        async with mapper(specs, mqtt_url) as (running, twins):
            runner = running.runners[DEVICE_ID]
            await twins.wait_for(lambda: runner.state == DeviceState.ONLINE)
            # a value the device publishes is reported at once: a collectCycle of 115 days
            device.publish("27")
            await twins.wait_for(lambda: twins.values(DEVICE_ID, "temperature")[-1:] == ["27"])
            # and pushed where pushMethod.mqtt says
            message = await pushed.wait_for(lambda m: b"27" in m.payload, timeout=10)
            assert message.topic == "temperature/update/json"

            # a write: published on the command topic, confirmed, reported
            writer = running.writer(DEVICE_ID)
            assert writer is not None
            result = await writer.write("temperature", "45")
            assert result.ok and result.value == "45", result
            assert device.received == [b"45"]
            await twins.wait_for(lambda: twins.values(DEVICE_ID, "temperature")[-1:] == ["45"])
            refused = await writer.write("temperature", "150")  # above the model's maximum
            assert not refused.ok and "maximum" in (refused.reason or "")
            assert device.received == [b"45"]

            # a device that publishes another value than the one written: the write failed
            device.confirm = False
            answered = anyio.Event()

            async def other_value() -> None:
                await device.wait_received(2)
                device.publish("44")
                answered.set()

            tg.start_soon(other_value)
            failed = await writer.write("temperature", "46")
            assert not failed.ok and "holds 44 after writing 46" in (failed.reason or "")
            await answered.wait()

            # a device that confirms nothing: the write is taken as done, nothing reported
            reports = len(twins.reports)
            silent = await writer.write("temperature", "47")
            assert silent.ok
            assert device.received[-1] == b"47"
            assert "47" not in [v for _, r in twins.reports[reports:] for v in r.values()]
        tg.cancel_scope.cancel()


JSON_MODEL = {
    "apiVersion": "devices.kubeedge.io/v1beta1",
    "kind": "DeviceModel",
    "metadata": {"name": "boiler"},
    "spec": {
        "protocol": "mqtt",
        "properties": [
            {"name": "temperature", "type": "FLOAT", "accessMode": "ReadOnly"},
            {"name": "setpoint", "type": "INT", "minimum": "10", "maximum": "90"},
        ],
    },
}


def json_device(url: str, name: str = "boiler-1") -> dict[str, Any]:
    """The connection and properties of docs/protocols/mqtt.md, at the test's broker."""
    protocol = yaml.safe_load(docs_example(PAGE, "mqtt-connection"))["protocol"]
    host, port = url.removeprefix("mqtt://").rsplit(":", 1)
    protocol["configData"].update(ip=host, port=int(port))
    return {
        "apiVersion": "devices.kubeedge.io/v1beta1",
        "kind": "Device",
        "metadata": {"name": name},
        "spec": {
            "deviceModelRef": {"name": "boiler"},
            "protocol": protocol,
            "properties": yaml.safe_load(docs_example(PAGE, "mqtt-properties")),
        },
    }


def test_the_page_shows_the_proposals_device_shortened(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    """docs/protocols/mqtt.md's copy of the proposal's Device: the same keys and values, less
    its ``pushMethod`` (the tests here run the proposal's whole Device); it loads as it is."""
    page = yaml.safe_load(docs_example(PAGE, "mqtt-proposal"))
    whole = yaml.safe_load(PROPOSAL_DEVICE)
    del whole["spec"]["properties"][0]["pushMethod"]
    assert page == whole
    path = tmp_path / "page.yaml"
    path.write_text(PROPOSAL_MODEL + "---\n" + docs_example(PAGE, "mqtt-proposal"))
    assert main(["validate", "-f", str(path)]) == 0
    assert "ok: 1 device" in capsys.readouterr().out


async def test_json_documents_carry_several_properties_and_bad_payloads_are_counted(
    tmp_path: Path, mqtt_url: str, caplog: pytest.LogCaptureFixture
):
    specs = load_documents(tmp_path, [JSON_MODEL, json_device(mqtt_url)])
    device_id = "default/boiler-1"
    async with Bus(mqtt_url) as bus, anyio.create_task_group() as tg:
        device = DevicePublisher(bus, "plant/boiler", "plant/boiler/cmd")
        await tg.start(device.run)
        async with mapper(specs, mqtt_url) as (running, twins):
            runner = running.runners[device_id]
            await twins.wait_for(lambda: runner.state == DeviceState.ONLINE)
            device.publish(json.dumps({"temperature": 61.5, "setpoint": {"value": 20}}))
            await twins.wait_for(lambda: (device_id, {"temperature": "61.5", "setpoint": "20"})
                                 in twins.reports)  # fmt: skip
            # one message that holds neither: dropped, counted, said why
            with caplog.at_level(logging.WARNING, logger="edgedev.drops"):
                device.publish(b"not json")
                device.publish(json.dumps({"temperature": 62.0}))
                await twins.wait_for(lambda: twins.values(device_id, "temperature")[-1] == "62.0")
            assert "held no value of temperature (not a JSON document)" in caplog.text
            # one payload, two properties it held no value of: two values dropped
            assert running.drops.totals["unreadable_payload"] == 2
            assert twins.values(device_id, "setpoint") == ["20"]  # not in the last message

            device.confirm = False
            writer = running.writer(device_id)
            assert writer is not None
            tg.start_soon(writer.write, "setpoint", "25")
            await device.wait_received(1)
            assert json.loads(device.received[0]) == {"setpoint": {"value": 25}}
        tg.cancel_scope.cancel()


async def test_a_lost_broker_takes_its_devices_offline_until_it_is_back(
    tmp_path: Path, fresh_broker: BrokerHandle
):
    specs = load_documents(tmp_path, [JSON_MODEL, json_device(fresh_broker.url)])
    device_id = "default/boiler-1"
    async with mapper(specs, fresh_broker.url) as (running, twins):
        runner = running.runners[device_id]
        await twins.wait_for(lambda: runner.state == DeviceState.ONLINE)
        fresh_broker.stop()
        await twins.wait_for(lambda: runner.state == DeviceState.OFFLINE, timeout=20)
        assert "broker" in (runner.reason or "")
        fresh_broker.start()
        await twins.wait_for(lambda: runner.state == DeviceState.ONLINE, timeout=30)
        async with Bus(fresh_broker.url) as bus:
            bus.publish("plant/boiler", json.dumps({"temperature": 70.0}))
            await twins.wait_for(lambda: "70.0" in twins.values(device_id, "temperature"))


async def test_the_simulator_serves_the_files_devices(tmp_path: Path, mqtt_url: str):
    docs = [JSON_MODEL, json_device(mqtt_url, "boiler-1"), json_device(mqtt_url, "boiler-2")]
    docs[2]["spec"]["properties"][0]["visitors"]["configData"]["topic"] = "plant/boiler-2"
    docs[2]["spec"]["properties"][1]["visitors"]["configData"]["topic"] = "plant/boiler-2"
    docs[2]["spec"]["properties"][1]["visitors"]["configData"]["commandTopic"] = "plant/b2/cmd"
    specs = load_documents(tmp_path, docs)
    sim = MqttSimulator(specs)
    assert sim.address(specs[0]).startswith(f"{mqtt_url}, topics plant/boiler")
    async with anyio.create_task_group() as tg:
        await tg.start(sim.run)
        async with mapper(specs, mqtt_url) as (running, twins):
            for device_id in ("default/boiler-1", "default/boiler-2"):
                await twins.wait_for(lambda d=device_id: bool(twins.values(d, "temperature")))
            writer = running.writer("default/boiler-2")
            assert writer is not None
            result = await writer.write("setpoint", "33")
            assert result.ok, result
            assert sim.writes == [("default/boiler-2", "setpoint", 33)]
            await twins.wait_for(lambda: "33" in twins.values("default/boiler-2", "setpoint"))
        tg.cancel_scope.cancel()
