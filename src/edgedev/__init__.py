"""edgedev: connect field devices to edge platforms as KubeEdge device twins over MQTT.

The public API is re-exported here; submodules group it by layer: :mod:`edgedev.config`
(KubeEdge resources), :mod:`edgedev.twin` (values and twin state), :mod:`edgedev.bus` (MQTT),
:mod:`edgedev.drivers` (the protocol interface), :mod:`edgedev.mapper` (the runtime and its
seams), :mod:`edgedev.mqtt` and :mod:`edgedev.dmi` (the twin transports) and
:mod:`edgedev.simulate` (simulated devices).

Importing this package loads the driver interface and the values (:mod:`edgedev.drivers`,
:mod:`edgedev.config`, :mod:`edgedev.twin`) and nothing above: the other names are imported on
first use, so that a driver does not load the MQTT client or the mapper runtime.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from edgedev._backoff import Backoff
from edgedev._errors import (
    ConfigError,
    DeviceError,
    DeviceFault,
    EdgedevError,
    PluginError,
    Problem,
    WriteRefused,
)
from edgedev._version import __version__
from edgedev.config import AccessMode, DeviceSpec, PropertySpec
from edgedev.drivers import Driver, ProtocolConfig, VisitorConfig, drivers
from edgedev.twin import PropertyType, Value

if TYPE_CHECKING:
    from edgedev.bus import BrokerURL, Bus, Message, Topics
    from edgedev.loader import load_devices
    from edgedev.mapper import DeviceRunner, Mapper, TwinTransport, WriteResult
    from edgedev.mqtt import KubeEdgeMqtt
    from edgedev.simulate import Simulator, simulators

_HOMES = {
    "BrokerURL": "edgedev.bus",
    "Bus": "edgedev.bus",
    "Message": "edgedev.bus",
    "Topics": "edgedev.bus",
    "load_devices": "edgedev.loader",
    "DeviceRunner": "edgedev.mapper",
    "Mapper": "edgedev.mapper",
    "TwinTransport": "edgedev.mapper",
    "WriteResult": "edgedev.mapper",
    "KubeEdgeMqtt": "edgedev.mqtt",
    "Simulator": "edgedev.simulate",
    "simulators": "edgedev.simulate",
}
"""Where each lazily imported name of the public API lives."""


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'edgedev' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # the next use finds it without this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOMES})


__all__ = (
    "AccessMode",
    "Backoff",
    "BrokerURL",
    "Bus",
    "ConfigError",
    "DeviceError",
    "DeviceFault",
    "DeviceRunner",
    "DeviceSpec",
    "Driver",
    "EdgedevError",
    "KubeEdgeMqtt",
    "Mapper",
    "Message",
    "PluginError",
    "Problem",
    "PropertySpec",
    "PropertyType",
    "ProtocolConfig",
    "Simulator",
    "Topics",
    "TwinTransport",
    "Value",
    "VisitorConfig",
    "WriteRefused",
    "WriteResult",
    "__version__",
    "drivers",
    "load_devices",
    "simulators",
)
