"""Device configuration: KubeEdge resources, their loader, and the resolved specs."""

from __future__ import annotations

from edgedev.config._crd import (
    API_VERSION,
    AccessMode,
    CamelModel,
    DeviceModelResource,
    DeviceResource,
)
from edgedev.config._loader import load_devices, load_resources
from edgedev.config._spec import DeviceSpec, PropertySpec

__all__ = (
    "API_VERSION",
    "AccessMode",
    "CamelModel",
    "DeviceModelResource",
    "DeviceResource",
    "DeviceSpec",
    "PropertySpec",
    "load_devices",
    "load_resources",
)
