"""Device configuration: KubeEdge resources and the resolved specs (loaded by edgedev.loader)."""

from __future__ import annotations

from edgedev.config._crd import (
    API_VERSION,
    AccessMode,
    CamelModel,
    DeviceModelResource,
    DeviceResource,
)
from edgedev.config._spec import DeviceSpec, PropertySpec

__all__ = (
    "API_VERSION",
    "AccessMode",
    "CamelModel",
    "DeviceModelResource",
    "DeviceResource",
    "DeviceSpec",
    "PropertySpec",
)
