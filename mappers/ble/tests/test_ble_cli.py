"""The BLE mapper from the outside: a separately started `edgedev simulate`, the example file,
and importing the driver where there is no Bluetooth."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from ble_helpers import TIMEOUT, device, load, model, reports, root, state, visit, write_yaml

from edgedev import Bus, Mapper, Problem, load_devices
from edgedev.mqtt import KubeEdgeMqtt
from edgedev.testing import Recorder, free_port, wait_for_port
from edgedev_ble import BleSimulator, control

REPO = Path(__file__).resolve().parents[3]


@pytest.mark.broker
async def test_a_mapper_reaches_peripherals_served_by_edgedev_simulate(
    tmp_path: Path, mqtt_url: str
):
    port = free_port()
    props = [{"name": "temperature", "type": "FLOAT", "accessMode": "ReadOnly"}]
    visits = [visit("temperature", "2A6E", cycle=100, format="int16le", scale=0.01)]
    path = write_yaml(
        tmp_path, [model("t", props), device("t", "t", "C4:7C:8D:6A:00:01", port, visits)]
    )
    devices = load_devices([path])
    topic_root = root()
    command = [sys.executable, "-m", "edgedev", "simulate", "-f", str(path)]
    async with await anyio.open_process(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    ) as process:
        try:
            await anyio.to_thread.run_sync(wait_for_port, "127.0.0.1", port, 60.0)
            mapper = Mapper(devices, transports=[KubeEdgeMqtt(mqtt_url, topic_root=topic_root)])
            async with anyio.create_task_group() as tg:
                async with Bus(mqtt_url) as bus, Recorder(bus, f"{topic_root}/#") as recorder:
                    await tg.start(mapper.run)
                    # notified: the simulator pushes a value every collectCycle (100 ms)
                    await recorder.wait_count(
                        reports("default/t", "temperature"), 3, timeout=TIMEOUT
                    )
                    # the separate simulator takes the peripheral away on demand, and back
                    mac = "C4:7C:8D:6A:00:01"
                    await control("127.0.0.1", port, mac, present=False)
                    offline = await recorder.wait_for(
                        state("default/t", "offline"), timeout=TIMEOUT
                    )
                    await control("127.0.0.1", port, mac, present=True)
                    index = recorder.messages.index(offline)
                    await recorder.wait_for(
                        state("default/t", "online"), after=index, timeout=TIMEOUT
                    )
                    back = len(recorder.messages)
                    await recorder.wait_for(
                        reports("default/t", "temperature"), after=back, timeout=TIMEOUT
                    )
                tg.cancel_scope.cancel()
        finally:
            process.terminate()
            with anyio.move_on_after(10):
                await process.wait()


def test_the_example_file_loads_and_simulates():
    devices = load_devices([REPO / "examples" / "ble.yaml"])
    assert {d.id for d in devices} == {"demo/env-sensor-1", "demo/sensortag-1"}
    sim = BleSimulator(devices)
    # the SensorTag's two temperatures share one characteristic value, each in its field
    tag = sim.peripheral("demo/sensortag-1")
    assert tag.of_property["ambient-temperature"] is tag.of_property["object-temperature"]
    sim.set("demo/sensortag-1", "ambient-temperature", 21.5)
    sim.set("demo/sensortag-1", "object-temperature", 33.25)
    assert sim.get("demo/sensortag-1", "ambient-temperature") == 21.5
    assert sim.get("demo/sensortag-1", "object-temperature") == 33.25


def test_the_demo_fleet_has_a_ble_device(tmp_path: Path):
    text = BleSimulator.demo_yaml(free_port)
    path = tmp_path / "ble.yaml"
    path.write_text(text)
    (spec,) = load_devices([path])
    assert spec.protocol == "ble"
    assert "sim://127.0.0.1:" in str(spec.config.model_dump())


def test_importing_the_driver_needs_no_bluetooth_stack():
    code = (
        "import sys, edgedev_ble, edgedev_ble.driver;"
        "from edgedev import drivers;"
        "assert drivers.get('ble') is edgedev_ble.BleDriver;"
        "loaded = [m for m in sys.modules if m.startswith(('dbus_fast', 'bleak.backends.bluez'))];"
        "assert not loaded, loaded"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_an_unknown_backend_in_the_environment_keeps_the_device_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from edgedev import DeviceError
    from edgedev_ble import BleDriver

    monkeypatch.setenv("EDGEDEV_BLE_BACKEND", "serial:///dev/ttyUSB0")
    props = [{"name": "v", "type": "INT", "accessMode": "ReadOnly"}]
    (spec,) = load(
        tmp_path,
        [model("m", props), device("d", "m", "C4:7C:8D:6A:00:01", None, [visit("v", "FFF1")])],
    )
    with pytest.raises(DeviceError, match="sim://HOST:PORT"):
        anyio.run(BleDriver(spec).connect)


def test_the_public_names_are_exported():
    import edgedev_ble

    assert sorted(edgedev_ble.__all__) == sorted(set(edgedev_ble.__all__))
    for name in edgedev_ble.__all__:
        assert getattr(edgedev_ble, name) is not None, name


def test_loading_warns_of_an_int_property_with_a_fractional_scale(tmp_path: Path):
    props = [
        {"name": "temperature", "type": "INT", "accessMode": "ReadOnly"},
        {"name": "humidity", "type": "INT", "accessMode": "ReadOnly"},
        {"name": "level", "type": "INT", "accessMode": "ReadOnly"},
    ]
    visits = [
        visit("temperature", "2A6E", format="int16le", scale=0.01),
        visit("humidity", "2A6F", format="uint16le", scale=100),
        visit("level", "2A19", scale=0.5),  # no format: the scale is not applied
    ]
    path = write_yaml(
        tmp_path, [model("t", props), device("t", "t", "C4:7C:8D:6A:00:01", 1, visits)]
    )
    warnings: list[Problem] = []
    load_devices([path], warnings=warnings)
    (warning,) = warnings  # an integral scale keeps readings int; no format, no scaling
    assert warning.field == "spec.properties[0].visitors.configData.scale"
    assert "INT property 'temperature' with scale 0.01" in warning.message
    assert "make the DeviceModel type FLOAT" in warning.message
