"""What a discoverer finds, before it is named and written: devices and their properties."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from edgedev.config._crd import AccessMode
from edgedev.twin._values import PropertyType


@dataclass(frozen=True, slots=True)
class PropertyDraft:
    """One property as found on the device.

    Attributes:
        name: the name as found (``Motor.Speed``, ``holding_40``); the document builder
            makes it valid and unique.
        type: the DeviceModel type.
        visitor: the visitor's ``configData``: where the property lives on the device.
        access: ``ReadWrite`` where the device lets clients write the value.
        description: the DeviceModel property's description.
        minimum: the lowest value, as text.
        maximum: the highest value, as text.
        unit: the unit of the value.
        min_cycle: the shortest sensible collect cycle in ms (an OPC-UA node's
            MinimumSamplingInterval); the property's ``collectCycle`` is at least this.
    """

    name: str
    type: PropertyType
    visitor: Mapping[str, Any]
    access: AccessMode = AccessMode.READ_ONLY
    description: str = ""
    minimum: str | None = None
    maximum: str | None = None
    unit: str = ""
    min_cycle: int | None = None

    @property
    def model_part(self) -> tuple[str, PropertyType, AccessMode, str, str | None, str | None, str]:
        """What goes into the DeviceModel: devices that share a model share these."""
        return (
            self.name,
            self.type,
            self.access,
            self.description,
            self.minimum,
            self.maximum,
            self.unit,
        )


@dataclass(frozen=True, slots=True)
class DeviceDraft:
    """One device as found.

    Attributes:
        name: the name as found (an OPC-UA object's browse path, ``unit-3``); the document
            builder makes it a valid, unique Kubernetes name.
        properties: the device's properties, in a deterministic order.
        protocol_config: the Device's ``spec.protocol.configData``.
        kind: what kind of device it is, as the protocol names it (an OPC-UA ObjectType):
            devices of one kind with the same properties share one DeviceModel named after
            it; ``None`` gives the device a DeviceModel of its own, named after it.
        annotations: the Device's ``metadata.annotations`` (what the device says about
            itself: vendor, product, revision ...).
    """

    name: str
    properties: Sequence[PropertyDraft]
    protocol_config: Mapping[str, Any]
    kind: str | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)
