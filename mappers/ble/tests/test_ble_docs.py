"""The examples of docs/protocols/ble.md, as written (the smart lock; the connection, a property
and a ``dataConverter`` as one device), against the simulated peripheral that
``edgedev simulate`` serves."""

from __future__ import annotations

from pathlib import Path

import anyio
import yaml
from ble_helpers import free_port, load, model

from edgedev.loader import load_devices
from edgedev.testing import device as kube_device
from edgedev.testing import docs_example
from edgedev_ble import BleDriver, BleSimulator

PAGE = Path(__file__).resolve().parents[3] / "docs" / "protocols" / "ble.md"
LOCK = "default/lock-1"


async def test_the_lock_reads_and_writes_as_the_page_says(tmp_path: Path) -> None:
    backend = f"sim://127.0.0.1:{free_port()}"
    text = docs_example(PAGE, "ble-lock").replace(
        'configData: {macAddress: "C4:7C:8D:6A:00:10"}',
        f'configData: {{macAddress: "C4:7C:8D:6A:00:10", backend: "{backend}"}}',
    )
    path = tmp_path / "lock.yaml"
    path.write_text(text, encoding="utf-8")
    (spec,) = load_devices([path])
    sim = BleSimulator([spec])
    sim.freeze(LOCK)
    chars = sim.peripheral(LOCK).of_property
    chars["locked"].value = b"\x81"
    chars["mode"].value = b"\x02"
    chars["battery"].value = (1200).to_bytes(2, "little")
    async with anyio.create_task_group() as tg:
        await tg.start(sim.run)
        driver = BleDriver(spec)
        await driver.connect()
        try:
            assert await driver.read(spec.properties) == {
                "locked": True,
                "doorOpen": False,
                "lowBattery": True,
                "mode": "Passage",
                "battery": 3.2,
            }
            await driver.write(spec.property("locked"), False)
            await driver.write(spec.property("mode"), "Privacy")
        finally:
            await driver.close()
        tg.cancel_scope.cancel()
    assert (chars["locked"].value, chars["mode"].value) == (b"\x80", b"\x01")


async def test_the_connection_property_and_data_converter_examples_read_a_peripheral(
    tmp_path: Path,
) -> None:
    """The page's connection (its address, adapter and timeout), its temperature property and
    its ``dataConverter`` (on a characteristic of its own) as one device, against the
    simulated peripheral behind bleak's backend seam."""
    protocol = yaml.safe_load(docs_example(PAGE, "ble-connection"))["protocol"]
    (temperature,) = yaml.safe_load(docs_example(PAGE, "ble-temperature"))
    converter = yaml.safe_load(docs_example(PAGE, "ble-data-converter"))
    converted = {
        "name": "tmp102",
        "visitors": {
            "protocolName": "ble",
            "configData": {"characteristicUUID": "FFF4", "notify": False, **converter},
        },
    }
    backend = f"sim://127.0.0.1:{free_port()}"
    config = {**protocol["configData"], "backend": backend}
    props = [
        {"name": "temperature", "type": "FLOAT", "accessMode": "ReadOnly"},
        {"name": "tmp102", "type": "FLOAT", "accessMode": "ReadOnly"},
    ]
    sensor = kube_device("sensor-1", "sensor", "ble", config, [temperature, converted])
    (spec,) = load(tmp_path, [model("sensor", props), sensor])
    assert (spec.config.adapter, spec.timeout_ms) == ("hci0", 10000)
    sim = BleSimulator([spec])
    sim.freeze(spec.id)
    chars = sim.peripheral(spec.id).of_property
    chars["temperature"].value = (-1234).to_bytes(2, "little", signed=True)
    chars["tmp102"].value = bytes([0x80, 0x0C])  # bytes 1 then 0: 0x0C80 >> 2 = 800
    async with anyio.create_task_group() as tg:
        await tg.start(sim.run)
        driver = BleDriver(spec)
        await driver.connect()
        try:
            values = await driver.read(spec.properties)
        finally:
            await driver.close()
        tg.cancel_scope.cancel()
    assert values == {"temperature": -12.34, "tmp102": 25.0}  # 800 x 0.03125
