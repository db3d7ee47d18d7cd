"""The smart lock of docs/protocols/ble.md, as written, against the simulated peripheral that
``edgedev simulate`` serves."""

from __future__ import annotations

from pathlib import Path

import anyio
from ble_helpers import free_port

from edgedev.loader import load_devices
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
