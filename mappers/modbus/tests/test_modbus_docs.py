"""The examples of docs/protocols/modbus.md, as written: the boiler against a plain pymodbus
server and against ``edgedev simulate``, the connection and property examples completed into a
device."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import yaml
from modbus_helpers import ForeignServer, free_port

from edgedev.loader import load_devices
from edgedev.testing import device as kube_device
from edgedev.testing import (
    device_model,
    docs_example,
    edgedev_process,
    wait_for_port,
    write_documents,
)
from edgedev_modbus import ModbusDriver, ModbusSimulator
from edgedev_modbus.codec import Table

PAGE = Path(__file__).resolve().parents[3] / "docs" / "protocols" / "modbus.md"


def boiler(tmp_path: Path, port: int) -> Path:
    """The page's example, served on ``port``."""
    text = docs_example(PAGE, "modbus-boiler").replace("port: 5020", f"port: {port}")
    path = tmp_path / "boiler.yaml"
    path.write_text(text, encoding="utf-8")
    return path


async def test_the_boiler_reads_and_writes_as_the_page_says(tmp_path: Path) -> None:
    async with ForeignServer().running() as server:
        (spec,) = load_devices([boiler(tmp_path, server.port)])
        await server.set_holding(0, [0x8003, 2, 615, 19778, 0x0203])
        driver = ModbusDriver(spec)
        await driver.connect()
        try:
            values = await driver.read(spec.properties)
            assert values == {
                "burner": True,
                "pump": True,
                "alarm": False,
                "remote": True,
                "mode": "Cool",
                "flowTemperature": 21.5,
                "deviceType": 19778,
                "firmwareMajor": 2,
                "firmwareMinor": 3,
            }
            assert server.reads == [(3, 0, 5)]  # the five registers in one request
            await driver.write(spec.property("mode"), "Heat")
            await driver.write(spec.property("flowTemperature"), 45.0)
            await driver.write(spec.property("pump"), False)
        finally:
            await driver.close()
        assert await server.holding(0, 3) == [0x8001, 1, 850]


async def test_the_boiler_runs_against_edgedev_simulate(tmp_path: Path) -> None:
    port = free_port()
    path = boiler(tmp_path, port)
    (spec,) = load_devices([path])
    with edgedev_process("simulate", "-f", str(path)):
        await anyio.to_thread.run_sync(wait_for_port, "127.0.0.1", port, 20.0)
        driver = ModbusDriver(spec)
        await driver.connect()
        try:
            values = await driver.read(spec.properties)  # no fault: deviceType reads 19778
            assert values["deviceType"] == 19778
            assert values["mode"] in ("Off", "Heat", "Cool", "Auto")
            await driver.write(spec.property("mode"), "Auto")
            await driver.write(spec.property("remote"), True)
            await driver.write(spec.property("flowTemperature"), 55.5)
            after = await driver.read(spec.properties)
        finally:
            await driver.close()
    assert (after["mode"], after["remote"], after["flowTemperature"]) == ("Auto", True, 55.5)


def _example(tmp_path: Path, config: dict[str, Any], properties: list[dict[str, Any]]) -> Any:
    """A device of the page's examples: ``config`` as its connection, ``properties`` its own
    (their types and access in the model as ``spec`` entries name them)."""
    model = device_model("example", "modbus", [p.pop("spec") for p in properties])
    device = kube_device("example-1", "example", "modbus", config, properties)
    path = write_documents(tmp_path, [model, device])
    (spec,) = load_devices([path])
    return spec


def _holding(name: str, offset: int) -> dict[str, Any]:
    return {
        "name": name,
        "spec": {"name": name, "type": "INT", "accessMode": "ReadWrite"},
        "visitors": {
            "protocolName": "modbus",
            "configData": {"register": "HoldingRegister", "offset": offset},
        },
    }


async def test_the_tcp_connection_example_reaches_a_plain_pymodbus_server(tmp_path: Path) -> None:
    protocol = yaml.safe_load(docs_example(PAGE, "modbus-tcp"))["protocol"]
    assert protocol["protocolName"] == "modbus"
    async with ForeignServer().running() as server:
        # the page's settings, at the test server's address
        config = {**protocol["configData"], "ip": "127.0.0.1", "port": server.port}
        spec = _example(tmp_path, config, [_holding("level", 7)])
        assert (spec.config.slave_id, spec.timeout_ms) == (1, 3000)
        await server.set_holding(7, [1234])
        driver = ModbusDriver(spec)
        await driver.connect()
        try:
            assert await driver.read(spec.properties) == {"level": 1234}
            await driver.write(spec.property("level"), 77)
        finally:
            await driver.close()
        assert await server.holding(7) == [77]


async def test_the_rtu_connection_example_reaches_its_slave_on_a_serial_line(
    tmp_path: Path,
) -> None:
    """The RTU example's line settings and slave id; the line is pyserial's ``socket://``,
    carrying RTU frames to the simulator ``edgedev simulate`` runs (as on an RS-485 bus)."""
    protocol = yaml.safe_load(docs_example(PAGE, "modbus-rtu"))["protocol"]
    line = f"socket://127.0.0.1:{free_port()}"
    config = {**protocol["configData"], "serialPort": line}
    spec = _example(tmp_path, config, [_holding("level", 0)])
    assert (spec.config.slave_id, spec.config.baud_rate, spec.config.parity) == (3, 19200, "E")
    sim = ModbusSimulator([spec])
    async with anyio.create_task_group() as tg:
        await tg.start(sim.run)
        sim.set(spec.id, "level", 321)
        driver = ModbusDriver(spec)
        await driver.connect()
        try:
            assert await driver.read(spec.properties) == {"level": 321}
            await driver.write(spec.property("level"), 5)
        finally:
            await driver.close()
        tg.cancel_scope.cancel()
    assert sim.get(spec.id, "level") == 5  # slave 3 of the line answered


async def test_the_temperature_example_reads_tenths_of_a_signed_register(tmp_path: Path) -> None:
    (prop,) = yaml.safe_load(docs_example(PAGE, "modbus-temperature"))
    prop["spec"] = {"name": prop["name"], "type": "FLOAT", "accessMode": "ReadOnly"}
    spec = _example(tmp_path, {"ip": "127.0.0.1", "port": free_port()}, [prop])
    assert spec.property("temperature").collect_cycle == 0.5
    sim = ModbusSimulator([spec])
    sim.freeze(spec.id)
    async with anyio.create_task_group() as tg:
        await tg.start(sim.run)
        driver = ModbusDriver(spec)
        await driver.connect()
        try:
            seen = []
            for raw in (235, 0xFFFF - 149):  # 23.5 and -15.0 in an int16 register
                sim.set_words(spec.id, Table.INPUT, 0, [raw])
                seen.append((await driver.read(spec.properties))["temperature"])
        finally:
            await driver.close()
        tg.cancel_scope.cancel()
    assert seen == [23.5, -15.0]
