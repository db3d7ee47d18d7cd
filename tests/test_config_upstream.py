"""KubeEdge v1beta1 vocabulary loads as KubeEdge users write it, with clear words where not."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from edgedev import ConfigError, Problem, load_devices
from edgedev.testing import write_documents

pytestmark = pytest.mark.needs("edgedev_modbus")  # the devices are Modbus devices

API = "devices.kubeedge.io/v1beta1"
UPSTREAM = Path(__file__).resolve().parent / "data/upstream"


def model(*props: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "DeviceModel",
        "metadata": {"name": "m"},
        "spec": {"protocol": "modbus", "properties": list(props), **spec},
    }


def device(*props: dict[str, Any], protocol: str = "modbus", **spec: Any) -> dict[str, Any]:
    config = {"ip": "127.0.0.1", "port": 5020} if protocol == "modbus" else {}
    return {
        "apiVersion": API,
        "kind": "Device",
        "metadata": {"name": "d"},
        "spec": {
            "deviceModelRef": {"name": "m"},
            "protocol": {"protocolName": protocol, "configData": config},
            "properties": list(props),
            **spec,
        },
    }


TEMP = {"name": "temp", "type": "FLOAT", "accessMode": "ReadOnly"}


def visits(**config: Any) -> dict[str, Any]:
    data = {"register": "HoldingRegister", "offset": 0, "limit": 2, **config}
    return {"name": "temp", "visitors": {"protocolName": "modbus", "configData": data}}


def load(tmp_path: Path, *docs: dict[str, Any]) -> tuple[list[Any], list[str]]:
    warnings: list[Problem] = []
    specs = load_devices([write_documents(tmp_path, docs)], warnings=warnings)
    return specs, [str(w) for w in warnings]


def problems(tmp_path: Path, *docs: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_devices([write_documents(tmp_path, docs)])
    return [str(p) for p in caught.value.problems]


def test_our_extensions_in_visitor_config_data(tmp_path: Path):
    (spec,), warnings = load(
        tmp_path, model(TEMP), device(visits(reportOnChange=True, deadband=0.5))
    )
    assert (spec.properties[0].report_on_change, spec.properties[0].deadband) == (True, 0.5)
    assert warnings == []


def test_the_old_place_still_works_with_a_deprecation_warning(tmp_path: Path):
    old = {**visits(), "reportOnChange": True, "deadband": 0.5}
    (spec,), warnings = load(tmp_path, model(TEMP), device(old))
    assert (spec.properties[0].report_on_change, spec.properties[0].deadband) == (True, 0.5)
    assert len(warnings) == 2
    assert "spec.properties[0].reportOnChange: deprecated place" in warnings[0]
    assert "into visitors.configData" in warnings[0]


def test_a_cycle_that_looks_like_nanoseconds_is_named(tmp_path: Path):
    prop = {**visits(), "collectCycle": 10_000_000_000}
    _, warnings = load(tmp_path, model(TEMP), device(prop))
    assert len(warnings) == 1
    assert "spec.properties[0].collectCycle" in warnings[0]
    assert "10000000000 is milliseconds: 115.7 days" in warnings[0]
    assert "write 10000" in warnings[0]


@pytest.mark.needs("redis")
def test_push_method_is_checked_and_served(tmp_path: Path):
    push = {
        "mqtt": {"address": "tcp://b:1883", "topic": "t"},
        "dbMethod": {"redis": {"redisClientConfig": {"addr": "r:6379"}}},
    }
    (spec,), warnings = load(tmp_path, model(TEMP), device({**visits(), "pushMethod": push}))
    assert spec.properties[0].push_method.mqtt.topic == "t"
    assert warnings == []
    anomaly = {**push, "anomalyDetection": {"x": 1}}
    _, warnings = load(tmp_path, model(TEMP), device({**visits(), "pushMethod": anomaly}))
    assert "pushMethod.anomalyDetection" in warnings[0] and "not served" in warnings[0]
    bad = {**visits(), "pushMethod": {"mqtt": {"qos": 5}, "kafka": {}}}
    found = problems(tmp_path, model(TEMP), device(bad))
    assert any("pushMethod.mqtt.qos" in p for p in found)
    assert any("pushMethod.kafka" in p and "Extra inputs" in p for p in found)


def test_methods_must_name_properties_of_the_device(tmp_path: Path):
    methods = [{"name": "Read", "propertyNames": ["temp", "tmep"]}]
    found = problems(tmp_path, model(TEMP), device(visits(), methods=methods))
    assert len(found) == 1
    assert "spec.methods[0].propertyNames[1]" in found[0]
    assert "'tmep', which the device does not have; did you mean 'temp'?" in found[0]


def test_method_names_are_unique(tmp_path: Path):
    # device_instance_types.go:43 "methods list item must be unique by method.Name"
    methods = [{"name": "Set", "propertyNames": ["temp"]}, {"name": "Set"}]
    found = problems(tmp_path, model(TEMP), device(visits(), methods=methods))
    assert len(found) == 1
    assert "spec.methods[1].name" in found[0] and "'Set' is named twice" in found[0]


def test_state_report_and_device_status_are_accepted(tmp_path: Path):
    status = {
        "apiVersion": API,
        "kind": "DeviceStatus",
        "metadata": {"name": "d"},
        "status": {"twins": [{"propertyName": "temp", "reported": {"value": "1"}}]},
    }
    report = {"reportCycle": 5000, "reportToCloud": False}
    (spec,), _ = load(tmp_path, model(TEMP), device(visits(), stateReport=report), status)
    assert spec.state_report is not None and spec.state_report.report_cycle == 5000


def test_null_config_data_everywhere(tmp_path: Path):
    mod = model({**TEMP, "visitors": {"protocolName": "modbus", "configData": None}})
    mod["spec"]["protocolConfigData"] = {"ip": "127.0.0.1"}
    dev = device(visits())
    dev["spec"]["protocol"]["configData"] = None
    (spec,), _ = load(tmp_path, mod, dev)
    assert spec.config.ip == "127.0.0.1"


def test_model_protocol_config_data_and_visitors_are_defaults(tmp_path: Path):
    mod = model(
        {
            **TEMP,
            "visitors": {
                "protocolName": "modbus",
                "configData": {
                    "register": "InputRegister",
                    "offset": 4,
                    "limit": 1,
                    "dataType": "float",
                },
            },
        },
        protocolConfigData={"ip": "10.0.0.9", "port": "5502", "slaveID": 4},
    )
    dev = device({"name": "temp", "visitors": {"configData": {"offset": 9}}})
    dev["spec"]["protocol"]["configData"] = {"slaveID": 5}
    (spec,), _ = load(tmp_path, mod, dev)
    assert (spec.config.ip, spec.config.port, spec.config.slave_id) == ("10.0.0.9", 5502, 5)
    visitor = spec.properties[0].visitor
    assert (visitor.table.value, visitor.offset, visitor.limit) == ("InputRegister", 9, 1)


@pytest.mark.needs("edgedev_ble")
def test_bluetooth_is_the_ble_driver():
    (spec,) = load_devices([UPSTREAM / "bluetooth.yaml"])
    assert spec.protocol == "ble"


def test_stream_loads_and_is_refused_only_by_the_driver_that_cannot_serve_it(tmp_path: Path):
    stream = {"name": "camera", "type": "STREAM", "accessMode": "ReadOnly"}
    found = problems(tmp_path, model(TEMP, stream), device(visits(), {"name": "camera"}))
    assert len(found) == 1
    assert "spec.properties[1].name" in found[0]
    assert "type STREAM, which the modbus driver cannot serve" in found[0]
    # a Device that does not list it loads
    load(tmp_path, model(TEMP, stream), device(visits()))


def test_customized_values_are_kept_for_drivers(tmp_path: Path):
    (spec,), _ = load(tmp_path, model(TEMP), device(visits(customizedValues={"site": "north"})))
    assert spec.properties[0].customized_values == {"site": "north"}


def test_enum_errors_quote_the_value_and_suggest_the_nearest(tmp_path: Path):
    found = problems(tmp_path, model(TEMP), device(visits(register="HoldingRegisterz")))
    assert len(found) == 1
    assert "visitors.configData.register: got 'HoldingRegisterz'; did you mean " in found[0]
    assert "'HoldingRegister'?" in found[0]
    typo = copy.deepcopy(model({**TEMP, "accessMode": "Readonly"}))
    found = problems(tmp_path, typo, device(visits()))
    assert "got 'Readonly'; did you mean 'ReadOnly'?" in found[0]
    found = problems(tmp_path, model(TEMP), device(visits(), protocol="modbuss"))
    assert any("did you mean 'modbus'?" in p for p in found)
    found = problems(tmp_path, model(TEMP), {**device(visits()), "kind": "Devic"})
    assert "unknown kind 'Devic'; did you mean 'Device'?" in found[0]
    found = problems(tmp_path, model(TEMP), device({**visits(ofset=3), "colectCycle": 5}))
    assert any(
        "colectCycle: Extra inputs are not permitted; did you mean 'collectCycle'?" in p
        for p in found
    )
    found = problems(tmp_path, model(TEMP), device(visits(ofset=3)))
    assert "configData.ofset: Extra inputs are not permitted; did you mean 'offset'?" in found[0]


def test_validate_warns_about_what_edgecore_would_refuse(tmp_path: Path):
    props = [
        {**TEMP, "type": "INT"},
        {"name": "rel humidity", "type": "FLOAT"},
        {"name": "label", "type": "STRING"},
    ]
    docs = [
        model(*props),
        device(
            visits(limit=1, scale=0.1),
            {**visits(offset=2), "name": "rel humidity"},
            {**visits(offset=4, limit=4), "name": "label", "desired": {"value": "a-b"}},
        ),
    ]
    path = write_documents(tmp_path, docs)
    done = subprocess.run(
        [sys.executable, "-m", "edgedev", "validate", "-f", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "field spec.properties[1].name: EdgeCore refuses the character ' '" in done.stderr
    # a desired value no report carries ("a b") is an error: tests/test_desired_rule.py
    assert "note: 1 STRING or BYTES property: EdgeCore leaves out" in done.stderr
    assert "STRING property 'label'" not in done.stderr  # listed with -v only
    assert "INT property 'temp' with scale 0.1: a fractional reading" in done.stderr
    listed = subprocess.run(
        [sys.executable, "-m", "edgedev", "validate", "-v", "-f", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (
        "note: " in listed.stderr
        and "field spec.properties[2].name: STRING property 'label'" in listed.stderr
    )
