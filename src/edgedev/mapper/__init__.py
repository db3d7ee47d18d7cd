"""The mapper runtime: scheduling, reporting, writes and recovery for any driver."""

from __future__ import annotations

from edgedev.mapper._changes import ChangeFilter
from edgedev.mapper._desired import DesiredWriter, pending_values
from edgedev.mapper._device import (
    OFFLINE,
    ONLINE,
    UNHEALTHY,
    DeviceRunner,
    WriteResult,
    check_write,
)
from edgedev.mapper._mapper import Mapper
from edgedev.mapper._schedule import Schedule
from edgedev.mapper._sinks import Reading, ReportSink

__all__ = (
    "OFFLINE",
    "ONLINE",
    "UNHEALTHY",
    "ChangeFilter",
    "DesiredWriter",
    "DeviceRunner",
    "Mapper",
    "Reading",
    "ReportSink",
    "Schedule",
    "WriteResult",
    "check_write",
    "pending_values",
)
