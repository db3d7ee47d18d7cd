"""Simulated MQTT devices for ``edgedev simulate`` and tests: clients that publish their values.

An MQTT device is a client of a broker, not a server: the simulated devices connect to the
broker their files name (``edgedev broker``, mosquitto ...), and publish. Each topic gets one
message per period holding every property published there (the value itself, or one JSON
document with each property at its ``jsonPath``); read-only properties follow
:func:`edgedev.simulate.signals.signal`, writable ones keep what arrives on their command
topic, and publish their new value at once, as devices that confirm a command do.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

import anyio
from anyio.abc import TaskStatus

from edgedev.bus import Bus, Message
from edgedev.simulate import Simulator
from edgedev.simulate.signals import initial, signal
from edgedev.twin import Value
from edgedev_mqtt.config import (
    Connection,
    MqttDeviceSpec,
    MqttPropertySpec,
    MqttProtocol,
    MqttVisitor,
    connection,
)
from edgedev_mqtt.payload import PayloadError, decode, encode

log = logging.getLogger("edgedev.mqtt.simulator")

PERIOD = 1.0
"""Seconds between two messages of a topic (or its properties' shortest collect cycle)."""


class _Device:
    """One simulated device: its values, and the payload of each of its topics."""

    def __init__(self, spec: MqttDeviceSpec) -> None:
        self.spec = spec
        self.values: dict[str, Value] = {p.name: initial(p) for p in spec.properties if p.writable}
        self.topics: dict[str, list[MqttPropertySpec]] = {}
        self.commands: dict[str, MqttPropertySpec] = {}
        for prop in spec.properties:
            self.topics.setdefault(prop.visitor.topic, []).append(prop)
            if prop.writable:
                self.commands[prop.visitor.commands] = prop

    def value(self, prop: MqttPropertySpec, t: float) -> Value:
        if prop.name in self.values:
            return self.values[prop.name]
        return signal(prop, t, key=self.spec.id)

    def payload(self, topic: str, t: float) -> bytes:
        """The message of ``topic`` now: the value, or a document with every property's."""
        props = self.topics[topic]
        plain = [p for p in props if p.visitor.path is None]
        if plain:  # the payload is the value: one property per topic
            return encode(self.value(plain[0], t), plain[0].type)
        document: dict[str, Any] = {}
        for prop in props:
            _merge(document, json.loads(encode(self.value(prop, t), prop.type, prop.visitor.path)))
        return json.dumps(document, separators=(",", ":")).encode()


def _merge(into: dict[str, Any], part: dict[str, Any]) -> None:
    for key, value in part.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


class MqttSimulator(Simulator[MqttProtocol, MqttVisitor]):
    """Publishes the devices' values on their brokers, and takes the writes sent to them.

    Devices on the same broker and credentials share one connection.
    """

    def __init__(self, devices: Sequence[MqttDeviceSpec]) -> None:
        super().__init__(devices)
        self._devices = [_Device(spec) for spec in devices]
        self.writes: list[tuple[str, str, Value]] = []
        """Every write taken, as ``(device id, property, value)``, in order."""

    def address(self, device: MqttDeviceSpec) -> str:
        """The broker and the topics the device publishes to."""
        topics = sorted({p.visitor.topic for p in device.properties})
        return f"{connection(device).url}, topics {', '.join(topics)}"

    def set(self, device_id: str, prop: str, value: Value) -> None:
        """Give a writable property of a simulated device a value (published next period)."""
        device = next(d for d in self._devices if d.spec.id == device_id)
        device.values[prop] = value

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Publish on each broker until cancelled; started at once (the brokers may come later)."""
        by_connection: dict[Connection, list[_Device]] = {}
        for device in self._devices:
            by_connection.setdefault(connection(device.spec), []).append(device)
        async with anyio.create_task_group() as tg:
            for conn, devices in by_connection.items():
                await tg.start(self._serve, conn, devices)
            task_status.started()

    async def _serve(
        self,
        conn: Connection,
        devices: list[_Device],
        *,
        task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        async with Bus(
            conn.url, client_id=f"{conn.client_id}-sim" if conn.client_id else ""
        ) as bus:
            commands = {topic: d for d in devices for topic in d.commands}
            async with anyio.create_task_group() as tg:
                if commands:
                    await tg.start(self._take_writes, bus, commands)
                # started whether the broker answers yet or not: the bus connects (and says
                # why it cannot) by itself, and what is published meanwhile waits for it
                for device in devices:
                    for topic, props in device.topics.items():
                        period = min(PERIOD, *(p.collect_cycle for p in props))
                        tg.start_soon(self._publish, bus, device, topic, period)
                task_status.started()

    async def _publish(self, bus: Bus, device: _Device, topic: str, period: float) -> None:
        qos = max(p.visitor.qos for p in device.topics[topic])
        while True:
            bus.publish(topic, device.payload(topic, anyio.current_time()), qos=qos)
            await anyio.sleep(period)

    async def _take_writes(
        self,
        bus: Bus,
        commands: dict[str, _Device],
        *,
        task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        async with bus.subscribe(*commands) as messages:
            task_status.started()
            async for message in messages:
                self._write(commands[message.topic], message, bus)

    def _write(self, device: _Device, message: Message, bus: Bus) -> None:
        prop = device.commands[message.topic]
        try:
            value = decode(message.payload, prop.type, prop.visitor.path)
        except PayloadError as exc:
            log.warning("device %s: ignored a write of %s: %s", device.spec.id, prop.name, exc)
            return
        device.values[prop.name] = value
        self.writes.append((device.spec.id, prop.name, value))
        topic = prop.visitor.topic
        bus.publish(topic, device.payload(topic, anyio.current_time()), qos=prop.visitor.qos)
