"""Device twin state: desired and reported values, versions, and the delta. No I/O.

Semantics follow device shadows (AWS IoT, Azure IoT Hub) in KubeEdge's vocabulary: each
property has an optional *desired* value (``expected`` on the wire) and an optional *reported*
value (``actual``), each with a millisecond timestamp; every accepted change increments the
property's ``version``; the *delta* holds the properties whose desired value is set and
differs from the reported one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from edgedev.twin._values import PropertyType, text_equal


@dataclass(frozen=True, slots=True)
class TwinValue:
    """A value as a wire string, with the time it was set (milliseconds since the epoch)."""

    value: str
    timestamp: int


@dataclass(frozen=True, slots=True)
class TwinProperty:
    """One property of a twin."""

    type: PropertyType
    desired: TwinValue | None = None
    reported: TwinValue | None = None
    version: int = 0

    @property
    def pending(self) -> bool:
        """Whether a desired value is set and the reported value differs from it."""
        if self.desired is None:
            return False
        if self.reported is None:
            return True
        return not text_equal(self.desired.value, self.reported.value, self.type)

    def with_desired(self, value: str | None, timestamp: int) -> TwinProperty:
        """A copy whose desired value is ``value`` (``None`` removes it), version + 1."""
        desired = None if value is None else TwinValue(value, timestamp)
        return replace(self, desired=desired, version=self.version + 1)

    def with_reported(self, value: str, timestamp: int) -> TwinProperty:
        """A copy whose reported value is ``value``, version + 1."""
        return replace(self, reported=TwinValue(value, timestamp), version=self.version + 1)


@dataclass(slots=True)
class Twin:
    """The twin of one device: its properties by name."""

    device_id: str
    properties: dict[str, TwinProperty] = field(default_factory=dict)

    def delta(self) -> dict[str, str]:
        """Desired values that the device has not reported yet, by property."""
        return compute_delta(self.properties)


def compute_delta(properties: Mapping[str, TwinProperty]) -> dict[str, str]:
    """The delta of ``properties``: each desired value that differs from the reported one."""
    return {
        name: prop.desired.value
        for name, prop in properties.items()
        if prop.desired is not None and prop.pending
    }
