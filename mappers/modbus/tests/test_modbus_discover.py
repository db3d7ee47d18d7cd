"""`edgedev discover modbus` against a gateway the tests built (gateway_server.py), end to end.

Probe, validate, check against the upstream CRD schema, run with a real broker and compare
every reported value with the gateway's; the same for a vendor register map. The gateway
counts every function code it receives: only 1, 2, 3, 4, 17 and 43, as many as discovery
says it sent.
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
from gateway_server import MAP, gateway
from modbus_helpers import device, load, model, visit

from edgedev.testing import free_port, reported_values
from edgedev_modbus import ModbusSimulator
from edgedev_modbus.codec import Table

pytestmark = pytest.mark.broker

ROOT = Path(__file__).resolve().parents[3]
SCHEMA = json.loads((ROOT / "tests/data/kubeedge_v1beta1_devices.schema.json").read_text())
WORDS = {Table.COIL: "coil", Table.DISCRETE_INPUT: "discrete", Table.INPUT: "input"}
WORDS[Table.HOLDING] = "holding"


def edgedev(*args: str) -> subprocess.CompletedProcess[str]:
    """``edgedev ARGS`` as a user runs it, to the end."""
    return subprocess.run(
        [sys.executable, "-m", "edgedev", *args], capture_output=True, text=True, timeout=300
    )


def documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]


def crd_errors(docs: list[dict[str, Any]]) -> list[str]:
    found = []
    for doc in docs:
        validator = jsonschema.Draft202012Validator({**SCHEMA, "$ref": f"#/$defs/{doc['kind']}"})
        found += [e.message for e in validator.iter_errors(doc)]
    return found


def requests_said(summary: str) -> int:
    """The request count the summary's first line gives."""
    first = summary.splitlines()[0]
    return int(first.split(" with ")[1].split(" request")[0])


async def test_probed_units_validate_run_and_report_every_value(
    tmp_path: Path, mqtt_url: str
) -> None:
    out = tmp_path / "gateway.yaml"
    async with gateway(free_port()) as served:
        found = await anyio.to_thread.run_sync(
            edgedev,
            "discover",
            "modbus",
            f"127.0.0.1:{served.port}",
            "--unit",
            "1-6",
            "--max-address",
            "1100",
            "--rate",
            "0",
            "--collect-cycle",
            "500",
            "-o",
            str(out),
        )
        assert found.returncode == 0, found.stderr
        functions = dict(served.functions)
        # only reads, and every one of them counted by discovery
        assert set(functions) <= {1, 2, 3, 4, 17, 43}
        assert sum(functions.values()) == requests_said(found.stderr)
        summary = found.stderr
        assert "probed 6 unit ids: 3 answered (1, 2, 3)" in summary
        assert "holding registers: 0-9, 100-119, 1000-1001" in summary
        assert "coils: 0-11, 100-103" in summary and "discrete inputs: 16-20" in summary
        refused = "every table refused: exception code 4 (server device failure) at address 0"
        assert refused in summary
        assert "unit 3: nothing readable up to --max-address" in summary

        docs = documents(out)
        assert crd_errors(docs) == []
        checked = await anyio.to_thread.run_sync(edgedev, "validate", "-f", str(out))
        assert checked.returncode == 0, checked.stderr
        devices = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Device"}
        assert set(devices) == {"127-0-0-1-unit-1", "127-0-0-1-unit-2"}
        unit1 = devices["127-0-0-1-unit-1"]
        assert unit1["metadata"]["annotations"] == {
            "edgedev/modbus-vendor-name": "Acme",
            "edgedev/modbus-product-code": "PM-3000",
            "edgedev/modbus-revision": "2.1",
            "edgedev/modbus-server-id": "Acme-PM-3000-2.1",
        }
        assert "annotations" not in devices["127-0-0-1-unit-2"]["metadata"]
        assert unit1["spec"]["protocol"]["configData"] == {
            "ip": "127.0.0.1",
            "port": served.port,
            "slaveID": 1,
        }

        before = sum(served.functions.values())
        twins = await reported_values(mqtt_url, [out])
        assert not {5, 6, 15, 16, 22, 23} & set(served.functions)  # the mapper only reads too
    assert sum(served.functions.values()) > before
    for unit, tables in MAP.items():
        reported = twins[f"127-0-0-1-unit-{unit}"]
        expected = {
            f"{WORDS[table]}_{address}": (str(bool(value)).lower() if table.is_bit else str(value))
            for table, served_map in tables.items()
            for address, value in served_map.items()
        }
        assert reported == expected


async def test_a_vendor_map_runs_and_a_bad_one_names_line_and_column(
    tmp_path: Path, mqtt_url: str
) -> None:
    good = tmp_path / "pm3000.csv"
    good.write_text(
        "name,table,address,type,scale,unit,access,description\n"
        "Voltage,,30001,uint16,0.5,V,r,phase voltage\n"  # input 0: 1000 x 0.5
        "Counter,holding,100,uint32,,,r,\n"  # 500+100, 500+101: 0x0264 0x0265
        "Setpoint,holding,5,int16,,degC,rw,\n"  # 50
        "Pump,,00004,bool,,,rw,\n"  # coil 3: 3 % 3 == 0
        "Tag,holding,1000,uint16,,,,\n"  # 0xBEEF
    )
    out = tmp_path / "pm.yaml"
    out.write_text("kept\n")
    async with gateway(free_port()) as served:
        target = f"127.0.0.1:{served.port}"
        made = await anyio.to_thread.run_sync(
            edgedev,
            "discover",
            "modbus",
            target,
            "--map",
            str(good),
            "--device",
            "PM 1",
            "--unit",
            "1",
            "-o",
            str(out),
        )
        assert made.returncode == 0, made.stderr
        assert served.functions == {}  # a map is converted, nothing sent
        assert "2 Modicon addresses (40001 ...) converted" in made.stderr
        docs = documents(out)
        assert crd_errors(docs) == []
        assert [d["metadata"]["name"] for d in docs] == ["pm3000", "pm-1"]
        checked = await anyio.to_thread.run_sync(edgedev, "validate", "-f", str(out))
        assert checked.returncode == 0, checked.stderr
        twins = await reported_values(mqtt_url, [out])
    assert twins["pm-1"] == {
        "Voltage": "500.0",
        "Counter": str((600 << 16) | 601),
        "Setpoint": "50",
        "Pump": "true",
        "Tag": str(0xBEEF),
    }

    bad = tmp_path / "bad.csv"
    bad.write_text(
        "name,table,address,type,scale,unit,access,description\n"
        "Voltage,input,0,uint16,,V,r,\n"
        "Current,input,two,uint16,,A,r,\n"
    )
    before = out.read_text()
    wrong = await anyio.to_thread.run_sync(
        edgedev,
        "discover",
        "modbus",
        "127.0.0.1",
        "--map",
        str(bad),
        "--device",
        "pm",
        "--unit",
        "1",
        "-o",
        str(out),
    )
    assert wrong.returncode == 2
    assert f"{bad}: line 3, column 3 (address): 'two' is not an address" in wrong.stderr
    assert out.read_text() == before


async def test_requests_are_spaced_by_the_rate(tmp_path: Path) -> None:
    async with gateway(free_port()) as served:
        found = await anyio.to_thread.run_sync(
            edgedev,
            "discover",
            "modbus",
            f"127.0.0.1:{served.port}",
            "--unit",
            "2",
            "--tables",
            "holding",
            "--max-address",
            "60",
            "--rate",
            "50",
        )
        assert found.returncode == 0, found.stderr
        times = list(served.times)
    assert len(times) > 10
    # each request is sent 20 ms after the one before at the earliest, and after its answer,
    # so after the first one's arrival: n requests arrive over at least (n - 2) x 20 ms
    assert times[-1] - times[0] >= (len(times) - 2) * 0.02


def test_unreachable_is_exit_1_and_mistakes_are_exit_2(tmp_path: Path) -> None:
    out = tmp_path / "none.yaml"
    gone = edgedev("discover", "modbus", f"127.0.0.1:{free_port()}", "--unit", "1", "-o", str(out))
    assert gone.returncode == 1
    assert gone.stderr.startswith("error: cannot connect to Modbus TCP 127.0.0.1:")
    assert gone.stderr.count("\n") == 1 and not out.exists()
    for args, word in (
        ([], "HOST[:PORT] or --serial"),
        (["127.0.0.1", "--unit", "0-300"], "--unit"),
        (["127.0.0.1", "--map", "x.csv"], "--device NAME go together"),
        (["127.0.0.1", "--map", "x.csv", "--device", "d"], "--unit is the one unit id"),
        (
            ["127.0.0.1", "--map", str(tmp_path / "no.csv"), "--device", "d", "--unit", "1"],
            "no.csv",
        ),
        (["127.0.0.1", "--tables", "coils"], "not a table"),
        (["127.0.0.1", "--stride", "126", "--tables", "holding"], "at most 125"),
        (["not a host!"], "ip"),
    ):
        wrong = edgedev("discover", "modbus", *args)
        assert wrong.returncode == 2, (args, wrong.stderr)
        assert word in wrong.stderr, (args, wrong.stderr)


async def test_units_on_a_serial_line_are_found_in_rtu_framing(tmp_path: Path) -> None:
    """RTU frames over pyserial's socket:// line, as a USB-RS485 adapter carries them."""
    line = f"socket://127.0.0.1:{free_port()}"
    docs: list[dict[str, Any]] = [
        model("rtu", [{"name": "v", "type": "INT", "accessMode": "ReadOnly"}])
    ]
    for slave in (1, 2):
        doc = device(f"rtu-{slave}", "rtu", 0, [visit("v", register="InputRegister", offset=slave)])
        config = doc["spec"]["protocol"]["configData"]
        del config["ip"], config["port"]
        config.update(serialPort=line, baudRate=115200, parity="E", slaveID=slave)
        docs.append(doc)
    sim = ModbusSimulator(load(tmp_path, docs))
    async with anyio.create_task_group() as tg:
        await tg.start(sim.run)
        found = await anyio.to_thread.run_sync(
            edgedev,
            "discover",
            "modbus",
            "--serial",
            line,
            "--baud",
            "115200",
            "--parity",
            "E",
            "--unit",
            "1-2",
            "--tables",
            "input",
            "--max-address",
            "20",
            "--rate",
            "0",
        )
        tg.cancel_scope.cancel()
    assert found.returncode == 0, found.stderr
    assert "discovered RTU socket://" in found.stderr
    assert "probed 2 unit ids: 2 answered (1, 2)" in found.stderr
    devices = {
        d["metadata"]["name"]: d["spec"]
        for d in yaml.safe_load_all(found.stdout)
        if d and d["kind"] == "Device"
    }
    name = line.rpartition("/")[2].replace(".", "-").replace(":", "-")
    assert len(devices) == 2
    spec = devices[f"{name}-unit-2"]
    assert spec["protocol"]["configData"] == {
        "serialPort": line,
        "baudRate": 115200,
        "dataBits": 8,
        "parity": "E",
        "stopBits": 1,
        "slaveID": 2,
    }
    assert {p["name"] for p in spec["properties"]} == {"input_0", "input_1", "input_2"}
