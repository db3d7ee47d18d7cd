"""The mapper runtime: scheduling, reporting, writes and recovery for any driver.

Also the seams around it: :class:`ReportSink` (where values and states go), :class:`TwinTransport`
(a twin transport: a sink that may bring devices and desired values) with the
:class:`MapperView` it is given, and :class:`DeviceSource` (where devices come from).
"""

from __future__ import annotations

from edgedev.mapper._changes import ChangeFilter
from edgedev.mapper._desired import DesiredWriter, Write, WriteResult, check_device_write
from edgedev.mapper._device import PUSH_QUEUE_LIMIT, DeviceRunner
from edgedev.mapper._mapper import Mapper
from edgedev.mapper._sinks import (
    BadValue,
    Reading,
    ReportSink,
    SinkChange,
    SinkSource,
    StateChanges,
    UncertainReading,
)
from edgedev.mapper._source import DeviceChanges, DeviceSource, FileSource, sync_devices
from edgedev.mapper._state_report import (
    DEFAULT_STATE_CYCLE,
    Periodic,
    StatePolicy,
    state_policy,
)
from edgedev.mapper._transport import MapperView, RunnerView, TwinTransport
from edgedev.mapper._twin_filter import TwinFilter

__all__ = (
    "DEFAULT_STATE_CYCLE",
    "PUSH_QUEUE_LIMIT",
    "BadValue",
    "ChangeFilter",
    "DesiredWriter",
    "DeviceChanges",
    "DeviceRunner",
    "DeviceSource",
    "FileSource",
    "Mapper",
    "MapperView",
    "Periodic",
    "Reading",
    "ReportSink",
    "RunnerView",
    "SinkChange",
    "SinkSource",
    "StateChanges",
    "StatePolicy",
    "TwinFilter",
    "TwinTransport",
    "UncertainReading",
    "Write",
    "WriteResult",
    "check_device_write",
    "state_policy",
    "sync_devices",
)
