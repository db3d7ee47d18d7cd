"""Loading KubeEdge files: each kind of mistake gets one clear error naming where it is."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from edgedev import AccessMode, ConfigError, PropertyType, load_devices

MODEL = """\
apiVersion: devices.kubeedge.io/v1beta1
kind: DeviceModel
metadata: {name: thermo}
spec:
  protocol: modbus
  properties:
    - {name: temp, type: FLOAT, accessMode: ReadOnly, unit: degC}
    - {name: setpoint, type: INT, minimum: 10, maximum: "30"}
"""

DEVICE = """\
---
apiVersion: devices.kubeedge.io/v1beta1
kind: Device
metadata: {name: thermo-1}
spec:
  deviceModelRef: {name: thermo}
  nodeName: edge-1
  protocol:
    protocolName: modbus
    configData: {ip: 127.0.0.1, port: 5020}
  properties:
    - name: temp
      collectCycle: 500
      visitors:
        protocolName: modbus
        configData: {register: InputRegister, offset: 0, limit: 1, scale: 0.1, dataType: int16}
    - name: setpoint
      collectCycle: 1000
      reportCycle: 5000
      desired: {value: "21"}
      visitors:
        protocolName: modbus
        configData: {register: HoldingRegister, offset: 0, limit: 1}
"""


def write(tmp_path: Path, text: str, name: str = "devices.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def problems(tmp_path: Path, text: str) -> list[str]:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_devices([path])
    return [str(p) for p in caught.value.problems]


@pytest.mark.needs("edgedev_modbus")
def test_a_valid_file_resolves_model_and_visitor(tmp_path: Path):
    [device] = load_devices([write(tmp_path, MODEL + DEVICE)])
    assert device.id == "default/thermo-1"
    assert device.node_name == "edge-1"
    temp, setpoint = device.properties
    assert temp.type is PropertyType.FLOAT and temp.access_mode is AccessMode.READ_ONLY
    assert temp.collect_cycle == 0.5 and temp.report_cycle == 0.5
    assert setpoint.report_cycle == 5.0
    assert (setpoint.minimum, setpoint.maximum, setpoint.desired) == (10, 30, "21")


@pytest.mark.needs("edgedev_modbus")
def test_models_may_live_in_another_file_and_other_resources_are_skipped(tmp_path: Path):
    other = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n---\n"
    devices = load_devices(
        [write(tmp_path, MODEL, "model.yaml"), write(tmp_path, other + DEVICE, "device.yaml")]
    )
    assert [d.name for d in devices] == ["thermo-1"]


@pytest.mark.needs("edgedev_modbus")
@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        (
            ("register: InputRegister", "register: InputRegs"),
            "visitors.configData.register",
            "InputRegister",
        ),
        (
            ("- name: temp\n      collectCycle", "- name: tmp\n      collectCycle"),
            "spec.properties[0].name",
            "not in DeviceModel",
        ),
        (
            ("offset: 0, limit: 1, scale", "offset: 70000, limit: 1, scale"),
            "visitors.configData.offset",
            "65535",
        ),
        (
            ("offset: 0, limit: 1}", "offset: 65535, limit: 2, dataType: int32}"),
            "visitors.configData.offset",
            "past",
        ),
        (
            ("collectCycle: 500", "collectCycle: -1"),  # 0 is upstream's 1 s
            "spec.properties[0].collectCycle",
            "greater than or equal to 0",
        ),
        (("collectCycle: 500", "collectCycle: fast"), "spec.properties[0].collectCycle", "integer"),
        (("dataType: int16", "dataType: int24"), "visitors.configData.dataType", "int16"),
        (("dataType: int16", "dataType: float32"), "visitors.configData.limit", "limit"),
        (
            ("port: 5020", "port: 5020, slaveId: 2"),
            "spec.protocol.configData.slaveId",
            "Extra inputs",
        ),
        (
            ("name: thermo}\n  nodeName", "name: thermostat}\n  nodeName"),
            "spec.deviceModelRef.name",
            "not found",
        ),
        (
            ("protocolName: modbus\n    configData", "protocolName: zigbee\n    configData"),
            "spec.protocol.protocolName",
            "zigbee",
        ),
        (
            ('desired: {value: "21"}', 'desired: {value: "warm"}'),
            "spec.properties[1].desired.value",
            "integer",
        ),
    ],
)
def test_each_mistake_names_file_document_device_and_field(
    tmp_path: Path, change: tuple[str, str], field: str, words: str
):
    text = MODEL + DEVICE
    assert change[0] in text
    found = problems(tmp_path, text.replace(change[0], change[1], 1))
    assert all("devices.yaml: document 2 (Device default/thermo-1)" in m for m in found)
    assert [m for m in found if field in m and words in m], found


def test_every_problem_is_reported_at_once(tmp_path: Path):
    first = DEVICE.replace("collectCycle: 500", "collectCycle: -1").replace(
        "reportCycle: 5000", "reportCycle: -5"
    )
    second = DEVICE.replace("thermo-1", "thermo-2").replace("port: 5020", "port: 99999")
    found = problems(tmp_path, MODEL + first + second)
    assert len(found) == 3
    assert "document 3 (Device default/thermo-2)" in found[2]


def test_broken_yaml_names_the_line(tmp_path: Path):
    [message] = problems(tmp_path, MODEL + "---\nkind: Device\n  bad: [indent\n")
    assert "devices.yaml" in message and "invalid YAML" in message and "line" in message


@pytest.mark.needs("edgedev_modbus")
def test_missing_file_and_duplicates(tmp_path: Path):
    with pytest.raises(ConfigError, match="cannot read file"):
        load_devices([tmp_path / "absent.yaml"])
    found = problems(tmp_path, MODEL + DEVICE + DEVICE)
    assert any("defined twice" in p for p in found)


@pytest.mark.needs("edgedev_modbus")
def test_namespace_defaults_to_default_and_is_kept(tmp_path: Path):
    text = (MODEL + DEVICE).replace(
        "metadata: {name: thermo}", "metadata: {name: thermo, namespace: plant}"
    )
    text = text.replace(
        "metadata: {name: thermo-1}", "metadata: {name: thermo-1, namespace: plant}"
    )
    [device] = load_devices([write(tmp_path, text)])
    assert device.id == "plant/thermo-1"


def run_validate(*files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edgedev", "validate", "-f", *map(str, files)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.needs("edgedev_modbus")
def test_validate_exits_0_when_valid_and_1_with_errors(tmp_path: Path):
    good = run_validate(write(tmp_path, MODEL + DEVICE, "good.yaml"))
    assert good.returncode == 0, good.stderr
    assert "1 device" in good.stdout
    bad = run_validate(
        write(
            tmp_path, (MODEL + DEVICE).replace("collectCycle: 500", "collectCycle: -1"), "bad.yaml"
        )
    )
    assert bad.returncode == 1
    assert (
        "bad.yaml: document 2 (Device default/thermo-1), field "
        "spec.properties[0].collectCycle" in bad.stderr
    )


@pytest.mark.needs("edgedev_modbus", "edgedev_opcua", "edgedev_ble", "edgedev_gpio", "edgedev_mqtt")
def test_examples_validate():
    root = Path(__file__).parent.parent / "examples"
    # the files at the top go together (as `edgedev demo` and the tutorials use them); each
    # folder below is a set of its own (examples/kubeedge defines its models again)
    groups = [sorted(root.glob("*.yaml"))]
    groups += [
        sorted(folder.glob("*.yaml")) for folder in sorted(root.iterdir()) if folder.is_dir()
    ]
    assert all(groups[0]) and sum(map(len, groups)) == len(list(root.glob("**/*.yaml")))
    for files in filter(None, groups):
        result = run_validate(*files)
        assert result.returncode == 0, result.stderr
