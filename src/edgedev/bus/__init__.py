"""The MQTT event bus: KubeEdge's topic scheme and a reconnecting client.

The payloads themselves are in :mod:`edgedev.wire`.
"""

from __future__ import annotations

from edgedev.bus._client import Bus, BusError
from edgedev.bus._health import bus_metrics, bus_ready
from edgedev.bus._outbox import MEMORY_MAX_BYTES, MemoryOutbox, Message, Outbox
from edgedev.bus._sqlite_outbox import SqliteOutbox
from edgedev.bus._topics import (
    DEFAULT_ROOT,
    Channel,
    DeviceTopic,
    MapperTopic,
    NodeChannel,
    NodeTopic,
    Topics,
    split_device_id,
    topic_level_problem,
)
from edgedev.bus._url import DEFAULT_BROKER, BrokerConfigError, BrokerURL

__all__ = (
    "DEFAULT_BROKER",
    "DEFAULT_ROOT",
    "MEMORY_MAX_BYTES",
    "BrokerConfigError",
    "BrokerURL",
    "Bus",
    "BusError",
    "Channel",
    "DeviceTopic",
    "MapperTopic",
    "MemoryOutbox",
    "Message",
    "NodeChannel",
    "NodeTopic",
    "Outbox",
    "SqliteOutbox",
    "Topics",
    "bus_metrics",
    "bus_ready",
    "split_device_id",
    "topic_level_problem",
)
