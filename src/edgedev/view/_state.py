"""A live picture of twin traffic, behind ``watch --table``, the demo's table and the web view.

Pure: messages in, state out (a text table, or JSON-ready dicts).

It reads what mappers publish (``twin/update``, ``state/update``) and what the twin agent
answers (``twin/update/document``, ``twin/update/result``, ``twin/get/result``,
``twin/update/delta``), so that desired and reported values show side by side. Each numeric
property keeps a bounded window of recent values (:class:`History`), each BOOLEAN or STRING
property its last changes (a timeline); both are bounded in count, whatever the traffic.
"""

from __future__ import annotations

import json
import logging
import math
import time
from array import array
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from edgedev.bus._topics import Channel, DeviceTopic, Topics
from edgedev.config._spec import DeviceSpec
from edgedev.twin._values import PropertyType, is_pending
from edgedev.wire import parse_type, type_name
from edgedev.wire._messages import (
    MsgTwin,
    StateUpdate,
    TwinDelta,
    TwinDocument,
    TwinUpdate,
    _text,
)

log = logging.getLogger("edgedev.view")

MAX_DEVICES = 20_000
"""Devices a view keeps at most; messages of further devices are ignored (logged once)."""

MAX_PROPERTIES = 1_000
"""Properties per device a view keeps at most."""

TIMELINE_CHANGES = 64
"""Changes a BOOLEAN or STRING property's timeline keeps at most."""

UNKNOWN_STATE = "unknown"
"""The state of a device no ``state/update`` has been seen for."""


class History:
    """The recent values of one numeric property: a ring of ``points`` time slots.

    The window (``window`` seconds) is cut into ``points`` slots of equal length; a slot keeps
    the last value that arrived in it. Memory is fixed (``points`` doubles) however fast values
    arrive, and a value costs a few operations.
    """

    __slots__ = ("_last", "_values", "step")

    def __init__(self, window: float, points: int) -> None:
        if window <= 0 or points < 2:
            raise ValueError("a history needs a positive window and at least 2 points")
        self.step = window / points
        self._values = array("d", [math.nan]) * points
        self._last = -1

    def add(self, when: float, value: float) -> None:
        """Record ``value`` at ``when`` (seconds since the epoch); older slots age out."""
        slot = int(when // self.step)
        values = self._values
        last = self._last
        if slot == last:  # the common case: another value in the newest slot
            values[slot % len(values)] = value
            return
        size = len(values)
        if slot > last:
            if last >= 0:
                for gap in range(last + 1, min(slot, last + size + 1)):
                    self._values[gap % size] = math.nan
            self._last = slot
        elif slot <= last - size:
            return  # older than the window
        self._values[slot % size] = value

    def points(self, since: float = 0.0) -> list[tuple[float, float]]:
        """``(slot start time, value)`` of every filled slot that starts at ``since`` or later."""
        size = len(self._values)
        last = self._last
        if last < 0:
            return []
        first = max(last - size + 1, math.ceil(since / self.step) if since > 0 else 0)
        out = []
        for slot in range(first, last + 1):
            value = self._values[slot % size]
            if not math.isnan(value):
                out.append((round(slot * self.step, 3), value))
        return out


@dataclass(slots=True)
class PropertyView:
    """What was last seen of one property (and what its DeviceModel says, when known)."""

    reported: str | None = None
    desired: str | None = None
    type: str = ""
    updated: float = 0.0
    error: str | None = None
    unit: str = ""
    writable: bool | None = None
    minimum: float | None = None
    maximum: float | None = None
    history: History | None = None
    changes: deque[tuple[float, str]] | None = None
    numeric: bool = False
    """Whether :attr:`type` is a number type (kept with it by :meth:`set_type`)."""

    def set_type(self, wire: str) -> None:
        """Take ``metadata.type`` (``float`` ...)."""
        if wire != self.type:
            self.type = wire
            self.numeric = self.property_type.is_number

    @property
    def property_type(self) -> PropertyType:
        """The type from ``metadata.type`` (STRING when unknown)."""
        return parse_type(self.type) or PropertyType.STRING

    @property
    def pending(self) -> bool:
        """Whether a desired value is set and not reported yet."""
        return is_pending(self.desired, self.reported, self.property_type)

    def note(self) -> str:
        """``pending``, the last write failure, or nothing."""
        if not self.pending:
            return ""
        return f"write failed: {self.error}" if self.error else "pending"

    def record(self, when: float, window: float, points: int) -> None:
        """Add the reported value to the history (numbers) or the timeline (others)."""
        text = self.reported
        if text is None:
            return
        if self.numeric:
            try:
                number = float(text)
            except ValueError:
                return
            if number - number != 0.0:  # inf or nan: nothing to chart
                return
            history = self.history
            if history is None:
                history = self.history = History(window, points)
            history.add(when, number)
            return
        if self.changes is None:
            self.changes = deque(maxlen=TIMELINE_CHANGES)
        if not self.changes or self.changes[-1][1] != text:
            self.changes.append((when, text))


@dataclass(slots=True)
class DeviceView:
    """What was last seen of one device."""

    state: str = UNKNOWN_STATE
    properties: dict[str, PropertyView] = field(default_factory=dict)
    updates: int = 0
    since: float = 0.0
    """When the device entered :attr:`state` (seconds since the epoch; 0: not known)."""
    protocol: str = ""
    model: str = ""
    updated: float = 0.0
    """When the last report arrived."""


def _take(prop: PropertyView, twin: MsgTwin, now: float) -> None:
    """Copy the agent's copy of a property (a document, a result) into ``prop``.

    Its ``expected`` is the desired value (absent: none); its reported value only fills in
    what no reading brought yet (readings come from the mappers' ``twin/update``).
    """
    if twin.metadata is not None and twin.metadata.type:
        prop.set_type(twin.metadata.type)
    if twin.actual is not None and twin.actual.value is not None and prop.updated == 0.0:
        prop.reported = twin.actual.value
        stamp = twin.actual.metadata.timestamp
        prop.updated = stamp / 1000 if stamp else now
    prop.desired = twin.expected.value if twin.expected is not None else None
    prop.error = twin.error.reason if twin.error is not None else None


class TwinView:
    """Collects the twin and state messages of every device.

    Args:
        topics: the topic scheme to parse.
        window: seconds of history each numeric property keeps.
        points: slots of that history (its resolution is ``window / points``).
    """

    def __init__(self, topics: Topics, *, window: float = 600.0, points: int = 300) -> None:
        self.topics = topics
        self.window = window
        self.points = points
        self.devices: dict[str, DeviceView] = {}
        self.messages = 0
        self.header = ""
        """A line shown above the table (where the demo's broker is)."""
        self.footer = ""
        """A line shown under the table (what the demo just did)."""
        self.dirty: set[str] = set()
        """Devices changed since :meth:`take_dirty`."""
        self._new: list[str] = []
        self._full_warned = False

    def describe(self, devices: Iterable[DeviceSpec]) -> None:
        """Take protocol, model, units, types, access and ranges from the device files."""
        for spec in devices:
            device = self._device(spec.id)
            if device is None:
                continue
            device.protocol = spec.protocol
            device.model = spec.model
            for p in spec.properties:
                prop = device.properties.setdefault(p.name, PropertyView())
                prop.unit = p.unit
                prop.writable = p.writable
                prop.minimum, prop.maximum = p.minimum, p.maximum
                prop.set_type(prop.type or type_name(p.type))
            self.dirty.add(spec.id)

    def take_dirty(self) -> set[str]:
        """The devices changed since the last call."""
        dirty, self.dirty = self.dirty, set()
        return dirty

    def take_new(self) -> list[str]:
        """The devices seen for the first time since the last call."""
        new, self._new = self._new, []
        return new

    def _device(self, device_id: str) -> DeviceView | None:
        device = self.devices.get(device_id)
        if device is None:
            if len(self.devices) >= MAX_DEVICES:
                if not self._full_warned:
                    log.warning("the view keeps %d devices at most: ignoring more", MAX_DEVICES)
                    self._full_warned = True
                return None
            device = self.devices[device_id] = DeviceView()
            self._new.append(device_id)
        return device

    @staticmethod
    def _property(device: DeviceView, name: str) -> PropertyView | None:
        prop = device.properties.get(name)
        if prop is None and len(device.properties) < MAX_PROPERTIES:
            prop = device.properties[name] = PropertyView()
        return prop

    def apply(self, topic: str, payload: bytes, now: float | None = None) -> bool:
        """Take one message into account; ``False`` when it is not a twin or state message."""
        parsed = self.topics.parse(topic)
        if not isinstance(parsed, DeviceTopic):
            return False
        now = time.time() if now is None else now
        device = self._device(parsed.device_id)
        if device is None:
            return False
        try:
            if not self._apply(device, parsed.channel, payload, now):
                return False
        except ValidationError:
            return False
        self.dirty.add(parsed.device_id)
        self.messages += 1
        return True

    def _apply(self, device: DeviceView, channel: Channel, payload: bytes, now: float) -> bool:
        if channel is Channel.STATE_UPDATE:
            update = StateUpdate.model_validate_json(payload)
            if update.state != device.state:
                device.state = update.state
                device.since = update.timestamp / 1000 if update.timestamp else now
        elif channel is Channel.TWIN_UPDATE:
            return self._report(device, payload, now)
        elif channel is Channel.TWIN_DOCUMENT:
            document = TwinDocument.model_validate_json(payload)
            for name, entry in document.twin.items():
                prop = self._property(device, name) if entry.current is not None else None
                if prop is not None and entry.current is not None:
                    _take(prop, entry.current, now)
        elif channel in (Channel.TWIN_RESULT, Channel.TWIN_GET_RESULT):
            result = TwinUpdate.model_validate_json(payload)
            for name, twin in result.twin.items():
                prop = self._property(device, name) if twin is not None else None
                if prop is not None and twin is not None:
                    _take(prop, twin, now)
        elif channel is Channel.TWIN_DELTA:
            delta = TwinDelta.model_validate_json(payload)
            for name, value in delta.delta.items():
                prop = self._property(device, name)
                if prop is not None:
                    prop.desired = value
        else:
            return False
        return True

    def _report(self, device: DeviceView, payload: bytes, now: float) -> bool:
        """A ``twin/update``: new readings (and write failures) from a mapper.

        The hot path (every reading of the fleet comes through it): plain JSON read with the
        same rules as :class:`~edgedev.bus.TwinUpdate` (``actual.value`` as text, numbers and
        booleans turned into it), at a third of the cost of validating the model.
        """
        try:
            body = json.loads(payload)
        except ValueError:
            return False
        twin = body.get("twin") if isinstance(body, dict) else None
        if not isinstance(twin, dict):
            return False
        device.updates += 1
        window, points = self.window, self.points
        for name, entry in twin.items():
            if not isinstance(entry, dict):
                continue
            prop = device.properties.get(name) or self._property(device, name)
            if prop is None:
                continue
            metadata = entry.get("metadata")
            if isinstance(metadata, dict):
                wire = metadata.get("type")
                if isinstance(wire, str) and wire and wire != prop.type:
                    prop.set_type(wire)
            error = entry.get("error")
            if isinstance(error, dict):
                reason = error.get("reason")
                prop.error = reason if isinstance(reason, str) else ""
            actual = entry.get("actual")
            value = _text(actual.get("value")) if isinstance(actual, dict) else None
            if isinstance(value, str):
                prop.reported = value
                prop.updated = now
                device.updated = now
                prop.record(now, window, points)
        return True

    # JSON-ready pictures (the web view's API) --------------------------------------------
    def summary(self, device_id: str) -> dict[str, Any]:
        """One device in a line: id, state and since when, protocol, counts."""
        device = self.devices[device_id]
        namespace, _, name = device_id.partition("/")
        return {
            "id": device_id,
            "namespace": namespace,
            "name": name,
            "protocol": device.protocol,
            "model": device.model,
            "state": device.state,
            "since": device.since,
            "updated": device.updated,
            "properties": len(device.properties),
            "pending": sum(1 for p in device.properties.values() if p.pending),
        }

    def detail(self, device_id: str, since: float = 0.0) -> dict[str, Any]:
        """One device with every property, and history from ``since`` on (seconds)."""
        device = self.devices[device_id]
        props = []
        for name in sorted(device.properties):
            prop = device.properties[name]
            type_ = prop.property_type
            entry: dict[str, Any] = {
                "name": name,
                "type": type_.value if prop.type else "",
                "unit": prop.unit,
                "reported": prop.reported,
                "desired": prop.desired,
                "pending": prop.pending,
                "note": prop.note(),
                "updated": prop.updated,
                "writable": prop.writable,
                "minimum": prop.minimum,
                "maximum": prop.maximum,
                "numeric": type_.is_number,
            }
            if prop.history is not None:
                entry["history"] = prop.history.points(since)
            if prop.changes is not None:
                entry["changes"] = [c for c in prop.changes if c[0] >= since - self.window]
            props.append(entry)
        return {**self.summary(device_id), "window": self.window, "props": props}

    # the terminal table -------------------------------------------------------------------
    def render(self, now: float | None = None, width: int = 120) -> str:
        """The table: one line per property, grouped by device."""
        now = time.time() if now is None else now
        lines = [self.header] if self.header else []
        lines += [
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
