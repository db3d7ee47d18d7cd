"""A live picture of twin traffic, drawn as a table. Pure: messages in, text out.

It reads what mappers publish (``twin/update``, ``state/update``) and what the twin agent
answers (``twin/update/document``, ``twin/update/result``, ``twin/get/result``,
``twin/update/delta``), so that desired and reported values show side by side.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from pydantic import ValidationError

from edgedev.bus._messages import MsgTwin, StateUpdate, TwinDelta, TwinDocument, TwinUpdate
from edgedev.bus._topics import Channel, DeviceTopic, Topics
from edgedev.twin._values import PropertyType, is_pending


@dataclass(slots=True)
class PropertyView:
    """What was last seen of one property."""

    reported: str | None = None
    desired: str | None = None
    type: str = ""
    updated: float = 0.0
    error: str | None = None

    @property
    def pending(self) -> bool:
        """Whether a desired value is set and not reported yet."""
        try:
            type_ = PropertyType(self.type.upper())
        except ValueError:
            type_ = PropertyType.STRING
        return is_pending(self.desired, self.reported, type_)

    def note(self) -> str:
        """``pending``, the last write failure, or nothing."""
        if not self.pending:
            return ""
        return f"write failed: {self.error}" if self.error else "pending"


@dataclass(slots=True)
class DeviceView:
    """What was last seen of one device."""

    state: str = "?"
    properties: dict[str, PropertyView] = field(default_factory=dict)
    updates: int = 0


def _take(prop: PropertyView, twin: MsgTwin, now: float, *, whole: bool) -> None:
    """Copy what ``twin`` says into ``prop``; ``whole``: an absent ``expected`` means none."""
    if twin.actual is not None and twin.actual.value is not None:
        prop.reported = twin.actual.value
        prop.updated = now
    if "expected" in twin.model_fields_set or whole:
        prop.desired = twin.expected.value if twin.expected is not None else None
    if twin.metadata is not None and twin.metadata.type:
        prop.type = twin.metadata.type
    if twin.error is not None:
        prop.error = twin.error.reason
    elif whole:
        prop.error = None


class TwinView:
    """Collects the twin and state messages of every device."""

    def __init__(self, topics: Topics) -> None:
        self.topics = topics
        self.devices: dict[str, DeviceView] = {}
        self.messages = 0
        self.footer = ""
        """A line shown under the table (what the demo just did)."""

    def apply(self, topic: str, payload: bytes, now: float | None = None) -> bool:
        """Take one message into account; ``False`` when it is not a twin or state message."""
        parsed = self.topics.parse(topic)
        if not isinstance(parsed, DeviceTopic):
            return False
        now = time.time() if now is None else now
        device = self.devices.setdefault(parsed.device_id, DeviceView())
        channel = parsed.channel
        try:
            if channel is Channel.STATE_UPDATE:
                device.state = StateUpdate.model_validate_json(payload).state
            elif channel is Channel.TWIN_UPDATE:
                update = TwinUpdate.model_validate_json(payload)
                device.updates += 1
                for name, twin in update.twin.items():
                    prop = device.properties.setdefault(name, PropertyView())
                    if twin is None:
                        prop.desired = None
                    else:
                        _take(prop, twin, now, whole=False)
            elif channel is Channel.TWIN_DOCUMENT:
                document = TwinDocument.model_validate_json(payload)
                for name, entry in document.twin.items():
                    if entry.current is not None:
                        prop = device.properties.setdefault(name, PropertyView())
                        _take(prop, entry.current, now, whole=True)
            elif channel in (Channel.TWIN_RESULT, Channel.TWIN_GET_RESULT):
                result = TwinUpdate.model_validate_json(payload)
                for name, twin in result.twin.items():
                    if twin is not None:
                        prop = device.properties.setdefault(name, PropertyView())
                        _take(prop, twin, now, whole=True)
            elif channel is Channel.TWIN_DELTA:
                delta = TwinDelta.model_validate_json(payload)
                for name, value in delta.delta.items():
                    device.properties.setdefault(name, PropertyView()).desired = value
            else:
                return False
        except ValidationError:
            return False
        self.messages += 1
        return True

    def render(self, now: float | None = None, width: int = 120) -> str:
        """The table: one line per property, grouped by device."""
        now = time.time() if now is None else now
        lines = [
            f"{'DEVICE':<24} {'STATE':<8} {'PROPERTY':<14} {'REPORTED':>14} "
            f"{'DESIRED':>10} {'TYPE':<7} {'AGE':>5}  NOTE"
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
                    f"{prop.desired or '':>10} {prop.type:<7} {age:>5}  {prop.note()}"[:width]
                )
                first = False
        lines.append(f"{self.messages} messages")
        if self.footer:
            lines.append(self.footer)
        return "\n".join(lines)
