"""``edgedev demo`` shows a write going round the loop: desired, write, reported."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from edgedev.cli._demo import write_target, write_values
from edgedev.config._spec import DeviceSpec
from twin_helpers import thermostat

pytestmark = pytest.mark.needs("edgedev_modbus")  # the device the demo prefers


def test_the_demo_writes_a_range_checked_number_and_prefers_modbus(tmp_path):
    devices: list[DeviceSpec] = thermostat(tmp_path)[0]
    target = write_target(devices)
    assert target is not None
    device, prop = target
    assert (device.id, prop.name) == ("plant/thermo", "setpoint")
    assert write_values(prop) == ["15.0", "25.0", "20.0"]


@pytest.mark.slow
def test_demo_sets_the_thermostat_setpoint_and_the_table_shows_it_reported():
    result = subprocess.run(
        [sys.executable, "-m", "edgedev", "demo", "--seconds", "14"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    # without a terminal the output is a log: the broker's line once, first
    assert result.stdout.startswith("demo broker: mqtt://127.0.0.1:")
    assert result.stdout.count("demo broker:") == 1
    assert "demo: set demo/thermostat-1 setpoint=" in result.stdout
    # a setpoint row whose reported value equals the desired one the demo set
    rows = re.findall(r"setpoint\s+(\S+)\s+(\S+)\s+float", result.stdout)
    assert any(r == d and d in {"15.0", "25.0", "20.0"} for r, d in rows), rows
