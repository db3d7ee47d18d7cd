"""The states a device reports on ``state/update``."""

from __future__ import annotations

from enum import StrEnum


class DeviceState(StrEnum):
    """A device's state as KubeEdge's EdgeCore accepts it on ``state/update``.

    ``unhealthy``: the device answers, but with protocol exceptions only (no data).
    """

    ONLINE = "online"
    OFFLINE = "offline"
    UNHEALTHY = "unhealthy"
    UNKNOWN = "unknown"
