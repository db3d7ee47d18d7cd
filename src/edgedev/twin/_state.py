"""The states a device reports on ``state/update``."""

from __future__ import annotations

from enum import StrEnum


class DeviceState(StrEnum):
    """A device's state as KubeEdge's EdgeCore accepts it on ``state/update``.

    ``UNKNOWN`` is a device not yet connected (or never heard of); ``UNHEALTHY`` a device
    that answers, but with protocol exceptions only (no data).
    """

    ONLINE = "online"
    OFFLINE = "offline"
    UNHEALTHY = "unhealthy"
    UNKNOWN = "unknown"
