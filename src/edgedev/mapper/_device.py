"""One device's life: connect, poll on its cycles, report, write, and recover.

Each device runs in its own task with its own deadline on every operation, so a device that
stops answering is marked offline and retried with backoff while the others keep their cycle.

Writes: the runner owns its device's :class:`~edgedev.mapper.DesiredWriter`
(:attr:`DeviceRunner.desired`) and performs, after each poll, the writes it says are due; the
write path is said once, in ``_desired.py``.
"""

from __future__ import annotations

import logging
import zlib
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import anyio

from edgedev._backoff import Backoff
from edgedev._drops import Drops
from edgedev._errors import DeviceError, DeviceFault, WriteRefused
from edgedev.config._spec import DeviceSpec, PropertySpec
from edgedev.drivers._base import AnyDriver
from edgedev.drivers._endpoints import Endpoints
from edgedev.drivers._schedule import Schedule
from edgedev.mapper._changes import ChangeFilter
from edgedev.mapper._desired import DesiredWriter, Write
from edgedev.mapper._sinks import (
    BadValue,
    Reading,
    ReportSink,
    UncertainReading,
    wants_readings,
)
from edgedev.twin._quality import Quality, Sample
from edgedev.twin._state import DeviceState
from edgedev.twin._values import Value
from edgedev.wire import now_ms

log = logging.getLogger("edgedev.mapper")


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

    Each round is one report: round ``k`` holds the ``k``-th value of each property pushed
    ``k`` times or more. A property pushed twice before the runner woke up is reported twice,
    in order, and values of different properties pushed together share one report, however
    they interleave (a server that kept four values of each node while the mapper was behind
    sends them node by node: four reports, not one per value).
    """
    rounds: list[dict[str, Reading]] = []
    depth: dict[str, int] = {}
    for name, reading in pushed:
        k = depth.get(name, 0)
        depth[name] = k + 1
        if k == len(rounds):
            rounds.append({})
        rounds[k][name] = reading
    return rounds


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
            a driver gets a private registry when ``None``. Values the runner drops are
            counted in its :attr:`~edgedev.drivers.Endpoints.drops` (reasons ``push_queue``:
            pushed values beyond :data:`PUSH_QUEUE_LIMIT`; ``missed_cycle``: reads skipped
            because the device's reads came more than a whole cycle late; ``bad_quality``:
            values the driver gave as Bad, which go to the sinks' ``bad()`` instead).

    It owns the device's :class:`~edgedev.mapper.DesiredWriter` (:attr:`desired`), tells it
    each change of state and performs, between two cycles, the writes it says are due.

    Attributes:
        desired: the device's desired values (the mapper and the device sources hand it
            what the twin desires).
        state: the device's :class:`~edgedev.twin.DeviceState`: ``online``, ``offline``,
            ``unhealthy`` (it answers with protocol exceptions only) or ``unknown`` (not yet
            connected).
        reason: why the device is offline or unhealthy (``None`` while it is online).
        last: the last reading of each property (read, pushed, or written and read back),
            in the text it was last reported in.
        reads: read requests made to the driver.
        errors: failures that took the device offline.
        faults: reads answered with protocol exceptions only (:class:`~edgedev.DeviceFault`).
        reconnects: times the device came back after being offline or unhealthy.
        writes: writes the device accepted.
        pushes_dropped: pushed values dropped because the runner fell behind.
        bad_values: values the driver gave as Bad (no value: see :attr:`bad`).
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
        self._drops = endpoints.drops if endpoints is not None else Drops()
        self._driver_type = driver_type
        self._sinks = tuple(sinks)
        self._reading_sinks = tuple(s for s in self._sinks if wants_readings(s))
        self._backoff = backoff or Backoff(0.5, 30.0)
        self._timeout = spec.timeout_ms / 1000
        self._props = spec.properties_by_name
        self._last: dict[str, Reading] = {}
        self._pushed: deque[tuple[str, Reading | BadValue]] = deque(maxlen=PUSH_QUEUE_LIMIT)
        self._bad: dict[str, BadValue] = {}
        self._newly_bad: dict[str, BadValue] = {}
        """Bad since the last report, or Bad for another reason: reported at once."""
        self._wake = anyio.Event()
        self.desired = DesiredWriter(
            spec, self._sinks, driver=driver_type, last=self._last, wake=self._wake_up
        )
        self.state = DeviceState.UNKNOWN
        self.reason: str | None = None
        self.reads = 0
        self.errors = 0
        self.faults = 0
        self.reconnects = 0
        self.writes = 0
        self.bad_values = 0
        self.pushes_dropped = 0

    @property
    def bad(self) -> Mapping[str, BadValue]:
        """The properties whose last value was Bad, with why (read it, never change it)."""
        return self._bad

    @property
    def last(self) -> Mapping[str, Reading]:
        """The last reading of each property, as it was last reported (read it, never change it)."""
        return self._last

    # public API ----------------------------------------------------------------------------
    async def run(self) -> None:
        """Run the device until cancelled; never raises for device faults."""
        try:
            while True:
                await self._connection()
                await anyio.sleep(self._backoff.next())
        finally:
            self.desired.close()

    def go_offline(self, reason: str | None = None) -> None:
        """Report ``offline`` (the mapper is stopping, or the device was removed)."""
        self._set_state(DeviceState.OFFLINE, reason)

    # the device loop: connect, then cycles of poll, write, report, sleep ---------------------
    async def _connection(self) -> None:
        """One connection of the device: from connecting until it fails (or is cancelled)."""
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
            with anyio.CancelScope(shield=True), anyio.move_on_after(self._timeout):
                try:
                    await driver.close()
                except Exception:  # close must not raise; a faulty one is only noted
                    log.debug("closing %s failed", self.spec.id, exc_info=True)

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
                await self._sleep(min(plan.next_deadline(), self.desired.next_due()))

    async def _cycle(self, driver: AnyDriver, plan: Plan) -> None:
        """One wake-up: read what is due, write what waits, report, in that order."""
        now = anyio.current_time()
        missed = plan.collect.missed_jobs
        due_reads = plan.collect.pop_due(now)
        if plan.collect.missed_jobs > missed:
            self._drops.add(
                "missed_cycle",
                plan.collect.missed_jobs - missed,
                f"device {self.spec.id}: reads more than a cycle late",
            )
        fresh = await self._poll(driver, due_reads)
        forced = await self._write(driver, fresh)
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

    def _readings(self, values: Mapping[str, Value | Sample], ts: int) -> dict[str, Reading]:
        """``values`` of this device's properties as readings, remembered as the last ones.

        A :class:`~edgedev.twin.Sample` keeps its quality and is stamped with its source
        time; a Bad one is no reading (:meth:`_went_bad`).
        """
        fresh = {}
        props, text, last = self._props, self.desired.text, self._last
        for name, value in values.items():
            prop = props.get(name)
            if prop is None:
                continue
            if type(value) is Sample:
                reading = self._sampled(prop, value, ts)
                if reading is None:
                    continue
            else:
                reading = Reading(name, value, text(prop, value), ts)
            fresh[name] = last[name] = reading
        if self._bad:  # a value again: no longer Bad
            for name in fresh:
                self._recovered(name)
        return fresh

    def _sampled(self, prop: PropertySpec, sample: Sample, ts: int) -> Reading | None:
        """The reading of ``sample`` (at its source time), or ``None`` when it is Bad."""
        when = ts if sample.source_time is None else sample.source_time
        value = sample.value
        if sample.quality is Quality.BAD or value is None:
            self._went_bad(BadValue(prop.name, sample.reason or "Bad", when))
            return None
        kind = UncertainReading if sample.quality is Quality.UNCERTAIN else Reading
        return kind(prop.name, value, self.desired.text(prop, value), when)

    def _went_bad(self, bad: BadValue) -> None:
        """Property ``bad.name`` has no value now: counted, logged once per reason."""
        self.bad_values += 1
        where = f"device {self.spec.id}: property {bad.name}"
        self._drops.add("bad_quality", 1, f"{where}: {bad.reason}")
        before = self._bad.get(bad.name)
        self._bad[bad.name] = bad
        if before is None or before.reason != bad.reason:
            self._newly_bad[bad.name] = bad
            log.warning("%s has no value: %s", where, bad.reason)

    def _recovered(self, name: str) -> None:
        if self._bad.pop(name, None) is not None:
            self._newly_bad.pop(name, None)
            log.info("device %s: property %s has a value again", self.spec.id, name)

    def _bad_report(self, due: Iterable[str]) -> list[BadValue]:
        """The Bad properties to report: those newly Bad, and those due while Bad."""
        report = self._newly_bad
        self._newly_bad = {}
        for name in due:
            bad = self._bad.get(name)
            if bad is not None:
                report.setdefault(name, bad)
        return list(report.values())

    def _take_report_next(self) -> list[str]:
        """Held desired values to report again, their last readings in the desired text."""
        names = self.desired.take_reports()
        for name in names:
            last = self._last[name]
            self._last[name] = replace(last, text=self.desired.text(self._props[name], last.value))
        return names

    def _take_pushed(self) -> list[tuple[str, Reading]]:
        taken: list[tuple[str, Reading]] = []
        for name, item in self._pushed:
            if isinstance(item, BadValue):
                self._went_bad(item)
                continue
            if self._bad:
                self._recovered(name)
            self._last[name] = item
            taken.append((name, item))
        self._pushed.clear()
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
        bad = self._bad
        if bad or self._newly_bad:
            due = list(due)
            gone = self._bad_report(due)
            if gone:
                for sink in self._sinks:
                    sink.bad(self.spec, gone)
        chosen = {n: self._last[n] for n in due if n in self._last and n not in bad}
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

    def _wake_up(self) -> None:
        self._wake.set()

    async def _sleep(self, deadline: float) -> None:
        """Wait until ``deadline`` (monotonic), or until a push or a write wakes the runner."""
        with anyio.move_on_after(deadline - anyio.current_time()):
            await self._wake.wait()
        self._wake = anyio.Event()

    async def _watch(self, driver: AnyDriver, props: list[PropertySpec]) -> None:
        pushed = self._pushed

        def report(name: str, value: Value | Sample) -> None:
            prop = self._props.get(name)
            if prop is None:
                return
            if len(pushed) == pushed.maxlen:  # the oldest goes: count it, say so
                self.pushes_dropped += 1
                self._drops.add("push_queue", 1, f"device {self.spec.id}: runner behind")
            item: Reading | BadValue
            if not isinstance(value, Sample):
                item = Reading(name, value, self.desired.text(prop, value), now_ms())
            elif value.quality is Quality.BAD or value.value is None:
                when = now_ms() if value.source_time is None else value.source_time
                item = BadValue(name, value.reason or "Bad", when)
            else:
                when = now_ms() if value.source_time is None else value.source_time
                text = self.desired.text(prop, value.value)
                kind = UncertainReading if value.quality is Quality.UNCERTAIN else Reading
                item = kind(name, value.value, text, when)
            pushed.append((name, item))
            self._wake.set()

        await driver.watch(props, report)
        raise DeviceError(f"device {self.spec.id} stopped pushing values")

    async def _write(self, driver: AnyDriver, fresh: dict[str, Reading]) -> set[str]:
        """Perform the writes :attr:`desired` says are due, then read them back into ``fresh``.

        The properties written are read back together, in one read (one request where the
        driver coalesces: 50 writes then cost 51 round trips, not 100). Unchecked here (the
        writer checked each value once); returns the properties written.
        """
        written: set[str] = set()
        writes = self.desired.due()
        if not writes:
            return written
        sent: list[Write] = []
        # shielded: writes once started are finished and read back, each within the deadline
        with anyio.CancelScope(shield=True):
            for write in writes:
                try:
                    with anyio.fail_after(self._timeout):
                        await driver.write(write.prop, write.value)
                except WriteRefused as exc:
                    self.desired.failed(write, str(exc), retry=False)
                    continue
                except BaseException as exc:
                    self._writes_failed([write, *sent], exc)
                    raise
                sent.append(write)
            if not sent:
                return written
            try:
                with anyio.fail_after(self._timeout * len(sent)):
                    values = await driver.read([w.prop for w in sent])
            except BaseException as exc:
                self._writes_failed(sent, exc)
                raise
        self.writes += len(sent)
        fresh.update(self._readings(values, now_ms()))
        for write in sent:
            prop = write.prop
            written.add(prop.name)
            back = values.get(prop.name, write.value)
            if isinstance(back, Sample):  # read back with its quality: its value, if any
                back = write.value if back.value is None else back.value
            self.desired.written(write, self.desired.text(prop, back))
        return written

    def _writes_failed(self, writes: Iterable[Write], exc: BaseException) -> None:
        """``writes`` were not confirmed (not written, or not read back): to be tried again."""
        reason = describe(exc, self._timeout)
        for write in writes:
            self.desired.failed(write, f"write failed: {reason}", retry=True)

    # state ---------------------------------------------------------------------------------
    def _set_state(self, state: DeviceState, reason: str | None = None) -> None:
        if state == self.state:
            if reason is not None:  # still offline, now for another reason
                self.reason = self.desired.reason = reason
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
        self.desired.state_changed(state, reason)

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
