"""A live picture of twin traffic, behind ``watch --table``, the demo's table and the web view.

Pure: messages in, state out (a text table, or JSON-ready dicts).

It reads what mappers publish (``twin/update``, ``state/update``, and the retained
``state/current`` and announcements that tell a view started later the state of every
device: :class:`~edgedev.twin.Presence` says which holds) and what the twin agent
answers (``twin/update/document``, ``twin/update/result``, ``twin/get/result``,
``twin/update/delta``), so that desired and reported values show side by side. Each numeric
property keeps a bounded window of recent values (:class:`History`), each BOOLEAN or STRING
property its last changes (a timeline); both are bounded in count, whatever the traffic.

Memory is bounded in total, not only per device: at most :data:`MAX_DEVICES` devices and
:data:`MAX_TOTAL_PROPERTIES` properties, histories within :data:`MAX_HISTORY_BYTES`,
:data:`MAX_TIMELINES` timelines, texts cut to :data:`MAX_TEXT` characters (a few hundred MB
at the very worst, whatever is published). Only devices that a mapper, the twin agent or a
file declares are shown: a ``twin/get``, a ``twin/update`` that only asks for desired values
(a client's request, which the agent may refuse) or the agent's refusal adds no device, and
neither do ids that are not
``namespace/name`` or property names EdgeCore would refuse. What is left out is counted
(:attr:`TwinView.ignored`) and logged once per kind.
"""

from __future__ import annotations

import json
import logging
import math
import time
from array import array
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from edgedev.agent._input import device_id_problem, property_name_problem
from edgedev.bus._topics import Channel, DeviceTopic, MapperTopic, Topics
from edgedev.config._spec import DeviceSpec
from edgedev.twin._presence import Presence
from edgedev.twin._values import PropertyType, is_pending
from edgedev.wire import parse_type, type_name
from edgedev.wire._messages import (
    CurrentState,
    MapperState,
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

MAX_TOTAL_PROPERTIES = 100_000
"""Properties of all devices together a view keeps at most."""

MAX_HISTORY_BYTES = 32 * 1024 * 1024
"""Bytes of numeric history of all properties together (each costs ``points`` doubles);
properties beyond show their last value without a chart."""

TIMELINE_CHANGES = 64
"""Changes a BOOLEAN or STRING property's timeline keeps at most."""

MAX_TIMELINES = 2_048
"""Timelines of all properties together; properties beyond show their last value only."""

MAX_TEXT = 512
"""Characters of a value, desired value or error kept (EdgeCore's own limit for values);
longer ones are cut and end with an ellipsis."""

UNKNOWN_STATE = "unknown"
"""The state of a device no ``state/update`` has been seen for."""


def _cut(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "\u2026"


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
    quality: str | None = None
    """``Uncertain`` or ``Bad`` when the device says so (``None``: Good)."""
    quality_reason: str = ""
    """Why the property is Bad (``BadSensorFailure`` ...)."""
    unit: str = ""
    writable: bool | None = None
    minimum: float | None = None
    maximum: float | None = None
    history: History | None = None
    changes: deque[tuple[float, str]] | None = None
    numeric: bool = False
    """Whether :attr:`type` is a number type (kept with it by :meth:`set_type`)."""
    left_out: bool = False
    """Whether the view's budget had no room for this property's history or timeline."""

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
        """The value's quality when not Good, ``pending``, the last write failure, or nothing."""
        if self.quality == "Bad":
            return f"Bad: {self.quality_reason}" if self.quality_reason else "Bad"
        if self.quality:
            return self.quality
        if not self.pending:
            return ""
        return f"write failed: {self.error}" if self.error else "pending"

    def record(self, when: float, window: float, points: int, budget: _Budget) -> None:
        """Add the reported value to the history (numbers) or the timeline (others).

        A history or timeline is made only while ``budget`` has room for one.
        """
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
                if self.left_out or not budget.take_history():
                    self.left_out = True
                    return
                history = self.history = History(window, points)
            history.add(when, number)
            return
        if self.changes is None:
            if self.left_out or not budget.take_timeline():
                self.left_out = True
                return
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
    reason: str | None = None
    """Why it is offline or unhealthy, when its mapper said."""
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
        prop.reported = _cut(twin.actual.value)
        stamp = twin.actual.metadata.timestamp
        prop.updated = stamp / 1000 if stamp else now
    desired = twin.expected.value if twin.expected is not None else None
    prop.desired = None if desired is None else _cut(desired)
    prop.error = _cut(twin.error.reason) if twin.error is not None else None


class _Budget:
    """What all devices of a view hold together, against the view's totals."""

    __slots__ = ("histories", "ignored", "max_histories", "properties", "timelines", "warned")

    def __init__(self, points: int) -> None:
        self.max_histories = max(1, MAX_HISTORY_BYTES // (8 * points))
        self.histories = 0
        self.timelines = 0
        self.properties = 0
        self.ignored: dict[str, int] = {}
        self.warned: set[str] = set()

    def take_history(self) -> bool:
        if self.histories >= self.max_histories:
            self.refuse("history", f"the view charts {self.max_histories} properties at most")
            return False
        self.histories += 1
        return True

    def take_timeline(self) -> bool:
        if self.timelines >= MAX_TIMELINES:
            self.refuse("timeline", f"the view keeps {MAX_TIMELINES} timelines at most")
            return False
        self.timelines += 1
        return True

    def refuse(self, kind: str, why: str) -> None:
        """Count one thing left out; log the first of each kind."""
        self.ignored[kind] = self.ignored.get(kind, 0) + 1
        if kind not in self.warned:
            self.warned.add(kind)
            log.warning("%s: leaving out more (counted in the view's 'ignored')", why)


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
        self._budget = _Budget(points)
        self.presence = Presence(max_devices=MAX_DEVICES)
        """Every device's state, whatever order the mappers' messages came in."""

    @property
    def ignored(self) -> dict[str, int]:
        """What was left out, by kind.

        ``device`` (over the limit), ``id`` (not
        ``namespace/name``), ``property`` (over a limit, or a name EdgeCore refuses),
        ``history``, ``timeline`` (over the memory budget), ``request`` (a desired-value
        request for a device nobody declared).
        """
        return dict(self._budget.ignored)

    def describe(self, devices: Iterable[DeviceSpec]) -> None:
        """Take protocol, model, units, types, access and ranges from the device files."""
        for spec in devices:
            device = self._device(spec.id)
            if device is None:
                continue
            device.protocol = spec.protocol
            device.model = spec.model
            for p in spec.properties:
                prop = self._property(device, p.name, checked=True)
                if prop is None:
                    continue
                prop.unit = p.unit
                prop.writable = p.writable
                prop.minimum, prop.maximum = p.minimum, p.maximum
                prop.set_type(prop.type or type_name(p.type))
            self.dirty.add(spec.id)

    def describe_property(
        self,
        device_id: str,
        name: str,
        *,
        type_: PropertyType,
        unit: str = "",
        writable: bool | None = None,
        minimum: float | None = None,
        maximum: float | None = None,
    ) -> None:
        """Say what a property is, as a feed other than KubeEdge's learns it (a birth)."""
        device = self._device(device_id)
        prop = self._property(device, name) if device is not None else None
        if prop is None:
            return
        prop.unit, prop.writable = unit, writable
        prop.minimum, prop.maximum = minimum, maximum
        prop.set_type(type_name(type_))
        self.dirty.add(device_id)

    def describe_device(self, device_id: str, *, protocol: str = "", model: str = "") -> None:
        """Say what a device is (its protocol and model), as a feed learns it."""
        device = self._device(device_id)
        if device is not None:
            device.protocol, device.model = protocol or device.protocol, model or device.model
            self.dirty.add(device_id)

    def report(self, device_id: str, values: Mapping[str, str], now: float) -> None:
        """Reported values of a device, from a feed other than KubeEdge's twin updates."""
        device = self._device(device_id)
        if device is None:
            return
        device.updates += 1
        for name, text in values.items():
            prop = self._property(device, name)
            if prop is not None:
                prop.reported, prop.updated = text, now
                prop.record(now, self.window, self.points, self._budget)
        device.updated = now
        self.dirty.add(device_id)
        self.messages += 1

    def set_state(self, device_id: str, state: str, now: float) -> None:
        """A device's state, from a feed other than KubeEdge's ``state/update``."""
        device = self._device(device_id)
        if device is not None and device.state != state:
            device.state, device.since = state, now
            self.dirty.add(device_id)

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
            budget = self._budget
            if device_id_problem(device_id) is not None:
                budget.refuse("id", "a device id is not namespace/name")
                return None
            if len(self.devices) >= MAX_DEVICES:
                budget.refuse("device", f"the view keeps {MAX_DEVICES} devices at most")
                return None
            device = self.devices[device_id] = DeviceView()
            self._new.append(device_id)
        return device

    def _property(
        self, device: DeviceView, name: str, *, checked: bool = False
    ) -> PropertyView | None:
        """The property ``name`` of ``device``, made if the limits allow.

        ``checked``: the name comes from a file the loader checked, not from the bus.
        """
        prop = device.properties.get(name)
        if prop is None:
            budget = self._budget
            if not checked and property_name_problem(name) is not None:
                budget.refuse("property", "a property name is one EdgeCore refuses")
            elif len(device.properties) >= MAX_PROPERTIES:
                budget.refuse("property", f"a device has {MAX_PROPERTIES} properties at most")
            elif budget.properties >= MAX_TOTAL_PROPERTIES:
                budget.refuse("property", f"the view keeps {MAX_TOTAL_PROPERTIES} properties")
            else:
                budget.properties += 1
                prop = device.properties[name] = PropertyView()
        return prop

    def apply(self, topic: str, payload: bytes, now: float | None = None) -> bool:
        """Take one message into account; ``False`` when it is not a twin or state message."""
        parsed = self.topics.parse(topic)
        if isinstance(parsed, MapperTopic):
            return self._mapper(parsed, payload, time.time() if now is None else now)
        if not isinstance(parsed, DeviceTopic):
            return False
        now = time.time() if now is None else now
        if parsed.channel is Channel.STATE_CURRENT and not payload:
            return self.presence.forget(parsed.device_id)  # removed: its last state shows
        device = self.devices.get(parsed.device_id)
        if device is None:
            if not _declares(parsed.channel, payload):
                self._budget.ignored["request"] = self._budget.ignored.get("request", 0) + 1
                return False
            device = self._device(parsed.device_id)
            if device is None:
                return False
        try:
            if channel_state := parsed.channel in (Channel.STATE_UPDATE, Channel.STATE_CURRENT):
                self._state(parsed.device_id, parsed.channel, payload, now)
            if not channel_state and not self._apply(device, parsed.channel, payload, now):
                return False
        except ValidationError:
            return False
        self.dirty.add(parsed.device_id)
        self.messages += 1
        return True

    def _state(self, device_id: str, channel: Channel, payload: bytes, now: float) -> None:
        """A ``state/update``, or a ``state/current`` with the mapper that sent it."""
        if channel is Channel.STATE_CURRENT:
            update: StateUpdate = CurrentState.model_validate_json(payload)
        else:
            update = StateUpdate.model_validate_json(payload)
        current = update if isinstance(update, CurrentState) else None
        self.presence.device(
            device_id,
            update.state,
            update.timestamp or int(now * 1000),
            mapper=current.mapper if current else "",
            started=current.started if current else 0,
            reason=current.reason if current else None,
            known=True,
        )
        self._show_state(device_id, now)

    def _show_state(self, device_id: str, now: float) -> None:
        device = self.devices.get(device_id)
        seen = self.presence.state(device_id)
        if device is None or seen is None:
            return
        if seen.state != device.state:
            device.state = seen.state
            device.since = seen.since / 1000 if seen.since else now
        device.reason = seen.reason
        self.dirty.add(device_id)

    def _mapper(self, topic: MapperTopic, payload: bytes, now: float) -> bool:
        """A mapper's announcement: its devices, and ``offline`` when it stopped or died."""
        if not payload:
            return False
        try:
            mapper = MapperState.model_validate_json(payload)
        except ValidationError:
            return False
        if mapper.mapper != topic.mapper:
            return False
        listed = [d for d in mapper.devices[:MAX_DEVICES] if self._device(d) is not None]
        stamp = mapper.timestamp or int(now * 1000)
        if not self.presence.mapper(mapper.mapper, mapper.state, mapper.started, listed, stamp):
            return False
        for device_id in dict.fromkeys([*self.presence.devices_of(mapper.mapper), *listed]):
            self._show_state(device_id, now)
        self.messages += 1
        return True

    def _apply(self, device: DeviceView, channel: Channel, payload: bytes, now: float) -> bool:
        if channel is Channel.TWIN_UPDATE:
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
                    prop.desired = _cut(value)
        else:
            return False
        return True

    def _report(self, device: DeviceView, payload: bytes, now: float) -> bool:
        """A ``twin/update``: new readings (and write failures) from a mapper.

        The hot path (every reading of the fleet comes through it): plain JSON read with the
        same rules as :class:`~edgedev.wire.TwinUpdate` (``actual.value`` as text, numbers and
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
        window, points, budget = self.window, self.points, self._budget
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
                prop.error = _cut(reason) if isinstance(reason, str) else ""
            quality = entry.get("quality")
            if isinstance(quality, dict):  # no value: Bad, and why
                status, reason = quality.get("status"), quality.get("reason")
                prop.quality = _cut(status) if isinstance(status, str) else "Bad"
                prop.quality_reason = _cut(reason) if isinstance(reason, str) else ""
            actual = entry.get("actual")
            value = _text(actual.get("value")) if isinstance(actual, dict) else None
            if isinstance(value, str):
                assert isinstance(actual, dict)
                meta = actual.get("metadata")
                said = meta.get("quality") if isinstance(meta, dict) else None
                prop.quality = _cut(said) if isinstance(said, str) else None
                prop.quality_reason = ""
                prop.reported = value if len(value) <= MAX_TEXT else _cut(value)
                prop.updated = now
                device.updated = now
                prop.record(now, window, points, budget)
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
            "reason": device.reason,
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
                "quality": prop.quality,
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


def _declares(channel: Channel, payload: bytes) -> bool:
    """Whether a message on ``channel`` makes its device known to the view.

    A state, a delta or a twin document comes from a mapper or the agent, and so does a
    ``twin/update`` carrying reported values; a ``twin/get`` or a ``twin/update`` with desired
    values only is a client's request (which the agent may refuse), and a result without a
    twin (``twin/get/result``, ``twin/update/result``) the agent's refusal, such as its 404 for
    a device it does not know.
    """
    if channel is Channel.TWIN_GET:
        return False
    if channel not in (Channel.TWIN_UPDATE, Channel.TWIN_GET_RESULT, Channel.TWIN_RESULT):
        return True
    try:
        body = json.loads(payload)
    except ValueError:
        return False
    twin = body.get("twin") if isinstance(body, dict) else None
    if not isinstance(twin, dict) or not twin:
        return False
    if channel is not Channel.TWIN_UPDATE:
        return True
    return any(isinstance(e, dict) and isinstance(e.get("actual"), dict) for e in twin.values())
