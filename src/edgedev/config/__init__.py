"""Device configuration: KubeEdge resources and the resolved specs (loaded by edgedev.loader)."""

from __future__ import annotations

from edgedev.config._crd import (
    API_VERSION,
    AccessMode,
    CamelModel,
    DeviceMethod,
    DeviceModelResource,
    DeviceResource,
    StateReport,
)
from edgedev.config._spec import DeviceCommand, DeviceSpec, PropertySpec

__all__ = (
    "API_VERSION",
    "AccessMode",
    "CamelModel",
    "DeviceCommand",
    "DeviceMethod",
    "DeviceModelResource",
    "DeviceResource",
    "DeviceSpec",
    "PropertySpec",
    "StateReport",
)
