"""Where a device's values and states go: the report sink contract (no I/O, no MQTT here).

A :class:`~edgedev.mapper.DeviceRunner` hands what it reads, and every change of its device's
state, to the sinks of its :class:`~edgedev.Mapper` (its
:class:`~edgedev.mapper.DesiredWriter` hands them the writes that failed). The twin
transports (:class:`~edgedev.mapper.TwinTransport`: KubeEdge's MQTT topics, DMI) are sinks, and so
are the ``pushMethod``/``dbMethod`` targets (:mod:`edgedev.sinks`). A sink never blocks the
device's task and never raises into it: it queues inside and does its I/O in its own task.
See ``docs/architecture.md`` for the whole data path.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol

import anyio

from edgedev._metrics import Metric
from edgedev.config._spec import DeviceSpec
from edgedev.twin._quality import Quality
from edgedev.twin._state import DeviceState
from edgedev.twin._twin import WriteFailure
from edgedev.twin._values import Value


@dataclass(frozen=True, slots=True)
class Reading:
    """One value of one property, as a sink receives it.

    Attributes:
        name: the property.
        value: the typed value (``int``, ``float``, ``bool``, ``str``, ``bytes``).
        text: the value as KubeEdge carries it (:func:`~edgedev.twin.format_value`).
        timestamp: when the device measured it (its source time, when the driver knows it),
            else when it was read or pushed; in ms since the epoch.
        quality: Good here; Uncertain for an :class:`UncertainReading` (a Bad value is no
            reading: :class:`BadValue`). A class attribute, so that the Good readings of
            the hot path cost no more than they did before quality existed.
    """

    name: str
    value: Value
    text: str
    timestamp: int
    quality: ClassVar[Quality] = Quality.GOOD


@dataclass(frozen=True, slots=True)
class UncertainReading(Reading):
    """A reading the device says may be wrong (an OPC-UA Uncertain status code)."""

    quality: ClassVar[Quality] = Quality.UNCERTAIN


@dataclass(frozen=True, slots=True)
class BadValue:
    """A property whose value the device says is no good (or answered with an exception).

    Attributes:
        name: the property.
        reason: why, in words (``BadSensorFailure``, ``exception code 2 (illegal data
            address)``).
        timestamp: when, in ms since the epoch (the device's source time, when it says).
    """

    name: str
    reason: str
    timestamp: int


class ReportSink(abc.ABC):  # noqa: B024 - every method has a no-op default; override any
    """A destination of device values and states.

    Every method has a no-op default; a sink overrides what it needs. The report methods
    (:meth:`readings`, :meth:`twin`, :meth:`state`, :meth:`write_failed`, :meth:`added`,
    :meth:`removed`) are called from the devices' tasks, in the event loop, and must neither
    block nor raise: a sink queues what it is given and does its I/O in :meth:`run`. They may
    come before :meth:`run` has started (a device is quick to answer) and after it has ended
    (the devices' last, offline, states when the mapper stops): queue them for :meth:`flush`.
    """

    def readings(self, device: DeviceSpec, readings: Sequence[Reading]) -> None:  # noqa: B027
        """Every value just read or pushed, at each collect cycle (telemetry: pushMethod).

        Only sinks that override this are given readings (none are built for the others).
        """

    def twin(self, device: DeviceSpec, readings: Sequence[Reading]) -> None:  # noqa: B027
        """The twin report: properties due at their reportCycle, changed, or just written.

        A value just written and read back comes here at once, in the desired value's own
        text when the two are equal.
        """

    def bad(self, device: DeviceSpec, values: Sequence[BadValue]) -> None:  # noqa: B027
        """Properties without a value: Bad, with the reason (not values: no reading).

        Called when a property turns Bad (or Bad for another reason), and again at its report
        cycle while it stays so; its next good value comes as a reading.
        """

    def state(self, device: DeviceSpec, state: DeviceState, reason: str | None) -> None:  # noqa: B027
        """The device's state changed (``reason`` says why it went offline, when it did)."""

    def write_failed(self, device: DeviceSpec, failures: Mapping[str, WriteFailure]) -> None:  # noqa: B027
        """Desired values the device did not take, by property, with why and whether it retries.

        Called by the device's :class:`~edgedev.mapper.DesiredWriter` once per reason and
        value; the failures found together (the refusals of one delta) come in one call.
        """

    def added(self, device: DeviceSpec) -> None:  # noqa: B027
        """The mapper serves ``device`` now: its runner (and desired writer) just started.

        Called for each device when the mapper starts, for a device added while it runs, and
        for an update (the new spec replaces the earlier one: no :meth:`removed` in between).
        Its first :meth:`state` comes after this.
        """

    def removed(self, device: DeviceSpec) -> None:  # noqa: B027
        """The device left the mapper (after its last :meth:`state`); forget what waits for it."""

    def metrics(self) -> list[Metric]:
        """The sink's counters and gauges for ``/metrics`` (none by default).

        Asked on every ``/metrics`` request (:func:`edgedev.health.mapper_health`), from the
        event loop: answer from memory. A family that several sinks give (the same name) is
        merged into one: tell them apart with labels. Values the sink dropped go in the
        ``edgedev_values_dropped_total`` family, by ``reason``, which the mapper sums.
        """
        return []

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
