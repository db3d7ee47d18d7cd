"""The mapper process: one bus connection, one task per device, deltas carried to writes."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Sequence

import anyio
from anyio.abc import TaskGroup, TaskStatus
from pydantic import ValidationError

from edgedev._plugins import Registry
from edgedev.bus._client import Bus
from edgedev.bus._messages import MapperState, TwinDelta, dumps, new_event_id, now_ms
from edgedev.bus._outbox import Message, Outbox
from edgedev.bus._topics import DEFAULT_ROOT, Channel, DeviceTopic, NodeChannel, Topics
from edgedev.bus._url import DEFAULT_BROKER, BrokerURL
from edgedev.config._spec import DeviceSpec
from edgedev.drivers._base import AnyDriver
from edgedev.mapper._device import ONLINE, DeviceRunner

log = logging.getLogger("edgedev.mapper")


class Mapper:
    """Runs devices of any installed protocol and speaks KubeEdge's topics for them.

    ``await mapper.run()`` runs until cancelled; on the way out every device is reported
    offline and queued messages are flushed (for a few seconds at most). A last will on
    ``{root}/node/{node}/mapper/state`` tells the twin agent if the process dies instead.

    Args:
        devices: the devices to run (see :func:`edgedev.load_devices`).
        broker: the MQTT broker URL.
        topic_root: the topic root, ``$hw/events`` by default.
        node: the edge node's name; devices bound to another node are skipped.
        name: this mapper's name on the bus (default: node and process id).
        drivers: where drivers come from (default: installed entry points).
        outbox: where reports wait while the broker is away (default: in memory).
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
        self.bus: Bus | None = None

    def _mapper_state(self, state: str) -> bytes:
        return dumps(
            MapperState(
                event_id=new_event_id(),
                timestamp=now_ms(),
                mapper=self.name,
                state=state,
                devices=[d.id for d in self.devices],
            ).model_dump()
        )

    async def run(self, *, task_status: TaskStatus[Mapper] = anyio.TASK_STATUS_IGNORED) -> None:
        """Run every device until cancelled.

        With ``task_group.start(mapper.run)`` this returns once the bus and the devices'
        tasks are set up (not once the broker is reached: the mapper works offline too).
        """
        state_topic = self.topics.node(self.node, NodeChannel.MAPPER_STATE)
        will = Message(state_topic, self._mapper_state("offline"), qos=1)
        async with Bus(self.broker, client_id=self.name, will=will, outbox=self._outbox) as bus:
            self.bus = bus
            self.runners = {
                d.id: DeviceRunner(d, self._driver_types[d.protocol], bus, self.topics)
                for d in self.devices
            }

            def announce() -> None:
                bus.publish(state_topic, self._mapper_state("online"))
                for runner in self.runners.values():
                    runner.announce()

            bus.on_connect(announce)
            try:
                async with anyio.create_task_group() as tg:
                    await tg.start(self._deltas, bus, tg)
                    for runner in self.runners.values():
                        tg.start_soon(runner.run)
                    log.info(
                        "mapper %s running %d devices (%s)",
                        self.name,
                        len(self.runners),
                        ", ".join(sorted({d.protocol for d in self.devices})),
                    )
                    task_status.started(self)
            finally:
                with anyio.CancelScope(shield=True):
                    for runner in self.runners.values():
                        runner.go_offline()
                    bus.publish(state_topic, self._mapper_state("offline"))
                    with anyio.move_on_after(3):
                        await bus.flush()

    async def _deltas(
        self, bus: Bus, tg: TaskGroup, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        async with bus.subscribe(self.topics.device_filter(Channel.TWIN_DELTA)) as messages:
            task_status.started()
            async for message in messages:
                topic = self.topics.parse(message.topic)
                if not isinstance(topic, DeviceTopic):
                    continue
                runner = self.runners.get(topic.device_id)
                if runner is None:
                    continue
                try:
                    delta = TwinDelta.model_validate_json(message.payload)
                except ValidationError as exc:
                    log.warning(
                        "ignored a malformed delta for %s: %s",
                        topic.device_id,
                        exc.errors(include_url=False)[0]["msg"],
                    )
                    continue
                for name, value in delta.delta.items():
                    tg.start_soon(self._apply, runner, name, value)

    async def _apply(self, runner: DeviceRunner, name: str, value: str) -> None:
        result = await runner.write(name, value)
        if result.ok:
            log.info("device %s: %s set to %s", runner.spec.id, name, result.value)
        else:
            log.warning(
                "device %s: write %s=%s failed: %s", runner.spec.id, name, value, result.reason
            )

    @property
    def online(self) -> list[str]:
        """Ids of the devices that are online now."""
        return [i for i, r in self.runners.items() if r.state == ONLINE]
