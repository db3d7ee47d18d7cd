"""One device's life: connect, poll on its cycles, report, write, and recover.

Each device runs in its own task with its own deadline on every operation, so a device that
stops answering is marked offline and retried with backoff while the others keep their cycle.
"""

from __future__ import annotations

import logging
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import anyio

from edgedev._backoff import Backoff
from edgedev._errors import DeviceError, DeviceFault, WriteRefused
from edgedev.config._spec import DeviceSpec, PropertySpec
from edgedev.drivers._base import AnyDriver
from edgedev.drivers._endpoints import Endpoints
from edgedev.mapper._changes import ChangeFilter
from edgedev.mapper._schedule import Schedule
from edgedev.mapper._sinks import MqttTwinSink, Reading, ReportSink, wants_readings
from edgedev.twin._state import DeviceState
from edgedev.twin._values import (
    Value,
    check_writable,
    check_write,
    format_value,
    parse_value,
    values_equal,
)
from edgedev.wire import now_ms

log = logging.getLogger("edgedev.mapper")


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What became of a write.

    Attributes:
        property: the property written.
        ok: whether the device took the value.
        value: the value read back after the write, as its wire string (when ``ok``).
        reason: why the write failed (when not ``ok``).
        retry: whether trying again later may succeed (device offline or failing), as
            opposed to a refusal that no retry will change (read-only, out of range).
    """

    property: str
    ok: bool
    value: str | None = None
    reason: str | None = None
    retry: bool = False


class _WriteRequest:
    __slots__ = ("done", "prop", "result", "value")

    def __init__(self, prop: PropertySpec, value: Value) -> None:
        self.prop = prop
        self.value = value
        self.done = anyio.Event()
        self.result = WriteResult(prop.name, False, reason="not attempted", retry=True)

    def finish(self, result: WriteResult) -> None:
        self.result = result
        self.done.set()


def check_device_write(spec: DeviceSpec, name: str, text: str) -> tuple[PropertySpec, Value]:
    """:func:`~edgedev.twin.check_write` of property ``name`` of ``spec``, with the property.

    Raises:
        WriteRefused: no such property, read-only, not a value of the type, or out of range.
    """
    prop = check_writable(spec.id, name, spec.property(name) if spec.has_property(name) else None)
    return prop, check_write(spec.id, name, prop, text)


PUSH_QUEUE_LIMIT = 4096
"""Pushed values a device may have waiting for its runner; beyond, the oldest are dropped."""


def describe(exc: BaseException, timeout: float) -> str:
    """Why a device is offline (or unhealthy), in words, for the log and the state report.

    Args:
        exc: what the driver raised (or the deadline that expired).
        timeout: the device's deadline of one operation, in seconds.
    """
    if isinstance(exc, TimeoutError):
        return f"timeout, no answer within {timeout * 1000:.0f} ms"
    if isinstance(exc, ConnectionRefusedError):
        return f"connection refused{': ' + str(exc) if str(exc) else ''}"
    if isinstance(exc, ConnectionResetError):
        return "connection reset by the device"
    text = str(exc)
    if isinstance(exc, DeviceError):
        return text or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def push_rounds(pushed: Iterable[tuple[str, Reading]]) -> list[dict[str, Reading]]:
    """Split pushed values, in order, into rounds holding at most one value per property.

    Each round is one report, so that a property pushed twice before the runner woke up is
    reported twice, in order, and values of different properties pushed together share one.
    """
    rounds: list[dict[str, Reading]] = [{}]
    for name, reading in pushed:
        if name in rounds[-1]:
            rounds.append({})
        rounds[-1][name] = reading
    return rounds if rounds[0] else []


@dataclass(slots=True)
class Plan:
    """What one connection of a device does: which properties it polls, when, and reports.

    Attributes:
        polled: properties read on their collect cycle.
        pushed: properties the driver pushes (:meth:`~edgedev.Driver.watch`).
        collect: when each polled property is read next.
        report: when each polled property is reported next (those not reported on change).
        changes: the last value reported of each on-change property.
    """

    polled: list[PropertySpec]
    pushed: list[PropertySpec]
    collect: Schedule[str]
    report: Schedule[str]
    changes: ChangeFilter = field(default_factory=ChangeFilter)

    @classmethod
    def make(cls, spec: DeviceSpec, driver: AnyDriver, now: float) -> Plan:
        """The plan of ``spec`` with ``driver``, starting at monotonic time ``now``.

        Reads start at once, then on the driver's phase of the shortest cycle (a hash of
        :meth:`~edgedev.Driver.phase_key`): spread over the cycle by device, so that a fleet
        started together does not read in one burst, or together by endpoint, so that the
        reads of devices sharing a connection can be batched.
        """
        polled = [p for p in spec.properties if not driver.pushes(p)]
        pushed = [p for p in spec.properties if driver.pushes(p)]
        cycle = min((p.collect_cycle for p in polled), default=0.0)
        phase = cycle * (zlib.crc32(driver.phase_key().encode()) % 1024) / 1024
        start = now - ((now - phase) % cycle) if cycle > 0 else now
        collect = Schedule({p.name: p.collect_cycle for p in polled}, start)
        report = Schedule({p.name: p.report_cycle for p in polled if not p.report_on_change}, start)
        return cls(polled, pushed, collect, report)

    def next_deadline(self) -> float:
        """When the next read or report is due (monotonic seconds; ``inf`` if never)."""
        return min(self.collect.next_deadline(), self.report.next_deadline())


def _unwrap(exc: Exception) -> Exception:
    """The one exception inside (nested) exception groups of one, else ``exc`` itself."""
    while isinstance(exc, ExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


class DeviceRunner:
    """Runs one device for a :class:`~edgedev.Mapper`: polls, reports, writes, recovers.

    What it reads goes to its report sinks (:class:`~edgedev.mapper.ReportSink`): every value
    read or pushed to :meth:`~edgedev.mapper.ReportSink.readings`, the twin report (values due
    at their report cycle, changed beyond their deadband, pushed, or just written) to
    :meth:`~edgedev.mapper.ReportSink.twin`, and each change of state to
    :meth:`~edgedev.mapper.ReportSink.state`.

    Args:
        spec: the device.
        driver_type: its protocol's driver, constructed as ``driver_type(spec, endpoints)``
            for each connection.
        sinks: where its values and states go.
        backoff: the delays between reconnections (0.5 s doubling up to 30 s by default).
        endpoints: the mapper's shared connections (see :class:`~edgedev.drivers.Endpoints`);
            a driver gets a private registry when ``None``.

    Attributes:
        state: the device's :class:`~edgedev.twin.DeviceState`: ``online``, ``offline``,
            ``unhealthy`` (it answers with protocol exceptions only) or ``unknown`` (not yet
            connected).
        reason: why the device is offline or unhealthy (``None`` while it is online).
        values: the last value read of each property, with its timestamp in ms.
        reads: read requests made to the driver.
        errors: failures that took the device offline.
        faults: reads answered with protocol exceptions only (:class:`~edgedev.DeviceFault`).
        reconnects: times the device came back after being offline or unhealthy.
        writes: writes the device accepted.
        pushes_dropped: pushed values dropped because the runner fell behind.
    """

    def __init__(
        self,
        spec: DeviceSpec,
        driver_type: type[AnyDriver],
        sinks: Sequence[ReportSink],
        *,
        backoff: Backoff | None = None,
        endpoints: Endpoints | None = None,
    ) -> None:
        self.spec = spec
        self._endpoints = endpoints
        self._driver_type = driver_type
        self._sinks = tuple(sinks)
        self._reading_sinks = tuple(s for s in self._sinks if wants_readings(s))
        self._backoff = backoff or Backoff(0.5, 30.0)
        self._timeout = spec.timeout_ms / 1000
        self._props = {p.name: p for p in spec.properties}
        self._last: dict[str, Reading] = {}
        self._pushed: deque[tuple[str, Reading]] = deque(maxlen=PUSH_QUEUE_LIMIT)
        self._writes: deque[_WriteRequest] = deque()
        self._wake = anyio.Event()
        self._desired: dict[str, tuple[str, Value]] = {}
        self._report_next: set[str] = set()
        self.state = DeviceState.UNKNOWN
        self.reason: str | None = None
        self.reads = 0
        self.errors = 0
        self.faults = 0
        self.reconnects = 0
        self.writes = 0
        self.pushes_dropped = 0
        self.on_state: list[Callable[[DeviceState], None]] = []
        """Called with the new state whenever it changes (the desired writer listens)."""

    @property
    def values(self) -> dict[str, tuple[Value, int]]:
        """The last value of each property, with its timestamp in ms."""
        return {name: (r.value, r.timestamp) for name, r in self._last.items()}

    @property
    def refused(self) -> int:
        """Values of this device left out of twin reports because EdgeCore would refuse them.

        Counted by the MQTT twin sink (:class:`~edgedev.mapper.MqttTwinSink`), per value.
        """
        return sum(s.refused[self.spec.id] for s in self._sinks if isinstance(s, MqttTwinSink))

    # public API ----------------------------------------------------------------------------
    async def run(self) -> None:
        """Run the device until cancelled; never raises for device faults."""
        while True:
            driver = self._driver_type(self.spec, self._endpoints)
            try:
                await self._session(driver)
            except Exception as exc:
                fault = _unwrap(exc)  # the session's task group wraps what its loop raised
                if not isinstance(fault, DeviceError | OSError | TimeoutError):
                    # a driver bug must not take the other devices down
                    log.exception("driver %s failed on device %s", self.spec.protocol, self.spec.id)
                self._lost(fault)
            finally:
                self._fail_writes("device offline")
                with anyio.CancelScope(shield=True), anyio.move_on_after(self._timeout):
                    try:
                        await driver.close()
                    except Exception:  # close must not raise; a faulty one is only noted
                        log.debug("closing %s failed", self.spec.id, exc_info=True)
            await anyio.sleep(self._backoff.next())

    async def write(self, name: str, text: str) -> WriteResult:
        """Write wire string ``text`` to property ``name``, read it back, and report it.

        The write is checked (exists, writable, type, minimum/maximum) before any I/O, then
        performed by the device's own task between two cycles.
        """
        try:
            prop, value = check_device_write(self.spec, name, text)
        except WriteRefused as exc:
            return WriteResult(name, False, reason=str(exc))
        if self.state != DeviceState.ONLINE:
            return WriteResult(
                name, False, reason=f"device {self.spec.id} is {self.state}", retry=True
            )
        request = _WriteRequest(prop, value)
        self._writes.append(request)
        self._wake.set()
        await request.done.wait()
        return request.result

    def holds(self, name: str, text: str) -> bool:
        """Whether the device's last value of ``name`` equals wire string ``text`` (typed).

        ``24`` equals ``24.0`` on a FLOAT property and ``1`` equals ``true`` on a BOOLEAN one.
        Remembers ``text`` as the desired value's own text: a value read back that equals it
        is reported in that text, so that EdgeCore, which compares desired and reported as
        strings, sees them equal and stops sending deltas.
        """
        prop = self._props.get(name)
        if prop is None:
            return False
        try:
            wanted = parse_value(text, prop.type)
        except ValueError:
            return False
        self._desired[name] = (text, wanted)
        current = self._last.get(name)
        return current is not None and values_equal(current.value, wanted, prop.type)

    def report_now(self, name: str) -> None:
        """Report ``name``'s last value (in its current text) at the next turn of the loop."""
        if name in self._last:
            self._report_next.add(name)
            self._wake.set()

    def go_offline(self, reason: str | None = None) -> None:
        """Report ``offline`` (the mapper is stopping, or the device was removed)."""
        self._set_state(DeviceState.OFFLINE, reason)

    # the device loop: connect, then cycles of poll, write, report, sleep ---------------------
    async def _session(self, driver: AnyDriver) -> None:
        with anyio.fail_after(self._timeout):
            await driver.connect()
        plan = Plan.make(self.spec, driver, anyio.current_time())
        async with anyio.create_task_group() as tg:
            if plan.pushed:
                tg.start_soon(self._watch, driver, plan.pushed)
                if not plan.polled:
                    self._set_state(DeviceState.ONLINE)
            while True:
                await self._cycle(driver, plan)
                await self._sleep(plan.next_deadline())

    async def _cycle(self, driver: AnyDriver, plan: Plan) -> None:
        """One wake-up: read what is due, write what waits, report, in that order."""
        now = anyio.current_time()
        fresh = await self._poll(driver, plan.collect.pop_due(now))
        forced = await self._do_writes(driver, fresh) if self._writes else set()
        rounds = push_rounds(self._take_pushed())
        first = rounds[0] if rounds else {}
        due = plan.report.pop_due(now)
        if self.state is DeviceState.UNHEALTHY:  # no stale values from a device that has none
            due = []
        due = [*due, *self._take_report_next()]
        self._emit(plan, due, fresh | first, forced | self._forced(first))
        for more in rounds[1:]:  # the same property pushed again: one report each
            self._emit(plan, (), more, self._forced(more))

    async def _poll(self, driver: AnyDriver, due: Sequence[str]) -> dict[str, Reading]:
        """Read the properties ``due``; the readings by name."""
        if not due:
            return {}
        # shielded: a stopping mapper lets a read in flight finish (and report); the driver
        # bounds each request by the timeout, this bounds the whole read (at most one request
        # per property) for drivers that do not
        with anyio.fail_after(self._timeout * len(due), shield=True):
            try:
                values = await driver.read([self._props[n] for n in due])
            except DeviceFault as fault:
                self.reads += 1
                self._faulted(fault)
                return {}
        self.reads += 1
        self._set_state(DeviceState.ONLINE)
        self._backoff.reset()
        return self._readings(values, now_ms())

    def _readings(self, values: Mapping[str, Value], ts: int) -> dict[str, Reading]:
        """``values`` of this device's properties as readings, remembered as the last ones."""
        fresh = {}
        props = self._props
        for name, value in values.items():
            prop = props.get(name)
            if prop is not None:
                fresh[name] = self._last[name] = Reading(name, value, self._text(prop, value), ts)
        return fresh

    def _text(self, prop: PropertySpec, value: Value) -> str:
        """The wire string of ``value``: the desired value's own text when they are equal."""
        desired = self._desired.get(prop.name)
        if desired is not None and values_equal(value, desired[1], prop.type):
            return desired[0]
        return format_value(value, prop.type)

    def _take_report_next(self) -> list[str]:
        """The properties :meth:`report_now` asked for, their last readings in today's text."""
        names, self._report_next = self._report_next, set()
        for name in names:
            last = self._last[name]
            self._last[name] = replace(last, text=self._text(self._props[name], last.value))
        return sorted(names)

    def _take_pushed(self) -> list[tuple[str, Reading]]:
        taken = list(self._pushed)
        self._pushed.clear()
        for name, reading in taken:
            self._last[name] = reading
        return taken

    def _forced(self, pushed: Mapping[str, Reading]) -> set[str]:
        """Pushed properties reported whatever their value (all but the on-change ones)."""
        return {n for n in pushed if not self._props[n].report_on_change}

    def _emit(
        self,
        plan: Plan,
        due: Iterable[str],
        fresh: Mapping[str, Reading],
        forced: set[str],
    ) -> None:
        """Hand ``fresh`` to the reading sinks, and one twin report to every sink.

        The twin report holds the properties due, forced (written, pushed) or changed.
        """
        if fresh:
            readings = list(fresh.values())
            for sink in self._reading_sinks:
                sink.readings(self.spec, readings)
        chosen = {n: self._last[n] for n in due if n in self._last}
        for name, reading in fresh.items():
            if name in chosen:
                continue
            prop = self._props[name]
            if name in forced or (
                prop.report_on_change and plan.changes.changed(prop, reading.value)
            ):
                chosen[name] = reading
        if not chosen:
            return
        for reading in chosen.values():
            plan.changes.reported(self._props[reading.name], reading.value)
        report = list(chosen.values())
        for sink in self._sinks:
            sink.twin(self.spec, report)

    async def _sleep(self, deadline: float) -> None:
        """Wait until ``deadline`` (monotonic), or until a push or a write wakes the runner."""
        with anyio.move_on_after(deadline - anyio.current_time()):
            await self._wake.wait()
        self._wake = anyio.Event()

    async def _watch(self, driver: AnyDriver, props: list[PropertySpec]) -> None:
        pushed = self._pushed

        def report(name: str, value: Value) -> None:
            prop = self._props.get(name)
            if prop is None:
                return
            if len(pushed) == pushed.maxlen:  # the oldest goes: count it, say so once
                self.pushes_dropped += 1
                if self.pushes_dropped == 1:
                    log.warning("device %s: pushed values dropped (runner behind)", self.spec.id)
            pushed.append((name, Reading(name, value, self._text(prop, value), now_ms())))
            self._wake.set()

        await driver.watch(props, report)
        raise DeviceError(f"device {self.spec.id} stopped pushing values")

    async def _do_writes(self, driver: AnyDriver, fresh: dict[str, Reading]) -> set[str]:
        written: set[str] = set()
        while self._writes:
            request = self._writes.popleft()
            prop = request.prop
            try:
                # shielded: a write once started is finished and read back, within the deadline
                with anyio.CancelScope(shield=True), anyio.fail_after(self._timeout):
                    await driver.write(prop, request.value)
                    values = await driver.read([prop])
            except WriteRefused as exc:
                request.finish(WriteResult(prop.name, False, reason=str(exc)))
                continue
            except BaseException as exc:
                reason = describe(exc, self._timeout)
                request.finish(
                    WriteResult(prop.name, False, reason=f"write failed: {reason}", retry=True)
                )
                raise
            self.writes += 1
            fresh.update(self._readings(values, now_ms()))
            written.add(prop.name)
            back = values.get(prop.name, request.value)
            request.finish(WriteResult(prop.name, True, value=self._text(prop, back)))
        return written

    # state ---------------------------------------------------------------------------------
    def _set_state(self, state: DeviceState, reason: str | None = None) -> None:
        if state == self.state:
            if reason is not None:  # still offline, now for another reason
                self.reason = reason
            return
        self.reason = reason
        if state == DeviceState.ONLINE:
            recovered = self.state in (DeviceState.OFFLINE, DeviceState.UNHEALTHY)
            if recovered:
                self.reconnects += 1
            log.info("device %s online%s", self.spec.id, " (recovered)" if recovered else "")
        self.state = state
        for sink in self._sinks:
            sink.state(self.spec, state, reason)
        for listener in self.on_state:
            listener(state)

    def _lost(self, exc: BaseException) -> None:
        self.errors += 1
        reason = describe(exc, self._timeout)
        if self.state != DeviceState.OFFLINE or reason != self.reason:
            log.warning("device %s offline: %s", self.spec.id, reason)
        else:
            log.debug("device %s still offline: %s", self.spec.id, reason)
        self._set_state(DeviceState.OFFLINE, reason)

    def _faulted(self, fault: DeviceFault) -> None:
        """The device answered a whole read with exceptions: ``unhealthy``, logged once."""
        self.faults += 1
        reason = describe(fault, self._timeout)
        if self.state != DeviceState.UNHEALTHY or reason != self.reason:
            log.warning("device %s unhealthy: %s", self.spec.id, reason)
        self._set_state(DeviceState.UNHEALTHY, reason)

    def _fail_writes(self, reason: str) -> None:
        while self._writes:
            request = self._writes.popleft()
            request.finish(WriteResult(request.prop.name, False, reason=reason, retry=True))
