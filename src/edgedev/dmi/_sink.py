"""Twin reports and states to EdgeCore over DMI, batched per device, within its rate limit.

EdgeCore takes 1 request per second for the whole node (burst 100), and a
``ReportDeviceStatus`` carries one device. So reports wait here, coalesced (a newer value of
a property replaces the older one, a newer state the older one), and leave one request at a
time as the token bucket allows: changes of state first; then devices with changed values and
the periodic states of ``stateReport.reportCycle`` in turn; then the periodic refreshes of
unchanged values. A device's state goes only when its ``stateReport.reportToCloud`` says so
(EdgeCore sends false when the Device says nothing, and so edgedev reports none, as the
reference mapper does). A refusal by EdgeCore's limiter spends our tokens and backs off; a
lost connection keeps everything for when EdgeCore is back.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import anyio
import grpc
from grpc import aio

from edgedev._backoff import Backoff
from edgedev.config._spec import DeviceSpec
from edgedev.dmi._limiter import TokenBucket
from edgedev.dmi._link import EdgeCoreLink, is_limited
from edgedev.dmi._pb import api_pb2 as pb
from edgedev.mapper import Periodic, Reading, TwinFilter, state_policy
from edgedev.twin._state import DeviceState
from edgedev.twin._twin import WriteFailure

log = logging.getLogger("edgedev.dmi")

REQUEST_TIMEOUT = 5.0
"""Seconds one DMI request may take."""


@dataclass(slots=True)
class _Twin:
    text: str
    type: str
    timestamp: int


_Request = pb.ReportDeviceStatusRequest | pb.ReportDeviceStatesRequest


def _key(spec: DeviceSpec) -> tuple[str, str]:
    return (spec.namespace, spec.name)


def _split(device_id: str) -> tuple[str, str]:
    namespace, name = device_id.split("/", 1)
    return (namespace, name)


def _now() -> float:
    return anyio.current_time()


class DmiSink:
    """The reporting half of :class:`~edgedev.dmi.Dmi`: twins and states to EdgeCore.

    It has the report methods of a :class:`~edgedev.mapper.ReportSink` (``Dmi`` hands it
    its own), queues inside, and sends from :meth:`run`.

    Args:
        link: the channel to EdgeCore.
        desired: the desired value EdgeCore last sent for each property of a device
            (``observedDesired`` of each reported twin; ``""`` when none), or ``None`` for a
            device EdgeCore did not send (from a file): nothing of it is reported.
        bucket: the request budget (0.8 requests/s, burst 20 by default).

    Attributes:
        sent: requests EdgeCore accepted.
        limited: requests EdgeCore refused for its rate limit.
        failed: requests that failed otherwise.
        replaced: values replaced by a newer one of their property before they were sent
            (EdgeCore keeps the latest only; counted as dropped, reason ``dmi_replaced``).
        refused: values left out of reports because EdgeCore would refuse them, per device
            id (see :class:`~edgedev.mapper.TwinFilter`).
        active: whether EdgeCore is registered with (reports wait while it is not).
    """

    def __init__(
        self,
        link: EdgeCoreLink,
        desired: Callable[[str], Mapping[str, str] | None] = lambda _id: {},
        *,
        bucket: TokenBucket | None = None,
    ) -> None:
        self.link = link
        self._desired = desired
        self.bucket = bucket or TokenBucket()
        self._states: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._last_states: dict[tuple[str, str], str] = {}  # to repeat at the reportCycle
        self._repeats: OrderedDict[tuple[str, str], str] = OrderedDict()  # periodic, due
        self._periodic = Periodic()
        self._repeat_turn = False  # whether a periodic state goes before the next twin
        self._changed: OrderedDict[tuple[str, str], dict[str, _Twin]] = OrderedDict()
        self._refresh: OrderedDict[tuple[str, str], dict[str, _Twin]] = OrderedDict()
        self._sent: dict[tuple[str, str], dict[str, str]] = {}
        self._work = anyio.Event()
        self._active = anyio.Event()
        self._backoff = Backoff(1.0, 30.0)
        self._filter = TwinFilter("DMI")
        self.refused = self._filter.refused
        self.sent = 0
        self.limited = 0
        self.failed = 0
        self.replaced = 0

    # the report methods ----------------------------------------------------------------
    def twin(self, device: DeviceSpec, readings: Sequence[Reading]) -> None:
        """Queue the readings EdgeCore takes (``reportToCloud`` set, a value it accepts)."""
        if self._desired(device.id) is None:
            return
        key = _key(device)
        sent = self._sent.get(key, {})
        changed = self._changed.get(key)
        refresh = self._refresh.get(key)
        for r, type_ in self._filter.accepted(device, readings):
            twin = _Twin(r.text, type_, r.timestamp)
            if sent.get(r.name) != r.text or (changed is not None and r.name in changed):
                if changed is None:
                    changed = self._changed[key] = {}
                elif r.name in changed:
                    self.replaced += 1
                changed[r.name] = twin
                if refresh is not None:
                    refresh.pop(r.name, None)
            else:
                if refresh is None:
                    refresh = self._refresh[key] = {}
                refresh[r.name] = twin
        if refresh is not None and not refresh:
            del self._refresh[key]
        self._work.set()

    def state(self, device: DeviceSpec, state: DeviceState, reason: str | None) -> None:
        """Queue the device's new state (replacing one not yet sent), if it is reported."""
        if self._desired(device.id) is None or not state_policy(device).report:
            return
        key = _key(device)
        self._states[key] = self._last_states[key] = state.value
        self._repeats.pop(key, None)  # the change says it
        self._work.set()

    def added(self, device: DeviceSpec) -> None:
        """Repeat the device's state at its ``stateReport.reportCycle``, if it has one."""
        if self._desired(device.id) is None:
            return
        policy = state_policy(device)
        self._periodic.set(device.id, policy.cycle if policy.report else None, _now())
        if not policy.report:
            self._last_states.pop(_key(device), None)
        self._work.set()

    def write_failed(self, device: DeviceSpec, failures: Mapping[str, WriteFailure]) -> None:
        """Note failed writes in the log only: DMI has no way to report them to EdgeCore.

        A ``Twin`` of ``ReportDeviceStatus`` carries ``observedDesired`` and ``reported``,
        each a value with string metadata, and nothing else (kubeedge ``api.proto``,
        ``v1beta1``); EdgeCore keeps no write error. So the failure shows in EdgeCore as a
        desired value not yet reported, and its reason in the mapper's log (the writer logs
        each failure once per reason; this adds one line per batch that names the device).
        """
        if self._desired(device.id) is None:
            return
        log.info(
            "device %s: %d failed write%s not reported to EdgeCore (DMI has no write error): %s",
            device.id,
            len(failures),
            "" if len(failures) == 1 else "s",
            ", ".join(f"{name}={f.value}: {f.reason}" for name, f in failures.items()),
        )

    def removed(self, device: DeviceSpec) -> None:
        """Forget the twins waiting for a device that left (its last state still goes)."""
        key = _key(device)
        self._periodic.forget(device.id)
        self._last_states.pop(key, None)
        self._repeats.pop(key, None)
        self._changed.pop(key, None)
        self._refresh.pop(key, None)
        self._sent.pop(key, None)
        self._filter.forget(device)

    # activity ------------------------------------------------------------------------------
    @property
    def active(self) -> bool:
        """Whether reports are sent now (EdgeCore is registered with)."""
        return self._active.is_set()

    def activate(self) -> None:
        """EdgeCore is there (registered): send what waits."""
        self._active.set()
        self._backoff.reset()

    def deactivate(self) -> None:
        """EdgeCore is gone: keep reports until :meth:`activate`."""
        if self._active.is_set():
            self._active = anyio.Event()

    @property
    def pending(self) -> int:
        """Requests waiting (states, periodic states, and devices with twins to report)."""
        return len(self._states) + len(self._repeats) + len(self._changed) + len(self._refresh)

    # sending -------------------------------------------------------------------------------
    async def run(self) -> None:
        """Send queued reports within the budget, until cancelled."""
        while True:
            self._repeat_due()
            if not self.pending:
                self._work = anyio.Event()
                with anyio.move_on_after(self._periodic.next_deadline() - _now()):
                    await self._work.wait()
                continue
            await self._active.wait()
            wait = self.bucket.delay(anyio.current_time())
            if wait > 0:
                await anyio.sleep(wait)
                continue
            await self._send_one()

    async def flush(self) -> None:
        """Send what waits, states first, within the budget (the caller bounds the time)."""
        while self.pending and self.active:
            wait = self.bucket.delay(anyio.current_time())
            if wait > 0:
                await anyio.sleep(min(wait, 1.0))
                continue
            if not await self._send_one():
                return

    def _repeat_due(self) -> None:
        """Queue the periodic states that are due (one per device at most)."""
        for device_id in self._periodic.pop_due(_now()):
            key = _split(device_id)
            state = self._last_states.get(key)
            if state is not None and key not in self._states:
                self._repeats[key] = state

    def _next(self) -> tuple[_Request, Callable[[], None], Callable[[], None]]:
        """The most urgent request, how to put it back, and what to note once it went."""
        states: OrderedDict[tuple[str, str], str] | None = None
        if self._states:  # a change of state: first
            states = self._states
        elif self._repeats and (self._repeat_turn or not self._changed):
            states = self._repeats  # periodic: in turn with changed values, before refreshes
            self._repeat_turn = False
        if states is not None:
            key, state = states.popitem(last=False)
            queued = states

            def requeue_state() -> None:
                queued.setdefault(key, state)
                queued.move_to_end(key, last=False)

            def sent_state() -> None:
                self._periodic.reported(f"{key[0]}/{key[1]}", _now())

            request: _Request = pb.ReportDeviceStatesRequest(
                deviceNamespace=key[0], deviceName=key[1], state=state
            )
            return request, requeue_state, sent_state
        if self._changed:
            self._repeat_turn = True  # a periodic state that waits goes next
        queue = self._changed if self._changed else self._refresh
        key, twins = queue.popitem(last=False)
        if queue is self._changed and key in self._refresh:
            twins = {**self._refresh.pop(key), **twins}  # one request carries the device
        desired = self._desired(f"{key[0]}/{key[1]}") or {}
        request = pb.ReportDeviceStatusRequest(
            deviceNamespace=key[0],
            deviceName=key[1],
            reportedDevice=pb.DeviceStatus(
                twins=[
                    pb.Twin(
                        propertyName=name,
                        observedDesired=pb.TwinProperty(
                            value=desired.get(name, ""),
                            metadata={"type": t.type, "timestamp": str(t.timestamp)},
                        ),
                        reported=pb.TwinProperty(
                            value=t.text, metadata={"type": t.type, "timestamp": str(t.timestamp)}
                        ),
                    )
                    for name, t in twins.items()
                ]
            ),
        )

        def requeue_twins() -> None:
            newer = queue.get(key)
            merged = {**twins, **(newer or {})}
            queue[key] = merged
            queue.move_to_end(key, last=False)

        def done() -> None:
            sent = self._sent.setdefault(key, {})
            for name, t in twins.items():
                sent[name] = t.text

        return request, requeue_twins, done

    async def _send_one(self) -> bool:
        """Send the most urgent request; whether it went (False: back off first)."""
        request, requeue, done = self._next()
        self.bucket.take(anyio.current_time())
        stub = self.link.stub
        try:
            if isinstance(request, pb.ReportDeviceStatesRequest):
                await stub.ReportDeviceStates(request, timeout=REQUEST_TIMEOUT)
            else:
                await stub.ReportDeviceStatus(request, timeout=REQUEST_TIMEOUT)
        except anyio.get_cancelled_exc_class():
            requeue()  # the sender stops (flush takes over, or the mapper ends): not lost
            raise
        except aio.AioRpcError as exc:
            if is_limited(exc):
                self.limited += 1
                self.bucket.drain(anyio.current_time())
                requeue()
                delay = self._backoff.next()
                log.warning("EdgeCore's rate limit refused a report; waiting %.1f s", delay)
                await anyio.sleep(delay)
                return False
            if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                requeue()
                await anyio.sleep(self._backoff.next())
                return False
            self.failed += 1
            log.warning(
                "EdgeCore refused a report of %s/%s: %s",
                request.deviceNamespace,
                request.deviceName,
                exc.details(),
            )
            return True
        self.sent += 1
        self._backoff.reset()
        done()
        return True
