"""Modbus TCP/RTU mapper for edgedev: driver, simulator, codec and read planner.

Installed, it registers the ``modbus`` driver and simulator through the ``edgedev.drivers``
and ``edgedev.simulators`` entry points; pymodbus is imported only when a device connects.
"""

from __future__ import annotations

from edgedev_modbus.config import ModbusProtocol, ModbusVisitor
from edgedev_modbus.driver import Layout, ModbusDriver
from edgedev_modbus.simulator import ModbusSimulator, Request

__all__ = (
    "Layout",
    "ModbusDriver",
    "ModbusProtocol",
    "ModbusSimulator",
    "ModbusVisitor",
    "Request",
)
