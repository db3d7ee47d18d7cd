"""`edgedev discover opcua` against a plant the tests built (plant_server.py), end to end.

Discover, validate, check against the upstream CRD schema, run with a real broker, and
compare every reported value with the server's; restart the server with its namespaces
renumbered and do it again. The server counts every service request: discovery sends only
Browse, BrowseNext and Read.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import jsonschema
import pytest
import yaml
from opcua_helpers import portal
from plant_server import BROWSE, BROWSE_NEXT, EXPECTED, READ, SKIPPED, Wiretap, plant_server

from edgedev.testing import free_port, reported_values

pytestmark = pytest.mark.broker

ROOT = Path(__file__).resolve().parents[3]
SCHEMA = json.loads((ROOT / "tests/data/kubeedge_v1beta1_devices.schema.json").read_text())


def edgedev(*args: str) -> subprocess.CompletedProcess[str]:
    """``edgedev ARGS`` as a user runs it, to the end."""
    return subprocess.run(
        [sys.executable, "-m", "edgedev", *args], capture_output=True, text=True, timeout=120
    )


class Plant:
    """The plant server in a thread of its own; ``restart`` brings it back renumbered."""

    def __init__(self) -> None:
        self.url = f"opc.tcp://127.0.0.1:{free_port()}/plant"
        self._portal = portal()
        self.portal = self._portal.__enter__()
        self._cm: Any = None
        self.tap = Wiretap()

    def start(self, *, renumber: bool = False) -> None:
        self._cm = plant_server(self.url, renumber=renumber)
        _, self.tap = self.portal.call(self._cm.__aenter__)

    def stop(self) -> None:
        if self._cm is not None:
            self.portal.call(self._cm.__aexit__, None, None, None)
            self._cm = None

    def close(self) -> None:
        self.stop()
        self._portal.__exit__(None, None, None)


@pytest.fixture(scope="module")
def plant() -> Iterator[Plant]:
    served = Plant()
    served.start()
    try:
        yield served
    finally:
        served.close()


def documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]


def by_path(docs: list[dict[str, Any]]) -> dict[str, tuple[str, str]]:
    """discoveredPath -> (device name, property name), over every Device."""
    found = {}
    for doc in docs:
        if doc["kind"] == "Device":
            for prop in doc["spec"]["properties"]:
                path = prop["visitors"]["configData"]["discoveredPath"]
                found[path] = (doc["metadata"]["name"], prop["name"])
    return found


async def test_discovered_plant_validates_runs_and_reports_every_value_renumbered_too(
    plant: Plant, tmp_path: Path, mqtt_url: str
) -> None:
    out = tmp_path / "plant.yaml"
    found = await anyio.to_thread.run_sync(
        edgedev, "discover", "opcua", plant.url, "-o", str(out), "--collect-cycle", "500"
    )
    assert found.returncode == 0, found.stderr
    assert found.stdout == ""
    # only reads: Browse, BrowseNext (the server hands out 25 references at a time), Read
    assert plant.tap.used() <= {BROWSE, BROWSE_NEXT, READ}
    assert plant.tap.services[BROWSE_NEXT] > 0 and plant.tap.writes == 0
    summary = found.stderr
    assert "BrowseNext" in summary and "made 26 DeviceModels, 27 Devices" in summary
    for path, reason in SKIPPED.items():
        assert any(
            line.startswith(f"  {path}: ") and reason in line for line in summary.splitlines()
        )

    docs = documents(out)
    for doc in docs:
        validator = jsonschema.Draft202012Validator({**SCHEMA, "$ref": f"#/$defs/{doc['kind']}"})
        assert [e.message for e in validator.iter_errors(doc)] == [], doc["metadata"]
    checked = await anyio.to_thread.run_sync(edgedev, "validate", "-f", str(out))
    assert checked.returncode == 0, checked.stderr
    assert "ok: 27 devices, 1240 properties in 1 file" in checked.stdout
    where = by_path(docs)
    assert set(where) == set(EXPECTED)  # every readable variable, nothing else

    # as OPC-UA models the plant
    models = {d["metadata"]["name"]: d for d in docs if d["kind"] == "DeviceModel"}
    devices = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Device"}
    model_of = {name: d["spec"]["deviceModelRef"]["name"] for name, d in devices.items()}
    assert model_of["plant-line1-pump1"] == model_of["plant-line1-pump2"] == "pump-type"
    assert model_of["plant-line2-pump3"].startswith("pump-type-")
    assert model_of["plant-line1"] == "plant-line1"
    assert {"plant-tank-a", "plant-tank-a-2"} <= set(devices)
    pump = {p["name"]: p for p in models["pump-type"]["spec"]["properties"]}
    assert pump["Speed"] == {
        "name": "Speed",
        "type": "FLOAT",
        "accessMode": "ReadOnly",
        "minimum": "0",
        "maximum": "3000",
        "unit": "rpm",
    }
    assert pump["Running"]["accessMode"] == "ReadWrite"
    assert pump["State"]["description"] == "enumeration: 0 Off, 1 On, 2 Fault"
    assert set(pump) == {"Speed", "Running", "State", "Motor.Current", "Motor.Temperature"}
    line = {p["name"]: p for p in models["plant-line1"]["spec"]["properties"]}
    assert set(line) == {"Temp_C", "Temp_C_2", "Flow_m3/h", "Mode"}
    assert line["Mode"]["description"] == "enumeration: 0 Manual, 1 Auto"
    values = devices["plant-values"]
    cycles = {p["name"]: p["collectCycle"] for p in values["spec"]["properties"]}
    assert cycles["Slow"] == 5000 and cycles["Double"] == 500
    node_ids = [
        p["visitors"]["configData"]["nodeID"]
        for d in devices.values()
        for p in d["spec"]["properties"]
    ]
    assert all(n.startswith(("nsu=urn:test:plant;", "nsu=urn:test:vendor;")) for n in node_ids)

    # run it: every property reports the server's value
    twins = await reported_values(mqtt_url, [out])
    reported = {path: twins[device][name] for path, (device, name) in where.items()}
    assert reported == EXPECTED
    assert plant.tap.writes == 0

    # the server comes back with every namespace index changed: the same file, and it runs
    plant.stop()
    plant.start(renumber=True)
    again = tmp_path / "again.yaml"
    found = await anyio.to_thread.run_sync(
        edgedev, "discover", "opcua", plant.url, "-o", str(again), "--collect-cycle", "500"
    )
    assert found.returncode == 0, found.stderr
    assert again.read_text() == out.read_text()
    twins = await reported_values(mqtt_url, [out])
    assert {path: twins[device][name] for path, (device, name) in where.items()} == EXPECTED


async def test_include_exclude_depth_and_node_limits(plant: Plant, tmp_path: Path) -> None:
    out = tmp_path / "line1.yaml"
    found = await anyio.to_thread.run_sync(
        edgedev,
        "discover",
        "opcua",
        plant.url,
        "-o",
        str(out),
        "--include",
        "Plant/Line1/**",
        "--exclude",
        "**/Motor/*",
        "--name-prefix",
        "site-",
        "--namespace",
        "plant",
        "--node-name",
        "edge-1",
        "--mode",
        "subscribe",
    )
    assert found.returncode == 0, found.stderr
    docs = documents(out)
    devices = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Device"}
    assert set(devices) == {"site-plant-line1", "site-plant-line1-pump1", "site-plant-line1-pump2"}
    assert all(p.startswith("Plant/Line1/") and "/Motor/" not in p for p in by_path(docs))
    device = devices["site-plant-line1-pump1"]
    assert device["metadata"]["namespace"] == "plant" and device["spec"]["nodeName"] == "edge-1"
    assert device["spec"]["protocol"]["configData"]["mode"] == "subscribe"
    assert "variables left out by --include/--exclude" in found.stderr

    limited = await anyio.to_thread.run_sync(
        edgedev, "discover", "opcua", plant.url, "--max-nodes", "40"
    )
    assert limited.returncode == 0, limited.stderr
    assert "stopped at --max-nodes 40: the server has more nodes" in limited.stderr
    assert "browsed 40 nodes" in limited.stderr
    assert documents_of(limited.stdout)
    shallow = await anyio.to_thread.run_sync(
        edgedev, "discover", "opcua", plant.url, "--max-depth", "3"
    )
    assert shallow.returncode == 0, shallow.stderr
    assert "Plant/Line1/Pump1: not browsed: what it holds is below --max-depth 3" in shallow.stderr
    names = {d["metadata"]["name"] for d in documents_of(shallow.stdout) if d["kind"] == "Device"}
    assert "plant-line1" in names and "plant-line1-pump1" not in names


def documents_of(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def test_unreachable_server_is_one_line_and_exit_1_and_mistakes_exit_2(tmp_path: Path) -> None:
    url = f"opc.tcp://127.0.0.1:{free_port()}/none"
    out = tmp_path / "none.yaml"
    gone = edgedev("discover", "opcua", url, "--timeout", "2000", "-o", str(out))
    assert gone.returncode == 1
    assert gone.stderr.startswith("error: ") and gone.stderr.count("\n") == 1, gone.stderr
    assert not out.exists()
    for args, word in (
        (["http://plc:4840"], "opc.tcp"),
        (["opc.tcp://plc", "--include", "a//b"], "glob"),
        (["opc.tcp://plc", "--root", "ns=x;i=1"], "namespace"),
        (["opc.tcp://plc", "--user", "op"], "password"),
        (["opc.tcp://plc", "--security-policy", "Basic256Sha256"], "securityMode"),
    ):
        wrong = edgedev("discover", "opcua", *args)
        assert wrong.returncode == 2, (args, wrong.stderr)
        assert word in wrong.stderr


async def test_unknown_root_is_exit_1(plant: Plant) -> None:
    gone = await anyio.to_thread.run_sync(
        edgedev, "discover", "opcua", plant.url, "--root", "nsu=urn:test:plant;s=Nowhere"
    )
    assert gone.returncode == 1
    assert "--root" in gone.stderr and "BadNodeIdUnknown" in gone.stderr
