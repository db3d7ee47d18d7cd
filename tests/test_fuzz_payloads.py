"""MQTT payloads from anyone: the mapper logs and ignores what it cannot use, never crashes."""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.from_thread import start_blocking_portal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from edgedev import Bus, DeviceSpec, Mapper, WriteRefused
from edgedev.bus import Channel, Topics
from edgedev.mapper import check_device_write
from edgedev.mqtt import KubeEdgeMqtt, pending_values
from edgedev.testing import Recorder
from edgedev.wire import TwinDelta, TwinResult
from edgedev_modbus import ModbusSimulator
from reliability_helpers import load_docs, topic_root

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
)
json_like = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
PROPS = ["set", "n", "flag", "nope", ""]
prop_names = st.sampled_from(PROPS) | st.text(max_size=8)
wire_value = st.fixed_dictionaries(
    {}, optional={"value": json_like, "metadata": st.dictionaries(st.text(max_size=9), json_like)}
)
twin_entry = st.none() | st.fixed_dictionaries(
    {}, optional={"expected": wire_value | json_like, "actual": wire_value | json_like}
)
delta_like = st.fixed_dictionaries(
    {},
    optional={
        "event_id": json_like,
        "timestamp": json_like,
        "twin": st.dictionaries(prop_names, twin_entry, max_size=3) | json_like,
        "delta": st.dictionaries(prop_names, json_like, max_size=3) | json_like,
        "code": json_like,
    },
)
payloads = (
    st.binary(max_size=200)
    | delta_like.map(lambda d: json.dumps(d).encode())
    | json_like.map(lambda d: json.dumps(d).encode())
)
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def docs() -> list[dict[str, Any]]:
    from edgedev.testing import free_port

    visitor = {"protocolName": "modbus"}
    return [
        {
            "apiVersion": "devices.kubeedge.io/v1beta1",
            "kind": "DeviceModel",
            "metadata": {"name": "fz"},
            "spec": {
                "protocol": "modbus",
                "properties": [
                    {"name": "set", "type": "INT", "accessMode": "ReadWrite", "maximum": "100"},
                    {"name": "n", "type": "INT", "accessMode": "ReadOnly"},
                    {"name": "flag", "type": "BOOLEAN", "accessMode": "ReadWrite"},
                ],
            },
        },
        {
            "apiVersion": "devices.kubeedge.io/v1beta1",
            "kind": "Device",
            "metadata": {"name": "fz"},
            "spec": {
                "deviceModelRef": {"name": "fz"},
                "protocol": {
                    "protocolName": "modbus",
                    "configData": {"ip": "127.0.0.1", "port": free_port()},
                },
                "properties": [
                    {
                        "name": name,
                        "collectCycle": 200,
                        "visitors": {
                            **visitor,
                            "configData": {"register": reg, "offset": offset},
                        },
                    }
                    for name, reg, offset in (
                        ("set", "HoldingRegister", 0),
                        ("n", "InputRegister", 0),
                        ("flag", "CoilRegister", 0),
                    )
                ],
            },
        },
    ]


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> DeviceSpec:
    (device,) = load_docs(tmp_path_factory.mktemp("fz"), docs())
    return device


# the pure handlers ----------------------------------------------------------------------------
@FUZZ
@given(payloads)
def test_delta_and_result_parsing_refuse_with_validation_errors_only(payload: bytes):
    for model in (TwinDelta, TwinResult):
        with suppress(ValidationError):
            model.model_validate_json(payload)


@FUZZ
@given(
    st.text(max_size=80)
    | st.lists(
        st.sampled_from(
            [
                "$hw",
                "events",
                "device",
                "node",
                "twin",
                "update",
                "delta",
                "get",
                "result",
                "a",
                "",
                "#",
                "+",
            ]
        ),
        max_size=9,
    ).map("/".join)
)
def test_any_topic_parses_or_is_ignored(topic: str):
    topics = Topics("$hw/events")
    parsed = topics.parse(topic)
    if parsed is not None:
        assert topic.startswith("$hw/events/")


@FUZZ
@given(
    name=prop_names,
    text=st.text(max_size=30)
    | st.sampled_from(["nan", "NaN", " nan ", "inf", "-inf", "Infinity", "1e400", "-1e999"])
    | st.floats().map(repr),
)
def test_any_write_is_checked_or_refused(spec: DeviceSpec, name: str, text: str):
    try:
        prop, value = check_device_write(spec, name, text)
    except WriteRefused as exc:
        assert str(exc)
        if spec.has_property(name):
            assert name in str(exc)  # the property is named
    else:
        assert prop.writable
        if isinstance(value, float):  # only finite numbers within bounds reach a device
            assert math.isfinite(value)
            assert prop.minimum is None or value >= prop.minimum
            assert prop.maximum is None or value <= prop.maximum


@FUZZ
@given(delta_like)
def test_pending_values_of_any_valid_twin_are_strings_of_known_properties(
    spec: DeviceSpec, data: dict[str, Any]
):
    try:
        result = TwinResult.model_validate(data)
    except ValidationError:
        return
    pending = pending_values(spec, result.twin)
    assert all(spec.has_property(k) and isinstance(v, str) for k, v in pending.items())


# the running mapper ---------------------------------------------------------------------------
@asynccontextmanager
async def running(
    devices: list[DeviceSpec], url: str, root: str
) -> AsyncIterator[tuple[ModbusSimulator, Mapper, Bus, Recorder]]:
    sim = ModbusSimulator(devices)
    mapper = Mapper(devices, transports=[KubeEdgeMqtt(url, topic_root=root)])
    async with anyio.create_task_group() as tg:
        await tg.start(sim.run)
        async with Bus(url) as bus, Recorder(bus, f"{root}/#") as recorder:
            await tg.start(mapper.run)
            await recorder.wait_for(lambda m: m.topic.endswith("/twin/update"), timeout=20)
            yield sim, mapper, bus, recorder
        tg.cancel_scope.cancel()


@pytest.mark.broker
def test_a_running_mapper_survives_any_payload_on_its_topics(
    tmp_path: Path, mqtt_url: str, caplog: pytest.LogCaptureFixture
):
    devices = load_docs(tmp_path, docs())
    root = topic_root()
    topics = Topics(root)
    mine = [
        topics.device("default/fz", channel)
        for channel in (Channel.TWIN_DELTA, Channel.TWIN_GET_RESULT)
    ]
    others = [
        topics.device("default/other", Channel.TWIN_DELTA),
        f"{root}/device/x/twin/update/delta",
    ]
    with (
        start_blocking_portal() as portal,
        portal.wrap_async_context_manager(running(devices, mqtt_url, root)) as (
            sim,
            mapper,
            bus,
            recorder,
        ),
    ):

        @FUZZ
        @given(topic=st.sampled_from(mine + others), payload=payloads)
        def publish(topic: str, payload: bytes) -> None:
            portal.call(bus.publish, topic, payload)

        publish()

        async def still_works() -> str:
            with anyio.fail_after(20):
                await bus.flush()
            runner = mapper.runners["default/fz"]
            assert runner.state == "online", "the device kept running"
            seen = len(recorder.messages)
            bus.publish(mine[0], json.dumps({"event_id": "ok", "delta": {"set": "42"}}))
            reported = await recorder.wait_for(
                lambda m: (
                    m.topic.endswith("/fz/twin/update")
                    and json.loads(m.payload)["twin"].get("set", {}).get("actual", {}).get("value")
                    == "42"
                ),
                after=seen,
                timeout=20,
            )
            return reported.topic

        assert portal.call(still_works).endswith("/twin/update")
        assert sim.get("default/fz", "set") == 42
    assert "ignored a malformed" in caplog.text
