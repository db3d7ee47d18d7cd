"""The public API: every name in each ``__all__`` exists, and the lists resolve."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

MODULES = [
    "edgedev",
    "edgedev.bus",
    "edgedev.config",
    "edgedev.drivers",
    "edgedev.mapper",
    "edgedev.simulate",
    "edgedev.twin",
    "edgedev.testing",
    "edgedev.broker",
    "edgedev.agent",
    "edgedev.health",
    "edgedev.view",
    "edgedev.loader",
    "edgedev.wire",
    "edgedev.sinks",
    "edgedev.rest",
    "edgedev.discover",
    "edgedev.mqtt",
    "edgedev.sparkplug",
]


@pytest.mark.parametrize("name", MODULES)
def test_all_names_exist(name: str):
    """Sorting is ruff's job (RUF022); here every exported name must resolve."""
    module = importlib.import_module(name)
    exported = module.__all__
    assert isinstance(exported, tuple)
    for item in exported:
        assert getattr(module, item) is not None, item


@pytest.mark.needs("edgedev_modbus")
def test_installed_drivers_are_found_through_entry_points():
    from edgedev import drivers, simulators

    assert "modbus" in drivers.names()
    assert "modbus" in simulators.names()
    assert drivers.get("modbus").__name__ == "ModbusDriver"


PROTOCOL_PACKAGES = [
    pytest.param(name, marks=pytest.mark.needs(name))
    for name in ("edgedev_modbus", "edgedev_opcua", "edgedev_ble", "edgedev_gpio")
]


@pytest.mark.parametrize("package", PROTOCOL_PACKAGES)
def test_a_protocol_package_loads_neither_the_mqtt_client_nor_the_runtime(package: str):
    """A driver needs edgedev's driver interface and values only (docs/writing-a-driver.md).

    (The MQTT device driver is left out: its devices are on a broker, reached with the bus.)
    """
    check = (
        f"import sys, {package}, edgedev; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'paho' "
        "or m.startswith(('edgedev.mapper', 'edgedev.bus', 'edgedev.mqtt', 'edgedev.loader'))))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, check=True, timeout=60
    ).stdout.strip()
    assert loaded == "[]"
