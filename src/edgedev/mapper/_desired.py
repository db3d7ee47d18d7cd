"""Driving one device toward its desired values, retrying with backoff until it reports them.

The twin agent (edgedev's, or KubeEdge's EdgeCore) says what is desired and not yet reported:
in a ``twin/update/delta``, or in the answer to ``twin/get`` that a mapper asks for when it
(re)connects. Each of these is the device's whole set of pending values; a property absent
from it is no longer wanted. A :class:`DesiredWriter` writes each pending value through the
device's :class:`~edgedev.mapper.DeviceRunner` (which reads it back and reports it, so that the
delta disappears), reports a failed write on ``twin/update`` with an ``error`` and its reason,
and tries again with backoff for as long as a retry may help.

EdgeCore sends a delta after every accepted ``twin/update`` while desired and reported differ
**as strings**. So a value the device already holds (typed: ``24`` is ``24.0``) is not
written again but reported in the desired value's own text, which ends the delta; and a
property is written at most once per ``min_interval`` whatever arrives.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio

from edgedev._backoff import Backoff
from edgedev._errors import WriteRefused
from edgedev.bus._client import Bus
from edgedev.bus._topics import Channel, Topics
from edgedev.config._spec import DeviceSpec
from edgedev.mapper._device import DeviceRunner, check_device_write
from edgedev.twin._state import DeviceState
from edgedev.twin._values import is_pending, text_equal
from edgedev.wire import MsgTwin, dumps, new_event_id, now_ms, type_name

log = logging.getLogger("edgedev.mapper")


def pending_values(spec: DeviceSpec, twin: Mapping[str, MsgTwin | None]) -> dict[str, str]:
    """Desired values of a whole twin (``twin/get/result``) that differ from the reported ones.

    Properties the device does not have are left out.
    """
    pending = {}
    for name, entry in twin.items():
        if entry is None or entry.expected is None or entry.expected.value is None:
            continue
        if not spec.has_property(name):
            continue
        desired = entry.expected.value
        actual = entry.actual.value if entry.actual is not None else None
        if is_pending(desired, actual, spec.property(name).type):
            pending[name] = desired
    return pending


def known_properties(spec: DeviceSpec, delta: Mapping[str, str]) -> dict[str, str]:
    """The entries of ``delta`` for properties ``spec`` has; one warning for the others.

    A delta naming properties the device does not have (a stale model, or a hostile client)
    costs one log line, and no write, report or answer per entry.
    """
    known = {name: value for name, value in delta.items() if spec.has_property(name)}
    if len(known) < len(delta):
        unknown = [name for name in delta if name not in known]
        log.warning(
            "device %s: ignored a delta for %d propert%s it does not have (%s%s)",
            spec.id,
            len(unknown),
            "y" if len(unknown) == 1 else "ies",
            ", ".join(repr(n[:40]) for n in unknown[:3]),
            ", ..." if len(unknown) > 3 else "",
        )
    return known


def desired_stamps(twin: Mapping[str, MsgTwin | None]) -> dict[str, int]:
    """When each desired value of a twin was set (ms), to tell a new request from a repeat."""
    return {
        name: entry.expected.metadata.timestamp
        for name, entry in twin.items()
        if entry is not None and entry.expected is not None
    }


@dataclass(slots=True)
class _Pending:
    value: str
    backoff: Backoff
    stamp: int = 0  # when the value was set (ms), 0 when unknown
    due: float | None = 0.0  # monotonic time of the next attempt; None: wait for a new value
    reason: str | None = None  # last failure reported


@dataclass(slots=True)
class DesiredWriter:
    """Writes one device's pending desired values until the device reports them.

    Attributes:
        runner: the device's runner, which performs each write between its cycles.
        bus: where failures are reported.
        topics: the topic scheme.
        backoff: makes the retry delays of one pending value.
        min_interval: shortest time between two writes of one property, in seconds.
        attempts: writes tried so far.
        held: desired values found already held by the device, so not written.
    """

    runner: DeviceRunner
    bus: Bus
    topics: Topics
    backoff: Callable[[], Backoff] = field(default=lambda: Backoff(0.5, 30.0))
    min_interval: float = 1.0
    attempts: int = 0
    held: int = 0
    _pending: dict[str, _Pending] = field(default_factory=dict)
    _last_write: dict[str, float] = field(default_factory=dict)
    _wake: anyio.Event = field(default_factory=anyio.Event)
    _errors: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def pending(self) -> dict[str, str]:
        """The desired values not yet taken by the device, by property."""
        return {name: p.value for name, p in self._pending.items()}

    def replace(self, desired: Mapping[str, str], stamps: Mapping[str, int] | None = None) -> None:
        """Make ``desired`` (a delta: every value pending for the device) the work to do.

        Args:
            desired: the desired value of each pending property.
            stamps: when each was set (ms); a value set again is a new request.
        """
        for name in [n for n in self._pending if n not in desired]:
            del self._pending[name]
        for name, value in desired.items():
            self.want(name, value, (stamps or {}).get(name, 0))

    def want(self, name: str, value: str, stamp: int = 0) -> None:
        """Write ``value`` to ``name`` now, and again with backoff until the device takes it.

        The same value with the same ``stamp`` (a repeated delta) is tried again at once;
        a failure already reported is not reported again.
        """
        current = self._pending.get(name)
        if current is None or current.value != value or current.stamp != stamp:
            self._pending[name] = _Pending(value, self.backoff(), stamp)
        elif current.due is not None:
            current.due = 0.0
            current.backoff.reset()
        self._wake.set()

    def retry_now(self) -> None:
        """Try every value that failed for a reason a retry may fix (the device is back)."""
        for p in self._pending.values():
            if p.due is not None:
                p.due = 0.0
        self._wake.set()

    async def run(self) -> None:
        """Write pending values as they come, until cancelled."""
        while True:
            self._wake = anyio.Event()
            now = anyio.current_time()
            due = [n for n, p in self._pending.items() if p.due is not None and p.due <= now]
            # the checks first, without I/O: what they refuse goes out in one message
            ready = [name for name in due if self._ready(name)]
            self._flush()
            for name in ready:
                await self._attempt(name)
                self._flush()
            dues = [p.due for p in self._pending.values() if p.due is not None]
            wait = min(dues, default=math.inf) - anyio.current_time()
            with anyio.move_on_after(wait):
                await self._wake.wait()

    def _ready(self, name: str) -> bool:
        """Whether to write ``name`` now; else why not is noted (see :meth:`_flush`)."""
        pending = self._pending.get(name)
        if pending is None:
            return False
        try:
            check_device_write(self.runner.spec, name, pending.value)
        except WriteRefused as exc:  # no retry changes that: wait for another value
            pending.due = None
            self._failed(name, pending, str(exc), False)
            return False
        if self.runner.holds(name, pending.value):  # nothing to write: report it in its text
            del self._pending[name]
            self.held += 1
            self.runner.report_now(name)
            return False
        if self.runner.state != DeviceState.ONLINE:  # write once it is online: retry_now() wakes us
            pending.due = math.inf
            if self.runner.state in (DeviceState.OFFLINE, DeviceState.UNHEALTHY):
                state = f"{self.runner.state}: {self.runner.reason}"
                self._failed(name, pending, f"device {self.runner.spec.id} is {state}", True)
            return False
        return True

    async def _attempt(self, name: str) -> None:
        pending = self._pending.get(name)
        if pending is None or not self._ready(name):
            return
        spec = self.runner.spec
        now = anyio.current_time()
        earliest = self._last_write.get(name, -math.inf) + self.min_interval
        if now < earliest:  # bounded rate of writes per property
            pending.due = earliest
            return
        self._last_write[name] = now
        self.attempts += 1
        result = await self.runner.write(name, pending.value)
        retry = result.retry
        if self._pending.get(name) is not pending:  # replaced or withdrawn meanwhile
            return
        if result.ok:
            assert result.value is not None
            if text_equal(result.value, pending.value, spec.property(name).type):
                del self._pending[name]
                log.info("device %s: %s set to %s", spec.id, name, result.value)
                return
            reason = f"the device holds {result.value} after writing {pending.value}"
            retry = False
        else:
            reason = result.reason or "write failed"
        pending.due = anyio.current_time() + pending.backoff.next() if retry else None
        self._failed(name, pending, reason, retry)

    def _failed(self, name: str, pending: _Pending, reason: str, retry: bool) -> None:
        if reason != pending.reason:  # report each reason once, not every retry
            pending.reason = reason
            log.warning(
                "device %s: write %s=%s failed: %s",
                self.runner.spec.id,
                name,
                pending.value,
                reason,
            )
            self._report(name, pending.value, reason, retry)

    def _report(self, name: str, value: str, reason: str, retry: bool) -> None:
        """Note a failure for the next :meth:`_flush` (one message for a delta's refusals)."""
        spec = self.runner.spec
        type_ = type_name(spec.property(name).type) if spec.has_property(name) else "string"
        error = {"value": value, "reason": reason, "timestamp": now_ms(), "retry": retry}
        self._errors[name] = {"metadata": {"type": type_}, "error": error}

    def _flush(self) -> None:
        """Publish the failures noted since the last flush, all in one ``twin/update``."""
        if not self._errors:
            return
        twin, self._errors = self._errors, {}
        self.bus.publish(
            self.topics.device(self.runner.spec.id, Channel.TWIN_UPDATE),
            dumps({"event_id": new_event_id(), "timestamp": now_ms(), "twin": twin}),
        )
