"""One device's life: connect, poll on its cycles, report, write, and recover.

Each device runs in its own task with its own deadline on every operation, so a device that
stops answering is marked offline and retried with backoff while the others keep their cycle.
"""

from __future__ import annotations

import logging
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import anyio

from edgedev._backoff import Backoff
from edgedev._errors import DeviceError, DeviceFault, WriteRefused
from edgedev.bus._client import Bus
from edgedev.bus._messages import now_ms, state_update, twin_report
from edgedev.bus._topics import Channel, Topics
from edgedev.config._spec import DeviceSpec, PropertySpec
from edgedev.drivers._base import AnyDriver
from edgedev.drivers._endpoints import Endpoints
from edgedev.mapper._changes import ChangeFilter
from edgedev.mapper._schedule import Schedule
from edgedev.mapper._sinks import Reading, ReportSink
from edgedev.twin._state import DeviceState
from edgedev.twin._values import Value, check_value, format_value, parse_value, values_equal
from edgedev.wire._edgecore import key_refusal, value_refusal

log = logging.getLogger("edgedev.mapper")

ONLINE = DeviceState.ONLINE
OFFLINE = DeviceState.OFFLINE
UNHEALTHY = DeviceState.UNHEALTHY
UNKNOWN = DeviceState.UNKNOWN


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


def check_write(spec: DeviceSpec, name: str, text: str) -> tuple[PropertySpec, Value]:
    """Validate a write of wire string ``text`` to property ``name`` before any I/O.

    Raises:
        WriteRefused: no such property, read-only, not a value of the type, or out of range.
    """
    if not spec.has_property(name):
        raise WriteRefused(f"device {spec.id} has no property {name!r}")
    prop = spec.property(name)
    if not prop.writable:
        raise WriteRefused(f"property {name!r} is ReadOnly")
    try:
        value = check_value(text, prop.type, prop.minimum, prop.maximum)
    except ValueError as exc:
        raise WriteRefused(f"{name}: {exc}") from None
    return prop, value


def describe(exc: BaseException, timeout: float) -> str:
    """Why a device is offline, in words, for the log and the state report.

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


def _unwrap(exc: Exception) -> Exception:
    """The one exception inside (nested) exception groups of one, else ``exc`` itself."""
    while isinstance(exc, ExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


class DeviceRunner:
    """Runs one device for a :class:`~edgedev.Mapper`: polls, reports, writes, recovers.

    Attributes:
        state: ``online``, ``offline``, ``unhealthy`` (it answers with protocol exceptions
            only) or ``unknown`` (not yet connected).
        values: the last value read of each property, with its timestamp in ms.
        reads: read requests made to the driver.
        errors: failures that took the device offline.
        faults: reads answered with protocol exceptions only (:class:`~edgedev.DeviceFault`).
        reconnects: times the device came back after being offline.
        writes: writes the device accepted.
        refused: values left out of a twin report because EdgeCore would refuse them (each
            would have cost the device its whole report), counted per value.
    """

    def __init__(
        self,
        spec: DeviceSpec,
        driver_type: type[AnyDriver],
        bus: Bus,
        topics: Topics,
        *,
        backoff: Backoff | None = None,
        sinks: Sequence[ReportSink] = (),
        endpoints: Endpoints | None = None,
    ) -> None:
        self.spec = spec
        self._sinks = tuple(sinks)
        self._endpoints = endpoints
        self._driver_type = driver_type
        self._bus = bus
        self._backoff = backoff or Backoff(0.5, 30.0)
        self._timeout = getattr(spec.config, "timeout", 3000) / 1000
        self._twin_topic = topics.device(spec.id, Channel.TWIN_UPDATE)
        self._state_topic = topics.device(spec.id, Channel.STATE_UPDATE)
        self._props = {p.name: p for p in spec.properties}
        self._wire_types = {p.name: p.type.wire_name for p in spec.properties}
        self._twin_names = frozenset(p.name for p in spec.properties if p.report_to_cloud)
        self._key_refusals = {p.name: key_refusal(p.name) for p in spec.properties}
        self._desired: dict[str, tuple[str, Value]] = {}
        self._forced: set[str] = set()
        self._refused_once: set[str] = set()
        self._pushed: dict[str, tuple[Value, int]] = {}
        self._writes: deque[_WriteRequest] = deque()
        self._wake = anyio.Event()
        self.state: DeviceState = UNKNOWN
        self.values: dict[str, tuple[Value, int]] = {}
        self.reads = 0
        self.errors = 0
        self.faults = 0
        self.reason: str | None = None
        """Why the device is offline or unhealthy (``None`` while it is online)."""
        self.reconnects = 0
        self.writes = 0
        self.refused = 0
        self.on_state: list[Callable[[str], None]] = []
        """Called with the new state whenever it changes (the desired writer listens)."""

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
            prop, value = check_write(self.spec, name, text)
        except WriteRefused as exc:
            return WriteResult(name, False, reason=str(exc))
        if self.state != ONLINE:
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
        current = self.values.get(name)
        return current is not None and values_equal(current[0], wanted, prop.type)

    def report_now(self, name: str) -> None:
        """Report ``name``'s last value at the next turn of the device loop."""
        if name in self.values:
            self._forced.add(name)
            self._wake.set()

    def announce(self) -> None:
        """Publish the current state again (after the broker connection was re-established)."""
        if self.state != UNKNOWN:
            self._bus.publish(self._state_topic, state_update(self.state))

    def go_offline(self) -> None:
        """Publish ``offline`` (the mapper is stopping)."""
        self._set_state(OFFLINE)

    # the device loop -----------------------------------------------------------------------
    async def _session(self, driver: AnyDriver) -> None:
        with anyio.fail_after(self._timeout):
            await driver.connect()
        polled = [p for p in self.spec.properties if not driver.pushes(p)]
        pushed = [p for p in self.spec.properties if driver.pushes(p)]
        # read at once, then on the driver's phase of the shortest cycle: spread over it by
        # device (a fleet does not read in one burst), or together by endpoint (to batch)
        cycle = min((p.collect_cycle for p in polled), default=0.0)
        now = anyio.current_time()
        phase = cycle * (zlib.crc32(driver.phase_key().encode()) % 1024) / 1024
        start = now - ((now - phase) % cycle) if cycle > 0 else now
        collect = Schedule({p.name: p.collect_cycle for p in polled}, start)
        report = Schedule({p.name: p.report_cycle for p in polled if not p.report_on_change}, start)
        changes = ChangeFilter()
        async with anyio.create_task_group() as tg:
            if pushed:
                tg.start_soon(self._watch, driver, pushed)
                if not polled:
                    self._set_state(ONLINE)
            while True:
                now = anyio.current_time()
                fresh: dict[str, Value] = {}
                due = collect.pop_due(now)
                if due:
                    # shielded: a stopping mapper lets a read in flight finish (and report);
                    # the driver bounds each request by the timeout, this bounds the whole
                    # read (at most one request per property) for drivers that do not
                    with anyio.fail_after(self._timeout * len(due), shield=True):
                        try:
                            values = await driver.read([self._props[n] for n in due])
                        except DeviceFault as fault:
                            values = None
                            self._faulted(fault)
                    self.reads += 1
                    if values is not None:
                        self._set_state(ONLINE)
                        self._backoff.reset()
                        self._store(values, now_ms(), fresh)
                pushed_now_names: set[str] = set()
                if self._pushed:
                    pushed_now, self._pushed = self._pushed, {}
                    for name, (value, ts) in pushed_now.items():
                        self.values[name] = (value, ts)
                        fresh[name] = value
                        if not self._props[name].report_on_change:
                            pushed_now_names.add(name)
                forced = await self._do_writes(driver, fresh) if self._writes else set()
                if self._forced:
                    forced |= self._forced
                    self._forced = set()
                due_reports = report.pop_due(now)
                if self.state is UNHEALTHY:  # no stale values from a device that has none
                    due_reports = []
                self._report(due_reports, fresh, forced | pushed_now_names, changes)
                deadline = min(collect.next_deadline(), report.next_deadline())
                with anyio.move_on_after(deadline - anyio.current_time()):
                    await self._wake.wait()
                self._wake = anyio.Event()

    def _store(self, values: Mapping[str, Value], ts: int, fresh: dict[str, Value]) -> None:
        for name, value in values.items():
            if name in self._props:
                self.values[name] = (value, ts)
                fresh[name] = value

    def _report(
        self,
        due: Iterable[str],
        fresh: Mapping[str, Value],
        forced: set[str],
        changes: ChangeFilter,
    ) -> None:
        """Publish one message with the properties due, forced (written, pushed) or changed.

        Properties with ``reportToCloud: false`` stay off the twin topic. A value EdgeCore
        would refuse is left out (with one warning per property and :attr:`refused` counted),
        since EdgeCore refuses a whole message for one bad entry.
        """
        twin = self._twin_names
        names = [n for n in due if n in self.values and n in twin]
        listed = set(names)
        for name, value in fresh.items():
            if name in listed or name not in twin:
                continue
            prop = self._props[name]
            if name in forced or (prop.report_on_change and changes.changed(prop, value)):
                names.append(name)
                listed.add(name)
        if not names:
            return
        entries = []
        for name in names:
            prop = self._props[name]
            value, ts = self.values[name]
            changes.reported(prop, value)
            text = self._text(prop, value)
            type_ = self._wire_types[name]
            why = self._key_refusals[name] or value_refusal(text, type_)
            if why is not None:
                self._refuse(name, why)
                continue
            entries.append((name, text, type_, ts))
        if entries:
            self._bus.publish(self._twin_topic, twin_report(entries))
            if self._sinks:
                readings = [
                    Reading(name, self.values[name][0], text, ts) for name, text, _, ts in entries
                ]
                for sink in self._sinks:
                    sink.twin(self.spec, readings)

    def _text(self, prop: PropertySpec, value: Value) -> str:
        """The wire string of ``value``: the desired value's own text when they are equal."""
        desired = self._desired.get(prop.name)
        if desired is not None and values_equal(value, desired[1], prop.type):
            return desired[0]
        return format_value(value, prop.type)

    def _refuse(self, name: str, why: str) -> None:
        self.refused += 1
        if name not in self._refused_once:
            self._refused_once.add(name)
            log.warning(
                "device %s: property %s left out of twin reports while its value has %s, "
                "which EdgeCore refuses (with the whole report)",
                self.spec.id,
                name,
                why,
            )

    async def _watch(self, driver: AnyDriver, props: list[PropertySpec]) -> None:
        def report(name: str, value: Value) -> None:
            self._pushed[name] = (value, now_ms())
            self._wake.set()

        await driver.watch(props, report)
        raise DeviceError(f"device {self.spec.id} stopped pushing values")

    async def _do_writes(self, driver: AnyDriver, fresh: dict[str, Value]) -> set[str]:
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
                request.finish(
                    WriteResult(prop.name, False, reason=f"write failed: {exc!r}", retry=True)
                )
                raise
            self.writes += 1
            self._store(values, now_ms(), fresh)
            written.add(prop.name)
            back = values.get(prop.name, request.value)
            request.finish(WriteResult(prop.name, True, value=self._text(prop, back)))
        return written

    # state ---------------------------------------------------------------------------------
    def _set_state(self, state: DeviceState) -> None:
        if state == self.state:
            return
        if state == ONLINE:
            self.reason = None
            recovered = self.state in (OFFLINE, UNHEALTHY)
            if recovered:
                self.reconnects += 1
            log.info("device %s online%s", self.spec.id, " (recovered)" if recovered else "")
        self.state = state
        self._bus.publish(self._state_topic, state_update(state))
        for sink in self._sinks:
            sink.state(self.spec, state, self.reason)
        for listener in self.on_state:
            listener(state)

    def _lost(self, exc: BaseException) -> None:
        self.errors += 1
        reason = describe(exc, self._timeout)
        if self.state != OFFLINE or reason != self.reason:
            log.warning("device %s offline: %s", self.spec.id, reason)
        else:
            log.debug("device %s still offline: %s", self.spec.id, reason)
        self.reason = reason
        self._set_state(OFFLINE)

    def _faulted(self, fault: DeviceFault) -> None:
        """The device answered a whole read with exceptions: ``unhealthy``, logged once."""
        self.faults += 1
        reason = describe(fault, self._timeout)
        if self.state != UNHEALTHY or reason != self.reason:
            log.warning("device %s unhealthy: %s", self.spec.id, reason)
        self.reason = reason
        self._set_state(UNHEALTHY)

    def _fail_writes(self, reason: str) -> None:
        while self._writes:
            request = self._writes.popleft()
            request.finish(WriteResult(request.prop.name, False, reason=reason, retry=True))
