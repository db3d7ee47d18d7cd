"""Bluetooth Low Energy mapper for edgedev: a bleak driver, simulated peripherals, codecs.

Installed, it registers the ``ble`` driver and simulator through the ``edgedev.drivers`` and
``edgedev.simulators`` entry points. bleak loads its platform backend (BlueZ over D-Bus on
Linux) only when a device scans or connects, so importing this package needs no Bluetooth.
"""

from __future__ import annotations

from edgedev_ble.adapter import Adapter, Backend, resolve_backend
from edgedev_ble.codec import Codec
from edgedev_ble.config import (
    DEFAULT_SIMULATOR,
    ENV_BACKEND,
    BleProtocol,
    BleVisitor,
    DataConverter,
    Operation,
    OperationType,
)
from edgedev_ble.driver import BleDriver
from edgedev_ble.formats import Format
from edgedev_ble.peripheral import Peripheral, Write
from edgedev_ble.simbackend import SimBleakClient, SimBleakScanner, control, sim_backend
from edgedev_ble.simulator import BleSimulator

__all__ = (
    "DEFAULT_SIMULATOR",
    "ENV_BACKEND",
    "Adapter",
    "Backend",
    "BleDriver",
    "BleProtocol",
    "BleSimulator",
    "BleVisitor",
    "Codec",
    "DataConverter",
    "Format",
    "Operation",
    "OperationType",
    "Peripheral",
    "SimBleakClient",
    "SimBleakScanner",
    "Write",
    "control",
    "resolve_backend",
    "sim_backend",
)
