"""The mapper process: one bus connection, one task per device, deltas carried to writes."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Sequence

import anyio
from anyio.abc import TaskGroup, TaskStatus
from pydantic import ValidationError

from edgedev._plugins import Registry
from edgedev._text import plural
from edgedev.bus._client import Bus
from edgedev.bus._messages import (
    MapperState,
    TwinDelta,
    TwinResult,
    dumps,
    new_event_id,
    now_ms,
    twin_get,
)
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
from edgedev.mapper._device import ONLINE, DeviceRunner
from edgedev.mapper._sinks import ReportSink

log = logging.getLogger("edgedev.mapper")


class Mapper:
    """Runs devices of any installed protocol and speaks KubeEdge's topics for them.

    ``await mapper.run()`` runs until cancelled or until :meth:`stop`; on the way out every
    device is reported offline and queued messages are flushed (for a few seconds at most).
    A last will on ``{root}/node/{node}/mapper/state`` tells the twin agent if the process
    dies instead.

    Args:
        devices: the devices to run (see :func:`edgedev.load_devices`).
        broker: the MQTT broker URL.
        topic_root: the topic root, ``$hw/events`` by default.
        node: the edge node's name; devices bound to another node are skipped.
        name: this mapper's name on the bus (default: node and process id).
        drivers: where drivers come from (default: installed entry points).
        outbox: where reports wait while the broker is away (default: in memory).
        sinks: further destinations of twin reports and states (KubeEdge DMI...).
        max_connections: connections a driver may open to one endpoint where its protocol
            can use several (see :class:`~edgedev.drivers.Endpoints`); default: the driver's.
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
    ) -> None:
        if drivers is None:
            from edgedev.drivers import drivers as installed

            drivers = installed
        self.node = node or socket.gethostname()
        self.devices = [d for d in devices if node is None or d.node_name in (None, node)]
        self.topics = Topics(topic_root)
        self.broker = broker
        self.name = name or f"edgedev-{self.node}-{os.getpid()}"
        self._drivers = drivers
        self._driver_types = {d.protocol: drivers.get(d.protocol) for d in self.devices}
        self.sinks = tuple(sinks)
        self._tasks: TaskGroup | None = None
        self._device_tasks: dict[str, tuple[anyio.CancelScope, anyio.Event]] = {}
        self._outbox = outbox
        self.runners: dict[str, DeviceRunner] = {}
        self.writers: dict[str, DesiredWriter] = {}
        """Per device, the desired values being written (from deltas and ``twin/get``)."""
        self.bus: Bus | None = None
        self._started = 0
        self._gets: dict[str, str] = {}  # event_id of our twin/get -> device id
        self._devices_scope: anyio.CancelScope | None = None
        self._stopping = False
        self.endpoints = Endpoints(max_connections=max_connections)
        """Connections shared by the devices on one endpoint, open while :meth:`run` runs."""

    def _mapper_state(self, state: str) -> bytes:
        return dumps(
            MapperState(
                event_id=new_event_id(),
                timestamp=now_ms(),
                mapper=self.name,
                state=state,
                devices=[d.id for d in self.devices],
                started=self._started,
            ).model_dump()
        )

    async def run(self, *, task_status: TaskStatus[Mapper] = anyio.TASK_STATUS_IGNORED) -> None:
        """Run every device until cancelled.

        With ``task_group.start(mapper.run)`` this returns once the bus and the devices'
        tasks are set up (not once the broker is reached: the mapper works offline too).
        """
        self._started = now_ms()
        state_topic = self.topics.node(self.node, NodeChannel.MAPPER_STATE)
        will = Message(state_topic, self._mapper_state("offline"), qos=1)
        bus_cm = Bus(self.broker, client_id=self.name, will=will, outbox=self._outbox)
        async with bus_cm as bus, self.endpoints:
            self.bus = bus

            def announce() -> None:
                bus.publish(state_topic, self._mapper_state("online"))
                self._gets.clear()
                for runner in self.runners.values():
                    runner.announce()
                    self._ask_desired(bus, runner.spec.id)

            bus.on_connect(announce)
            try:
                async with anyio.create_task_group() as tg:
                    self._devices_scope = tg.cancel_scope
                    if self._stopping:
                        tg.cancel_scope.cancel()
                    await tg.start(self._deltas, bus)
                    self._tasks = tg
                    for spec in self.devices:
                        self._start_device(spec)
                    for sink in self.sinks:
                        tg.start_soon(sink.run)
                    log.info(
                        "mapper %s running %s (%s), broker %s",
                        self.name,
                        plural(len(self.runners), "device"),
                        ", ".join(sorted({d.protocol for d in self.devices})),
                        bus.url,
                    )
                    task_status.started(self)
            finally:
                with anyio.CancelScope(shield=True):
                    self._tasks = None
                    for runner in self.runners.values():
                        runner.go_offline()
                    bus.publish(state_topic, self._mapper_state("offline"))
                    with anyio.move_on_after(3):  # the bus and the sinks side by side
                        async with anyio.create_task_group() as flushing:
                            flushing.start_soon(bus.flush)
                            for sink in self.sinks:
                                flushing.start_soon(sink.flush)

    def _ask_desired(self, bus: Bus, device_id: str) -> None:
        event_id = new_event_id()  # ask what is desired: deltas may have been missed
        self._gets[event_id] = device_id
        bus.publish(self.topics.device(device_id, Channel.TWIN_GET), twin_get(event_id=event_id))

    def _start_device(self, spec: DeviceSpec) -> None:
        assert self.bus is not None and self._tasks is not None
        driver_type = self._driver_types.get(spec.protocol) or self._drivers.get(spec.protocol)
        self._driver_types[spec.protocol] = driver_type
        runner = DeviceRunner(
            spec, driver_type, self.bus, self.topics, sinks=self.sinks, endpoints=self.endpoints
        )
        writer = DesiredWriter(runner, self.bus, self.topics)
        runner.on_state.append(self._on_state(writer))
        self.runners[spec.id] = runner
        self.writers[spec.id] = writer
        scope, done = anyio.CancelScope(), anyio.Event()
        self._device_tasks[spec.id] = (scope, done)
        self._tasks.start_soon(self._run_device, runner, writer, scope, done)

    @staticmethod
    async def _run_device(
        runner: DeviceRunner, writer: DesiredWriter, scope: anyio.CancelScope, done: anyio.Event
    ) -> None:
        try:
            with scope:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(runner.run)
                    tg.start_soon(writer.run)
        finally:
            done.set()

    async def add_device(self, spec: DeviceSpec) -> None:
        """Start running ``spec`` (safe while :meth:`run` runs; before it, it joins the start).

        Raises:
            ValueError: a device with that id runs already (use :meth:`update_device`).
            PluginError: no driver is installed for its protocol.
        """
        if any(d.id == spec.id for d in self.devices):
            raise ValueError(f"device {spec.id} is running already")
        if spec.protocol not in self._driver_types:
            self._driver_types[spec.protocol] = self._drivers.get(spec.protocol)
        self.devices.append(spec)
        if self._tasks is not None:
            self._start_device(spec)
            if self.bus is not None and self.bus.connected:
                self._ask_desired(self.bus, spec.id)
            log.info("device %s added", spec.id)

    async def remove_device(self, device_id: str, *, offline: bool = True) -> DeviceSpec | None:
        """Stop the device ``device_id`` and report it offline; the others go on.

        Returns:
            The spec of the device removed, or ``None`` when there was none.
        """
        spec = next((d for d in self.devices if d.id == device_id), None)
        if spec is None:
            return None
        self.devices = [d for d in self.devices if d.id != device_id]
        tasks = self._device_tasks.pop(device_id, None)
        if tasks is not None:
            scope, done = tasks
            scope.cancel()
            await done.wait()
        runner = self.runners.pop(device_id, None)
        self.writers.pop(device_id, None)
        if runner is not None and offline:
            runner.go_offline()
        for sink in self.sinks:
            sink.removed(spec)
        log.info("device %s removed", device_id)
        return spec

    async def update_device(self, spec: DeviceSpec) -> None:
        """Restart the device ``spec.id`` with ``spec`` (added if absent); the others go on."""
        await self.remove_device(spec.id, offline=False)
        await self.add_device(spec)

    def stop(self) -> None:
        """Stop gracefully; :meth:`run` then returns.

        The devices' tasks end, then, with the bus still connected, every device is reported
        offline and the queue is flushed for up to 3 s.
        """
        self._stopping = True
        if self._devices_scope is not None:
            self._devices_scope.cancel()

    @staticmethod
    def _on_state(writer: DesiredWriter) -> Callable[[str], None]:
        def listener(_state: str) -> None:
            writer.retry_now()  # online: write what waits; offline: say why it waits

        return listener

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
                writer = self.writers.get(topic.device_id)
                if writer is None:
                    continue
                try:
                    if topic.channel is Channel.TWIN_DELTA:
                        delta = TwinDelta.model_validate_json(message.payload)
                        wanted = known_properties(writer.runner.spec, delta.delta)
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
                pending = pending_values(writer.runner.spec, result.twin)
                writer.replace(pending, desired_stamps(result.twin))

    @property
    def online(self) -> list[str]:
        """Ids of the devices that are online now."""
        return [i for i, r in self.runners.items() if r.state == ONLINE]
