"""Device twin state: desired and reported values, versions, and the delta. No I/O.

Semantics follow device shadows (AWS IoT, Azure IoT Hub) in KubeEdge's vocabulary: each
property has an optional *desired* value (``expected`` on the wire) and an optional *reported*
value (``actual``), each with a millisecond timestamp; every accepted change increments the
property's ``version``; the *delta* holds the properties whose desired value is set and
differs from the reported one.

:meth:`Twin.update` is the one way a twin changes: it takes the :class:`Change` of each
property named in one update, checks them all against the property's :class:`PropertyModel`
(when the DeviceModel is known) and its version, and applies all of them or none.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import IntEnum

from edgedev._errors import NoSuchProperty, WriteRefused
from edgedev.twin._values import (
    PropertyType,
    check_value,
    check_writable,
    check_write,
    is_pending,
    text_equal,
)


class Code(IntEnum):
    """Why an update was refused, as the HTTP-like ``code`` of ``twin/update/result``."""

    BAD_REQUEST = 400
    """The update is malformed, or a desired value is invalid or targets a ReadOnly property."""
    NOT_FOUND = 404
    """The device, or the property in a device whose model is known, does not exist."""
    CONFLICT = 409
    """The update names a version older than the stored one."""
    INTERNAL = 500
    """The agent could not store the update."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """An update refused as a whole: ``code`` and a ``reason`` in words."""

    code: Code
    reason: str


@dataclass(frozen=True, slots=True)
class TwinValue:
    """A value as a wire string, with the time it was set (milliseconds since the epoch)."""

    value: str
    timestamp: int


@dataclass(frozen=True, slots=True)
class WriteFailure:
    """A mapper's report that the device did not take a desired value.

    Attributes:
        value: the desired value the mapper tried to write.
        reason: why it failed, in words.
        timestamp: when it failed, in ms.
        retry: whether the mapper keeps retrying (device unreachable or refusing for now)
            or gave up (the value is invalid for the device: read-only, out of range).
    """

    value: str
    reason: str
    timestamp: int
    retry: bool = True


@dataclass(frozen=True, slots=True)
class PropertyModel:
    """What a DeviceModel says of a property: enough to check a desired value."""

    type: PropertyType
    writable: bool = True
    minimum: float | None = None
    maximum: float | None = None


@dataclass(frozen=True, slots=True)
class TwinProperty:
    """One property of a twin."""

    type: PropertyType
    desired: TwinValue | None = None
    reported: TwinValue | None = None
    version: int = 0
    failure: WriteFailure | None = None

    @property
    def pending(self) -> bool:
        """Whether a desired value is set and the reported value differs from it."""
        return is_pending(
            None if self.desired is None else self.desired.value,
            None if self.reported is None else self.reported.value,
            self.type,
        )

    def with_desired(self, value: str | None, timestamp: int) -> TwinProperty:
        """A copy whose desired value is ``value`` (``None`` removes it), version + 1."""
        desired = None if value is None else TwinValue(value, timestamp)
        return replace(self, desired=desired, version=self.version + 1, failure=None)

    def with_reported(self, value: str, timestamp: int) -> TwinProperty:
        """A copy whose reported value is ``value``, version + 1."""
        return replace(self, reported=TwinValue(value, timestamp), version=self.version + 1)


@dataclass(frozen=True, slots=True)
class Change:
    """What one update asks of one property.

    Attributes:
        name: the property.
        desired: a new desired value (wire string), or ``None`` for no change.
        remove_desired: remove the desired value (``null`` on the wire).
        reported: a new reported value (wire string), or ``None`` for no change.
        desired_timestamp: when the desired value was set, in ms (0: the update's time).
        reported_timestamp: when the reported value was read, in ms (0: the update's time).
        type: the value type the sender states (``metadata.type``), if any.
        version: the version the sender last saw; older than the stored one means 409.
        failure: the mapper could not write the desired value.
    """

    name: str
    desired: str | None = None
    remove_desired: bool = False
    reported: str | None = None
    desired_timestamp: int = 0
    reported_timestamp: int = 0
    type: PropertyType | None = None
    version: int | None = None
    failure: WriteFailure | None = None

    @property
    def touches_desired(self) -> bool:
        """Whether the change sets or removes the desired value."""
        return self.desired is not None or self.remove_desired


@dataclass(frozen=True, slots=True)
class Transition:
    """A property before and after an update (``last`` is ``None`` for a new property)."""

    last: TwinProperty | None
    current: TwinProperty

    @property
    def significant(self) -> bool:
        """Whether more than timestamps changed: a value, the desired value, or a failure."""
        last = self.last
        return (
            last is None
            or last.version != self.current.version
            or last.failure != self.current.failure
            or last.type != self.current.type
        )


@dataclass(frozen=True, slots=True)
class Outcome:
    """What :meth:`Twin.update` did.

    Attributes:
        refusal: why nothing was applied, or ``None`` when everything was.
        transitions: each property whose state changed, by name.
    """

    refusal: Refusal | None = None
    transitions: Mapping[str, Transition] = field(default_factory=dict)

    @property
    def accepted(self) -> bool:
        """Whether the update was applied."""
        return self.refusal is None

    @property
    def document(self) -> dict[str, Transition]:
        """The transitions worth telling apps about (see :attr:`Transition.significant`)."""
        return {n: t for n, t in self.transitions.items() if t.significant}

    @property
    def desired_changed(self) -> bool:
        """Whether a desired value was set or removed."""
        return any(
            t.last is None or t.last.desired != t.current.desired for t in self.transitions.values()
        )


@dataclass(slots=True)
class Twin:
    """The twin of one device: its properties by name.

    Attributes:
        device_id: ``namespace/name``.
        properties: the properties by name.
        model: the DeviceModel's view of each property when the device comes from a file;
            ``None`` for a device known only from the bus, whose updates are not checked
            against a model.
    """

    device_id: str
    properties: dict[str, TwinProperty] = field(default_factory=dict)
    model: dict[str, PropertyModel] | None = None

    def delta(self) -> dict[str, str]:
        """Desired values that the device has not reported yet, by property."""
        return compute_delta(self.properties)

    def update(self, changes: Iterable[Change], now: int) -> Outcome:
        """Apply every change, or none when one is refused.

        Args:
            changes: one per property named in the update.
            now: the update's time in ms, for values that carry no timestamp.

        Returns:
            The transitions applied, or the refusal (400, 404 or 409) and no change.
        """
        staged: dict[str, TwinProperty] = {}
        for change in changes:
            last = self.properties.get(change.name)
            result = self._apply(change, last, now)
            if isinstance(result, Refusal):
                return Outcome(refusal=result)
            if result != last:
                staged[change.name] = result
        transitions = {}
        for name, current in staged.items():
            transitions[name] = Transition(self.properties.get(name), current)
            self.properties[name] = current
        return Outcome(transitions=transitions)

    def set_model(self, model: Mapping[str, PropertyModel]) -> None:
        """Adopt a DeviceModel: property types follow it and every property is listed."""
        self.model = dict(model)
        for name, pm in model.items():
            prop = self.properties.get(name)
            if prop is None:
                self.properties[name] = TwinProperty(pm.type)
            elif prop.type is not pm.type:
                self.properties[name] = replace(prop, type=pm.type)

    # one property ---------------------------------------------------------------------------
    def _apply(self, change: Change, last: TwinProperty | None, now: int) -> TwinProperty | Refusal:
        """``last`` with ``change`` applied, or why the change is refused."""
        pm = self.model.get(change.name) if self.model is not None else None
        refusal = self._refusal(change, last, pm)
        if refusal is not None:
            return refusal
        type_ = _type_of(change, last, pm)
        prop = last if last is not None else TwinProperty(type_)
        if prop.type is not type_:
            prop = replace(prop, type=type_)
        if change.touches_desired:
            prop = prop.with_desired(change.desired, change.desired_timestamp or now)
        if change.reported is not None:
            prop = _with_reported(prop, change.reported, change.reported_timestamp or now)
        if change.failure is not None and _failure_applies(prop, change.failure):
            prop = replace(prop, failure=change.failure)
        return prop

    def _refusal(
        self, change: Change, last: TwinProperty | None, pm: PropertyModel | None
    ) -> Refusal | None:
        """Why ``change`` cannot be applied (400, 404, 409), or ``None``."""
        name = change.name
        if change.desired is not None and change.remove_desired:
            return Refusal(Code.BAD_REQUEST, f"{name}: a desired value cannot be set and removed")
        if change.version is not None and last is not None and change.version < last.version:
            return Refusal(
                Code.CONFLICT,
                f"{name}: version {change.version} is older than the twin's version {last.version}",
            )
        if not change.touches_desired:
            return None
        try:
            if self.model is None:  # a device known only from the bus: its type, no model
                if change.desired is not None:
                    check_value(change.desired, _type_of(change, last, None))
            elif change.desired is None:
                check_writable(self.device_id, name, pm)
            else:
                check_write(self.device_id, name, pm, change.desired)
        except NoSuchProperty as exc:
            return Refusal(Code.NOT_FOUND, str(exc))
        except WriteRefused as exc:
            return Refusal(Code.BAD_REQUEST, str(exc))
        except ValueError as exc:
            return Refusal(Code.BAD_REQUEST, f"{name}: {exc}")
        return None


def _type_of(change: Change, last: TwinProperty | None, pm: PropertyModel | None) -> PropertyType:
    """The model's type; else the type the change states; else the known one; else STRING."""
    if pm is not None:
        return pm.type
    if change.type is not None:
        return change.type
    return last.type if last is not None else PropertyType.STRING


def _with_reported(prop: TwinProperty, reported: str, stamp: int) -> TwinProperty:
    """``prop`` with a reported value; the same value again only moves its timestamp on."""
    before = prop.reported
    if before is not None and text_equal(before.value, reported, prop.type):
        prop = replace(prop, reported=TwinValue(before.value, max(stamp, before.timestamp)))
    else:
        prop = prop.with_reported(reported, stamp)
    return prop if prop.pending else replace(prop, failure=None)  # reported: no failure left


def _failure_applies(prop: TwinProperty, failure: WriteFailure) -> bool:
    """Whether a mapper's write failure is about the desired value still pending."""
    return (
        prop.desired is not None
        and prop.pending
        and text_equal(failure.value, prop.desired.value, prop.type)
    )


def compute_delta(properties: Mapping[str, TwinProperty]) -> dict[str, str]:
    """The delta of ``properties``: each desired value that differs from the reported one."""
    return {
        name: prop.desired.value
        for name, prop in properties.items()
        if prop.desired is not None and prop.pending
    }
