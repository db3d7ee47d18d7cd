"""The boiler of docs/protocols/modbus.md, as written, against a plain pymodbus server and
against ``edgedev simulate``."""

from __future__ import annotations

from pathlib import Path

import anyio
from modbus_helpers import ForeignServer, free_port

from edgedev.loader import load_devices
from edgedev.testing import docs_example, edgedev_process, wait_for_port
from edgedev_modbus import ModbusDriver

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
