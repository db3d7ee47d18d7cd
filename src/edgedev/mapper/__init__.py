"""The mapper runtime: scheduling, reporting, writes and recovery for any driver."""

from __future__ import annotations

from edgedev.mapper._changes import ChangeFilter
from edgedev.mapper._desired import (
    DesiredWriter,
    Write,
    WriteResult,
    check_device_write,
    pending_values,
)
from edgedev.mapper._device import PUSH_QUEUE_LIMIT, DeviceRunner
from edgedev.mapper._mapper import Mapper
from edgedev.mapper._schedule import Schedule
from edgedev.mapper._sinks import (
    MqttTwinSink,
    Reading,
    ReportSink,
    SinkChange,
    SinkSource,
    StateChanges,
    TwinFilter,
)
from edgedev.mapper._source import DeviceChanges, DeviceSource, FileSource, sync_devices

__all__ = (
    "PUSH_QUEUE_LIMIT",
    "ChangeFilter",
    "DesiredWriter",
    "DeviceChanges",
    "DeviceRunner",
    "DeviceSource",
    "FileSource",
    "Mapper",
    "MqttTwinSink",
    "Reading",
    "ReportSink",
    "Schedule",
    "SinkChange",
    "SinkSource",
    "StateChanges",
    "TwinFilter",
    "Write",
    "WriteResult",
    "check_device_write",
    "pending_values",
    "sync_devices",
)
