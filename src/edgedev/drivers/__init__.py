"""The driver interface and the registry of installed drivers.

Everything a protocol package needs from edgedev, with :mod:`edgedev.twin` (typed values and
their wire strings), :mod:`edgedev.simulate` (its simulator) and :mod:`edgedev.discover` (its
discoverer): the ``Driver`` base and its settings models, the devices it is given
(``DeviceSpec``, ``PropertySpec``), the errors it raises, the shared connections
(``Endpoints``) and drift-free deadlines (``Schedule``). Importing it loads neither the MQTT
client nor the mapper runtime.
"""

from __future__ import annotations

from edgedev._drops import Drops
from edgedev._errors import DeviceError, DeviceFault, WriteRefused
from edgedev._metrics import Metric
from edgedev._plugins import Registry
from edgedev.config import AccessMode, DeviceSpec, PropertySpec
from edgedev.drivers._advice import fractional_scale
from edgedev.drivers._base import (
    AnyDriver,
    Driver,
    ProtocolConfig,
    Report,
    VisitorConfig,
)
from edgedev.drivers._capacity import Capacity
from edgedev.drivers._desired import check_desired, desired_value
from edgedev.drivers._endpoints import Endpoints, Lease, Transport, Turns
from edgedev.drivers._schedule import Schedule
from edgedev.drivers._values import (
    Expectations,
    Raw,
    ValueConfig,
    ValueRules,
    held_through_rules,
    value_problems,
    value_warnings,
)

drivers: Registry[AnyDriver] = Registry("edgedev.drivers", Driver)  # type: ignore[type-abstract]
"""Installed drivers by protocol name (entry-point group ``edgedev.drivers``)."""

__all__ = (
    "AccessMode",
    "AnyDriver",
    "Capacity",
    "DeviceError",
    "DeviceFault",
    "DeviceSpec",
    "Driver",
    "Drops",
    "Endpoints",
    "Expectations",
    "Lease",
    "Metric",
    "PropertySpec",
    "ProtocolConfig",
    "Raw",
    "Report",
    "Schedule",
    "Transport",
    "Turns",
    "ValueConfig",
    "ValueRules",
    "VisitorConfig",
    "WriteRefused",
    "check_desired",
    "desired_value",
    "drivers",
    "fractional_scale",
    "held_through_rules",
    "value_problems",
    "value_warnings",
)
