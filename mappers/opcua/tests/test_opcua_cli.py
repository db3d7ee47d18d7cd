"""The command line against OPC-UA servers: `edgedev run`, `simulate` and `demo` as processes."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from opcua_helpers import device, free_port, merged, model, portal, root, visit, write_yaml

from edgedev import Bus
from edgedev.testing import Recorder, edgedev_process, topic_endswith, wait_for_port

pytestmark = pytest.mark.broker

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "opcua.yaml"


@asynccontextmanager
async def vendor_server(port: int) -> AsyncIterator[Any]:
    """A plain asyncua server, set up the way a vendor would, not by edgedev."""
    from asyncua import Server, ua

    server = Server()
    await server.init()
    server.set_endpoint(f"opc.tcp://127.0.0.1:{port}/vendor/plc")
    server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
    ns = await server.register_namespace("urn:vendor:plant")
    line = await server.nodes.objects.add_object(ns, "Line1")
    await line.add_variable(ua.NodeId("Line1.Temp", ns), f"{ns}:Temp", 21.5, ua.VariantType.Double)
    await line.add_variable(ua.NodeId(1001, ns), "Count", 4711, ua.VariantType.UInt32)
    await line.add_variable(ua.NodeId(1002, ns), "Running", True, ua.VariantType.Boolean)
    await line.add_variable(ua.NodeId(1003, ns), "Flow", 10.1, ua.VariantType.Float)
    mode = await line.add_variable(ua.NodeId(1004, ns), "Mode", "auto", ua.VariantType.String)
    await mode.set_writable()
    async with server:
        yield server


async def test_run_maps_an_opcua_server_that_edgedev_did_not_start(
    tmp_path: Path, mqtt_url: str
) -> None:
    port = free_port()
    address = f"opc.tcp://127.0.0.1:{port}/vendor/plc"
    path = write_yaml(
        tmp_path,
        [
            model(
                "vendor",
                [
                    {"name": "temp", "type": "DOUBLE", "accessMode": "ReadOnly"},
                    {"name": "count", "type": "INT", "accessMode": "ReadOnly"},
                    {"name": "running", "type": "BOOLEAN", "accessMode": "ReadOnly"},
                    {"name": "flow", "type": "FLOAT", "accessMode": "ReadOnly"},
                    {"name": "mode", "type": "STRING"},
                    {"name": "temp2", "type": "DOUBLE", "accessMode": "ReadOnly"},
                ],
            ),
            device(
                "plc-1",
                "vendor",
                address,
                [
                    visit("temp", "ns=2;s=Line1.Temp"),
                    visit("count", "ns=2;i=1001"),
                    visit("running", "ns=2;i=1002"),
                    visit("flow", "ns=2;i=1003"),
                    visit("mode", "nsu=urn:vendor:plant;i=1004"),
                    {
                        "name": "temp2",
                        "collectCycle": 200,
                        "visitors": {
                            "protocolName": "opcua",
                            "configData": {"browsePath": "/2:Line1/2:Temp"},
                        },
                    },
                ],
            ),
        ],
    )
    topic_root = root()
    with portal() as p:
        cm = vendor_server(port)
        await anyio.to_thread.run_sync(p.call, cm.__aenter__)
        try:
            async with Bus(mqtt_url) as bus, Recorder(bus, f"{topic_root}/#") as recorder:
                with edgedev_process(
                    "run", "-f", str(path), "--broker", mqtt_url, "--topic-root", topic_root
                ):
                    update = await recorder.wait_for(topic_endswith("/twin/update"), timeout=30)
                    state = await recorder.wait_for(topic_endswith("/state/update"))
        finally:
            await anyio.to_thread.run_sync(p.call, cm.__aexit__, None, None, None)
    assert update.topic == f"{topic_root}/device/default/plc-1/twin/update"
    twin = json.loads(update.payload)["twin"]
    assert {k: (v["actual"]["value"], v["metadata"]["type"]) for k, v in twin.items()} == {
        "temp": ("21.5", "float"),
        "count": ("4711", "int"),
        "running": ("true", "boolean"),
        "flow": ("10.1", "float"),
        "mode": ("auto", "string"),
        "temp2": ("21.5", "float"),  # the same node, found by its browse path
    }
    assert json.loads(state.payload)["state"] == "online"


def example_and_demo(tmp_path: Path, port: int) -> tuple[list[str], int]:
    """examples/opcua.yaml on ``port``, and the OPC-UA part of ``edgedev demo``, as files."""
    from edgedev.cli._demo import demo_files

    example = tmp_path / "opcua.yaml"
    example.write_text(EXAMPLE.read_text().replace(":4841/", f":{port}/"))
    (tmp_path / "demo").mkdir()
    demo = next(f for f in demo_files(tmp_path / "demo") if f.endswith("opcua.yaml"))
    found = re.search(r"127\.0\.0\.1:(\d+)/", Path(demo).read_text())
    assert found is not None
    return ["-f", str(example), "-f", demo], int(found.group(1))


async def test_simulate_serves_the_example_and_the_demo_that_run_maps(
    tmp_path: Path, mqtt_url: str
) -> None:
    port = free_port()
    files, demo_port = example_and_demo(tmp_path, port)
    topic_root = root()
    with edgedev_process("simulate", *files):
        for each in (port, demo_port):
            await anyio.to_thread.run_sync(wait_for_port, "127.0.0.1", each, 30.0)
        async with Bus(mqtt_url) as bus, Recorder(bus, f"{topic_root}/#") as recorder:
            with edgedev_process("run", *files, "--broker", mqtt_url, "--topic-root", topic_root):
                update = await recorder.wait_for(
                    topic_endswith("/default/boiler-1/twin/update"), timeout=30
                )
                # the demo's filler runs in subscribe mode: its server pushes every value
                await recorder.wait_for(
                    lambda m: (
                        m.topic.endswith("/demo/filler-1/twin/update")
                        and len(merged(recorder, "filler-1")) == 5
                    ),
                    timeout=30,
                )
    assert update.topic == f"{topic_root}/device/default/boiler-1/twin/update"
    twin = json.loads(update.payload)["twin"]
    types = {k: v["metadata"]["type"] for k, v in twin.items()}
    assert types == {
        "temperature": "float",
        "pressure": "float",
        "burnerOn": "boolean",
        "starts": "int",
        "setpoint": "float",
        "label": "string",
    }
    assert 40 <= float(twin["temperature"]["actual"]["value"]) <= 90
    assert twin["setpoint"]["actual"]["value"] == "65.0"
    assert twin["label"]["actual"]["value"] == "cellar"
    filler = merged(recorder, "filler-1")
    assert filler["speed"]["actual"]["value"] == "600"
    assert 60 <= float(filler["temperature"]["actual"]["value"]) <= 80
