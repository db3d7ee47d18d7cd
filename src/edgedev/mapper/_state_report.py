"""A device's ``stateReport``: whether its state goes to the twin, and how often (pure, no I/O).

KubeEdge v1.23's ``Device.spec.stateReport {reportToCloud, reportCycle}`` (EdgeCore copies it
into the DMI ``Device.status``: ``edge/pkg/devicetwin/dtcommon/util.go`` ConvertDevice). The
reference mapper reports a device's state only when ``reportToCloud`` is true, and then every
``reportCycle`` milliseconds, 1 s when it is 0 (mapper-framework
``_template/mapper/device/devicestatus.go`` ``Run``, ``pkg/common/const.go``
``DefaultReportCycle``). edgedev also reports every change of state at once; a Device with no
``stateReport`` (a file's, as edgedev's agent and tools need states) reports its changes only.

:class:`Periodic` says when each device's state is due again, spread over the cycle so that a
fleet started together does not report in one burst; the transports that report to a twin use
both.
"""

from __future__ import annotations

import heapq
import math
import zlib
from dataclasses import dataclass

from edgedev.config._spec import DeviceSpec

DEFAULT_STATE_CYCLE = 1.0
"""Seconds between two states of a device whose ``reportCycle`` is 0 (upstream's default)."""


@dataclass(frozen=True, slots=True)
class StatePolicy:
    """How a device's state is reported to the twin.

    Attributes:
        report: whether it is reported at all (``stateReport.reportToCloud``).
        cycle: seconds between two reports of the unchanged state, or ``None``: changes only.
    """

    report: bool
    cycle: float | None


def state_policy(spec: DeviceSpec) -> StatePolicy:
    """What ``spec.state_report`` asks for (no ``stateReport``: every change, nothing periodic)."""
    wanted = spec.state_report
    if wanted is None:
        return StatePolicy(True, None)
    if not wanted.report_to_cloud:
        return StatePolicy(False, None)
    cycle = (wanted.report_cycle or 0) / 1000
    return StatePolicy(True, cycle if cycle > 0 else DEFAULT_STATE_CYCLE)


class Periodic:
    """When each device's state is due again (the caller gives the time: monotonic seconds).

    A device's first report is due a share of its cycle after it is added, the share given by
    its id (so devices added together are spread over the cycle); after that, a cycle after its
    last report (:meth:`reported`: periodic or a change). A heap keeps the next deadline
    cheap for thousands of devices.
    """

    def __init__(self) -> None:
        self._cycles: dict[str, float] = {}
        self._due: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []

    def __len__(self) -> int:
        return len(self._cycles)

    def set(self, device_id: str, cycle: float | None, now: float) -> None:
        """Report ``device_id`` every ``cycle`` seconds from now on (``None``: never)."""
        if cycle is None:
            self.forget(device_id)
            return
        if self._cycles.get(device_id) == cycle:
            return
        self._cycles[device_id] = cycle
        share = (zlib.crc32(device_id.encode()) % 1024) / 1024
        self._schedule(device_id, now + cycle * share)

    def forget(self, device_id: str) -> None:
        """Report ``device_id`` no more."""
        self._cycles.pop(device_id, None)
        self._due.pop(device_id, None)  # its heap entries are skipped when popped

    def reported(self, device_id: str, now: float) -> None:
        """A state of ``device_id`` went at ``now``: the next is due a cycle later."""
        cycle = self._cycles.get(device_id)
        if cycle is not None:
            self._schedule(device_id, now + cycle)

    def next_deadline(self) -> float:
        """When the next report is due (``inf`` when none is)."""
        while self._heap:
            due, device_id = self._heap[0]
            if self._due.get(device_id) == due:
                return due
            heapq.heappop(self._heap)  # stale: rescheduled or forgotten
        return math.inf

    def pop_due(self, now: float) -> list[str]:
        """The devices due at ``now``, in the order they fell due.

        Each is due again a cycle later, or a cycle after :meth:`reported` says it went.
        """
        due: list[str] = []
        while self.next_deadline() <= now:
            deadline, device_id = heapq.heappop(self._heap)
            due.append(device_id)
            self._schedule(device_id, max(deadline + self._cycles[device_id], now))
        return due

    def _schedule(self, device_id: str, due: float) -> None:
        self._due[device_id] = due
        heapq.heappush(self._heap, (due, device_id))
