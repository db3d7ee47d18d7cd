"""Where a device's values and state go: report sinks.

A :class:`~edgedev.mapper.DeviceRunner` reads its device and hands what it read to every sink
of its :class:`~edgedev.Mapper` (and its :class:`~edgedev.mapper.DesiredWriter` the writes
that failed): the MQTT twin publisher (:class:`MqttTwinSink`, KubeEdge's
``twin/update`` and ``state/update`` topics) is one; KubeEdge DMI and the DeviceInstance
``pushMethod``/``dbMethod`` targets are others. A sink never blocks the device's task and never
raises into it: it queues inside and does its I/O in its own :meth:`ReportSink.run` task, which
the Mapper owns.
"""

from __future__ import annotations

import abc
import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import anyio

from edgedev.bus._client import Bus
from edgedev.bus._topics import Channel, Topics
from edgedev.config._spec import DeviceSpec
from edgedev.twin._state import DeviceState
from edgedev.twin._twin import WriteFailure
from edgedev.twin._values import Value
from edgedev.wire import (
    key_refusal,
    state_update,
    twin_report,
    type_name,
    value_refusal,
    write_error_report,
)

log = logging.getLogger("edgedev.mapper")


@dataclass(frozen=True, slots=True)
class Reading:
    """One value of one property, as a sink receives it.

    Attributes:
        name: the property.
        value: the typed value (``int``, ``float``, ``bool``, ``str``, ``bytes``).
        text: the value as KubeEdge carries it (:func:`~edgedev.twin.format_value`).
        timestamp: when it was read or pushed, in ms since the epoch.
    """

    name: str
    value: Value
    text: str
    timestamp: int


class ReportSink(abc.ABC):  # noqa: B024 - every method has a no-op default; override any
    """A destination of device values and states.

    Every method has a no-op default; a sink overrides what it needs. The report methods are
    called from the device's task and must neither block nor raise: a sink queues what it is
    given and does its I/O in :meth:`run`.
    """

    def readings(self, device: DeviceSpec, readings: Sequence[Reading]) -> None:  # noqa: B027
        """Every value just read or pushed, at each collect cycle (telemetry: pushMethod)."""

    def twin(self, device: DeviceSpec, readings: Sequence[Reading]) -> None:  # noqa: B027
        """The twin report: properties due at their reportCycle, changed, or just written."""

    def state(self, device: DeviceSpec, state: DeviceState, reason: str | None) -> None:  # noqa: B027
        """The device's state changed (``reason`` says why it went offline, when it did)."""

    def write_failed(self, device: DeviceSpec, failures: Mapping[str, WriteFailure]) -> None:  # noqa: B027
        """Desired values the device did not take, by property, with why and whether it retries.

        Called by the device's :class:`~edgedev.mapper.DesiredWriter` once per reason and
        value; the failures found together (the refusals of one delta) come in one call.
        """

    def removed(self, device: DeviceSpec) -> None:  # noqa: B027
        """The device left the mapper (after its last :meth:`state`); forget what waits for it."""

    async def run(self) -> None:  # noqa: B027
        """Do the sink's I/O until cancelled (a task in the Mapper's task group)."""

    async def flush(self) -> None:  # noqa: B027
        """Deliver what is queued; the Mapper calls it when stopping (under a deadline)."""

    async def close(self) -> None:  # noqa: B027
        """Release what the sink holds; called once, after :meth:`flush`."""


@dataclass(frozen=True, slots=True)
class SinkChange:
    """What a device's arrival changes in the sinks of a :class:`~edgedev.Mapper`.

    Attributes:
        started: sinks of targets no other device named; the mapper runs them.
        retired: sinks that only the device's earlier spec named; the mapper delivers what
            they hold, then stops and closes them.
    """

    started: Sequence[ReportSink] = ()
    retired: Sequence[ReportSink] = ()


class SinkSource(Protocol):
    """Sinks that devices bring with them, such as their ``pushMethod`` targets.

    A :class:`~edgedev.Mapper` given one (``sinks_for=``) tells it about each device it starts
    or stops, so that a target is served while some device names it, and no longer (its
    client closed, its retries ended). :class:`edgedev.sinks.SinkFactory` is the one edgedev
    has.
    """

    def arrived(self, device: DeviceSpec) -> SinkChange:
        """``device`` is served now (new, or an update that replaces its earlier spec)."""
        ...

    def left(self, device_id: str) -> Sequence[ReportSink]:
        """The device is served no longer: the sinks no other device needs now."""
        ...


class StateChanges(ReportSink):
    """A report sink that lets a task wait for the devices' changes of state.

    Give it to the :class:`~edgedev.Mapper` among its ``sinks``, then
    ``await changes.wait_until(lambda: runner.state == DeviceState.ONLINE)``. The command
    line uses one to say when every device has been tried once.
    """

    def __init__(self) -> None:
        self._changed: anyio.Event | None = None  # made in the event loop, when awaited

    def state(self, device: DeviceSpec, state: DeviceState, reason: str | None) -> None:
        """Wake the tasks waiting in :meth:`wait_until`."""
        changed, self._changed = self._changed, None
        if changed is not None:
            changed.set()

    async def wait_until(self, condition: Callable[[], bool]) -> None:
        """Return once ``condition()`` holds, checked now and after each change of state.

        Use with a timeout (``anyio.fail_after``) where the condition may never hold.
        """
        while not condition():
            if self._changed is None:
                self._changed = anyio.Event()
            await self._changed.wait()


def wants_readings(sink: ReportSink) -> bool:
    """Whether ``sink`` overrides :meth:`ReportSink.readings` (else no reading is built)."""
    return type(sink).readings is not ReportSink.readings


@dataclass(frozen=True, slots=True)
class _TwinRules:
    """What a device's twin report may carry, worked out once per :class:`DeviceSpec`."""

    spec: DeviceSpec
    types: dict[str, str]  # EdgeCore's type name of each property with reportToCloud
    key_refusals: dict[str, str | None]


class TwinFilter:
    """The readings of a twin report that EdgeCore takes, with their EdgeCore type names.

    Properties with ``reportToCloud: false`` are left out. So is a value EdgeCore would
    refuse (:func:`~edgedev.wire.value_refusal`, :func:`~edgedev.wire.key_refusal`), with one
    warning per property, counted in :attr:`refused`: EdgeCore refuses a whole message, over
    MQTT and over DMI alike, for one bad entry. Every sink that reports twins to EdgeCore
    filters through one of these.

    Attributes:
        refused: values left out of twin reports, per device id.
    """

    def __init__(self) -> None:
        self._rules: dict[str, _TwinRules] = {}
        self._refused_once: set[tuple[str, str]] = set()
        self.refused: Counter[str] = Counter()

    def accepted(
        self, device: DeviceSpec, readings: Sequence[Reading]
    ) -> list[tuple[Reading, str]]:
        """Each reading EdgeCore takes, with its property's EdgeCore type name."""
        rules = self._rules_of(device)
        entries = []
        for r in readings:
            type_ = rules.types.get(r.name)
            if type_ is None:  # reportToCloud: false
                continue
            why = rules.key_refusals[r.name] or value_refusal(r.text, type_)
            if why is not None:
                self._refuse(device.id, r.name, why)
                continue
            entries.append((r, type_))
        return entries

    def accepted_failures(
        self, device: DeviceSpec, failures: Mapping[str, WriteFailure]
    ) -> list[tuple[str, str, WriteFailure]]:
        """Each failed write whose name EdgeCore takes, with its EdgeCore type name.

        A property with ``reportToCloud: false`` keeps its error entry (EdgeCore ignores
        ``error``; edgedev's agent keeps it); a name of another device's model is a string.
        """
        entries = []
        for name, failure in failures.items():
            why = key_refusal(name)
            if why is not None:
                self._refuse(device.id, name, why)
                continue
            known = device.has_property(name)
            entries.append(
                (name, type_name(device.property(name).type) if known else "string", failure)
            )
        return entries

    def forget(self, device: DeviceSpec) -> None:
        """Drop what was worked out for ``device`` (it left the mapper)."""
        self._rules.pop(device.id, None)

    def _rules_of(self, device: DeviceSpec) -> _TwinRules:
        rules = self._rules.get(device.id)
        if rules is None or rules.spec is not device:  # new, or updated at run time
            props = [p for p in device.properties if p.report_to_cloud]
            rules = self._rules[device.id] = _TwinRules(
                device,
                {p.name: type_name(p.type) for p in props},
                {p.name: key_refusal(p.name) for p in props},
            )
        return rules

    def _refuse(self, device_id: str, name: str, why: str) -> None:
        self.refused[device_id] += 1
        if (device_id, name) not in self._refused_once:
            self._refused_once.add((device_id, name))
            log.warning(
                "device %s: property %s left out of twin reports: EdgeCore refuses %s "
                "(and with it the whole report)",
                device_id,
                name,
                why,
            )


class MqttTwinSink(ReportSink):
    """KubeEdge's device topics on a :class:`~edgedev.bus.Bus`: ``twin/update``, ``state/update``.

    Failed writes go out on ``twin/update`` too, as edgedev's ``error`` entries
    (:func:`~edgedev.wire.write_error_report`), one message per batch.

    ``Bus.publish`` queues in the bus's outbox, so nothing here blocks. The last state of each
    device is published again whenever the broker connection is re-established (the first
    connection delivers what is queued already).

    Properties with ``reportToCloud: false`` stay off the twin topic, and so does a value
    EdgeCore would refuse (:class:`TwinFilter`), counted in :attr:`refused`.

    Args:
        bus: the mapper's bus.
        topics: the topic scheme.

    Attributes:
        refused: values left out of twin reports, per device id.
    """

    def __init__(self, bus: Bus, topics: Topics) -> None:
        self._bus = bus
        self._topics = topics
        self._states: dict[str, DeviceState] = {}
        self._filter = TwinFilter()
        self._connected_before = False
        self.refused: Counter[str] = self._filter.refused
        bus.on_connect(self.announce)

    def twin(self, device: DeviceSpec, readings: Sequence[Reading]) -> None:
        """Publish one ``twin/update`` with the ``actual`` value of each reading EdgeCore takes."""
        entries = [
            (r.name, r.text, type_, r.timestamp)
            for r, type_ in self._filter.accepted(device, readings)
        ]
        if entries:
            topic = self._topics.device(device.id, Channel.TWIN_UPDATE)
            self._bus.publish(topic, twin_report(entries))

    def write_failed(self, device: DeviceSpec, failures: Mapping[str, WriteFailure]) -> None:
        """Publish one ``twin/update`` with an ``error`` entry for each failed write."""
        entries = self._filter.accepted_failures(device, failures)
        if entries:
            topic = self._topics.device(device.id, Channel.TWIN_UPDATE)
            self._bus.publish(topic, write_error_report(entries))

    def state(self, device: DeviceSpec, state: DeviceState, reason: str | None) -> None:
        """Publish ``state/update`` (EdgeCore's payload carries no reason)."""
        self._states[device.id] = state
        self._publish_state(device.id, state)

    def removed(self, device: DeviceSpec) -> None:
        """Stop announcing the device (it was removed from the mapper)."""
        self._states.pop(device.id, None)
        self._filter.forget(device)

    def announce(self) -> None:
        """Publish every device's last state again (after the broker connection came back).

        The first connection announces nothing: the states published so far are still queued
        in the bus's outbox and go out with it, so each is sent once.
        """
        if not self._connected_before:
            self._connected_before = True
            return
        for device_id, state in self._states.items():
            self._publish_state(device_id, state)

    def _publish_state(self, device_id: str, state: DeviceState) -> None:
        topic = self._topics.device(device_id, Channel.STATE_UPDATE)
        self._bus.publish(topic, state_update(state))
