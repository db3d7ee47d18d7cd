"""A value's quality and source time, from an OPC-UA server to the twin, watch and the view.

A plain asyncua server (not edgedev's simulator) holds a Good value, an Uncertain one and a
Bad one, each stamped with a source time in the past; the mapper reports the first two at
the source's time (the Uncertain one says so), and the third as the property's state, not a
value. EdgeCore's double takes every message; ``edgedev watch`` and the web view show it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal

from edgecore_double import EdgeCoreTwins, edgecore_running
from edgedev import Bus, Mapper
from edgedev.bus import Channel, Topics
from edgedev.cli._watch import describe
from edgedev.health._mapper import mapper_metrics
from edgedev.mqtt import KubeEdgeMqtt
from edgedev.testing import (
    Recorder,
    device,
    device_model,
    device_property,
    free_port,
    load_documents,
    unique_root,
)
from edgedev.view._state import TwinView
from edgedev.wire import quality_report, twin_report

pytestmark = [pytest.mark.broker, pytest.mark.needs("edgedev_opcua")]

NS = "urn:edgedev:test:quality"
DEVICE = "default/gauge"
WAIT = 30
NOW = datetime.now(UTC).replace(microsecond=0)
STAMPS = {  # the device measured them a while ago
    "temp": NOW - timedelta(hours=2),
    "pressure": NOW - timedelta(minutes=30),
    "level": NOW - timedelta(minutes=5),
}


def millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


async def _server(address: str) -> Any:
    from asyncua import Server, ua

    server = Server()
    await server.init()
    server.set_endpoint(address)
    index = await server.register_namespace(NS)
    for name in STAMPS:
        await server.nodes.objects.add_variable(ua.NodeId(name, index), name, 0.0)
    await server.start()
    return server


async def _set(server: Any, name: str, value: float, status: str, stamp: datetime) -> None:
    """What a PLC does: a value, its status code and the time it measured it."""
    from asyncua import ua

    index = (await server.get_namespace_array()).index(NS)
    data = ua.DataValue(
        ua.Variant(value, ua.VariantType.Double),
        StatusCode=ua.StatusCode(getattr(ua.StatusCodes, status)),
        SourceTimestamp=stamp,
    )
    await server.write_attribute_value(ua.NodeId(name, index), data)


@pytest.fixture(scope="module")
def plc() -> Iterator[tuple[str, BlockingPortal, Any]]:
    address = f"opc.tcp://127.0.0.1:{free_port()}/quality"
    with start_blocking_portal() as portal:
        server = portal.call(_server, address)
        try:
            yield address, portal, server
        finally:
            portal.call(server.stop)


def gauge(tmp_path: Path, address: str, mode: str) -> list[Any]:
    props = [{"name": n, "type": "FLOAT", "accessMode": "ReadOnly"} for n in STAMPS]
    visits = [device_property(n, "opcua", 200, {"nodeID": f"nsu={NS};s={n}"}) for n in STAMPS]
    docs = [
        device_model("gauge", "opcua", props),
        device("gauge", "gauge", "opcua", {"url": address, "mode": mode}, visits),
    ]
    return load_documents(tmp_path, docs)


def entries(recorder: Recorder) -> list[tuple[str, dict[str, Any]]]:
    """Every twin entry the mapper published for the gauge, in order."""
    found = []
    for message in recorder.messages:
        if message.topic.endswith(f"/{DEVICE}/twin/update"):
            for name, entry in json.loads(message.payload)["twin"].items():
                found.append((name, entry))
    return found


def carries(name: str, key: str, value: str | None = None) -> Any:
    """A predicate: a twin/update of the gauge whose entry ``name`` has ``key`` (= value)."""

    def check(message: Any) -> bool:
        if not message.topic.endswith(f"/{DEVICE}/twin/update"):
            return False
        entry = json.loads(message.payload)["twin"].get(name) or {}
        return key in entry and (value is None or entry[key].get("value") == value)

    return check


@pytest.mark.parametrize("mode", ["poll", "subscribe"])
async def test_good_uncertain_and_bad_values_with_their_source_time(
    tmp_path: Path, mqtt_url: str, plc: tuple[str, BlockingPortal, Any], mode: str
) -> None:
    address, portal, server = plc
    portal.call(_set, server, "temp", 21.5, "Good", STAMPS["temp"])
    portal.call(_set, server, "pressure", 1.25, "UncertainLastUsableValue", STAMPS["pressure"])
    portal.call(_set, server, "level", 3.0, "BadSensorFailure", STAMPS["level"])
    devices = gauge(tmp_path, address, mode)
    topic_root = unique_root()
    core = EdgeCoreTwins()
    core.add_device(DEVICE)
    mapper = Mapper(devices, transports=[KubeEdgeMqtt(mqtt_url, topic_root=topic_root)])

    async with (
        anyio.create_task_group() as tg,
        Bus(mqtt_url) as bus,
        Recorder(bus, f"{topic_root}/#") as recorder,
        edgecore_running(mqtt_url, topic_root, core),
    ):
        await tg.start(mapper.run)
        for name, key in (("temp", "actual"), ("pressure", "actual"), ("level", "quality")):
            await recorder.wait_for(carries(name, key), timeout=WAIT)
        runner = mapper.runners[DEVICE]
        assert set(runner.bad) == {"level"}
        metrics = {m.name: m for m in mapper_metrics(mapper)}

        # the level comes back: a value again, the state cleared
        portal.call(_set, server, "level", 4.5, "Good", NOW)
        await recorder.wait_for(carries("level", "actual", "4.5"), timeout=WAIT)
        assert runner.bad == {}
        await core.wait_until(lambda: core.devices[DEVICE]["level"].actual == "4.5", WAIT)
        tg.cancel_scope.cancel()

    published = entries(recorder)
    temp = next(e for n, e in published if n == "temp" and "actual" in e)
    assert temp["actual"] == {"value": "21.5", "metadata": {"timestamp": millis(STAMPS["temp"])}}
    pressure = next(e for n, e in published if n == "pressure" and "actual" in e)
    assert pressure["actual"]["value"] == "1.25"
    assert pressure["actual"]["metadata"] == {
        "timestamp": millis(STAMPS["pressure"]),
        "quality": "Uncertain",
    }
    level = [e for n, e in published if n == "level"]
    first_value = next(i for i, e in enumerate(level) if "actual" in e)
    assert all("actual" not in e for e in level[:first_value])  # Bad: never a value
    assert level[0] == {
        "metadata": {"type": "float"},
        "quality": {
            "status": "Bad",
            "reason": "BadSensorFailure",
            "timestamp": millis(STAMPS["level"]),
        },
    }
    assert core.refused == []  # EdgeCore takes every message
    assert core.devices[DEVICE]["temp"].actual == "21.5"
    assert metrics["edgedev_device_bad_properties"].samples == [({"device": DEVICE}, 1.0)]
    (_, bad_total), *_ = metrics["edgedev_device_bad_values_total"].samples
    samples = metrics["edgedev_values_dropped_total"].samples
    dropped = {labels["reason"]: value for labels, value in samples}
    assert bad_total >= 1 and dropped["bad_quality"] >= 1

    # edgedev watch's lines, and the web view's state, from the same messages
    topics = Topics(topic_root)
    view = TwinView(topics)
    lines = [
        describe(view, m.topic, m.payload, time.time())
        for m in recorder.messages
        if m.topic.endswith("/twin/update")
    ]
    assert any(line and "level: Bad (BadSensorFailure)" in line for line in lines)
    assert any(line and "pressure=1.25 (Uncertain)" in line for line in lines)
    props = {p["name"]: p for p in view.detail(DEVICE)["props"]}
    assert props["pressure"]["quality"] == "Uncertain"
    assert props["level"]["quality"] is None and props["level"]["reported"] == "4.5"


def test_the_view_shows_a_bad_property_until_it_has_a_value_again() -> None:
    topics = Topics("$hw/events")
    topic = topics.device(DEVICE, Channel.TWIN_UPDATE)
    view = TwinView(topics)
    view.apply(topic, twin_report([("level", "3.0", "float", 1)]), 1.0)
    view.apply(topic, quality_report([("level", "float", "BadSensorFailure", 2)]), 2.0)
    (level,) = view.detail(DEVICE)["props"]
    assert (level["quality"], level["note"]) == ("Bad", "Bad: BadSensorFailure")
    assert "Bad: BadSensorFailure" in view.render(now=3.0)
    view.apply(topic, twin_report([("level", "4.0", "float", 3)], quality={"level": "Uncertain"}))
    (level,) = view.detail(DEVICE)["props"]
    assert (level["reported"], level["quality"], level["note"]) == ("4.0", "Uncertain", "Uncertain")


def test_edgecore_takes_quality_entries_and_refuses_a_timestamp_it_cannot_decode() -> None:
    core = EdgeCoreTwins()
    core.add_device("d")
    bad = quality_report([("level", "float", "BadSensorFailure", 5)])
    uncertain = twin_report([("level", "1.5", "float", 6)], quality={"level": "Uncertain"})
    for payload in (bad, uncertain):
        result, _ = core.update("d", payload)
        assert result["code"] == 200, result
    assert core.devices["d"]["level"].actual == "1.5"
    fractional = json.dumps(
        {"twin": {"level": {"actual": {"value": "1", "metadata": {"timestamp": 1.5}}}}}
    ).encode()
    result, _ = core.update("d", fractional)  # Go's int64 takes no fraction: all refused
    assert result["code"] == 400 and "timestamp" in result["reason"]


def test_push_sinks_with_a_field_for_it_say_a_value_is_uncertain(tmp_path: Path) -> None:
    from edgedev.config._crd import Influxdb2
    from edgedev.mapper import Reading, UncertainReading
    from edgedev.sinks._base import Row
    from edgedev.sinks._http import json_body
    from edgedev.sinks._influxdb2 import line

    (spec,) = gauge(tmp_path, "opc.tcp://127.0.0.1:4840", "poll")
    prop = spec.property("pressure")
    sure = Row(spec, prop, Reading("pressure", 1.25, "1.25", 1_000))
    unsure = Row(spec, prop, UncertainReading("pressure", 1.5, "1.5", 2_000))
    body = json.loads(json_body([sure, unsure]))
    assert "quality" not in body[0] and body[1]["quality"] == "Uncertain"
    config = Influxdb2.model_validate(
        {"influxdb2DataConfig": {"measurement": "gauge", "tag": {"site": "a"}, "fieldKey": "v"}}
    )
    assert line(sure, config) == 'gauge,site=a v="1.25" 1000'
    assert line(unsure, config) == 'gauge,quality=Uncertain,site=a v="1.5" 2000'
