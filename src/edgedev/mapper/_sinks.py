"""Where a device's reports go: the seam between the runtime and its outputs.

The :class:`~edgedev.mapper.DeviceRunner` hands every twin report and state change to the
mapper's sinks; each sink queues inside and sends on its own (KubeEdge DMI, telemetry
services), so that a slow or absent destination never blocks a device.
"""

from __future__ import annotations

from abc import ABC
from collections.abc import Sequence
from dataclasses import dataclass

from edgedev.config._spec import DeviceSpec
from edgedev.twin._state import DeviceState
from edgedev.twin._values import Value


@dataclass(frozen=True, slots=True)
class Reading:
    """One value of one property, as read or pushed.

    Attributes:
        name: the property.
        value: the typed value.
        text: its wire string.
        timestamp: when it was read, in ms since the epoch.
    """

    name: str
    value: Value
    text: str
    timestamp: int


class ReportSink(ABC):  # noqa: B024 (every method has a no-op default on purpose)
    """A destination of reports; override what you need. No method may block or raise."""

    def readings(self, device: DeviceSpec, readings: Sequence[Reading]) -> None:  # noqa: B027
        """Every value just read or pushed, at the collect cycle."""

    def twin(self, device: DeviceSpec, readings: Sequence[Reading]) -> None:  # noqa: B027
        """The twin report: properties due at their report cycle, changed, or just written."""

    def state(  # noqa: B027
        self, device: DeviceSpec, state: DeviceState, reason: str | None
    ) -> None:
        """The device's state changed; ``reason`` says why when it is not online."""

    def removed(self, device: DeviceSpec) -> None:  # noqa: B027
        """The device left the mapper (after its last ``state``); forget what waits for it."""

    async def run(self) -> None:  # noqa: B027
        """Send what is queued, until cancelled (a task of the mapper's task group)."""

    async def flush(self) -> None:  # noqa: B027
        """Send what is queued, on the way out (bounded by the caller's timeout)."""
