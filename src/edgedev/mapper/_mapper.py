"""The mapper: devices, their drivers and shared endpoints, and the transports, in one task group.

The :class:`Mapper` orchestrates; it knows no transport by type. Each
:class:`~edgedev.mapper.TwinTransport` (KubeEdge's MQTT topics, DMI, yours) gets the same view of
it, runs the same way and hears the same reports (``_transport.py`` is the contract;
``docs/architecture.md`` draws the data path). Desired values go to the device's
:class:`~edgedev.mapper.DesiredWriter` (:meth:`Mapper.writer`), which its runner drives.
Devices come and go at run time through :meth:`Mapper.add_device` and its siblings.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence

import anyio
from anyio.abc import TaskGroup, TaskStatus

from edgedev._drops import Drops
from edgedev._plugins import Registry
from edgedev._text import plural
from edgedev.config._spec import DeviceSpec
from edgedev.drivers._base import AnyDriver
from edgedev.drivers._endpoints import Endpoints
from edgedev.mapper._desired import DesiredWriter
from edgedev.mapper._device import DeviceRunner
from edgedev.mapper._sinks import ReportSink, SinkSource
from edgedev.mapper._transport import TwinTransport
from edgedev.twin._state import DeviceState

log = logging.getLogger("edgedev.mapper")


class _Stoppable:
    """A task (a device's runner, a sink) under its own scope, that can be stopped alone."""

    __slots__ = ("_done", "_job", "_scope")

    def __init__(self, job: Callable[[], Awaitable[None]]) -> None:
        self._job = job
        self._scope = anyio.CancelScope()
        self._done = anyio.Event()

    async def run(self) -> None:
        try:
            with self._scope:
                await self._job()
        finally:
            self._done.set()

    async def stop(self) -> None:
        """Cancel the task and wait until it has ended (it must have been started)."""
        self._scope.cancel()
        await self._done.wait()


FLUSH_DEADLINE = 3.0
"""Seconds the sinks and transports have to deliver what they hold, side by side, before they
are closed: when the mapper stops, and when a sink is retired."""
CLOSE_DEADLINE = 1.0
"""Seconds each sink has to close."""


async def _flush(sinks: Collection[ReportSink]) -> None:
    """Let ``sinks`` deliver what they hold, side by side, for :data:`FLUSH_DEADLINE` at most."""
    with anyio.CancelScope(shield=True), anyio.move_on_after(FLUSH_DEADLINE):
        async with anyio.create_task_group() as tg:
            for sink in sinks:
                tg.start_soon(sink.flush)


async def _close(sinks: Collection[ReportSink]) -> None:
    """Close ``sinks``, each under :data:`CLOSE_DEADLINE`."""
    with anyio.CancelScope(shield=True):
        for sink in sinks:
            with anyio.move_on_after(CLOSE_DEADLINE):
                await sink.close()


async def _retire_sinks(sinks: Mapping[ReportSink, _Stoppable]) -> None:
    """Stop the tasks of ``sinks``, let them deliver what they hold, then close them."""
    with anyio.CancelScope(shield=True):
        for task in sinks.values():
            await task.stop()  # flush() sends by itself, once run() has ended
    await _flush(sinks)
    await _close(sinks)
    log.info("%s retired: no device names its target", plural(len(sinks), "sink"))


class Mapper:
    """Runs devices of any installed protocol and hands what they say to its transports.

    ``await mapper.run()`` runs until cancelled or until :meth:`stop`; on the way out every
    device is reported offline and the transports and sinks deliver what they hold (for a
    few seconds at most) before they close.

    Where the values go, and where desired values and devices come from, are the
    ``transports`` (see :class:`~edgedev.mapper.TwinTransport`): KubeEdge's MQTT topics
    (:class:`edgedev.mqtt.KubeEdgeMqtt`), EdgeCore over DMI (:class:`edgedev.dmi.Dmi`), or
    yours; with none, the values go to the ``sinks`` only.

    Devices can be added, changed and removed while it runs (:meth:`add_device`,
    :meth:`update_device`, :meth:`remove_device`; a :class:`~edgedev.mapper.DeviceSource`
    or a transport calls them): each device's tasks live in the mapper's task group under a
    cancel scope of their own, so a change touches that device only.

    Args:
        devices: the devices to run (see :func:`edgedev.load_devices`).
        transports: the twin transports, each given this mapper (``attach``) now.
        node: the edge node's name; devices bound to another node are skipped.
        name: this mapper's name (default: node and process id).
        drivers: where drivers come from (default: installed entry points).
        sinks: more destinations of the devices' values and states (see
            :class:`~edgedev.mapper.ReportSink`); their ``run`` tasks live in the mapper's
            task group, and they are flushed and closed when it stops.
        max_connections: connections a driver may open to one endpoint where its protocol
            can use several (see :class:`~edgedev.drivers.Endpoints`); default: the driver's.
        sinks_for: told of each device the mapper starts, at start or later (a reload, a
            device from EdgeCore), and of each it stops: gives the sinks that devices bring,
            such as those of their ``pushMethod`` targets (:class:`edgedev.sinks.SinkFactory`).
            They join :attr:`sinks` and run in the mapper's task group; a sink no device
            needs any more delivers what it holds (3 s at most), stops and is closed.

    Raises:
        ValueError: a transport serves another mapper already.
    """

    def __init__(
        self,
        devices: Sequence[DeviceSpec],
        *,
        transports: Sequence[TwinTransport] = (),
        node: str | None = None,
        name: str | None = None,
        drivers: Registry[AnyDriver] | None = None,
        sinks: Sequence[ReportSink] = (),
        max_connections: int | None = None,
        sinks_for: SinkSource | None = None,
    ) -> None:
        if drivers is None:
            from edgedev.drivers import drivers as installed

            drivers = installed
        self.node = node or socket.gethostname()
        self._node_filter = node
        self.devices = [d for d in devices if node is None or d.node_name in (None, node)]
        self._specs = {d.id: d for d in self.devices}
        self.name = name or f"edgedev-{self.node}-{os.getpid()}"
        self._registry = drivers
        self._driver_types = {d.protocol: drivers.get(d.protocol) for d in self.devices}
        self.transports = tuple(transports)
        """The twin transports, in the order given."""
        self._extra_sinks = tuple(sinks)
        self._sinks_for = sinks_for
        self._sink_tasks: dict[ReportSink, _Stoppable] = {}  # sinks_for's, running
        self.sinks: tuple[ReportSink, ...] = ()
        """Every sink while running: the transports, ``sinks``, then ``sinks_for``'s."""
        self.runners: dict[str, DeviceRunner] = {}
        self._devices_scope: anyio.CancelScope | None = None
        self._connections: list[anyio.CancelScope] = []  # the transports' tasks
        self._stopping = False
        self._tg: TaskGroup | None = None  # the devices' task group, while running
        self._served: dict[str, _Stoppable] = {}
        self._changes = anyio.Lock()  # one add/update/remove at a time
        self.drops = Drops()
        """Values dropped on the way, by reason (``edgedev_values_dropped_total``)."""
        self.endpoints = Endpoints(max_connections=max_connections, drops=self.drops)
        """Connections shared by the devices on one endpoint, open while :meth:`run` runs."""
        for transport in self.transports:
            transport.attach(self)

    def writer(self, device_id: str) -> DesiredWriter | None:
        """The desired writer of ``device_id``'s runner, or ``None`` when it is not running."""
        runner = self.runners.get(device_id)
        return None if runner is None else runner.desired

    async def run(self, *, task_status: TaskStatus[Mapper] = anyio.TASK_STATUS_IGNORED) -> None:
        """Run every device until cancelled.

        With ``task_group.start(mapper.run)`` this returns once the transports are set up and
        the devices' tasks started (not once a broker or EdgeCore is reached: the mapper
        works offline too).

        The order: the sinks' tasks, each transport's :meth:`~edgedev.mapper.TwinTransport.run`
        (one after the other, each until it says it is set up), then the devices. When it
        stops: the devices' tasks end, each device is reported offline, every transport and
        sink flushes (3 s at most, side by side), the sinks close, the transports' tasks
        end, and the transports close.
        """
        try:
            async with self.endpoints, anyio.create_task_group() as connections:
                try:
                    async with anyio.create_task_group() as tg:
                        await self._start_all(tg, connections)
                        task_status.started(self)
                        await anyio.sleep_forever()  # devices come and go until stop()
                finally:
                    self._tg = None
                    with anyio.CancelScope(shield=True):
                        for runner in self.runners.values():
                            runner.go_offline()
                        await _flush(self.sinks)
                        await _close([s for s in self.sinks if s not in self.transports])
                        for scope in self._connections:
                            scope.cancel()
                        self.drops.flush_log()
        finally:
            await _close(self.transports)

    async def _start_all(self, tg: TaskGroup, connections: TaskGroup) -> None:
        """Start the sinks, the transports, then the devices (those not started meanwhile)."""
        self._tg = tg
        self._devices_scope = tg.cancel_scope
        self.sinks = (*self.transports, *self._extra_sinks)
        for sink in self._extra_sinks:
            tg.start_soon(sink.run)
        initial = list(self.devices)
        for transport in self.transports:  # a device source among them may add devices now
            await connections.start(self._connect, transport)
        for spec in initial:
            if spec.id not in self.runners and self._specs.get(spec.id) is spec:
                self._start(spec)
        if self._stopping:
            tg.cancel_scope.cancel()
        log.info(
            "mapper %s running %s (%s); transports: %s",
            self.name,
            plural(len(self.runners), "device"),
            ", ".join(sorted({d.protocol for d in self.devices})) or "no protocol yet",
            ", ".join(str(t) for t in self.transports) or "none",
        )

    async def _connect(
        self, transport: TwinTransport, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Run ``transport`` until :meth:`run` has flushed it, however :meth:`run` ends."""
        scope = anyio.CancelScope(shield=True)  # cancelled by run(), after the flush
        self._connections.append(scope)
        try:
            with scope:
                await transport.run(task_status=task_status)
        finally:
            self._connections.remove(scope)

    def stop(self) -> None:
        """Stop gracefully; :meth:`run` then returns.

        The devices' tasks end; then every device is reported offline and the transports
        and sinks deliver what they hold, for up to 3 s, before they close.
        """
        self._stopping = True
        if self._devices_scope is not None:
            self._devices_scope.cancel()

    # devices at run time ----------------------------------------------------------------------
    def serves(self, spec: DeviceSpec) -> bool:
        """Whether ``spec`` is for this mapper's node (devices bound to no node are)."""
        return self._node_filter is None or spec.node_name in (None, self._node_filter)

    def serving(self, device_id: str) -> bool:
        """Whether the mapper serves the device ``device_id`` (running or about to)."""
        return device_id in self._specs

    async def add_device(self, spec: DeviceSpec) -> bool:
        """Start serving ``spec`` (at once when running, else when :meth:`run` starts).

        Returns:
            ``False`` when the device is bound to another node and is not served.

        Raises:
            ValueError: the mapper serves a device with that id already.
            PluginError: no driver is installed for the device's protocol.
        """
        async with self._changes:
            if spec.id in self._specs:
                raise ValueError(f"device {spec.id} is served already")
            if not self.serves(spec):
                return False
            self._driver_types.setdefault(spec.protocol, self._registry.get(spec.protocol))
            self._specs[spec.id] = spec
            self.devices.append(spec)
            if self._tg is not None:
                self._start(spec)
            log.info("device %s added", spec.id)
            return True

    async def update_device(self, spec: DeviceSpec) -> None:
        """Restart device ``spec.id`` with the new ``spec``; the other devices keep running.

        Raises:
            KeyError: the mapper does not serve that device.
            PluginError: no driver is installed for the new protocol.
        """
        async with self._changes:
            old = self._specs[spec.id]
            self._driver_types.setdefault(spec.protocol, self._registry.get(spec.protocol))
            await self._stop(spec.id)
            self._specs[spec.id] = spec
            self.devices[self.devices.index(old)] = spec
            if self._tg is not None:
                self._start(spec)
            log.info("device %s updated", spec.id)

    async def remove_device(self, device_id: str, *, offline: bool = True) -> DeviceSpec:
        """Stop serving ``device_id``: its task ends, its driver closes, it is reported offline.

        Every sink then hears :meth:`~edgedev.mapper.ReportSink.removed` (after the offline
        state, which still goes to them).

        Args:
            device_id: the device's id (``namespace/name``).
            offline: report the device ``offline`` to the sinks (``False``: it just stops).

        Returns:
            The spec of the device removed.

        Raises:
            KeyError: the mapper does not serve that device.
        """
        async with self._changes:
            spec = self._specs.pop(device_id)
            self.devices.remove(spec)
            runner = await self._stop(device_id)
            if runner is not None:
                if offline:
                    runner.go_offline("removed from the mapper")
                for sink in self.sinks:
                    sink.removed(spec)
            if self._sinks_for is not None:
                self._retire(self._sinks_for.left(device_id))
            log.info("device %s removed", device_id)
            return spec

    def _start(self, spec: DeviceSpec) -> None:
        """Start ``spec``'s runner (with its desired writer) in the devices' task group."""
        assert self._tg is not None
        if self._sinks_for is not None:
            change = self._sinks_for.arrived(spec)
            self.sinks = (*self.sinks, *change.started)
            for sink in change.started:
                task = self._sink_tasks[sink] = _Stoppable(sink.run)
                self._tg.start_soon(task.run, name=f"sink {type(sink).__name__}")
            self._retire(change.retired)
        driver_type = self._driver_types[spec.protocol]
        runner = DeviceRunner(spec, driver_type, self.sinks, endpoints=self.endpoints)
        served = _Stoppable(runner.run)
        self.runners[spec.id] = runner
        self._served[spec.id] = served
        for sink in self.sinks:
            sink.added(spec)
        self._tg.start_soon(served.run, name=f"device {spec.id}")

    def _retire(self, sinks: Sequence[ReportSink]) -> None:
        """Take ``sinks`` out of service: the runners started from now on go without them."""
        if not sinks or self._tg is None:
            return
        self.sinks = tuple(s for s in self.sinks if s not in sinks)
        retired = {sink: self._sink_tasks.pop(sink) for sink in sinks}
        self._tg.start_soon(_retire_sinks, retired, name="retiring sinks")

    async def _stop(self, device_id: str) -> DeviceRunner | None:
        """Stop ``device_id``'s tasks and wait until its driver is closed; its runner."""
        served = self._served.pop(device_id, None)
        runner = self.runners.pop(device_id, None)
        if served is not None:
            await served.stop()
        return runner

    @property
    def online(self) -> list[str]:
        """Ids of the devices that are online now."""
        return [i for i, r in self.runners.items() if r.state == DeviceState.ONLINE]
