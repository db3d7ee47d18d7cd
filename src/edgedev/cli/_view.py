"""A live picture of twin traffic, drawn as a table. Pure: messages in, text out."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from pydantic import ValidationError

from edgedev.bus._messages import StateUpdate, TwinDelta, TwinUpdate
from edgedev.bus._topics import Channel, DeviceTopic, Topics


@dataclass(slots=True)
class PropertyView:
    """What was last seen of one property."""

    reported: str | None = None
    desired: str | None = None
    type: str = ""
    updated: float = 0.0


@dataclass(slots=True)
class DeviceView:
    """What was last seen of one device."""

    state: str = "?"
    properties: dict[str, PropertyView] = field(default_factory=dict)
    updates: int = 0


class TwinView:
    """Collects ``twin/update``, ``delta`` and ``state/update`` messages of every device."""

    def __init__(self, topics: Topics) -> None:
        self.topics = topics
        self.devices: dict[str, DeviceView] = {}
        self.messages = 0

    def apply(self, topic: str, payload: bytes, now: float | None = None) -> bool:
        """Take one message into account; ``False`` when it is not a twin or state message."""
        parsed = self.topics.parse(topic)
        if not isinstance(parsed, DeviceTopic):
            return False
        now = time.time() if now is None else now
        device = self.devices.setdefault(parsed.device_id, DeviceView())
        try:
            if parsed.channel is Channel.STATE_UPDATE:
                device.state = StateUpdate.model_validate_json(payload).state
            elif parsed.channel is Channel.TWIN_UPDATE:
                update = TwinUpdate.model_validate_json(payload)
                device.updates += 1
                for name, twin in update.twin.items():
                    if twin is None:
                        continue
                    prop = device.properties.setdefault(name, PropertyView())
                    if twin.actual is not None and twin.actual.value is not None:
                        prop.reported = twin.actual.value
                        prop.updated = now
                    if twin.expected is not None:
                        prop.desired = twin.expected.value
                    if twin.metadata is not None and twin.metadata.type:
                        prop.type = twin.metadata.type
            elif parsed.channel is Channel.TWIN_DELTA:
                delta = TwinDelta.model_validate_json(payload)
                for name, value in delta.delta.items():
                    device.properties.setdefault(name, PropertyView()).desired = value
            else:
                return False
        except ValidationError:
            return False
        self.messages += 1
        return True

    def render(self, now: float | None = None, width: int = 100) -> str:
        """The table: one line per property, grouped by device."""
        now = time.time() if now is None else now
        lines = [
            f"{'DEVICE':<24} {'STATE':<8} {'PROPERTY':<14} {'REPORTED':>14} "
            f"{'DESIRED':>10} {'TYPE':<7} AGE"
        ]
        for device_id in sorted(self.devices):
            device = self.devices[device_id]
            first = True
            for name in sorted(device.properties) or [""]:
                prop = device.properties.get(name, PropertyView())
                age = f"{now - prop.updated:4.1f}s" if prop.updated else ""
                head = f"{device_id:<24} {device.state:<8}" if first else " " * 33
                lines.append(
                    f"{head} {name:<14} {prop.reported or '':>14} "
                    f"{prop.desired or '':>10} {prop.type:<7} {age}"[:width]
                )
                first = False
        lines.append(f"{self.messages} messages")
        return "\n".join(lines)
