"""KubeEdge DMI as one twin transport: EdgeCore's devices in, their twins and states out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import anyio
from anyio.abc import TaskStatus

from edgedev._metrics import Metric
from edgedev.config import DeviceSpec
from edgedev.dmi._limiter import TokenBucket
from edgedev.dmi._link import DEFAULT_DMI_SOCKET, EdgeCoreLink
from edgedev.dmi._sink import DmiSink
from edgedev.dmi._socket import claim_socket
from edgedev.dmi._source import DmiSource, default_mapper_socket
from edgedev.mapper import MapperView, Reading, TwinTransport
from edgedev.twin import DeviceState, WriteFailure

if TYPE_CHECKING:
    from edgedev._plugins import Registry
    from edgedev.drivers import AnyDriver


def mapper_socket_path(template: str | None, protocol: str, count: int = 1) -> str:
    """The socket a mapper serves EdgeCore on for ``protocol``.

    Args:
        template: a path, where ``{protocol}`` is replaced; ``None`` for
            ``/etc/kubeedge/edgedev-{protocol}.sock``.
        protocol: the protocol registered for.
        count: how many protocols the mapper registers for.

    Raises:
        ValueError: several protocols would share one socket (no ``{protocol}`` in it).
    """
    if template is None:
        return default_mapper_socket(protocol)
    if "{protocol}" in template:
        return template.replace("{protocol}", protocol)
    if count > 1:
        raise ValueError("with several protocols, the mapper socket needs '{protocol}' in it")
    return template


class Dmi(TwinTransport):
    """KubeEdge DMI (EdgeCore v1.15+): a :class:`~edgedev.mapper.TwinTransport` of the mapper.

    One registration with EdgeCore per protocol (a :class:`DmiSource` each, serving
    ``DeviceMapperService`` on its own socket): EdgeCore's devices of that protocol start,
    change and stop in the mapper as EdgeCore says, and their desired values go to each
    device's :class:`~edgedev.mapper.DesiredWriter`. Their twins and states go back to
    EdgeCore (:class:`DmiSink`: ``ReportDeviceStatus``, ``ReportDeviceStates``, within
    EdgeCore's rate limit); devices that came from elsewhere (files) are not reported
    over DMI. Ready once every protocol is registered::

        mapper = Mapper(devices, transports=[KubeEdgeMqtt(broker), Dmi(["modbus"])])

    Args:
        protocols: the protocols to register for.
        socket: EdgeCore's DMI socket.
        mapper_socket: where this mapper serves EdgeCore: a path, where ``{protocol}`` is
            replaced (needed with several protocols); default
            ``/etc/kubeedge/edgedev-{protocol}.sock``.
        bucket: the request budget of the reports (0.8 requests/s, burst 20 by default).
        drivers: where drivers come from (default: installed entry points).

    Attributes:
        link: the channel to EdgeCore, shared by the registrations and the reports.
        sink: the reports to EdgeCore, and their counters.
        sources: the registration of each protocol (made when a mapper is attached).

    Raises:
        ValueError: no protocol, or several protocols would share one socket.
    """

    def __init__(
        self,
        protocols: Sequence[str],
        *,
        socket: str = DEFAULT_DMI_SOCKET,
        mapper_socket: str | None = None,
        bucket: TokenBucket | None = None,
        drivers: Registry[AnyDriver] | None = None,
    ) -> None:
        names = list(dict.fromkeys(protocols))
        if not names:
            raise ValueError("DMI needs a protocol to register for")
        self.sockets = {p: mapper_socket_path(mapper_socket, p, len(names)) for p in names}
        self.link = EdgeCoreLink(socket)
        self.sink = DmiSink(self.link, self._observed, bucket=bucket)
        self.sources: dict[str, DmiSource] = {}
        self._drivers = drivers
        self._sending: anyio.CancelScope | None = None  # the reports' task, while it runs
        self._sender_done: anyio.Event | None = None

    def __str__(self) -> str:
        return f"DMI {self.link.socket} ({', '.join(self.sockets)})"

    def attach(self, mapper: MapperView) -> None:
        """Make the registration of each protocol, for ``mapper``."""
        super().attach(mapper)
        self.sources = {
            protocol: DmiSource(
                mapper, self.sink, protocol, mapper_socket=path, drivers=self._drivers
            )
            for protocol, path in self.sockets.items()
        }

    def _observed(self, device_id: str) -> Mapping[str, str] | None:
        """The desired values EdgeCore last sent for a device, or ``None``: not EdgeCore's."""
        for source in self.sources.values():
            desired = source.desired.get(device_id)
            if desired is not None:
                return desired
        return None

    async def claim(self) -> None:
        """Make every protocol's mapper socket free to serve (see :func:`claim_socket`).

        Raises:
            MapperSocketError: another process serves one, or a path is not a socket.
        """
        for path in self.sockets.values():
            await anyio.to_thread.run_sync(claim_socket, path)

    # running ---------------------------------------------------------------------------
    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Serve every protocol's socket, stay registered, and send reports, until cancelled.

        Started once the sockets are served (not once EdgeCore has accepted a registration).
        """
        async with anyio.create_task_group() as tg:
            for source in self.sources.values():
                await tg.start(source.run)
            self._sending, self._sender_done = anyio.CancelScope(), anyio.Event()
            tg.start_soon(self._send, self._sending, self._sender_done)
            task_status.started()

    async def _send(self, scope: anyio.CancelScope, done: anyio.Event) -> None:
        try:
            with scope:
                await self.sink.run()
        finally:
            done.set()

    async def flush(self) -> None:
        """Send what waits (states first, within the budget) while EdgeCore is registered."""
        if self._sending is not None and self._sender_done is not None:
            self._sending.cancel()  # one sender: flush's, from now on
            await self._sender_done.wait()
        await self.sink.flush()

    async def close(self) -> None:
        """Close the channel to EdgeCore."""
        await self.link.close()

    # the report methods ----------------------------------------------------------------
    def twin(self, device: DeviceSpec, readings: Sequence[Reading]) -> None:
        """Queue the readings EdgeCore takes, of a device EdgeCore sent."""
        self.sink.twin(device, readings)

    def state(self, device: DeviceSpec, state: DeviceState, reason: str | None) -> None:
        """Queue the state of a device EdgeCore sent (replacing one not yet sent).

        Only when its ``stateReport.reportToCloud`` is true, which EdgeCore sends false when the
        Device says nothing: then no state is reported, as under KubeEdge's own mappers.
        """
        self.sink.state(device, state, reason)

    def write_failed(self, device: DeviceSpec, failures: Mapping[str, WriteFailure]) -> None:
        """Log failed writes of a device EdgeCore sent (DMI has no write error)."""
        self.sink.write_failed(device, failures)

    def added(self, device: DeviceSpec) -> None:
        """Repeat a device's state at its ``stateReport.reportCycle`` (EdgeCore's devices)."""
        self.sink.added(device)

    def removed(self, device: DeviceSpec) -> None:
        """Forget the twins waiting for a device that left (its last state still goes)."""
        self.sink.removed(device)

    # health ----------------------------------------------------------------------------
    def ready(self) -> tuple[bool, str]:
        """Ready once EdgeCore has accepted the registration of every protocol."""
        waiting = [p for p, s in self.sources.items() if not s.registered]
        if waiting:
            return False, f"not registered with EdgeCore for {', '.join(waiting)}"
        return True, f"registered with EdgeCore for {', '.join(self.sources)}"

    def metrics(self) -> list[Metric]:
        """Registrations, report requests by outcome, values left out of twin reports."""
        registered = Metric(
            "edgedev_dmi_registered", "1 while EdgeCore has accepted the registration", "gauge"
        )
        for protocol, source in self.sources.items():
            registered.add(1 if source.registered else 0, protocol=protocol)
        sink = self.sink
        requests = Metric("edgedev_dmi_requests_total", "report requests to EdgeCore", "counter")
        requests.add(sink.sent, result="sent")
        requests.add(sink.limited, result="limited")
        requests.add(sink.failed, result="failed")
        queued = Metric("edgedev_dmi_queued", "report requests waiting to be sent", "gauge")
        queued.add(sink.pending)
        refused = Metric(
            "edgedev_twin_values_refused_total",
            "values left out of twin reports because EdgeCore would refuse them",
            "counter",
        )
        for device_id in sorted({d for s in self.sources.values() for d in s.specs}):
            refused.add(sink.refused[device_id], device=device_id, transport="dmi")
        dropped = Metric(
            "edgedev_values_dropped_total", "device values dropped on their way", "counter"
        )
        dropped.add(sink.replaced, reason="dmi_replaced")
        dropped.add(sum(sink.refused.values()), reason="twin_refused")
        return [registered, requests, queued, refused, dropped]
