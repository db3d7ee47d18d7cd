"""The driver interface and the registry of installed drivers."""

from __future__ import annotations

from edgedev._drops import Drops
from edgedev._plugins import Registry
from edgedev.drivers._advice import fractional_scale
from edgedev.drivers._base import (
    AnyDriver,
    Driver,
    ProtocolConfig,
    Report,
    VisitorConfig,
)
from edgedev.drivers._endpoints import Endpoints, Lease, Transport, Turns
from edgedev.drivers._values import (
    Expectations,
    Raw,
    ValueConfig,
    ValueRules,
    value_problems,
    value_warnings,
)

drivers: Registry[AnyDriver] = Registry("edgedev.drivers", Driver)  # type: ignore[type-abstract]
"""Installed drivers by protocol name (entry-point group ``edgedev.drivers``)."""

__all__ = (
    "AnyDriver",
    "Driver",
    "Drops",
    "Endpoints",
    "Expectations",
    "Lease",
    "ProtocolConfig",
    "Raw",
    "Report",
    "Transport",
    "Turns",
    "ValueConfig",
    "ValueRules",
    "VisitorConfig",
    "drivers",
    "fractional_scale",
    "value_problems",
    "value_warnings",
)
