"""KubeEdge's device topics over MQTT, as a twin transport of the mapper.

What goes out (``{root}`` is the topic root, ``$hw/events`` by default; see
``docs/reference/topics.md``): ``device/{id}/twin/update`` with each twin report (the values
EdgeCore takes, :class:`~edgedev.mapper.TwinFilter`) and with edgedev's ``error`` entries of
failed writes, ``device/{id}/state/update`` with each state (and, retained, edgedev's
``device/{id}/state/current``, cleared when the device is removed), ``device/{id}/twin/get``
when a device starts or the broker comes back (deltas may have been missed), and
``node/{node}/mapper/{mapper}/state``, retained, with the devices served (and, as the last
will, ``offline``). What comes in: ``twin/update/delta`` and the answers to ``twin/get``,
handed to the device's :class:`~edgedev.mapper.DesiredWriter`, and ``mapper/get``, answered
with the announcement again.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence

import anyio
from anyio.abc import TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream
from pydantic import ValidationError

from edgedev._metrics import Metric
from edgedev.bus import (
    DEFAULT_BROKER,
    DEFAULT_ROOT,
    BrokerURL,
    Bus,
    Channel,
    DeviceTopic,
    MemoryOutbox,
    Message,
    NodeChannel,
    Outbox,
    Topics,
    bus_metrics,
    bus_ready,
    topic_level_problem,
)
from edgedev.config import DeviceSpec
from edgedev.mapper import (
    BadValue,
    MapperView,
    Periodic,
    Reading,
    StatePolicy,
    TwinFilter,
    TwinTransport,
    state_policy,
)
from edgedev.mqtt._desired import desired_stamps, known_properties, pending_values
from edgedev.twin import DeviceState, Quality, WriteFailure
from edgedev.wire import (
    TwinDelta,
    TwinResult,
    current_state,
    mapper_state,
    new_event_id,
    now_ms,
    quality_report,
    state_update,
    twin_get,
    twin_report,
    write_error_report,
)

log = logging.getLogger("edgedev.mqtt")

GOOD = Quality.GOOD

ANNOUNCE_INTERVAL = 1.0
"""Shortest time between two announcements asked for on ``mapper/get``, in seconds."""


def _drain(stream: MemoryObjectReceiveStream[Message]) -> int:
    """Take every message ``stream`` holds now, without waiting; how many there were."""
    taken = 0
    while True:
        try:
            stream.receive_nowait()
        except anyio.WouldBlock:
            return taken
        taken += 1


class KubeEdgeMqtt(TwinTransport):
    """KubeEdge's device topics on an MQTT broker: a :class:`~edgedev.mapper.TwinTransport`.

    Speaks to EdgeCore's DeviceTwin and to edgedev's own twin agent alike. The connection is a
    :class:`~edgedev.bus.Bus` (its client id is the mapper's name). The mapper announces the
    devices it serves on ``{root}/node/{node}/mapper/{mapper}/state``, retained (one message
    per mapper), and its last will there, retained too, lists them ``offline``, so that a
    client that subscribes later (the agent, ``edgedev watch``, the web view) learns which
    devices it serves and whether it still runs. Each device's state goes out on KubeEdge's
    ``state/update`` and, retained, on edgedev's ``state/current`` (which EdgeCore never
    reads), cleared with an empty retained payload when the device is removed. Reports never
    block: they wait in the outbox (in order, QoS 1) while the broker is away. When the
    connection comes back, each device's last state is published again, the mapper
    announced, and each device's twin asked for what it desires.

    Args:
        broker: the MQTT broker URL (or a :class:`~edgedev.bus.BrokerURL` with credentials
            and TLS files).
        topic_root: the topic root, ``$hw/events`` by default.
        outbox: where reports wait while the broker is away (default: in memory).

    Attributes:
        topics: the topic scheme.
        bus: the connection, while :meth:`run` runs (``None`` before).
        outbox: where reports wait for the broker.
        refused: values left out of twin reports because EdgeCore would refuse them, per
            device id (see :class:`~edgedev.mapper.TwinFilter`).
    """

    def __init__(
        self,
        broker: str | BrokerURL = DEFAULT_BROKER,
        *,
        topic_root: str = DEFAULT_ROOT,
        outbox: Outbox | None = None,
    ) -> None:
        self.broker = broker if isinstance(broker, BrokerURL) else BrokerURL.parse(broker)
        self.topics = Topics(topic_root)
        self.outbox = outbox if outbox is not None else MemoryOutbox()
        self.bus: Bus | None = None
        self._filter = TwinFilter("MQTT")
        self.refused: Counter[str] = self._filter.refused
        # the last state of each device, its reason and time (ms): state/current again after
        # a new connection, state/update at the device's stateReport.reportCycle
        self._states: dict[str, tuple[DeviceState, str | None, int]] = {}
        self._silent: set[str] = set()  # devices whose stateReport.reportToCloud is false
        self._periodic = Periodic()  # the states repeated at their stateReport.reportCycle
        self._repeat: anyio.Event | None = None  # wakes the repeating task (made by run)
        self._announced: set[str] = set()  # devices the announcements named
        self._gets: dict[str, str] = {}  # event_id of our twin/get -> device id
        self._started = 0
        self._connected_before = False

    def __str__(self) -> str:
        return f"KubeEdge MQTT {self.broker} ({self.topics.root})"

    def attach(self, mapper: MapperView) -> None:
        """Serve ``mapper``, whose name and node become topic levels.

        Raises:
            ValueError: the mapper's name or node cannot be a topic level, or the transport
                serves another mapper already.
        """
        for what, text in (("mapper name", mapper.name), ("node name", mapper.node)):
            problem = topic_level_problem(text, what)
            if problem is not None:
                raise ValueError(problem)
        super().attach(mapper)

    # the connection --------------------------------------------------------------------
    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Connect (and reconnect) to the broker and serve the device topics until cancelled.

        Started once the deltas, ``twin/get`` answers and ``mapper/get`` are subscribed.
        """
        self._started = now_ms()
        name = self.mapper.name
        async with Bus(self.broker, client_id=name, will=self._will(), outbox=self.outbox) as bus:
            self.bus = bus
            bus.on_connect(self._on_connect)
            async with anyio.create_task_group() as tg:
                await tg.start(self._deltas, bus)
                await tg.start(self._mapper_gets, bus)
                tg.start_soon(self._repeat_states)
                task_status.started()

    def _on_connect(self) -> None:
        """The broker accepted a connection: states again, the mapper, what is desired.

        The first connection repeats no state: those published so far are still queued in the
        outbox and go out with it, so that each is sent once.
        """
        if self._connected_before:  # the broker may have lost its retained copies too
            for device_id, (state, reason, stamp) in self._states.items():
                self._publish_state(device_id, state, reason, stamp)
        self._connected_before = True
        self._announce()
        self._gets.clear()
        for device_id in self.mapper.runners:
            self._ask_desired(device_id)

    @property
    def _connected(self) -> bool:
        return self.bus is not None and self.bus.connected

    def _publish(
        self, topic: str, payload: bytes, values: int = 0, *, retain: bool = False
    ) -> None:
        """Queue a message for the broker (in the outbox, before :meth:`run` made the bus).

        ``values``: the readings it carries (:attr:`~edgedev.bus.Message.values`).
        """
        if self.bus is not None:
            self.bus.publish(topic, payload, values=values, retain=retain)
        else:
            self.outbox.put(Message(topic, payload, qos=1, retain=retain, values=values))

    def _state_topic(self) -> str:
        return self.topics.mapper(self.mapper.node, self.mapper.name)

    def _mapper_state(self, state: DeviceState) -> bytes:
        devices = [d.id for d in self.mapper.devices]
        return mapper_state(self.mapper.name, state, devices, started=self._started)

    def _will(self) -> Message:
        """The last will: this mapper ``offline`` with the devices it serves now, retained."""
        payload = self._mapper_state(DeviceState.OFFLINE)
        return Message(self._state_topic(), payload, qos=1, retain=True)

    def _announce(self) -> None:
        """Say which devices this mapper serves now, retained; the next connection's will too."""
        self._announced = {d.id for d in self.mapper.devices}
        self._publish(self._state_topic(), self._mapper_state(DeviceState.ONLINE), retain=True)
        if self.bus is not None:
            self.bus.will = self._will()

    def _ask_desired(self, device_id: str) -> None:
        """Ask the twin what is desired for ``device_id`` (deltas may have been missed)."""
        event_id = new_event_id()
        self._gets[event_id] = device_id
        self._publish(self.topics.device(device_id, Channel.TWIN_GET), twin_get(event_id=event_id))

    # desired values in -----------------------------------------------------------------
    async def _deltas(
        self, bus: Bus, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Hand each delta, and each answer to our ``twin/get``, to the device's writer."""
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
                writer = self.mapper.writer(topic.device_id)
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

    async def _mapper_gets(
        self, bus: Bus, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Announce the mapper again when an agent asks on ``mapper/get``.

        At most once per :data:`ANNOUNCE_INTERVAL`: requests that arrive meanwhile get one
        more announcement after it, however many they are.
        """
        topic = self.topics.node(self.mapper.node, NodeChannel.MAPPER_GET)
        async with bus.subscribe(topic) as requests:
            task_status.started()
            async for _ in requests:
                asked = True
                while asked:
                    self._announce()
                    await anyio.sleep(ANNOUNCE_INTERVAL)
                    asked = _drain(requests) > 0

    # reports out -----------------------------------------------------------------------
    def twin(self, device: DeviceSpec, readings: Sequence[Reading]) -> None:
        """Publish one ``twin/update`` with the ``actual`` value of each reading EdgeCore takes."""
        accepted = self._filter.accepted(device, readings)
        entries = [(r.name, r.text, type_, r.timestamp) for r, type_ in accepted]
        if entries:
            uncertain = {r.name: r.quality.value for r, _ in accepted if r.quality is not GOOD}
            topic = self.topics.device(device.id, Channel.TWIN_UPDATE)
            self._publish(topic, twin_report(entries, quality=uncertain), values=len(entries))

    def bad(self, device: DeviceSpec, values: Sequence[BadValue]) -> None:
        """Publish one ``twin/update`` with a ``quality`` entry for each property gone Bad."""
        entries = [
            (b.name, type_, b.reason, b.timestamp)
            for b, type_ in self._filter.accepted_bad(device, values)
        ]
        if entries:
            topic = self.topics.device(device.id, Channel.TWIN_UPDATE)
            self._publish(topic, quality_report(entries))

    def write_failed(self, device: DeviceSpec, failures: Mapping[str, WriteFailure]) -> None:
        """Publish one ``twin/update`` with an ``error`` entry for each failed write."""
        entries = self._filter.accepted_failures(device, failures)
        if entries:
            topic = self.topics.device(device.id, Channel.TWIN_UPDATE)
            self._publish(topic, write_error_report(entries))

    def state(self, device: DeviceSpec, state: DeviceState, reason: str | None) -> None:
        """Publish ``state/current`` (retained, with the reason) and ``state/update``.

        Both carry the same timestamp; EdgeCore's ``state/update`` carries no reason and goes
        only for a device whose ``stateReport.reportToCloud`` is true.
        """
        self._policy(device)
        stamp = now_ms()
        self._states[device.id] = (state, reason, stamp)
        self._publish_state(device.id, state, reason, stamp)
        if device.id not in self._silent:
            self._periodic.reported(device.id, anyio.current_time())

    def added(self, device: DeviceSpec) -> None:
        """Announce a new device and ask its twin what it desires (once connected).

        Its state is repeated at its ``stateReport.reportCycle``, if it has one.
        """
        policy = self._policy(device)
        self._periodic.set(device.id, policy.cycle if policy.report else None, anyio.current_time())
        if self._repeat is not None:
            self._repeat.set()
        if not self._connected:
            return  # the connection's start announces, and asks for every device
        if device.id not in self._announced:
            self._announce()
        self._ask_desired(device.id)

    def removed(self, device: DeviceSpec) -> None:
        """Clear the device's retained state; stop repeating it; announce the mapper without it."""
        self._states.pop(device.id, None)
        self._silent.discard(device.id)
        self._periodic.forget(device.id)
        self._filter.forget(device)
        self._publish(self.topics.device(device.id, Channel.STATE_CURRENT), b"", retain=True)
        if self._connected:
            self._announce()

    def _policy(self, device: DeviceSpec) -> StatePolicy:
        """The device's ``stateReport``, its ``reportToCloud`` kept for the states to come."""
        policy = state_policy(device)
        (self._silent.discard if policy.report else self._silent.add)(device.id)
        return policy

    async def _repeat_states(self) -> None:
        """Publish each device's last ``state/update`` again at its ``stateReport.reportCycle``."""
        while True:
            self._repeat = anyio.Event()
            with anyio.move_on_after(self._periodic.next_deadline() - anyio.current_time()):
                await self._repeat.wait()
            now = anyio.current_time()
            for device_id in self._periodic.pop_due(now):
                last = self._states.get(device_id)
                if last is not None:  # not before its first state
                    update = state_update(last[0])
                    self._publish(self.topics.device(device_id, Channel.STATE_UPDATE), update)
                    self._periodic.reported(device_id, now)

    def _publish_state(
        self, device_id: str, state: DeviceState, reason: str | None, stamp: int
    ) -> None:
        """``state/current`` first, so that a client of both takes the sender with the state."""
        current = current_state(
            state, mapper=self.mapper.name, started=self._started, timestamp=stamp, reason=reason
        )
        self._publish(self.topics.device(device_id, Channel.STATE_CURRENT), current, retain=True)
        if device_id not in self._silent:
            update = state_update(state, timestamp=stamp)
            self._publish(self.topics.device(device_id, Channel.STATE_UPDATE), update)

    async def flush(self) -> None:
        """The mapper stops: announce it ``offline``, then wait until the broker has it all."""
        self._publish(self._state_topic(), self._mapper_state(DeviceState.OFFLINE), retain=True)
        if self.bus is not None:
            await self.bus.flush()

    # health ----------------------------------------------------------------------------
    def ready(self) -> tuple[bool, str]:
        """Ready while the broker connection is up (:func:`~edgedev.bus.bus_ready`)."""
        return bus_ready(self.bus)

    def metrics(self) -> list[Metric]:
        """The bus's metrics, and the values left out of twin reports per device."""
        refused = Metric(
            "edgedev_twin_values_refused_total",
            "values left out of twin reports because EdgeCore would refuse them",
            "counter",
        )
        for device_id in sorted(d.id for d in self.mapper.devices):
            refused.add(self.refused[device_id], device=device_id, transport="mqtt")
        dropped = Metric(
            "edgedev_values_dropped_total", "device values dropped on their way", "counter"
        )
        dropped.add(self.outbox.dropped_values, reason="outbox_full")
        dropped.add(self.outbox.expired_values, reason="outbox_expired")
        if self.bus is not None:
            dropped.add(self.bus.refused_values, reason="publish_refused")
            dropped.add(self.bus.poisoned_values, reason="poisoned")
        dropped.add(sum(self.refused.values()), reason="twin_refused")
        return [*bus_metrics(self.bus), refused, dropped]
