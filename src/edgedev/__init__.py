"""edgedev: connect field devices to edge platforms as KubeEdge device twins over MQTT.

The public API is re-exported here; submodules group it by layer: :mod:`edgedev.config`
(KubeEdge resources), :mod:`edgedev.twin` (values and twin state), :mod:`edgedev.bus` (MQTT),
:mod:`edgedev.drivers` (the protocol interface), :mod:`edgedev.mapper` (the runtime and its
seams), :mod:`edgedev.mqtt` and :mod:`edgedev.dmi` (the twin transports) and
:mod:`edgedev.simulate` (simulated devices).
"""

from __future__ import annotations

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
from edgedev.bus import BrokerURL, Bus, Message, Topics
from edgedev.config import AccessMode, DeviceSpec, PropertySpec
from edgedev.drivers import Driver, ProtocolConfig, VisitorConfig, drivers
from edgedev.loader import load_devices
from edgedev.mapper import DeviceRunner, Mapper, TwinTransport, WriteResult
from edgedev.mqtt import KubeEdgeMqtt
from edgedev.simulate import Simulator, simulators
from edgedev.twin import PropertyType, Value

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
