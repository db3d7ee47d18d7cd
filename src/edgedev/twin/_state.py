"""The state of a device as mappers report it on ``state/update``."""

from __future__ import annotations

from enum import StrEnum


class DeviceState(StrEnum):
    """A device's connection state; the values are the words EdgeCore accepts.

    ``UNKNOWN`` is a device not yet connected (or never heard of); ``UNHEALTHY`` a device
    that answers but keeps failing.
    """

    ONLINE = "online"
    OFFLINE = "offline"
    UNHEALTHY = "unhealthy"
    UNKNOWN = "unknown"
