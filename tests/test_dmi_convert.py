"""The DMI converter (both ways), the token bucket, and the committed generated code."""

from __future__ import annotations

import copy
import dataclasses
import logging
from pathlib import Path

import pytest
from google.protobuf import any_pb2, wrappers_pb2

from edgedev import ConfigError, DeviceSpec, Problem
from edgedev.dmi import TokenBucket, pb, to_device, to_model, to_spec
from edgedev.dmi._convert import unpack_value
from edgedev.dmi._generate import PROTO
from edgedev.loader import load_devices
from edgedev.mapper import StatePolicy, state_policy
from edgedev.testing import (
    device,
    device_model,
    device_property,
    load_documents,
    write_documents,
)
from edgedev.testing.dmi import edgecore_device, edgecore_model
from protoc_helpers import check_committed, without_version_stamps

MODEL = device_model(
    "thermo",
    "modbus",
    [
        {"name": "temperature", "type": "FLOAT", "accessMode": "ReadOnly", "unit": "degC"},
        {"name": "setpoint", "type": "INT", "minimum": "10", "maximum": "30"},
        {"name": "heating", "type": "BOOLEAN"},
    ],
)
DEVICE = device(
    "thermo-1",
    "thermo",
    "modbus",
    {"ip": "127.0.0.1", "port": 5020, "slaveID": 3},
    [
        device_property(
            "temperature",
            "modbus",
            500,
            {"register": "InputRegister", "offset": 0, "dataType": "int16", "scale": 0.1},
        ),
        {
            **device_property(
                "setpoint", "modbus", 1000, {"register": "HoldingRegister", "offset": 1}
            ),
            "desired": {"value": "21"},
            "reportCycle": 5000,
        },
        device_property("heating", "modbus", 1000, {"register": "CoilRegister", "offset": 0}),
    ],
)
for _prop in DEVICE["spec"]["properties"]:  # said, as KubeEdge's default is false
    _prop["reportToCloud"] = True
DEVICE["spec"]["stateReport"] = {"reportToCloud": True, "reportCycle": 5000}


def plain(spec: DeviceSpec) -> DeviceSpec:
    return dataclasses.replace(spec, source="")


@pytest.mark.needs("edgedev_modbus")
def test_edgecore_encoding_gives_the_spec_the_yaml_loader_makes(tmp_path: Path):
    [from_yaml] = load_documents(tmp_path, [MODEL, DEVICE])
    message = edgecore_device(DEVICE)
    # as EdgeCore sends it: numbers as float32 wrappers, a zero among them
    port = message.spec.protocol.configData.data["port"]
    assert port.type_url.endswith("google.protobuf.FloatValue")
    scale = wrappers_pb2.FloatValue()
    message.spec.properties[0].visitors.configData.data["scale"].Unpack(scale)
    assert scale.value != 0.1  # 0.100000001...
    spec = to_spec(message, edgecore_model(MODEL))
    assert plain(spec) == plain(from_yaml)
    assert spec.property("temperature").visitor.scale == 0.1  # type: ignore[attr-defined]
    assert spec.config.port == 5020  # type: ignore[attr-defined]
    assert spec.property("setpoint").desired == "21"
    assert spec.property("heating").desired is None  # "" from EdgeCore: no desired value


@pytest.mark.needs("edgedev_modbus")
def test_what_a_device_leaves_unsaid_is_false_over_dmi_and_true_in_a_file(tmp_path: Path):
    quiet = copy.deepcopy(DEVICE)
    del quiet["spec"]["stateReport"]
    for prop in quiet["spec"]["properties"]:
        del prop["reportToCloud"]
    [from_yaml] = load_documents(tmp_path, [MODEL, quiet])
    assert from_yaml.state_report is None
    assert all(p.report_to_cloud for p in from_yaml.properties)
    message = edgecore_device(quiet)
    assert message.HasField("status") and not message.status.reportToCloud  # util.go:111-120
    spec = to_spec(message, edgecore_model(MODEL))
    assert not any(p.report_to_cloud for p in spec.properties)
    assert spec.state_report is not None and not spec.state_report.report_to_cloud
    assert not state_policy(spec).report  # no ReportDeviceStates, as the reference mapper
    # the old place, the CRD's status, when the Device has no stateReport
    old = {**quiet, "status": {"reportToCloud": True, "reportCycle": 3000}}
    spec = to_spec(edgecore_device(old), edgecore_model(MODEL))
    assert state_policy(spec) == StatePolicy(True, 3.0)
    # a cycle of 0 is upstream's 1 s (mapper-framework const.go:41)
    zero = {**quiet, "spec": {**quiet["spec"], "stateReport": {"reportToCloud": True}}}
    assert state_policy(to_spec(edgecore_device(zero), edgecore_model(MODEL))).cycle == 1.0


@pytest.mark.needs("edgedev_modbus")
def test_spec_to_messages_and_back_is_the_same_spec(tmp_path: Path):
    [spec] = load_documents(tmp_path, [MODEL, DEVICE])
    message, model = to_device(spec), to_model(spec)
    wire = pb.Device.FromString(message.SerializeToString())
    assert plain(to_spec(wire, pb.DeviceModel.FromString(model.SerializeToString()))) == plain(spec)
    assert wire.namespace == "default"
    assert wire.spec.properties[2].desired.value == ""


METHODS = [
    {"name": "SetTemperature", "description": "the setpoint", "propertyNames": ["setpoint"]},
    {"name": "Heat", "propertyNames": ["setpoint", "heating"]},
]
COMMANDS = [
    pb.DeviceCommand(
        name="reset",
        url="/reset",
        method="POST",
        status_code=["200", "409"],
        parameters=["delay"],
        response=b'{"ok":true}',
    )
]


@pytest.mark.needs("edgedev_modbus")
def test_methods_and_commands_come_over_dmi_and_go_back(tmp_path: Path):
    document = {**DEVICE, "spec": {**DEVICE["spec"], "methods": METHODS}}
    [from_yaml] = load_documents(tmp_path, [MODEL, document])
    model = edgecore_model(MODEL)
    model.spec.commands.extend(COMMANDS)  # not in the CRD: only a DMI client can send them
    spec = to_spec(edgecore_device(document), model)
    assert plain(dataclasses.replace(spec, commands=())) == plain(from_yaml)
    assert [(m.name, m.description, m.property_names) for m in spec.methods] == [
        ("SetTemperature", "the setpoint", ["setpoint"]),
        ("Heat", "", ["setpoint", "heating"]),
    ]
    [command] = spec.commands
    assert (command.name, command.status_code, command.response) == (
        "reset",
        ("200", "409"),
        b'{"ok":true}',
    )
    wire = pb.Device.FromString(to_device(spec).SerializeToString())
    back = pb.DeviceModel.FromString(to_model(spec).SerializeToString())
    assert list(wire.spec.methods) == list(edgecore_device(document).spec.methods)
    assert list(back.spec.commands) == COMMANDS
    assert to_spec(wire, back) == spec


def test_field_numbers_of_methods_commands_and_anomaly_detection_are_upstreams():
    # kubeedge/kubeedge staging/src/github.com/kubeedge/api/apis/dmi/v1beta1/api.proto
    def numbers(message: type) -> dict[str, int]:
        return {f.name: f.number for f in message.DESCRIPTOR.fields}

    assert numbers(pb.DeviceModelSpec) == {"properties": 1, "commands": 2}  # :124-129
    assert numbers(pb.DeviceCommand) == {  # :150-163
        "name": 1,
        "url": 2,
        "method": 3,
        "status_code": 4,
        "parameters": 5,
        "response": 6,
    }
    assert numbers(pb.DeviceSpec) == {  # :178-187
        "deviceModelReference": 1,
        "protocol": 2,
        "properties": 3,
        "methods": 4,
    }
    assert numbers(pb.DeviceMethod) == {"name": 1, "description": 2, "propertyNames": 3}  # :190
    assert numbers(pb.PushMethod)["anomalyDetection"] == 5  # :245
    assert numbers(pb.AnomalyDetection) == {"data": 1}  # :352-355


PUSH_METHODS = {  # every target, in the CRD's spelling
    "http": {"hostName": "http://sink.local", "port": 8080, "requestPath": "/in", "timeout": 500},
    "mqtt": {"address": "mqtt://127.0.0.1:1883", "topic": "plant/t", "qos": 1, "retained": True},
    "otel": {"endpointURL": "http://127.0.0.1:4318/v1/metrics"},
    "dbMethod": {
        "influxdb2": {
            "influxdb2ClientConfig": {"url": "http://i:8086", "org": "o", "bucket": "b"},
            "influxdb2DataConfig": {"measurement": "m", "tag": {"site": "a"}, "fieldKey": "v"},
        },
        "redis": {"redisClientConfig": {"addr": "r:6379", "db": 2, "poolsize": 4}},
        "TDEngine": {"TDEngineClientConfig": {"addr": "t:6041", "dbName": "plant"}},
        "mysql": {"mysqlClientConfig": {"addr": "m:3306", "database": "d", "userName": "u"}},
    },
    # free-form, loaded with a warning (not served); values as EdgeCore wraps them
    "anomalyDetection": {"url": "http://ad.local/score", "threshold": 3, "enabled": True},
}


@pytest.mark.needs("edgedev_modbus", "redis", "asyncmy", "opentelemetry")
def test_push_methods_come_over_dmi_as_the_yaml_gives_them(tmp_path: Path):
    """EdgeCore's JSON round trip respells pushMethod; the spec is the file's all the same."""
    doc = {**DEVICE, "spec": {**DEVICE["spec"], "properties": list(DEVICE["spec"]["properties"])}}
    doc["spec"]["properties"][0] = {**doc["spec"]["properties"][0], "pushMethod": PUSH_METHODS}
    [from_yaml] = load_documents(tmp_path, [MODEL, doc])
    message = edgecore_device(doc)
    push = message.spec.properties[0].pushMethod
    assert push.http.hostname == "http://sink.local" and push.http.requestpath == "/in"
    assert push.dbMethod.tdengine.tdEngineClientConfig.dbname == "plant"
    assert set(push.anomalyDetection.data) == {"url", "threshold", "enabled"}
    spec = to_spec(message, edgecore_model(MODEL))
    assert spec.property("temperature").push_method == from_yaml.property("temperature").push_method
    assert spec.property("setpoint").push_method is None
    # and back: GetDevice answers with the same pushMethod
    again = to_spec(to_device(spec), edgecore_model(MODEL))
    assert (
        again.property("temperature").push_method == from_yaml.property("temperature").push_method
    )


def test_float32_numbers_read_back_as_their_decimal():
    def unpack(value: float) -> object:
        packed = any_pb2.Any()
        packed.Pack(wrappers_pb2.FloatValue(value=value))
        return unpack_value(packed)

    assert unpack(0.1) == 0.1
    assert unpack(235.7) == 235.7
    assert unpack(5020) == 5020 and isinstance(unpack(5020), int)
    assert unpack(0) == 0
    empty = any_pb2.Any()
    assert unpack_value(empty) == 0  # a zero as an empty Any


@pytest.mark.needs("edgedev_modbus")
def test_a_device_from_edgecore_is_warned_about_as_its_file_would_be(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    doubtful = copy.deepcopy(DEVICE)
    setpoint, heating = doubtful["spec"]["properties"][1:]
    setpoint["visitors"]["configData"]["scale"] = 0.5  # an INT property: fractional readings
    heating["collectCycle"] = 5 * 10**9  # nanoseconds, as old KubeEdge wrote them
    path = write_documents(tmp_path, [MODEL, doubtful])
    from_file: list[Problem] = []
    load_devices([path], warnings=from_file)
    assert len(from_file) == 2
    with caplog.at_level(logging.WARNING, logger="edgedev.config"):
        to_spec(edgecore_device(doubtful), edgecore_model(MODEL))
    logged = [r.getMessage() for r in caplog.records if r.name == "edgedev.config"]
    # the same warnings, naming the device and the field; the source is EdgeCore, not a file
    assert logged == [str(w).replace(str(path), "dmi") for w in from_file]
    assert "field spec.properties[1].visitors.configData.scale" in logged[0]


@pytest.mark.needs("edgedev_modbus")
def test_an_invalid_device_names_the_device_and_the_field():
    bad = edgecore_device(DEVICE)
    bad.spec.properties[1].visitors.configData.data["offset"].Pack(
        wrappers_pb2.StringValue(value="x")
    )
    with pytest.raises(ConfigError) as caught:
        to_spec(bad, edgecore_model(MODEL))
    text = str(caught.value)
    assert "default/thermo-1" in text
    assert "spec.properties[1].visitors.configData.offset" in text

    with pytest.raises(ConfigError) as caught:
        to_spec(edgecore_device(DEVICE), None)
    assert "spec.deviceModelRef.name" in str(caught.value)


def test_token_bucket_keeps_the_sustained_rate():
    bucket = TokenBucket(rate=0.8, burst=20)
    now, sent = 0.0, 0
    while now < 100:
        if bucket.take(now):
            sent += 1
        now += 0.01
    assert 20 + 0.8 * 100 - 1 <= sent <= 20 + 0.8 * 100 + 1
    while bucket.take(now):
        sent += 1
    assert bucket.delay(now) > 0
    bucket.drain(now)
    assert bucket.delay(now) == pytest.approx(1 / 0.8)


def test_the_committed_generated_code_matches_the_proto(tmp_path: Path):
    check_committed(PROTO, tmp_path, "python -m edgedev.dmi._generate")


def test_the_version_stamps_are_all_that_is_masked():
    committed = (PROTO.path.parent / "api_pb2.py").read_text()
    masked = without_version_stamps(committed)
    assert masked.count("<version>") == 2
    assert "AddSerializedFile" in masked
    grpc_code = (PROTO.path.parent / "api_pb2_grpc.py").read_text()
    assert without_version_stamps(grpc_code).count("<version>") == 1
