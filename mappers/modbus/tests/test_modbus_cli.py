"""The command line against Modbus servers: `edgedev run`, `simulate` and `demo` as processes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from modbus_helpers import device, free_port, model, root, visit, write_yaml

from edgedev import Bus
from edgedev.testing import Recorder, edgedev_process, topic_endswith, wait_for_port

pytestmark = pytest.mark.broker


async def test_run_maps_a_modbus_server_that_edgedev_did_not_start(tmp_path: Path, mqtt_url: str):
    from pymodbus.server import ModbusTcpServer
    from pymodbus.simulator import DataType, SimData, SimDevice

    port = free_port()
    # a third-party device: holding registers 0..3 = 215 (x0.1 degC), 0x4120 0x0000 (10.0 f32)
    server = ModbusTcpServer(
        SimDevice(7, [SimData(0, values=[215, 0x4120, 0x0000, 1], datatype=DataType.REGISTERS)]),
        address=("127.0.0.1", port),
    )
    await server.serve_forever(background=True)
    try:
        path = write_yaml(
            tmp_path,
            [
                model(
                    "vendor",
                    [
                        {"name": "temp", "type": "FLOAT", "accessMode": "ReadOnly"},
                        {"name": "flow", "type": "FLOAT", "accessMode": "ReadOnly"},
                        {"name": "pump", "type": "BOOLEAN"},
                    ],
                ),
                device(
                    "vendor-1",
                    "vendor",
                    port,
                    [
                        visit(
                            "temp",
                            register="HoldingRegister",
                            offset=0,
                            dataType="int16",
                            scale=0.1,
                        ),
                        visit("flow", register="HoldingRegister", offset=1, limit=2),
                        visit("pump", register="HoldingRegister", offset=3),
                    ],
                    slaveID=7,
                ),
            ],
        )
        topic_root = root()
        async with Bus(mqtt_url) as bus, Recorder(bus, f"{topic_root}/#") as recorder:
            with edgedev_process(
                "run", "-f", str(path), "--broker", mqtt_url, "--topic-root", topic_root
            ):
                update = await recorder.wait_for(topic_endswith("/twin/update"), timeout=20)
                state = await recorder.wait_for(topic_endswith("/state/update"))
    finally:
        await server.shutdown()
    assert update.topic == f"{topic_root}/device/default/vendor-1/twin/update"
    twin = json.loads(update.payload)["twin"]
    assert {k: (v["actual"]["value"], v["metadata"]["type"]) for k, v in twin.items()} == {
        "temp": ("21.5", "float"),
        "flow": ("10.0", "float"),
        "pump": ("true", "boolean"),
    }
    assert json.loads(state.payload)["state"] == "online"


async def test_simulate_serves_the_file_that_run_maps(tmp_path: Path, mqtt_url: str):
    port = free_port()
    path = write_yaml(
        tmp_path,
        [
            model(
                "sim",
                [
                    {
                        "name": "level",
                        "type": "INT",
                        "accessMode": "ReadOnly",
                        "minimum": "0",
                        "maximum": "100",
                    }
                ],
            ),
            device("sim-1", "sim", port, [visit("level", register="InputRegister", offset=4)]),
        ],
    )
    topic_root = root()
    with edgedev_process("simulate", "-f", str(path)):
        await anyio.to_thread.run_sync(wait_for_port, "127.0.0.1", port, 20.0)
        async with Bus(mqtt_url) as bus, Recorder(bus, f"{topic_root}/#") as recorder:
            with edgedev_process(
                "run", "-f", str(path), "--broker", mqtt_url, "--topic-root", topic_root
            ):
                update = await recorder.wait_for(topic_endswith("/twin/update"), timeout=20)
    level = int(json.loads(update.payload)["twin"]["level"]["actual"]["value"])
    assert 0 <= level <= 100


def test_demo_runs_without_a_broker_and_stops_by_itself():
    result = subprocess.run(
        [sys.executable, "-m", "edgedev", "demo", "--seconds", "3"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "demo/thermostat-1" in result.stdout and "online" in result.stdout
    assert "temperature" in result.stdout
