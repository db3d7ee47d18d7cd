"""The mapper process: one bus connection, one task per device, deltas carried to writes.

Deltas and ``twin/get`` answers go to the device's :class:`~edgedev.mapper.DesiredWriter`
(``runner.desired``, also :meth:`Mapper.writer`), which its runner drives.

Devices come and go at run time through :meth:`Mapper.add_device` and its siblings.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Awaitable, Callable, Collection, Coroutine, Mapping, Sequence
from typing import Any

import anyio
from anyio.abc import TaskGroup, TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream
from pydantic import ValidationError

from edgedev._plugins import Registry
from edgedev._text import plural
from edgedev.bus._client import Bus
from edgedev.bus._outbox import Message, Outbox
from edgedev.bus._topics import DEFAULT_ROOT, Channel, DeviceTopic, NodeChannel, Topics
from edgedev.bus._url import DEFAULT_BROKER, BrokerURL
from edgedev.config._spec import DeviceSpec
from edgedev.drivers._base import AnyDriver
from edgedev.drivers._endpoints import Endpoints
from edgedev.mapper._desired import (
    DesiredWriter,
    desired_stamps,
    known_properties,
    pending_values,
)
from edgedev.mapper._device import DeviceRunner
from edgedev.mapper._sinks import MqttTwinSink, ReportSink, SinkSource
from edgedev.twin._state import DeviceState
from edgedev.wire import TwinDelta, TwinResult, mapper_state, new_event_id, now_ms, twin_get

log = logging.getLogger("edgedev.mapper")

ANNOUNCE_INTERVAL = 1.0
"""Shortest time between two announcements asked for on ``mapper/get``, in seconds."""


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
"""Seconds the sinks (and the bus, when the mapper stops) have to deliver what they hold,
side by side, before they are closed: when the mapper stops, and when a sink is retired."""
CLOSE_DEADLINE = 1.0
"""Seconds each sink has to close."""


async def _flush_and_close(
    sinks: Collection[ReportSink], *also: Callable[[], Coroutine[Any, Any, None]]
) -> None:
    """Let ``sinks`` (their tasks ended) and ``also`` deliver what they hold, then close.

    Shielded, each step under its deadline: the flushes side by side, then each sink's close.
    """
    with anyio.CancelScope(shield=True):
        with anyio.move_on_after(FLUSH_DEADLINE):
            async with anyio.create_task_group() as tg:
                for flush in (*also, *(sink.flush for sink in sinks)):
                    tg.start_soon(flush)
        for sink in sinks:
            with anyio.move_on_after(CLOSE_DEADLINE):
                await sink.close()


async def _retire_sinks(sinks: Mapping[ReportSink, _Stoppable]) -> None:
    """Stop the tasks of ``sinks``, let them deliver what they hold, then close them."""
    with anyio.CancelScope(shield=True):
        for task in sinks.values():
            await task.stop()  # flush() sends by itself, once run() has ended
    await _flush_and_close(sinks)
    log.info("%s retired: no device names its target", plural(len(sinks), "sink"))


def _drain(stream: MemoryObjectReceiveStream[Message]) -> int:
    """Take every message ``stream`` holds now, without waiting; how many there were."""
    taken = 0
    while True:
        try:
            stream.receive_nowait()
        except anyio.WouldBlock:
            return taken
        taken += 1


class Mapper:
    """Runs devices of any installed protocol and speaks KubeEdge's topics for them.

    ``await mapper.run()`` runs until cancelled or until :meth:`stop`; on the way out every
    device is reported offline and queued messages are flushed (for a few seconds at most).
    A last will on ``{root}/node/{node}/mapper/state`` tells the twin agent if the process
    dies instead.

    Devices can be added, changed and removed while it runs (:meth:`add_device`,
    :meth:`update_device`, :meth:`remove_device`; a :class:`~edgedev.mapper.DeviceSource`
    calls them): each device's tasks live in the mapper's task group under a cancel scope of
    their own, so a change touches that device only. The last will keeps the device list of
    the connection's start until the next reconnection; ``mapper/state`` announces every change.

    Args:
        devices: the devices to run (see :func:`edgedev.load_devices`).
        broker: the MQTT broker URL.
        topic_root: the topic root, ``$hw/events`` by default.
        node: the edge node's name; devices bound to another node are skipped.
        name: this mapper's name on the bus (default: node and process id).
        drivers: where drivers come from (default: installed entry points).
        outbox: where reports wait while the broker is away (default: in memory).
        sinks: more destinations of the devices' values and states, besides KubeEdge's
            MQTT topics (see :class:`~edgedev.mapper.ReportSink`); their ``run`` tasks live
            in the mapper's task group, and they are flushed and closed when it stops.
        max_connections: connections a driver may open to one endpoint where its protocol
            can use several (see :class:`~edgedev.drivers.Endpoints`); default: the driver's.
        sinks_for: told of each device the mapper starts, at start or later (a reload, a
            device from EdgeCore), and of each it stops: gives the sinks that devices bring,
            such as those of their ``pushMethod`` targets (:class:`edgedev.sinks.SinkFactory`).
            They join :attr:`sinks` and run in the mapper's task group; a sink no device
            needs any more delivers what it holds (3 s at most), stops and is closed.
    """

    def __init__(
        self,
        devices: Sequence[DeviceSpec],
        *,
        broker: str | BrokerURL = DEFAULT_BROKER,
        topic_root: str = DEFAULT_ROOT,
        node: str | None = None,
        name: str | None = None,
        drivers: Registry[AnyDriver] | None = None,
        outbox: Outbox | None = None,
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
        self.topics = Topics(topic_root)
        self.broker = broker
        self.name = name or f"edgedev-{self.node}-{os.getpid()}"
        self._registry = drivers
        self._driver_types = {d.protocol: drivers.get(d.protocol) for d in self.devices}
        self._outbox = outbox
        self._extra_sinks = tuple(sinks)
        self._sinks_for = sinks_for
        self._sink_tasks: dict[ReportSink, _Stoppable] = {}  # sinks_for's, running
        self.sinks: tuple[ReportSink, ...] = ()
        """Every sink while running: the MQTT twin publisher, ``sinks``, then ``sinks_for``'s."""
        self.runners: dict[str, DeviceRunner] = {}
        self.bus: Bus | None = None
        self._started = 0
        self._gets: dict[str, str] = {}  # event_id of our twin/get -> device id
        self._devices_scope: anyio.CancelScope | None = None
        self._stopping = False
        self._tg: TaskGroup | None = None  # the devices' task group, while running
        self._served: dict[str, _Stoppable] = {}
        self._twin_sink: MqttTwinSink | None = None
        self._changes = anyio.Lock()  # one add/update/remove at a time
        self.endpoints = Endpoints(max_connections=max_connections)
        """Connections shared by the devices on one endpoint, open while :meth:`run` runs."""

    @property
    def writers(self) -> dict[str, DesiredWriter]:
        """Per device, its runner's :attr:`~DeviceRunner.desired`.

        The desired values being written (from deltas and ``twin/get``); a new dict each
        time, :meth:`writer` looks one up.
        """
        return {device_id: runner.desired for device_id, runner in self.runners.items()}

    def writer(self, device_id: str) -> DesiredWriter | None:
        """The desired writer of ``device_id``'s runner, or ``None`` when it is not running."""
        runner = self.runners.get(device_id)
        return None if runner is None else runner.desired

    def _mapper_state(self, state: DeviceState) -> bytes:
        return mapper_state(self.name, state, [d.id for d in self.devices], started=self._started)

    def _ask_desired(self, device_id: str) -> None:
        """Ask the twin what is desired for ``device_id`` (deltas may have been missed)."""
        if self.bus is None:
            return
        event_id = new_event_id()
        self._gets[event_id] = device_id
        topic = self.topics.device(device_id, Channel.TWIN_GET)
        self.bus.publish(topic, twin_get(event_id=event_id))

    async def run(self, *, task_status: TaskStatus[Mapper] = anyio.TASK_STATUS_IGNORED) -> None:
        """Run every device until cancelled.

        With ``task_group.start(mapper.run)`` this returns once the bus and the devices'
        tasks are set up (not once the broker is reached: the mapper works offline too).
        """
        self._started = now_ms()
        state_topic = self.topics.node(self.node, NodeChannel.MAPPER_STATE)
        will = Message(state_topic, self._mapper_state(DeviceState.OFFLINE), qos=1)
        bus_cm = Bus(self.broker, client_id=self.name, will=will, outbox=self._outbox)
        async with bus_cm as bus, self.endpoints:
            self.bus = bus
            twin_sink = self._twin_sink = MqttTwinSink(bus, self.topics)
            self.sinks = (twin_sink, *self._extra_sinks)

            def announce() -> None:
                self._announce_devices()
                self._gets.clear()
                for device_id in self.runners:
                    self._ask_desired(device_id)

            bus.on_connect(announce)
            try:
                async with anyio.create_task_group() as tg:
                    self._devices_scope = tg.cancel_scope
                    if self._stopping:
                        tg.cancel_scope.cancel()
                    for sink in self.sinks:
                        tg.start_soon(sink.run)
                    await tg.start(self._deltas, bus)
                    await tg.start(self._mapper_gets, bus)
                    self._tg = tg
                    for spec in self.devices:
                        self._start(spec)
                    log.info(
                        "mapper %s running %s (%s), broker %s",
                        self.name,
                        plural(len(self.runners), "device"),
                        ", ".join(sorted({d.protocol for d in self.devices})),
                        bus.url,
                    )
                    task_status.started(self)
            finally:
                self._tg = None
                with anyio.CancelScope(shield=True):
                    for runner in self.runners.values():
                        runner.go_offline()
                    bus.publish(state_topic, self._mapper_state(DeviceState.OFFLINE))
                    await _flush_and_close(self.sinks, bus.flush)

    def stop(self) -> None:
        """Stop gracefully; :meth:`run` then returns.

        The devices' tasks end, then, with the bus still connected, every device is reported
        offline and the queue is flushed for up to 3 s.
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
                self._ask_desired(spec.id)
                self._announce_devices()
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
                self._ask_desired(spec.id)
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
                self._announce_devices()
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

    def _announce_devices(self) -> None:
        """Tell the twin agent which devices this mapper serves now."""
        if self.bus is not None:
            topic = self.topics.node(self.node, NodeChannel.MAPPER_STATE)
            self.bus.publish(topic, self._mapper_state(DeviceState.ONLINE))

    async def _mapper_gets(
        self, bus: Bus, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Announce the mapper again when an agent asks on ``mapper/get``.

        At most once per :data:`ANNOUNCE_INTERVAL`: requests that arrive meanwhile get one
        more announcement after it, however many they are.
        """
        async with bus.subscribe(self.topics.node(self.node, NodeChannel.MAPPER_GET)) as requests:
            task_status.started()
            async for _ in requests:
                asked = True
                while asked:
                    self._announce_devices()
                    await anyio.sleep(ANNOUNCE_INTERVAL)
                    asked = _drain(requests) > 0

    async def _deltas(
        self, bus: Bus, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        filters = (
            self.topics.device_filter(Channel.TWIN_DELTA),
            self.topics.device_filter(Channel.TWIN_GET_RESULT),
        )
        async with bus.subscribe(*filters) as messages:
            task_status.started()
            async for message in messages:
                topic = self.topics.parse(message.topic)
                if not isinstance(topic, DeviceTopic):
                    continue
                writer = self.writer(topic.device_id)
                if writer is None:
                    continue
                try:
                    if topic.channel is Channel.TWIN_DELTA:
                        delta = TwinDelta.model_validate_json(message.payload)
                        wanted = known_properties(writer.spec, delta.delta)
                        writer.replace(wanted, desired_stamps(delta.twin))
                        continue
                    result = TwinResult.model_validate_json(message.payload)
                except ValidationError as exc:
                    log.warning(
                        "ignored a malformed %s for %s: %s",
                        topic.channel.value,
                        topic.device_id,
                        exc.errors(include_url=False)[0]["msg"],
                    )
                    continue
                if self._gets.pop(result.event_id, None) is None or result.code is not None:
                    continue  # another client's answer, or the agent does not know the device
                pending = pending_values(writer.spec, result.twin)
                writer.replace(pending, desired_stamps(result.twin))

    @property
    def online(self) -> list[str]:
        """Ids of the devices that are online now."""
        return [i for i, r in self.runners.items() if r.state == DeviceState.ONLINE]
