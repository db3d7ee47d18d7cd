"""One device's desired values: the check, the write, the read-back and the retries, in one place.

This module docstring is the one place that says the write path; ``docs/architecture.md``
and the runner point here. The twin transports say what is desired and not yet reported
(:meth:`~edgedev.mapper.MapperView.writer`): KubeEdge's MQTT topics in a ``twin/update/delta``
or the answer to ``twin/get`` (the device's whole set of pending values: a property absent
from it is no longer wanted, :meth:`DesiredWriter.replace`), DMI in the ``desired`` of each
property that EdgeCore sends (:meth:`DesiredWriter.update`); an API call waits for the
outcome of one value (:meth:`DesiredWriter.write`).

How the work is split. A :class:`DesiredWriter` belongs to its device's
:class:`~edgedev.mapper.DeviceRunner` (``runner.desired``) and does no I/O of its own: it has
no task and no queue (its one hold on the runner is ``wake``, which ends the runner's sleep
when a write is ready). It decides everything about a desired value, and the runner
does the one thing that must happen in the device's own task, between two of its cycles:

- the runner tells it each change of the device's state (:meth:`DesiredWriter.state_changed`);
- the runner asks it, after each poll, which writes are due (:meth:`DesiredWriter.due`),
  performs each one unchecked (driver write, then a read of the property) and hands back what
  came of it (:meth:`DesiredWriter.written`, :meth:`DesiredWriter.failed`);
- the writer reads the runner's last values (to see a value the device holds already) and
  tells the runner which of them to report again in the desired value's own text
  (:meth:`DesiredWriter.take_reports`, :meth:`DesiredWriter.text`).

The rules, all here: each desired value is checked once when it arrives
(:func:`~edgedev.drivers.check_desired`, the one rule for desired values: exists, writable, a
text a report can carry back, parses, minimum/maximum, and held exactly by the device as its
driver says); a refused value is reported once and waits for another value; a value the
device already holds (typed: ``24`` is ``24.0``) is not written but reported in the desired
value's own text, since EdgeCore sends a delta after every accepted ``twin/update`` while
desired and reported differ **as strings**;
a property is written at most once per ``min_interval`` whatever arrives; a value waits while
the device is not online and is tried again whenever its state changes; a failed write is
retried with backoff for as long as a retry may help. Each failure is reported once per reason
through the runner's report sinks (:meth:`~edgedev.mapper.ReportSink.write_failed`), the
failures found together (one delta's refusals) in one batch.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import anyio

from edgedev._backoff import Backoff
from edgedev._errors import WriteRefused
from edgedev.config._spec import DeviceSpec, PropertySpec
from edgedev.drivers._base import AnyDriver
from edgedev.drivers._desired import check_desired
from edgedev.mapper._sinks import Reading, ReportSink
from edgedev.twin._state import DeviceState
from edgedev.twin._twin import WriteFailure
from edgedev.twin._values import Value, format_value, text_equal, values_equal
from edgedev.wire import now_ms

log = logging.getLogger("edgedev.mapper")


def check_device_write(
    spec: DeviceSpec, name: str, text: str, driver: type[AnyDriver] | None = None
) -> tuple[PropertySpec, Value]:
    """:func:`~edgedev.drivers.check_desired` of property ``name`` of ``spec``, with the property.

    Raises:
        NoSuchProperty: the device has no such property.
        WriteRefused: read-only, a text no report carries, not a value of the type, out of
            range, or a value the device (its ``driver``) cannot hold exactly.
    """
    prop = spec.property(name) if spec.has_property(name) else None
    value = check_desired(spec.id, name, prop, text, driver)
    assert prop is not None  # check_desired refused a missing property
    return prop, value


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What became of a write (:meth:`DesiredWriter.write`).

    Attributes:
        property: the property written.
        ok: whether the device holds the value now (written and read back, or held already).
        value: the value the device holds, as its wire string (when ``ok``).
        reason: why the write failed (when not ``ok``).
        retry: whether the writer keeps trying (device offline or failing), as opposed to a
            refusal that no retry will change (read-only, out of range).
        superseded: another desired value replaced this one before it was written, or it is
            no longer desired.
    """

    property: str
    ok: bool
    value: str | None = None
    reason: str | None = None
    retry: bool = False
    superseded: bool = False


@dataclass(frozen=True, slots=True, eq=False)
class Write:
    """One write for the runner to perform: checked already, to be read back after.

    Attributes:
        prop: the property.
        value: the typed value to write.
        text: the desired value's wire string.
    """

    prop: PropertySpec
    value: Value
    text: str


@dataclass(slots=True, eq=False)
class _Waiter:
    done: anyio.Event = field(default_factory=anyio.Event)
    result: WriteResult | None = None


@dataclass(slots=True, eq=False)
class _Pending:
    value: str
    backoff: Backoff
    stamp: int = 0  # when the value was set (ms), 0 when unknown
    write: Write | None = None  # None: refused by the check; no retry changes that
    due: float | None = 0.0  # time of the next attempt; inf: when the state changes; None: never
    reason: str | None = None  # last failure reported
    flying: bool = False  # handed to the runner by due(), outcome not yet known
    waiters: list[_Waiter] = field(default_factory=list)


def _never_wake() -> None:
    pass


class DesiredWriter:
    """One device's desired values, written until the device reports them.

    Made by the device's :class:`~edgedev.mapper.DeviceRunner` (``runner.desired``), which
    drives it; the mapper and the device sources hand it desired values (:meth:`replace`,
    :meth:`update`, :meth:`write`). See the module docstring for the rules.

    Args:
        spec: the device.
        sinks: where failed writes are reported (:meth:`~edgedev.mapper.ReportSink.write_failed`).
        driver: the device's driver, which says what the device can hold
            (:meth:`~edgedev.drivers.Driver.held_value`); ``None``: any value.
        last: the runner's last reading of each property (read, never changed here).
        wake: wakes the runner when a write is ready.
        clock: monotonic seconds (:func:`anyio.current_time` by default).

    Attributes:
        spec: the device.
        backoff: makes the retry delays of one pending value (0.5 s doubling to 30 s).
        min_interval: shortest time between two writes of one property, in seconds.
        attempts: writes handed to the runner so far.
        held: desired values found already held by the device, so not written.
        state: the device's state, as the runner last said.
        reason: why the device is offline or unhealthy, as the runner last said.
    """

    def __init__(
        self,
        spec: DeviceSpec,
        sinks: Sequence[ReportSink] = (),
        *,
        driver: type[AnyDriver] | None = None,
        last: Mapping[str, Reading] | None = None,
        wake: Callable[[], None] = _never_wake,
        clock: Callable[[], float] = anyio.current_time,
    ) -> None:
        self.spec = spec
        self.driver = driver
        self._sinks = tuple(sinks)
        self._last: Mapping[str, Reading] = {} if last is None else last
        self._wake = wake
        self._clock = clock
        self.backoff: Callable[[], Backoff] = lambda: Backoff(0.5, 30.0)
        self.min_interval = 1.0
        self.attempts = 0
        self.held = 0
        self.state = DeviceState.UNKNOWN
        self.reason: str | None = None
        self._pending: dict[str, _Pending] = {}
        self._last_write: dict[str, float] = {}
        self._texts: dict[str, tuple[str, Value]] = {}  # the last desired text of each property
        self._failures: dict[str, WriteFailure] = {}  # to report at the next _flush
        self._reports: set[str] = set()  # held values to report again in their desired text
        self._closed = False

    # desired values in --------------------------------------------------------------------
    @property
    def pending(self) -> dict[str, str]:
        """The desired values not yet taken by the device, by property."""
        return {name: p.value for name, p in self._pending.items()}

    def replace(self, desired: Mapping[str, str], stamps: Mapping[str, int] | None = None) -> None:
        """Make ``desired`` (a delta: every value pending for the device) the work to do.

        Properties not in ``desired`` are no longer wanted. Refusals go out in one batch.

        Args:
            desired: the desired value of each pending property.
            stamps: when each was set (ms); a value set again is a new request.
        """
        for name in [n for n in self._pending if n not in desired]:
            p = self._pending.pop(name)
            self._resolve(p, name, "no longer desired", retry=False, superseded=True)
        self.update(desired, stamps)

    def update(self, desired: Mapping[str, str], stamps: Mapping[str, int] | None = None) -> None:
        """Write each value of ``desired`` as soon as may be, and again until the device takes it.

        Other properties stay as they are. The same value with the same stamp (a repeated
        delta) is tried again at once; a failure already reported is not reported again.
        Refusals go out in one batch.

        Args:
            desired: the desired value of each property to write.
            stamps: when each was set (ms); a value set again is a new request.
        """
        for name, value in desired.items():
            self._want(name, value, (stamps or {}).get(name, 0))
        self._settle()

    def check(self, name: str, text: str) -> Value:
        """The rule a desired value ``text`` of ``name`` meets before it is taken (no I/O).

        What :meth:`update` and :meth:`write` apply to each value they are given, for a
        caller that answers a refusal itself (the REST API).

        Raises:
            NoSuchProperty: the device has no such property.
            WriteRefused: refused (see :func:`~edgedev.drivers.check_desired`).
        """
        return check_device_write(self.spec, name, text, self.driver)[1]

    async def write(self, name: str, text: str) -> WriteResult:
        """Want wire string ``text`` for ``name`` and wait for the first outcome.

        The outcome is a refusal by the check, a failure (the value stays pending when
        ``retry``), the value read back after the write, or the device holding it already.
        While the device has not been reached yet, this waits until it has.
        """
        if self._closed:
            return WriteResult(name, False, reason=f"device {self.spec.id} stopped", retry=True)
        waiter = _Waiter()
        self._want(name, text, 0, waiter)
        self._settle()
        await waiter.done.wait()
        assert waiter.result is not None
        return waiter.result

    def text(self, prop: PropertySpec, value: Value) -> str:
        """The wire string of ``value``: the desired value's own text when they are equal.

        So a value read back that equals the desired one is reported in the desired text,
        and EdgeCore, which compares desired and reported as strings, stops sending deltas.
        """
        desired = self._texts.get(prop.name)
        if desired is not None and values_equal(value, desired[1], prop.type):
            return desired[0]
        return format_value(value, prop.type)

    # the runner's side --------------------------------------------------------------------
    def state_changed(self, state: DeviceState, reason: str | None) -> None:
        """The device's state changed: every value that may be written is tried again.

        Online, they are written at the runner's next turn; offline or unhealthy, each
        failure says why they wait.
        """
        self.state, self.reason = state, reason
        for p in self._pending.values():
            p.flying = False  # a write in flight ended with its cycle
            if p.due is not None:
                p.due = 0.0
        self._settle()

    def due(self) -> list[Write]:
        """The writes to perform now, in order; tell each outcome to :meth:`written`/:meth:`failed`.

        Values the device holds already are taken off (see :meth:`take_reports`), and each
        property is written at most once per :attr:`min_interval`.
        """
        if not self._pending:  # the common case, at every cycle of the runner
            return []
        now = self._clock()
        writes = []
        for name, p in list(self._pending.items()):
            if p.flying or p.due is None or p.due > now or not self._ready(name, p):
                continue
            assert p.write is not None
            earliest = self._last_write.get(name, -math.inf) + self.min_interval
            if now < earliest:  # bounded rate of writes per property
                p.due = earliest
                continue
            self._last_write[name] = now
            self.attempts += 1
            p.flying = True
            writes.append(p.write)
        self._flush()
        return writes

    def written(self, write: Write, text: str) -> None:
        """The runner wrote ``write`` and read back ``text`` (its wire string)."""
        name = write.prop.name
        p = self._flown(write)
        if p is None:
            return
        if text_equal(text, p.value, write.prop.type):
            del self._pending[name]
            log.info("device %s: %s set to %s", self.spec.id, name, text)
            self._notify(p, WriteResult(name, True, value=text))
            return
        p.due = None
        self._failed(name, p, f"the device holds {text} after writing {p.value}", False)
        self._flush()

    def failed(self, write: Write, reason: str, retry: bool) -> None:
        """The runner's write of ``write`` failed; ``retry``: the device may take it later."""
        p = self._flown(write)
        if p is None:
            return
        p.due = self._clock() + p.backoff.next() if retry else None
        self._failed(write.prop.name, p, reason, retry)
        self._flush()

    def take_reports(self) -> list[str]:
        """Properties whose held value the runner is to report again (in the desired text)."""
        names, self._reports = self._reports, set()
        return sorted(names)

    def next_due(self) -> float:
        """When the next write is due (monotonic seconds; ``inf``: on a change of state)."""
        if not self._pending:
            return math.inf
        return min(
            (p.due for p in self._pending.values() if p.due is not None and not p.flying),
            default=math.inf,
        )

    def close(self) -> None:
        """The runner stopped: nothing more is written or reported; waiters hear why."""
        self._closed = True
        for name, p in self._pending.items():
            self._resolve(p, name, f"device {self.spec.id} stopped", retry=True)

    # inside -------------------------------------------------------------------------------
    def _want(self, name: str, value: str, stamp: int, waiter: _Waiter | None = None) -> None:
        current = self._pending.get(name)
        if current is not None and current.value == value and current.stamp == stamp:
            if waiter is not None:
                current.waiters.append(waiter)
                if current.due is None:  # refused: that is the outcome
                    self._resolve(current, name, current.reason or "refused", retry=False)
            if current.due is not None and not current.flying:
                current.due = 0.0
                current.backoff.reset()
            return
        if current is not None:
            reason = "replaced by a newer desired value"
            self._resolve(current, name, reason, retry=False, superseded=True)
        p = self._pending[name] = _Pending(value, self.backoff(), stamp)
        if waiter is not None:
            p.waiters.append(waiter)
        try:  # the check, once per desired value
            prop, typed = check_device_write(self.spec, name, value, self.driver)
        except WriteRefused as exc:  # no retry changes that: wait for another value
            p.due = None
            self._failed(name, p, str(exc), False)
            return
        p.write = Write(prop, typed, value)
        self._texts[name] = (value, typed)

    def _settle(self) -> None:
        """Take what is to be decided now: held values off, waits said; wake the runner."""
        if self._closed:
            return
        ready = False
        for name, p in list(self._pending.items()):
            if not p.flying and p.due is not None and p.due < math.inf:
                ready = self._ready(name, p) or ready
        self._flush()
        if ready or self._reports:
            self._wake()

    def _ready(self, name: str, p: _Pending) -> bool:
        """Whether ``p`` may be written now; else it is held (taken off) or waits."""
        write = p.write
        if write is None:
            return False
        current = self._last.get(name)
        if current is not None and values_equal(current.value, write.value, write.prop.type):
            del self._pending[name]  # nothing to write: report it in its text
            self.held += 1
            self._reports.add(name)
            self._notify(p, WriteResult(name, True, value=p.value))
            return False
        if self.state != DeviceState.ONLINE:  # write once it is online: state_changed()
            p.due = math.inf
            if self.state in (DeviceState.OFFLINE, DeviceState.UNHEALTHY):
                state = f"{self.state}: {self.reason}"
                self._failed(name, p, f"device {self.spec.id} is {state}", True)
            return False
        return True

    def _flown(self, write: Write) -> _Pending | None:
        """The pending value ``write`` was for, unless replaced or withdrawn meanwhile."""
        p = self._pending.get(write.prop.name)
        if p is None or p.write is not write:
            return None
        p.flying = False
        return p

    def _failed(self, name: str, p: _Pending, reason: str, retry: bool) -> None:
        if reason != p.reason:  # report each reason once, not every retry
            p.reason = reason
            log.warning("device %s: write %s=%s failed: %s", self.spec.id, name, p.value, reason)
            if not self._closed:
                self._failures[name] = WriteFailure(p.value, reason, now_ms(), retry)
        self._resolve(p, name, reason, retry)

    def _resolve(
        self, p: _Pending, name: str, reason: str, retry: bool, *, superseded: bool = False
    ) -> None:
        self._notify(p, WriteResult(name, False, reason=reason, retry=retry, superseded=superseded))

    @staticmethod
    def _notify(p: _Pending, result: WriteResult) -> None:
        for waiter in p.waiters:
            waiter.result = result
            waiter.done.set()
        p.waiters.clear()

    def _flush(self) -> None:
        """Hand the failures noted since the last flush to the sinks, as one batch."""
        if not self._failures:
            return
        failures, self._failures = self._failures, {}
        for sink in self._sinks:
            sink.write_failed(self.spec, failures)
