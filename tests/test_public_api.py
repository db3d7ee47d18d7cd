"""The public API: every name in each ``__all__`` exists, and the lists resolve."""

from __future__ import annotations

import importlib

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
