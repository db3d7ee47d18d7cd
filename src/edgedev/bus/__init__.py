"""The MQTT event bus: KubeEdge's topic scheme, payloads, and a reconnecting client."""

from __future__ import annotations

from edgedev.bus._client import Bus, BusError
from edgedev.bus._messages import (
    MapperState,
    MembershipDevice,
    MembershipResult,
    MsgTwin,
    StateUpdate,
    TwinDelta,
    TwinDocEntry,
    TwinDocument,
    TwinResult,
    TwinUpdate,
    WireValue,
    WriteError,
    dumps,
    new_event_id,
    now_ms,
    state_update,
    twin_get,
    twin_report,
    write_error_report,
)
from edgedev.bus._outbox import MemoryOutbox, Message, Outbox
from edgedev.bus._sqlite_outbox import SqliteOutbox
from edgedev.bus._topics import (
    DEFAULT_ROOT,
    Channel,
    DeviceTopic,
    NodeChannel,
    NodeTopic,
    Topics,
    split_device_id,
)
from edgedev.bus._url import DEFAULT_BROKER, BrokerConfigError, BrokerURL

__all__ = (
    "DEFAULT_BROKER",
    "DEFAULT_ROOT",
    "BrokerConfigError",
    "BrokerURL",
    "Bus",
    "BusError",
    "Channel",
    "DeviceTopic",
    "MapperState",
    "MembershipDevice",
    "MembershipResult",
    "MemoryOutbox",
    "Message",
    "MsgTwin",
    "NodeChannel",
    "NodeTopic",
    "Outbox",
    "SqliteOutbox",
    "StateUpdate",
    "Topics",
    "TwinDelta",
    "TwinDocEntry",
    "TwinDocument",
    "TwinResult",
    "TwinUpdate",
    "WireValue",
    "WriteError",
    "dumps",
    "new_event_id",
    "now_ms",
    "split_device_id",
    "state_update",
    "twin_get",
    "twin_report",
    "write_error_report",
)
