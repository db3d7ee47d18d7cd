"""MQTT device mapper for edgedev: devices that publish their own values on a broker.

Installed, it registers the ``mqtt`` driver and simulator through the ``edgedev.drivers`` and
``edgedev.simulators`` entry points. It needs nothing beyond edgedev (its MQTT client is
edgedev's own bus).
"""

from __future__ import annotations

from edgedev_mqtt.config import Connection, MqttProtocol, MqttVisitor
from edgedev_mqtt.driver import MqttDriver, MqttTransport
from edgedev_mqtt.payload import PayloadError, decode, encode, parse_path
from edgedev_mqtt.simulator import MqttSimulator

__all__ = (
    "Connection",
    "MqttDriver",
    "MqttProtocol",
    "MqttSimulator",
    "MqttTransport",
    "MqttVisitor",
    "PayloadError",
    "decode",
    "encode",
    "parse_path",
)
