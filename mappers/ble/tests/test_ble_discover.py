"""`edgedev discover ble` through bleak's backend seam, against simulated peripherals.

The peripheral is ``edgedev simulate``'s (BleSimulator), set up here with Bluetooth SIG
characteristics in their specified formats, a vendor characteristic and a writable one:
discovery scans, connects and types what it finds; the Device it writes validates, fits the
CRD schema and runs, and every value it reports is the peripheral's. Nothing is written.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import jsonschema
import pytest
import yaml
from ble_helpers import device, model, visit

from edgedev.config import AccessMode
from edgedev.discover import PropertyDraft
from edgedev.loader import load_devices
from edgedev.testing import free_port, reported_values
from edgedev.twin import PropertyType, format_value
from edgedev_ble import BleSimulator
from edgedev_ble.gatt import SIG, Found, characteristic_property

ROOT = Path(__file__).resolve().parents[3]
SCHEMA = json.loads((ROOT / "tests/data/kubeedge_v1beta1_devices.schema.json").read_text())
BASE = "-0000-1000-8000-00805f9b34fb"
VENDOR = "0ed9e001-b1e0-4b1e-8000-00805f9b34fb"
LED = "0ed9e002-b1e0-4b1e-8000-00805f9b34fb"
MAC = "C4:7C:8D:6A:00:42"


def sig(short: str) -> str:
    return f"0000{short}{BASE}"


def test_at_least_ten_sig_characteristics_are_typed() -> None:
    typed = [uuid for uuid, a in SIG.items() if a.type is not PropertyType.STRING]
    assert len(typed) >= 10
    made = characteristic_property(
        Found(sig("2a6e"), sig("181a"), ["read", "notify"]), shared=False
    )
    assert made == PropertyDraft(
        name="temperature",
        type=PropertyType.FLOAT,
        visitor={"characteristicUUID": "2A6E", "format": "int16le", "scale": 0.01, "notify": True},
        unit="degC",
    )


@pytest.mark.parametrize(
    ("flags", "notify", "access"),
    [
        (["read"], False, AccessMode.READ_ONLY),
        (["indicate"], True, AccessMode.READ_ONLY),
        (["read", "write-without-response"], False, AccessMode.READ_WRITE),
    ],
)
def test_flags_set_the_mode_and_the_access(
    flags: list[str], notify: bool, access: AccessMode
) -> None:
    made = characteristic_property(Found(VENDOR, sig("1800"), flags), shared=True)
    assert isinstance(made, PropertyDraft)
    assert made.visitor == {
        "characteristicUUID": VENDOR,
        "serviceUUID": sig("1800"),
        "format": "bytes",
        "notify": notify,
    }
    assert (made.type, made.access, made.name) == (PropertyType.BYTES, access, "char_0ed9e001")


@pytest.mark.parametrize(
    ("found", "reason"),
    [
        (Found(VENDOR, sig("1800"), ["write"]), "written, not read"),
        (Found(sig("2a05"), sig("1801"), ["indicate"]), "Service Changed"),
    ],
)
def test_what_has_nothing_to_report_is_skipped(found: Found, reason: str) -> None:
    made = characteristic_property(found, shared=False)
    assert isinstance(made, str) and reason in made


def peripheral_file(tmp_path: Path, port: int) -> Path:
    """A weather station with SIG characteristics in their formats, as a Device file."""
    ranges = {"minimum": "10", "maximum": "40"}
    sensors: list[tuple[str, str, str, dict[str, Any]]] = [
        ("t", "2A6E", "FLOAT", {"format": "int16le", "scale": 0.01}),
        ("h", "2A6F", "FLOAT", {"format": "uint16le", "scale": 0.01}),
        ("b", "2A19", "INT", {"format": "uint8"}),
        ("p", "2A6D", "FLOAT", {"format": "uint32le", "scale": 0.1}),
        ("uv", "2A76", "INT", {"format": "uint8"}),
        ("irr", "2A77", "FLOAT", {"format": "uint16le", "scale": 0.1}),
        ("elev", "2A6C", "FLOAT", {"format": "int24le", "scale": 0.01}),
        ("ws", "2A70", "FLOAT", {"format": "uint16le", "scale": 0.01}),
        ("wd", "2A71", "FLOAT", {"format": "uint16le", "scale": 0.01}),
        ("dew", "2A7B", "INT", {"format": "int8"}),
        ("tc", "2A1F", "FLOAT", {"format": "int16le", "scale": 0.1}),
        ("maker", "2A29", "STRING", {"format": "utf8"}),
        ("raw", VENDOR, "BYTES", {"format": "bytes"}),
    ]
    props = [
        {
            "name": name,
            "type": type_,
            "accessMode": "ReadOnly",
            **(ranges if type_ not in ("STRING", "BYTES") else {}),
        }
        for name, _, type_, _ in sensors
    ]
    props.append({"name": "led", "type": "STRING", "accessMode": "ReadWrite"})
    visits = [visit(name, uuid_, 500, **config) for name, uuid_, _, config in sensors]
    led = visit("led", LED, 500, dataWrite={"ON": [1], "OFF": [0]}, notify=False)
    visits.append({**led, "desired": {"value": "OFF"}})
    path = tmp_path / "station.yaml"
    docs = [model("station", props), device("station-1", "station", MAC, port, visits)]
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return path


def edgedev(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edgedev", *args], capture_output=True, text=True, timeout=120
    )


@pytest.mark.broker
async def test_a_peripheral_becomes_a_device_that_runs(tmp_path: Path, mqtt_url: str) -> None:
    port = free_port()
    specs = load_devices([peripheral_file(tmp_path, port)])
    sim = BleSimulator(specs)
    backend = f"sim://127.0.0.1:{port}"
    out = tmp_path / "found.yaml"
    async with anyio.create_task_group() as tg:
        await tg.start(sim.run)
        sim.freeze("default/station-1")
        scan = await anyio.to_thread.run_sync(
            edgedev, "discover", "ble", "--backend", backend, "--timeout", "2500"
        )
        assert scan.returncode == 0, scan.stderr
        assert MAC in scan.stdout and "station-1" in scan.stdout
        found = await anyio.to_thread.run_sync(
            edgedev, "discover", "ble", MAC, "--backend", backend, "-o", str(out)
        )
        assert found.returncode == 0, found.stderr
        docs = [d for d in yaml.safe_load_all(out.read_text()) if d]
        for doc in docs:
            validator = jsonschema.Draft202012Validator(
                {**SCHEMA, "$ref": f"#/$defs/{doc['kind']}"}
            )
            assert [e.message for e in validator.iter_errors(doc)] == []
        checked = await anyio.to_thread.run_sync(edgedev, "validate", "-f", str(out))
        assert checked.returncode == 0, checked.stderr
        device_doc = next(d for d in docs if d["kind"] == "Device")
        uuid_of = {
            p["name"]: p["visitors"]["configData"]["characteristicUUID"]
            for p in device_doc["spec"]["properties"]
        }
        assert {
            "temperature",
            "humidity",
            "battery_level",
            "pressure",
            "uv_index",
            "irradiance",
            "elevation",
            "true_wind_speed",
            "true_wind_direction",
            "dew_point",
            "temperature_celsius",
            "manufacturer_name",
            "char_0ed9e001",
            "char_0ed9e002",
        } == set(uuid_of)
        model_doc = next(d for d in docs if d["kind"] == "DeviceModel")
        access = {p["name"]: p["accessMode"] for p in model_doc["spec"]["properties"]}
        assert access["char_0ed9e002"] == "ReadWrite" and access["temperature"] == "ReadOnly"
        twins = await reported_values(mqtt_url, [out])
        tg.cancel_scope.cancel()
    assert sim.writes == []  # discovery and the mapper only read
    by_uuid = {p.visitor.characteristic_uuid: p for p in specs[0].properties}
    expected = {}
    for name, uuid_ in uuid_of.items():
        source = by_uuid[uuid_ if len(uuid_) > 4 else sig(uuid_.lower())]
        if source.type in (PropertyType.BYTES, PropertyType.STRING) and len(uuid_) > 4:
            expected[name] = (
                sim.peripheral("default/station-1").of_property[source.name].value.hex()
            )
        else:
            expected[name] = format_value(sim.get("default/station-1", source.name), source.type)
    assert twins["station-1"] == expected
