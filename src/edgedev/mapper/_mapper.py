"""The mapper process: one bus connection, one task per device, deltas carried to writes."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Sequence

import anyio
from anyio.abc import TaskStatus
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
            self.runners = {
                d.id: DeviceRunner(
                    d, self._driver_types[d.protocol], bus, self.topics, endpoints=self.endpoints
                )
                for d in self.devices
            }
            self.writers = {i: DesiredWriter(r, bus, self.topics) for i, r in self.runners.items()}
            for device_id, runner in self.runners.items():
                runner.on_state.append(self._on_state(self.writers[device_id]))

            def announce() -> None:
                bus.publish(state_topic, self._mapper_state("online"))
                self._gets.clear()
                for runner in self.runners.values():
                    runner.announce()
                    event_id = new_event_id()  # ask what is desired: deltas may have been missed
                    self._gets[event_id] = runner.spec.id
                    bus.publish(
                        self.topics.device(runner.spec.id, Channel.TWIN_GET),
                        twin_get(event_id=event_id),
                    )

            bus.on_connect(announce)
            try:
                async with anyio.create_task_group() as tg:
                    self._devices_scope = tg.cancel_scope
                    if self._stopping:
                        tg.cancel_scope.cancel()
                    await tg.start(self._deltas, bus)
                    for runner in self.runners.values():
                        tg.start_soon(runner.run)
                    for writer in self.writers.values():
                        tg.start_soon(writer.run)
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
                    for runner in self.runners.values():
                        runner.go_offline()
                    bus.publish(state_topic, self._mapper_state("offline"))
                    with anyio.move_on_after(3):
                        await bus.flush()

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
