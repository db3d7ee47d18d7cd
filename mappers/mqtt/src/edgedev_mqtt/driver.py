"""The MQTT driver: devices that publish their own values on a broker.

Each device is a subscription on its broker, shared with the other devices on the same broker
and credentials (one connection, an :class:`~edgedev.drivers.Endpoints` transport). Every
property is pushed (:meth:`MqttDriver.watch`): a value is reported as soon as its message
arrives, whatever the collect cycle says. A write publishes the value to the property's command
topic and waits a moment for the device to publish the value it now holds, which is what the
mapper reads back and reports.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import anyio

from edgedev.bus import BrokerConfigError, Bus, Message
from edgedev.drivers import DeviceError, Driver, Endpoints, Lease, Report, Transport
from edgedev.twin import Value, values_equal
from edgedev_mqtt.config import (
    Connection,
    MqttDeviceSpec,
    MqttPropertySpec,
    MqttProtocol,
    MqttVisitor,
    client_settings,
    connection,
)
from edgedev_mqtt.payload import Absent, PayloadError, decode, encode

log = logging.getLogger("edgedev.mqtt")

ECHO_SHARE = 0.5
"""Share of the device's deadline a write waits for the device to publish its new value."""
UNREADABLE = "unreadable_payload"
"""The reason of ``edgedev_values_dropped_total`` for a payload that holds no value."""


class MqttTransport(Transport):
    """One connection to a broker, shared by the devices that publish there.

    The :class:`~edgedev.Bus` lives in :meth:`run`, the registry's background task: it
    reconnects by itself and makes the subscriptions again; :meth:`bus` waits for it.
    """

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self._bus: Bus | None = None
        self._ready = anyio.Event()
        self._error: str | None = None

    @property
    def alive(self) -> bool:
        """Whether the connection can still be used (its task has not failed)."""
        return self._error is None

    async def run(self) -> None:
        """Hold the connection (reconnecting) until the last device releases it."""
        c = self.connection
        try:
            async with Bus(c.url, client_id=c.client_id, keepalive=c.keep_alive) as bus:
                self._bus = bus
                self._ready.set()
                await anyio.sleep_forever()
        except Exception as exc:  # the devices waiting in bus() hear why
            self._error = f"the connection to {c.url} failed: {exc}"
            self._ready.set()
            raise

    async def bus(self) -> Bus:
        """The connection, once :meth:`run` has made it (not necessarily connected yet).

        Raises:
            DeviceError: the connection's task failed.
        """
        await self._ready.wait()
        if self._bus is None or self._error is not None:
            raise DeviceError(self._error or "the broker connection is closed")
        return self._bus

    async def aclose(self) -> None:
        """Nothing to do: the bus closes with :meth:`run`, cancelled before this."""


class MqttDriver(Driver[MqttProtocol, MqttVisitor]):
    """A device that publishes its properties on an MQTT broker.

    A payload that holds no value of its property is dropped, counted in
    ``edgedev_values_dropped_total{reason="unreadable_payload"}`` and logged (at most once a
    minute) with the device, topic, property and why.
    """

    protocol_config = MqttProtocol
    visitor_config = MqttVisitor

    def __init__(self, device: MqttDeviceSpec, endpoints: Endpoints | None = None) -> None:
        super().__init__(device, endpoints)
        self._lease: Lease[MqttTransport] | None = None
        self._bus: Bus | None = None
        self._connection = connection(device)
        self._last: dict[str, Value] = {}
        self._stale: set[str] = set()  # written, and not published by the device since
        self._arrived: dict[str, anyio.Event] = {}
        self._timeout = device.timeout_ms / 1000

    @classmethod
    def check_property(cls, prop: MqttPropertySpec) -> list[tuple[str, str]]:
        """A written property's ``jsonPath`` must be a path of keys (a write builds it)."""
        path = prop.visitor.path
        if prop.writable and path is not None and any(isinstance(s, int) for s in path):
            return [
                (
                    "jsonPath",
                    f"{prop.visitor.json_path!r} has a list index, which a write cannot build: "
                    "make the property ReadOnly, or give it a path of keys",
                )
            ]
        return []

    @classmethod
    def property_warnings(cls, prop: MqttPropertySpec) -> list[tuple[str, str]]:
        """``cleanSession: false``: edgedev always starts a clean session."""
        if prop.visitor.clean_session is False:
            return [
                (
                    "cleanSession",
                    "edgedev always starts a clean session (it subscribes again on every "
                    "connection); messages sent while it was away are not kept for it",
                )
            ]
        return []

    @classmethod
    def check_device(cls, device: MqttDeviceSpec) -> list[tuple[str, str]]:
        """The client settings of the properties agree; two properties on one topic agree."""
        _, problems = client_settings(device)
        seen: dict[tuple[str, str | None], str] = {}
        for i, prop in enumerate(device.properties):
            key = (prop.visitor.topic, prop.visitor.json_path)
            if key in seen:
                problems.append(
                    (
                        f"properties[{i}].visitors.configData.topic",
                        f"property {seen[key]!r} reads the same value (topic and jsonPath)",
                    )
                )
            seen[key] = prop.name
        return problems

    def pushes(self, prop: MqttPropertySpec) -> bool:
        """Every property is pushed: its value comes when the device publishes it."""
        return True

    def phase_key(self) -> str:
        """One broker, one phase (nothing is polled)."""
        return str(self._connection.url)

    async def connect(self) -> None:
        """Share the broker's connection and wait until it is up (within the deadline).

        Raises:
            DeviceError: the settings can never work, or the broker cannot be reached.
        """
        try:
            self._connection.url.check()
        except BrokerConfigError as exc:
            raise DeviceError(str(exc)) from None
        if not self.endpoints.running:
            raise DeviceError("an MQTT device needs the mapper's running Endpoints registry")
        key = ("mqtt", self._connection)
        lease = await self.endpoints.acquire(key, self._open)
        self._lease = lease
        bus = await lease.transport.bus()
        self._bus = bus
        try:
            with anyio.fail_after(self._timeout * 0.9):
                await bus.wait_connected()
        except TimeoutError:
            why = bus.last_error or "no answer"
            raise DeviceError(f"broker {bus.url} unreachable: {why}") from None

    async def _open(self) -> MqttTransport:
        return MqttTransport(self._connection)

    async def close(self) -> None:
        """Give the connection back (the last device's release closes it)."""
        lease, self._lease, self._bus = self._lease, None, None
        if lease is not None:
            await lease.release()

    async def read(self, properties: Sequence[MqttPropertySpec]) -> Mapping[str, Value]:
        """The last value the device published of each property.

        A property written since its last message is left out: the device has not said
        what it holds now (the mapper then takes the write as done).
        """
        return {
            p.name: self._last[p.name]
            for p in properties
            if p.name in self._last and p.name not in self._stale
        }

    async def write(self, prop: MqttPropertySpec, value: Value) -> None:
        """Publish ``value`` to the command topic; wait a moment for the device to confirm it.

        The device confirms by publishing the value on the property's topic, within half its
        deadline. The value it publishes last is what :meth:`read` then gives (another value:
        the write failed); when it publishes nothing, the write is taken as done, and the
        value is reported once the device publishes it.
        """
        bus = self._bus
        if bus is None or not bus.connected:
            raise DeviceError("not connected to the broker")
        visitor = prop.visitor
        payload = encode(value, prop.type, visitor.path)
        self._stale.add(prop.name)
        bus.publish(visitor.commands, payload, qos=visitor.qos, retain=visitor.retain)
        with anyio.move_on_after(self._timeout * ECHO_SHARE):
            while True:  # a message sent before the device took the command may come first
                arrived = self._arrived[prop.name] = anyio.Event()
                await arrived.wait()
                if values_equal(self._last[prop.name], value, prop.type):
                    return

    async def watch(self, properties: Sequence[MqttPropertySpec], report: Report) -> None:
        """Report each value as its message arrives, until the broker connection is lost.

        Raises:
            DeviceError: the broker connection was lost (the device is then offline until it
                is back).
        """
        bus = self._bus
        if bus is None:
            raise DeviceError("not connected to the broker")
        by_topic: dict[str, list[MqttPropertySpec]] = {}
        for prop in properties:
            by_topic.setdefault(prop.visitor.topic, []).append(prop)
        qos = max(p.visitor.qos for p in properties)
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._lost, bus)
            async with bus.subscribe(*by_topic, qos=max(qos, 0)) as messages:
                async for message in messages:
                    self._take(by_topic.get(message.topic, []), message, report)

    async def _lost(self, bus: Bus) -> None:
        await bus.wait_disconnected()
        raise DeviceError(f"lost the broker {bus.url}: {bus.last_error or 'connection lost'}")

    def _take(self, props: Sequence[MqttPropertySpec], message: Message, report: Report) -> None:
        """Report the value of each property in ``message``; count what holds none.

        A JSON document may carry some of its topic's properties and not others: a property
        absent from it is no loss, unless the message carries none of them.
        """
        absent: list[str] = []
        for prop in props:
            try:
                value = decode(message.payload, prop.type, prop.visitor.path)
            except Absent:
                absent.append(prop.name)
                continue
            except PayloadError as exc:
                self._drop(message.topic, prop.name, str(exc))
                continue
            self._last[prop.name] = value
            self._stale.discard(prop.name)
            arrived = self._arrived.pop(prop.name, None)
            if arrived is not None:
                arrived.set()
            report(prop.name, value)
        if absent and len(absent) == len(props):
            self._drop(message.topic, ", ".join(absent), "none of them is in the document")

    def _drop(self, topic: str, names: str, reason: str) -> None:
        """Count a payload that held no value of ``names``, saying why (logged once a minute)."""
        where = f"device {self.device.id}: a payload on {topic}"
        self.endpoints.drops.add(UNREADABLE, 1, f"{where} held no value of {names} ({reason})")
