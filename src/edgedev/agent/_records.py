"""What the agent knows of each device, and the rows it persists. Pure data."""

from __future__ import annotations

from dataclasses import dataclass, field

from edgedev.twin._state import DeviceState
from edgedev.twin._twin import Twin, TwinProperty


@dataclass(slots=True)
class DeviceRecord:
    """One device as the agent tracks it.

    Attributes:
        twin: the device's twin (properties, versions, and the model when known).
        state: the last state reported (``online``, ``offline`` ...), ``unknown`` at first.
        last_online: when the device was last seen online (or went offline), in ms.
        node: the edge node the device is bound to, when known.
        mapper: the mapper that serves the device, as it announced itself.
        mapper_started: when that mapper instance started, in ms (to ignore older wills).
        declared: the desired value a Device file declared for each property, last time the
            agent read the files; a file value is applied again only when it changes.
        delta_sent: the delta last published to the mapper (not persisted).
    """

    twin: Twin
    state: str = DeviceState.UNKNOWN
    last_online: int = 0
    node: str | None = None
    mapper: str | None = None
    mapper_started: int = 0
    declared: dict[str, str | None] = field(default_factory=dict)
    delta_sent: dict[str, str] = field(default_factory=dict)

    @property
    def id(self) -> str:
        """``namespace/name``."""
        return self.twin.device_id


@dataclass(frozen=True, slots=True)
class DeviceRow:
    """The persisted part of a :class:`DeviceRecord`, without its properties."""

    id: str
    state: str = DeviceState.UNKNOWN
    last_online: int = 0
    node: str | None = None
    mapper: str | None = None
    mapper_started: int = 0


@dataclass(frozen=True, slots=True)
class PropertyRow:
    """One persisted property: its twin state and the desired value its file declared."""

    device: str
    name: str
    prop: TwinProperty
    declared: str | None = None


def device_row(record: DeviceRecord) -> DeviceRow:
    """The row of ``record``."""
    return DeviceRow(
        record.id,
        record.state,
        record.last_online,
        record.node,
        record.mapper,
        record.mapper_started,
    )


def property_row(record: DeviceRecord, name: str) -> PropertyRow:
    """The row of property ``name`` of ``record``."""
    return PropertyRow(record.id, name, record.twin.properties[name], record.declared.get(name))
