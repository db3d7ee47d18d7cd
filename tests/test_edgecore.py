"""What edgedev publishes, EdgeCore accepts; and a desired value is written once.

``edgecore_double`` holds EdgeCore's DeviceTwin rules, written from its Go source; here it
checks its own rules, agrees with :mod:`edgedev.wire`, and serves real mappers on a real
broker: the demo fleet and every example (zero refusals, nothing left out), and a desired
``"24"`` on a FLOAT register (one write, however many reports and deltas follow).
"""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgecore_double import VALUE, EdgeCoreTwins, edgecore_running, validate_value
from edgedev import Mapper, load_devices
from edgedev.cli._demo import demo_files
from edgedev.config._spec import DeviceSpec
from edgedev.mapper import StateChanges
from edgedev.mqtt import KubeEdgeMqtt
from edgedev.simulate import simulate
from edgedev.testing import device as kube_device
from edgedev.testing import (
    device_model,
    device_property,
    free_port,
    load_documents,
)
from edgedev.twin import PropertyType, Value, WriteFailure, format_value, plain_float
from edgedev.wire import desired_update, key_refusal, twin_report, type_name, value_refusal
from edgedev_modbus import ModbusSimulator
from twin_helpers import DEVICE, root, thermostat

ROOT = Path(__file__).resolve().parent.parent
WAIT = 30  # generous: two cores shared with other test sessions


def report(*entries: tuple[str, str, str]) -> bytes:
    return twin_report([(name, value, type_, 1) for name, value, type_ in entries])


# --- the double's own rules, as EdgeCore's Go code has them ------------------------------------


def test_one_bad_entry_refuses_the_whole_message():
    core = EdgeCoreTwins()
    core.add_device("d")
    for bad in [
        ("rel humidity", "1", "float"),  # key charset
        ("t", "AB CD", "string"),  # value charset
        ("t", "1e+16", "float"),  # '+' of an exponent
        ("t", "AAE=", "string"),  # base64 padding
        ("t", "3.5", "double"),  # not an EdgeCore type
        ("t", "23.5", "int"),  # not a base-10 integer
    ]:
        result, delta = core.update("d", report(("ok", "1", "int"), bad))
        assert result["code"] == 400 and delta is None, bad
    assert core.devices["d"] == {}  # nothing of any refused message was kept
    assert len(core.refused) == 6


def test_a_delta_follows_every_update_while_desired_and_reported_differ_as_strings():
    core = EdgeCoreTwins()
    core.add_device("d", {"setpoint": ("float", "24")})
    for _ in range(3):
        _, delta = core.update("d", report(("setpoint", "24.0", "float")))
        assert delta is not None and delta["delta"] == {"setpoint": "24"}
    _, delta = core.update("d", report(("setpoint", "24", "float")))
    assert delta is None
    assert core.deltas == 3


def test_a_null_entry_clears_an_optional_twin_and_ends_its_delta():
    core = EdgeCoreTwins()
    core.add_device("d", {"setpoint": ("float", "24")})
    result, delta = core.update("d", desired_update({"setpoint": None}))
    assert result["code"] == 200 and delta is None
    assert core.devices["d"]["setpoint"].expected is None
    assert json.loads(desired_update({"setpoint": None}))["twin"] == {"setpoint": None}
    with_version = json.loads(desired_update({"setpoint": None}, version=3))["twin"]
    assert with_version == {"setpoint": {"expected": None, "version": 3}}  # edgedev's agent


# --- edgedev.wire agrees with the double ------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text", "type_"),
    [
        ("temp", "23.5", "float"),
        ("temp", "-0.0000001", "float"),
        ("temp", "nan", "float"),
        ("count", "-9223372036854775808", "int"),
        ("count", "9223372036854775808", "int"),
        ("flag", "true", "boolean"),
        ("flag", "1", "boolean"),
        ("label", "", "string"),
        ("label", "AB CD", "string"),
        ("label", "x" * 513, "string"),
        ("raw", "00ff", "string"),
        ("rel humidity", "1", "float"),
        ("k" * 129, "1", "float"),
        ("temp", "3.5", "double"),
        ("temp", "3.5", "bytes"),
    ],
)
def test_the_wire_rules_agree_with_the_double(name: str, text: str, type_: str):
    core = EdgeCoreTwins()
    core.add_device("d")
    result, _ = core.update("d", report((name, text, type_)))
    refused = key_refusal(name) or value_refusal(text, type_)  # each entry, as TwinFilter asks
    assert (refused is None) == (result["code"] == 200)


def test_every_type_maps_to_one_edgecore_accepts_with_its_values():
    samples: dict[PropertyType, Value] = {
        PropertyType.INT: -5,
        PropertyType.FLOAT: 2.5e-9,
        PropertyType.DOUBLE: 1e16,
        PropertyType.BOOLEAN: True,
        PropertyType.STRING: "EDGE-01",
        PropertyType.BYTES: b"\x00\xff+/=",
        PropertyType.STREAM: "rtsp:/cam",
    }
    assert set(samples) == set(PropertyType)
    for type_, value in samples.items():
        text = format_value(value, type_)
        assert validate_value(type_name(type_), text) is None, (type_, text)
        assert value_refusal(text, type_name(type_)) is None, (type_, text)
    assert plain_float(1e16) == "10000000000000000.0"
    assert plain_float(-2.5e-8) == "-0.000000025"


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_every_float_is_sent_in_a_form_edgecore_accepts(value: float):
    text = format_value(value, PropertyType.DOUBLE)
    assert validate_value("float", text) is None and VALUE.match(text), text
    assert value_refusal(text, "float") is None
    assert float(text) == value


@given(st.integers(min_value=-(2**63), max_value=2**63 - 1))
def test_every_int64_is_sent_in_a_form_edgecore_accepts(value: int):
    text = format_value(value, PropertyType.INT)
    assert validate_value("int", text) is None and value_refusal(text, "int") is None


async def test_a_write_error_report_leaves_out_a_name_edgecore_refuses(tmp_path: Path):
    (spec,), _ = thermostat(tmp_path)
    sink = KubeEdgeMqtt("mqtt://127.0.0.1:1")  # never run: what it publishes waits in its outbox
    failure = WriteFailure("99", "above the maximum 30", 1, False)
    sink.write_failed(spec, {"setpoint": failure, "rel humidity": failure})
    item = sink.outbox.take()
    assert item is not None
    twin = json.loads(item[1].payload)["twin"]
    assert set(twin) == {"setpoint"} and twin["setpoint"]["metadata"] == {"type": "float"}
    assert sink.refused[spec.id] == 1
    core = EdgeCoreTwins()
    core.add_device(spec.name, {"setpoint": ("float", "99")})
    result, _ = core.update(spec.name, item[1].payload)
    assert result["code"] == 200, result
    sink.write_failed(spec, {"rel humidity": failure})  # nothing left: nothing sent
    assert sink.outbox.take() is None


# --- real mappers, served by the double -------------------------------------------------------


def _free_ports(text: str, ports: dict[str, str]) -> str:
    """``text`` with each fixed port (``port: 5020``, ``host:5030``) moved to a free one."""

    def swap(match: re.Match[str]) -> str:
        old = match.group(2)
        ports.setdefault(old, str(free_port()))
        return match.group(1) + ports[old]

    return re.sub(r"(port: |127\.0\.0\.1:)(\d{4,5})", swap, text)


def fleet(tmp_path: Path, which: str, broker: str) -> list[DeviceSpec]:
    """The demo fleet of every installed simulator, or every example on free ports.

    The MQTT devices of the examples publish to ``broker`` (their 1883 becomes its port).
    """
    if which == "demo":
        return load_devices(demo_files(tmp_path))
    files = []
    ports: dict[str, str] = {"1883": broker.rsplit(":", 1)[1]}
    for example in sorted((ROOT / "examples").glob("*.yaml")):
        copy = tmp_path / example.name
        copy.write_text(_free_ports(example.read_text(), ports))
        files.append(str(copy))
    return load_devices(files)


@pytest.mark.needs("edgedev_modbus", "edgedev_opcua", "edgedev_ble", "edgedev_gpio", "edgedev_mqtt")
@pytest.mark.parametrize("which", ["demo", "examples"])
async def test_the_demo_fleet_and_every_example_report_nothing_edgecore_refuses(
    tmp_path: Path, mqtt_url: str, which: str
):
    devices = fleet(tmp_path, which, mqtt_url)
    assert {d.protocol for d in devices} >= {"modbus", "opcua", "ble", "gpio"}
    core = EdgeCoreTwins()
    for spec in devices:
        core.add_device(
            spec.id,
            {p.name: (type_name(p.type), p.desired) for p in spec.properties if p.desired},
        )
    topic_root = root()
    mqtt = KubeEdgeMqtt(mqtt_url, topic_root=topic_root)
    mapper = Mapper(devices, transports=[mqtt])
    reporting = {d.id for d in devices if any(p.report_to_cloud for p in d.properties)}
    async with anyio.create_task_group() as tg:
        await tg.start(simulate, devices)
        async with edgecore_running(mqtt_url, topic_root, core):
            await tg.start(mapper.run)
            with contextlib.suppress(TimeoutError):  # the asserts below say what is missing
                await core.wait_until(
                    lambda: reporting <= core.reporters and core.accepted >= 3 * len(reporting),
                    WAIT,
                )
        tg.cancel_scope.cancel()
    assert core.refused == []
    assert +mqtt.refused == {}
    assert reporting - core.reporters == set()
    assert core.accepted >= 3 * len(reporting)


async def test_a_desired_24_on_a_float_register_is_written_once(tmp_path: Path, mqtt_url: str):
    devices, _ = thermostat(tmp_path, cycle=100)
    core = EdgeCoreTwins()
    core.add_device(DEVICE, {"setpoint": ("float", "24")})
    topic_root = root()
    sim = ModbusSimulator(devices)
    mapper = Mapper(devices, transports=[KubeEdgeMqtt(mqtt_url, topic_root=topic_root)])
    async with anyio.create_task_group() as tg:
        await tg.start(sim.run)
        async with edgecore_running(mqtt_url, topic_root, core):
            await tg.start(mapper.run)
            await core.wait_until(lambda: core.devices[DEVICE]["setpoint"].actual == "24", WAIT)
            settled, deltas = core.accepted, core.deltas
            await core.wait_until(lambda: core.accepted >= settled + 30, WAIT)  # 3 s of reports
        tg.cancel_scope.cancel()
    writes = [r for r in sim.requests if not r.is_read]
    assert len(writes) == 1
    assert sim.get(DEVICE, "setpoint") == 24.0
    assert core.deltas == deltas  # the reported "24" ended EdgeCore's deltas
    assert core.refused == []


async def test_a_value_the_device_already_holds_is_not_written(tmp_path: Path, mqtt_url: str):
    devices, _ = thermostat(tmp_path, cycle=100)
    core = EdgeCoreTwins()
    core.add_device(DEVICE, {"level": ("int", "7")})
    topic_root = root()
    sim = ModbusSimulator(devices)
    sim.set(DEVICE, "level", 7)
    mapper = Mapper(devices, transports=[KubeEdgeMqtt(mqtt_url, topic_root=topic_root)])
    async with anyio.create_task_group() as tg:
        await tg.start(sim.run)
        async with edgecore_running(mqtt_url, topic_root, core):
            await tg.start(mapper.run)
            await core.wait_until(lambda: core.accepted >= 20, WAIT)
        tg.cancel_scope.cancel()
    assert [r for r in sim.requests if not r.is_read] == []
    assert core.devices[DEVICE]["level"].actual == "7"
    assert json.dumps(core.refused) == "[]"


def on_free_ports(tmp_path: Path, path: Path) -> Path:
    """A copy of ``path`` in ``tmp_path`` with its fixed ports moved to free ones."""
    copy = tmp_path / path.name
    copy.write_text(_free_ports(path.read_text(), {}))
    return copy


UPSTREAM = sorted((ROOT / "tests/data/upstream").glob("*.yaml"))
DRIVER_OF = {"bluetooth": "edgedev_ble", "opcua": "edgedev_opcua"}  # the others are Modbus


@pytest.mark.parametrize(
    "path",
    [
        pytest.param(p, marks=pytest.mark.needs(DRIVER_OF.get(p.stem, "edgedev_modbus")))
        for p in UPSTREAM
    ],
    ids=lambda p: p.stem,
)
async def test_upstream_shaped_yaml_validates_and_runs_against_its_simulator(
    tmp_path: Path, mqtt_url: str, path: Path
):
    devices = load_devices([on_free_ports(tmp_path, path)], warnings=[])
    core = EdgeCoreTwins()
    for spec in devices:
        core.add_device(
            spec.id,
            {p.name: (type_name(p.type), p.desired) for p in spec.properties if p.desired},
        )
    wanted = {(d.id, p.name): p.desired for d in devices for p in d.properties}

    def settled() -> bool:
        for (device, name), desired in wanted.items():
            twin = core.devices[device].get(name)
            if twin is None or twin.actual is None or (desired and twin.actual != desired):
                return False
        return True

    topic_root = root()
    mapper = Mapper(devices, transports=[KubeEdgeMqtt(mqtt_url, topic_root=topic_root)])
    async with anyio.create_task_group() as tg:
        await tg.start(simulate, devices)
        async with edgecore_running(mqtt_url, topic_root, core):
            await tg.start(mapper.run)
            with contextlib.suppress(TimeoutError):  # the asserts below say what is missing
                await core.wait_until(settled, WAIT)
        tg.cancel_scope.cancel()
    assert core.refused == []
    reported = {
        (device, name): twin.actual
        for device, twins in core.devices.items()
        for name, twin in twins.items()
    }
    # every property reported; a desired value reached and reported in its own text
    assert {k: reported.get(k) for k in wanted if wanted[k]} == {
        k: v for k, v in wanted.items() if v
    }
    assert set(wanted) <= set(reported)


async def test_report_to_cloud_false_stays_off_the_twin_topics(tmp_path: Path, mqtt_url: str):
    port = free_port()
    props = [
        device_property("temp", "modbus", 100, {"register": "InputRegister", "offset": 0}),
        device_property("raw", "modbus", 100, {"register": "InputRegister", "offset": 1}),
    ]
    props[1]["reportToCloud"] = False
    types = [{"name": n, "type": "INT", "accessMode": "ReadOnly"} for n in ("temp", "raw")]
    devices = load_documents(
        tmp_path,
        [
            device_model("m", "modbus", types),
            kube_device("d", "m", "modbus", {"ip": "127.0.0.1", "port": port}, props),
        ],
    )
    core = EdgeCoreTwins()
    core.add_device("default/d")
    topic_root = root()
    mapper = Mapper(devices, transports=[KubeEdgeMqtt(mqtt_url, topic_root=topic_root)])
    async with anyio.create_task_group() as tg:
        await tg.start(simulate, devices)
        async with edgecore_running(mqtt_url, topic_root, core):
            await tg.start(mapper.run)
            await core.wait_until(lambda: core.accepted >= 5, WAIT)
        tg.cancel_scope.cancel()
    assert set(core.devices["default/d"]) == {"temp"}
    assert "raw" in mapper.runners["default/d"].last  # read, for other sinks


async def test_writes_of_one_property_are_rate_bounded(tmp_path: Path, mqtt_url: str):
    devices, _ = thermostat(tmp_path, cycle=100)
    sim = ModbusSimulator(devices)
    changes = StateChanges()
    mapper = Mapper(
        devices, transports=[KubeEdgeMqtt(mqtt_url, topic_root=root())], sinks=[changes]
    )
    async with anyio.create_task_group() as tg:
        await tg.start(sim.run)
        await tg.start(mapper.run)
        runner = mapper.runners[DEVICE]
        writer = runner.desired
        writer.min_interval = 1.5
        with anyio.fail_after(WAIT):
            await changes.wait_until(lambda: runner.state == "online")
        first = anyio.current_time()  # no earlier than the first write starts
        writer.update({"setpoint": "21"})
        with anyio.fail_after(WAIT):  # the first value is written before the burst
            while sim.get(DEVICE, "setpoint") != 21.0:
                await sim.wait_requests(len(sim.requests) + 1, timeout=WAIT)
        for value in ("22", "23", "24"):  # a burst of new desired values
            writer.update({"setpoint": value})
            await anyio.sleep(0.05)
        with anyio.fail_after(WAIT):
            while sim.get(DEVICE, "setpoint") != 24.0:
                await sim.wait_requests(len(sim.requests) + 1, timeout=WAIT)
        second = anyio.current_time()
        tg.cancel_scope.cancel()
    assert [r.count for r in sim.requests if not r.is_read] == [1, 1]  # 21, then 24 only
    assert second - first >= 1.5
