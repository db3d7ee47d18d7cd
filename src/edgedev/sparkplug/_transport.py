"""Sparkplug B as a twin transport: the mapper as an edge node, its devices as Sparkplug devices.

Section numbers are those of the Eclipse Sparkplug 3.0.0 specification; ``docs/sparkplug.md``
has the mapping table and what happens on each event. In short:

- one MQTT connection of its own (a :class:`~edgedev.bus.Bus`, its own client id), whose will
  is the NDEATH of a ``bdSeq`` one higher at every connection (5.4), kept in ``--data-dir``
  across restarts (:class:`BdSeqStore`);
- on each connection: the NCMD and DCMD subscriptions (and the primary host's STATE), then
  the NBIRTH and a DBIRTH of each online device, at once or once the primary host says it is
  online (5.4); readings kept while there was no session follow as historical DDATA;
- each twin report: DDATA of the values that changed, by alias (5.16); a device that goes
  offline or unhealthy: DDEATH; back online, or added: DBIRTH (5.6, 5.7);
- NCMD ``Node Control/Rebirth``: the births again (5.17); DCMD: each metric, by alias or name,
  to the device's one desired-value writer (checked, written, read back), then DDATA of the
  value the device holds, whatever came of it (5.17);
- the primary host offline: NDEATH, DISCONNECT, a new connection with the next ``bdSeq``
  (5.5); the mapper stopping: NDEATH, then DISCONNECT (5.5).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

import anyio
from anyio.abc import TaskStatus

from edgedev._metrics import Metric
from edgedev._version import __version__
from edgedev.bus import (
    DEFAULT_BROKER,
    BrokerURL,
    Bus,
    MemoryOutbox,
    Message,
    Outbox,
    SqliteOutbox,
    bus_metrics,
)
from edgedev.config import DeviceSpec
from edgedev.mapper import Reading, TwinTransport
from edgedev.sparkplug._bdseq import BdSeqStore
from edgedev.sparkplug._payloads import (
    DataType,
    datatype_of,
    decode,
    metric_value,
    node_death,
    rebirth_asked,
)
from edgedev.sparkplug._session import Aliases, EdgeSession, NodeMetric, Outgoing
from edgedev.sparkplug._topics import (
    EdgeNode,
    MessageType,
    Topic,
    kubeedge_device_id,
    state_topic,
)
from edgedev.twin import DeviceState, WriteFailure, format_value, parse_value
from edgedev.wire import now_ms

log = logging.getLogger("edgedev.sparkplug")

REBIRTH_INTERVAL = 1.0
"""Shortest time between two rebirths asked for by NCMD, in seconds; requests that arrive
meanwhile get one more rebirth after it, however many they are."""
GOODBYE_DEADLINE = 2.0
"""Seconds the NDEATH has to reach the broker before the DISCONNECT (host offline)."""
HISTORY_LIMIT = 100_000
"""Reports kept while there is no Sparkplug session, by default; beyond, the oldest goes."""
HISTORY_FILE = "sparkplug-history.sqlite3"
"""The history's file in ``--data-dir``."""


def _history_entry(device_id: str, readings: Sequence[Reading]) -> Message:
    body = [[r.name, r.text, r.timestamp] for r in readings]
    return Message(device_id, json.dumps(body, separators=(",", ":")).encode(), qos=0)


def _history_readings(spec: DeviceSpec, payload: bytes) -> list[Reading]:
    """The readings a history entry holds, of the properties ``spec`` still has."""
    try:
        body = json.loads(payload)
    except ValueError:
        return []
    readings = []
    for item in body if isinstance(body, list) else []:
        if not (isinstance(item, list) and len(item) == 3):
            continue
        name, text, stamp = item
        if not (isinstance(name, str) and isinstance(text, str) and isinstance(stamp, int)):
            continue
        if not spec.has_property(name):
            continue
        try:
            value = parse_value(text, spec.property(name).type)
        except ValueError:
            continue
        readings.append(Reading(name, value, text, stamp))
    return readings


class Sparkplug(TwinTransport):
    """Sparkplug B 3.0 on an MQTT broker: a :class:`~edgedev.mapper.TwinTransport`.

    The mapper is one edge node (``GROUP/EDGE_NODE``); each of its devices is a Sparkplug
    device (:func:`~edgedev.sparkplug.sparkplug_device_id`), each property a metric::

        transports = [KubeEdgeMqtt(broker), Sparkplug("plant/line1", broker)]
        mapper = Mapper(devices, transports=transports)

    Args:
        edge: the edge node, ``GROUP/EDGE_NODE`` or an :class:`EdgeNode`.
        broker: the MQTT broker URL (or a :class:`~edgedev.bus.BrokerURL` with credentials
            and TLS files): the same options as the other transports'.
        host: the primary host application's id: births wait until its STATE says it is
            online, and its going offline ends the session (5.4, 5.5).
        data_dir: where the ``bdSeq`` (and, unless ``history`` is given, the readings kept
            while there is no session: ``sparkplug-history.sqlite3``) outlive the process; in
            memory when ``None``.
        history: where readings wait while there is no session (default: in ``data_dir``,
            or in memory, :data:`HISTORY_LIMIT` reports at most).
        client_id: the MQTT client id (default: the mapper's name and ``-sparkplug``).

    Attributes:
        edge: the edge node.
        bus: the connection, while :meth:`run` runs.
        session: the Sparkplug session of the current connection (``None`` between two).
        history: the readings waiting for a session, sent then as historical DDATA.
        sent: messages queued for the broker, by message type.
        commands: command metrics by outcome (``accepted``, ``refused``, ``unknown``).

    Raises:
        ValueError: ``edge`` or ``host`` is not a valid Sparkplug id.
        OSError, sqlite3.Error: the history cannot be kept in ``data_dir``.
    """

    def __init__(
        self,
        edge: EdgeNode | str,
        broker: str | BrokerURL = DEFAULT_BROKER,
        *,
        host: str | None = None,
        data_dir: str | Path | None = None,
        history: Outbox | None = None,
        client_id: str | None = None,
    ) -> None:
        self.edge = edge if isinstance(edge, EdgeNode) else EdgeNode.parse(edge)
        self.broker = broker if isinstance(broker, BrokerURL) else BrokerURL.parse(broker)
        self.host = host
        self._state_topic = state_topic(host) if host is not None else None
        self._bdseq = BdSeqStore(str(self.edge), data_dir)
        if history is None:
            history = (
                SqliteOutbox(Path(data_dir) / HISTORY_FILE, limit=HISTORY_LIMIT)
                if data_dir is not None
                else MemoryOutbox(HISTORY_LIMIT)
            )
        self.history = history
        self._client_id = client_id
        self.bus: Bus | None = None
        self.session: EdgeSession | None = None
        self._aliases = Aliases()
        self._host_online = False
        self._host_stamp: int | None = None  # the last STATE timestamp taken (5.4)
        self._leaving = False  # an NDEATH and a new connection are under way
        self._confirm: dict[str, set[str]] = {}  # properties commanded, to send back
        self._invalid: set[str] = set()  # devices with no valid Sparkplug device id
        self._rebirth = anyio.Event()
        self._stamp = 0
        self.sent: Counter[str] = Counter()
        self.commands: Counter[str] = Counter()
        self.history_dropped = 0
        self.births = 0
        self._skipped = 0  # values of past sessions that fit no datatype

    def __str__(self) -> str:
        host = f", primary host {self.host}" if self.host else ""
        return f"Sparkplug B {self.edge} on {self.broker}{host}"

    # the connection --------------------------------------------------------------------
    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Connect (and reconnect) and serve the edge node until cancelled.

        Started once NCMD, DCMD (and the primary host's STATE) are subscribed.
        """
        client_id = self._client_id or f"{self.mapper.name}-sparkplug"
        async with Bus(self.broker, client_id=client_id, will=self._will) as bus:
            self.bus = bus
            bus.on_connect(self._on_connect)
            async with anyio.create_task_group() as tg:
                await tg.start(self._incoming, bus)
                tg.start_soon(self._rebirths)
                task_status.started()

    def _will(self) -> Message:
        """The NDEATH of the next connection's ``bdSeq``: QoS 1, not retained (5.4, 6.4.25)."""
        payload = node_death(self._bdseq.peek(), timestamp=now_ms())
        return Message(self.edge.topic(MessageType.NDEATH), payload, qos=1, retain=False)

    def _on_connect(self) -> None:
        """A new MQTT session: a new ``bdSeq``, births now or once the primary host is online.

        What the last connection left unsent goes: its DDATA back to the history (as
        historical readings, by the aliases, which outlive sessions), the rest superseded by
        the new births.
        """
        assert self.bus is not None
        self._take_leftovers(self.bus.outbox)
        bdseq = self._bdseq.take()
        if self.session is not None:
            self._skipped += self.session.skipped
        self.session = EdgeSession(self.edge, bdseq, self._aliases)
        self._leaving = False
        self._host_online = False
        log.info("Sparkplug %s: connected (bdSeq %d)", self.edge, bdseq)
        if self.host is None:
            self._birth()
        else:
            log.info("Sparkplug %s: waiting for primary host %s", self.edge, self.host)

    def _take_leftovers(self, outbox: Outbox) -> None:
        while (item := outbox.take()) is not None:
            seq, message = item
            outbox.ack(seq)
            topic = Topic.parse(message.topic)
            if topic is None or topic.kind is not MessageType.DDATA or topic.device is None:
                continue
            device_id = kubeedge_device_id(topic.device)
            runner = self.mapper.runners.get(device_id)
            if runner is None:
                continue
            try:
                payload = decode(message.payload)
            except ValueError:
                continue
            readings = []
            for metric in payload.metrics:
                found = self._aliases.find(metric.alias)
                if found is None or found[0] != device_id:
                    continue
                prop = (
                    runner.spec.property(found[1]) if runner.spec.has_property(found[1]) else None
                )
                if prop is None:
                    continue
                value = metric_value(metric, datatype_of(prop.type))
                if value is not None:
                    text = format_value(value, prop.type)
                    readings.append(Reading(prop.name, value, text, metric.timestamp))
            if readings:
                self._keep(device_id, readings)

    @property
    def live(self) -> bool:
        """Whether a Sparkplug session is up and born (data may be published)."""
        return self.session is not None and self.session.born and not self._leaving

    def _send(self, out: Outgoing | None) -> None:
        if out is None or self.bus is None:
            return
        self.bus.publish(out.topic, out.payload, qos=out.qos)
        self.sent[out.kind.value] += 1

    def _node_metrics(self) -> list[NodeMetric]:
        return [
            NodeMetric("Properties/Software", DataType.String, "edgedev"),
            NodeMetric("Properties/Version", DataType.String, __version__),
            NodeMetric("Properties/Mapper", DataType.String, self.mapper.name),
            NodeMetric("Properties/Node", DataType.String, self.mapper.node),
            NodeMetric("Mapper/Devices", DataType.Int64, len(self.mapper.devices)),
        ]

    def _birth(self) -> None:
        """NBIRTH, a DBIRTH of each online device, then what the history holds (5.4, 5.17)."""
        session = self.session
        if session is None or self.bus is None:
            return
        now = now_ms()
        self._send(session.node_birth(self._node_metrics(), now))
        self.births += 1
        for runner in list(self.mapper.runners.values()):
            if runner.state == DeviceState.ONLINE:
                self._device_birth(runner.spec, now)
        log.info(
            "Sparkplug %s: born (bdSeq %d, %d devices)",
            self.edge,
            session.bdseq,
            len(session.devices),
        )
        self._send_history()

    def _device_birth(self, spec: DeviceSpec, now: int) -> None:
        session = self.session
        runner = self.mapper.runners.get(spec.id)
        if session is None or runner is None or spec.id in self._invalid:
            return
        try:
            out = session.device_birth(spec, runner.last, now)
        except ValueError as exc:  # no valid device id
            self._invalid.add(spec.id)
            log.error("Sparkplug: device %s left out: %s", spec.id, exc)
            return
        self._send(out)

    def _keep(self, device_id: str, readings: Sequence[Reading]) -> None:
        """Keep readings for the next session, where they go as historical DDATA."""
        before = self.history.dropped
        self.history.put(_history_entry(device_id, readings))
        self.history_dropped += self.history.dropped - before

    def _send_history(self) -> None:
        """Send what the history holds of the devices alive now, as historical; keep the rest.

        Called after the births (5.16: no data before them).
        """
        session = self.session
        if session is None or not len(self.history):
            return
        kept: list[Message] = []
        sent = 0
        now = now_ms()
        while (item := self.history.take()) is not None:
            seq, entry = item
            self.history.ack(seq)
            device_id = entry.topic
            runner = self.mapper.runners.get(device_id)
            if runner is None:
                if not self.mapper.serving(device_id):
                    self.history_dropped += 1  # the device is gone: nobody to tell
                else:
                    kept.append(entry)
                continue
            if not session.alive(device_id):
                kept.append(entry)
                continue
            out = session.history(device_id, _history_readings(runner.spec, entry.payload), now)
            if out is not None:
                self._send(out)
                sent += 1
        for entry in kept:
            self.history.put(entry)
        if sent:
            log.info("Sparkplug %s: sent %d kept reports as historical", self.edge, sent)

    # what comes in ---------------------------------------------------------------------
    async def _incoming(
        self, bus: Bus, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """NCMD, DCMD and the primary host's STATE, each handled as it comes (5.4, 5.17)."""
        filters = [*self.edge.commands()]
        if self._state_topic is not None:
            filters.append(self._state_topic)
        async with bus.subscribe(*filters, qos=1) as messages:
            task_status.started()
            async for message in messages:
                topic = Topic.parse(message.topic)
                if topic is None:
                    continue
                if topic.kind is MessageType.STATE:
                    await self._host_state(bus, message.payload)
                elif topic.kind is MessageType.NCMD:
                    self._node_command(message.payload)
                elif topic.kind is MessageType.DCMD and topic.device is not None:
                    self._device_command(topic.device, message.payload)

    async def _host_state(self, bus: Bus, payload: bytes) -> None:
        """The primary host's STATE (4.2.3, 5.4, 5.5): births once online; offline, goodbye."""
        try:
            body = json.loads(payload)
            online, stamp = body["online"], body["timestamp"]
            if not isinstance(online, bool) or not isinstance(stamp, int):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            log.warning(
                "Sparkplug: ignored a malformed STATE of host %s: %r", self.host, payload[:200]
            )
            return
        if self._host_stamp is not None and stamp < self._host_stamp:
            log.info("Sparkplug: ignored an older STATE of host %s", self.host)  # 5.5
            return
        self._host_stamp = stamp
        if online:
            self._host_online = True
            if self.session is not None and not self.session.born:
                log.info("Sparkplug %s: primary host %s online", self.edge, self.host)
                self._birth()
            return
        self._host_online = False
        if self.session is None or not self.session.born or self._leaving:
            return  # not born: wait on this connection for the host to come back
        log.warning(
            "Sparkplug %s: primary host %s offline: NDEATH, then a new session",
            self.edge,
            self.host,
        )
        self._leaving = True
        self._send(self.session.node_death(now_ms()))
        with anyio.move_on_after(GOODBYE_DEADLINE):
            await bus.flush()
        await bus.reconnect()

    def _node_command(self, payload: bytes) -> None:
        """NCMD: a rebirth request (5.17); no other node metric takes a command."""
        try:
            command = decode(payload)
        except ValueError as exc:
            self.commands["refused"] += 1
            log.warning("Sparkplug %s: ignored an NCMD: %s", self.edge, exc)
            return
        if rebirth_asked(command):
            self.commands["accepted"] += 1
            self._rebirth.set()
        others = [
            m.name or f"alias {m.alias}"
            for m in command.metrics
            if m.name != "Node Control/Rebirth"
        ]
        if others:
            self.commands["refused"] += len(others)
            log.warning(
                "Sparkplug %s: NCMD of %s ignored: not a node control", self.edge, ", ".join(others)
            )

    async def _rebirths(self) -> None:
        """Answer rebirth requests, at most once per :data:`REBIRTH_INTERVAL`."""
        while True:
            await self._rebirth.wait()
            self._rebirth = anyio.Event()
            if self.live:
                log.info("Sparkplug %s: rebirth asked", self.edge)
                self._birth()
            await anyio.sleep(REBIRTH_INTERVAL)

    def _device_command(self, device: str, payload: bytes) -> None:
        """DCMD: each metric to the device's desired-value writer, by alias or name (5.17)."""
        device_id = kubeedge_device_id(device)
        writer = self.mapper.writer(device_id)
        if writer is None:
            self.commands["unknown"] += 1
            log.warning(
                "Sparkplug %s: DCMD for %s, which this edge node does not serve", self.edge, device
            )
            return
        try:
            command = decode(payload)
        except ValueError as exc:
            self.commands["refused"] += 1
            log.warning("Sparkplug %s: ignored a DCMD for %s: %s", self.edge, device_id, exc)
            return
        spec = writer.spec
        wanted: dict[str, str] = {}
        for metric in command.metrics:
            name = metric.name or None
            if name is None and metric.HasField("alias"):
                found = self._aliases.find(metric.alias)
                name = found[1] if found is not None and found[0] == device_id else None
            if name is None or not spec.has_property(name):
                self.commands["unknown"] += 1
                label = metric.name or f"alias {metric.alias}"
                log.warning(
                    "Sparkplug %s: DCMD for %s: no metric %s to write", self.edge, device_id, label
                )
                continue
            prop = spec.property(name)
            value = metric_value(metric, datatype_of(prop.type))
            if value is None:
                self.commands["refused"] += 1
                log.warning(
                    "Sparkplug %s: DCMD for %s: %s carries no value", self.edge, device_id, name
                )
                continue
            wanted[name] = format_value(value, prop.type)
        if not wanted:
            return
        self.commands["accepted"] += len(wanted)
        self._confirm.setdefault(device_id, set()).update(wanted)
        stamp = self._stamp = max(now_ms(), self._stamp + 1)  # each command a new request
        writer.update(wanted, dict.fromkeys(wanted, stamp))

    # reports out -----------------------------------------------------------------------
    def twin(self, device: DeviceSpec, readings: Sequence[Reading]) -> None:
        """DDATA of what changed (and of what was commanded), or kept while no session."""
        if not self.live or self.session is None or not self.session.alive(device.id):
            if device.id not in self._invalid:
                self._keep(device.id, readings)
            return
        confirm = self._confirm.get(device.id)
        forced: set[str] = set()
        if confirm:
            forced = {r.name for r in readings} & confirm
            confirm -= forced
        self._send(self.session.device_data(device, readings, now_ms(), force=forced))

    def write_failed(self, device: DeviceSpec, failures: Mapping[str, WriteFailure]) -> None:
        """A command the device did not take: DDATA of the value it holds still (5.17)."""
        confirm = self._confirm.get(device.id)
        runner = self.mapper.runners.get(device.id)
        if not confirm or runner is None:
            return
        names = set(failures) & confirm
        confirm -= names
        held = [runner.last[n] for n in sorted(names) if n in runner.last]
        if held and self.live and self.session is not None:
            self._send(self.session.device_data(device, held, now_ms(), force=names))

    def state(self, device: DeviceSpec, state: DeviceState, reason: str | None) -> None:
        """Online: DBIRTH; offline or unhealthy: DDEATH (5.6, 5.7)."""
        session = self.session
        if not self.live or session is None:
            return
        if state == DeviceState.ONLINE:
            if not session.alive(device.id):
                self._device_birth(device, now_ms())
                self._send_history()
        elif session.alive(device.id):
            self._send(session.device_death(device.id, now_ms()))

    def added(self, device: DeviceSpec) -> None:
        """A device arrives or changes: its old birth is void (DDEATH); the count changes."""
        self._invalid.discard(device.id)
        session = self.session
        if self.live and session is not None:
            if session.alive(device.id):  # an update: born again when online (new metrics)
                self._send(session.device_death(device.id, now_ms()))
            self._send(session.node_data(self._node_metrics(), now_ms()))

    def removed(self, device: DeviceSpec) -> None:
        """A device leaves: its aliases go; the count changes."""
        self._confirm.pop(device.id, None)
        self._aliases.forget(device.id)
        self._invalid.discard(device.id)
        session = self.session
        if self.live and session is not None:
            self._send(session.device_death(device.id, now_ms()))
            self._send(session.node_data(self._node_metrics(), now_ms()))

    async def flush(self) -> None:
        """The mapper stops (its devices' DDEATHs are queued): NDEATH, delivered (5.5)."""
        if self.live and self.session is not None:
            self._send(self.session.node_death(now_ms()))
        if self.bus is not None:
            await self.bus.flush()

    async def close(self) -> None:
        """Close the history (a file in ``--data-dir``)."""
        self.history.close()

    # health ----------------------------------------------------------------------------
    def ready(self) -> tuple[bool, str]:
        """Ready while born, that is, while a host sees the devices."""
        name = f"Sparkplug {self.edge}"
        if self.bus is None:
            return False, f"{name}: starting"
        if not self.bus.connected:
            return False, f"{name}: broker unreachable: {self.bus.last_error or 'connecting'}"
        if self.live and self.session is not None:
            return True, f"{name}: online (bdSeq {self.session.bdseq})"
        return False, f"{name}: waiting for primary host {self.host}"

    def metrics(self) -> list[Metric]:
        """The connection's metrics, and the edge node's messages, commands and history."""
        labels = {"transport": "sparkplug"}
        sent = Metric(
            "edgedev_sparkplug_messages_total",
            "Sparkplug messages queued for the broker",
            "counter",
        )
        for kind in MessageType:
            if kind is not MessageType.STATE and not kind.name.endswith("CMD"):
                sent.add(self.sent[kind.value], type=kind.value)
        commands = Metric(
            "edgedev_sparkplug_commands_total",
            "command metrics received (NCMD, DCMD) by outcome",
            "counter",
        )
        for outcome in ("accepted", "refused", "unknown"):
            commands.add(self.commands[outcome], outcome=outcome)
        session = self.session
        return [
            *bus_metrics(self.bus, **labels),
            Metric("edgedev_sparkplug_online", "1 while the edge node is born", "gauge").add(
                1 if self.live else 0
            ),
            Metric("edgedev_sparkplug_bdseq", "bdSeq of the current session", "gauge").add(
                session.bdseq if session is not None else -1
            ),
            sent,
            commands,
            Metric(
                "edgedev_sparkplug_history_queued",
                "reports kept for the next session (sent as historical)",
                "gauge",
            ).add(len(self.history)),
            Metric(
                "edgedev_sparkplug_history_dropped_total",
                "kept reports dropped: the oldest at the limit, or of devices gone",
                "counter",
            ).add(self.history_dropped),
            Metric(
                "edgedev_sparkplug_values_skipped_total",
                "values left out of Sparkplug messages: they fit no datatype of their metric",
                "counter",
            ).add(self._skipped + (session.skipped if session is not None else 0)),
        ]
