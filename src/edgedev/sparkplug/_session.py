"""One Sparkplug session of an edge node: seq, births, what was sent, as messages. Pure.

Section numbers are those of the Eclipse Sparkplug 3.0.0 specification. A Sparkplug session
begins with an MQTT CONNECT (whose will is the NDEATH of its ``bdSeq``) and the NBIRTH, and
ends with an NDEATH (5.4, 5.5, 5.16). Within it:

- every NBIRTH, DBIRTH, NDATA, DDATA and DDEATH carries ``seq``, one more than the message
  before, 255 wrapping to 0; the NBIRTH's is 0 (4.2.1.1.2, 6.4.5);
- a DBIRTH names every metric of its device with its alias, datatype, current value (or
  ``is_null``) and metadata (4.2.2.1.2, 5.16); DDATA then carries, by alias only, the metrics
  whose value changed since (4.2.2.2.2, 6.4.6);
- aliases are unique across the edge node (6.4.6); ``bdSeq`` and ``Node Control/Rebirth``
  have none, so that a host finds them by name (5.17);
- a rebirth (an NCMD) is a new NBIRTH of the same ``bdSeq`` and every DBIRTH again (5.17).

:class:`EdgeSession` produces the messages (:class:`Outgoing`); the transport sends them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from edgedev.config._spec import DeviceSpec, PropertySpec
from edgedev.mapper._sinks import Reading
from edgedev.sparkplug._payloads import (
    BDSEQ,
    REBIRTH,
    DataType,
    Metric,
    MetricInfo,
    check_fits,
    datatype_of,
    encode,
    node_death,
)
from edgedev.sparkplug._topics import EdgeNode, MessageType, sparkplug_device_id
from edgedev.twin._values import Value

log = logging.getLogger("edgedev.sparkplug")


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message to publish.

    Attributes:
        topic: its topic.
        payload: its Sparkplug B payload.
        kind: its message type.
        qos: MQTT QoS: 0 for births, data and deaths (4.2), 1 for an NDEATH published by the
            edge node itself (so that it is delivered before the DISCONNECT).
    """

    topic: str
    payload: bytes
    kind: MessageType
    qos: int = 0


@dataclass(frozen=True, slots=True)
class NodeMetric:
    """A metric of the edge node itself (beyond ``bdSeq`` and ``Node Control/Rebirth``).

    Attributes:
        name: its name.
        datatype: its datatype.
        value: its value now.
    """

    name: str
    datatype: DataType
    value: Value


NODE = ""
"""The owner of the edge node's own metrics in :class:`Aliases`."""


class Aliases:
    """The alias of every metric of the edge node, unique across it (6.4.6).

    Kept for as long as the edge node runs, so that a metric keeps its alias from one birth
    to the next; a device that leaves gives its aliases up (they are not reused).
    """

    def __init__(self) -> None:
        self._next = 1
        self._of: dict[str, dict[str, int]] = {}
        self._by: dict[int, tuple[str, str]] = {}

    def alias(self, owner: str, name: str) -> int:
        """The alias of metric ``name`` of ``owner`` (a device id, or :data:`NODE`)."""
        names = self._of.setdefault(owner, {})
        alias = names.get(name)
        if alias is None:
            alias = names[name] = self._next
            self._by[alias] = (owner, name)
            self._next += 1
        return alias

    def find(self, alias: int) -> tuple[str, str] | None:
        """The owner and name of ``alias``, or ``None``."""
        return self._by.get(alias)

    def forget(self, owner: str) -> None:
        """``owner`` left: its aliases are no longer valid."""
        for alias in self._of.pop(owner, {}).values():
            self._by.pop(alias, None)


def property_info(prop: PropertySpec) -> MetricInfo:
    """The metadata a DBIRTH gives of ``prop``: unit, range, whether it takes commands."""
    return MetricInfo(
        unit=prop.unit,
        low=prop.minimum,
        high=prop.maximum,
        read_only=not prop.writable,
        description=prop.description,
    )


DEVICE_INFO = ("Properties/Device", "Properties/Model", "Properties/Protocol")
"""Metrics a DBIRTH adds of the device itself: its KubeEdge id, DeviceModel and protocol."""


def _device_info(spec: DeviceSpec) -> list[tuple[str, str]]:
    values = (spec.id, spec.model, spec.protocol)
    return [(n, v) for n, v in zip(DEVICE_INFO, values, strict=True) if not spec.has_property(n)]


class EdgeSession:
    """The edge node's messages within one Sparkplug session.

    Args:
        edge: the edge node.
        bdseq: the ``bdSeq`` of the session's MQTT CONNECT (its will).
        aliases: the edge node's aliases (kept across sessions).

    Attributes:
        born: whether the NBIRTH was sent (then DBIRTH and data may follow).
        skipped: values left out of a message because they do not fit their datatype.
    """

    def __init__(self, edge: EdgeNode, bdseq: int, aliases: Aliases) -> None:
        self.edge = edge
        self.bdseq = bdseq
        self.aliases = aliases
        self.born = False
        self.skipped = 0
        self._seq = 0
        self._devices: dict[str, DeviceSpec] = {}  # born devices, by device id
        self._sent: dict[str, dict[str, str]] = {}  # the text last sent of each metric
        self._node: dict[str, NodeMetric] = {}

    # sequence ------------------------------------------------------------------------------
    def _next_seq(self) -> int:
        seq = self._seq
        self._seq = (seq + 1) % 256
        return seq

    # the edge node -------------------------------------------------------------------------
    def node_birth(self, metrics: Sequence[NodeMetric], now: int) -> Outgoing:
        """NBIRTH (4.2.1.1, 6.4.19): ``seq`` 0, ``bdSeq``, ``Node Control/Rebirth``, ``metrics``.

        Every device must be born again after it (5.17, 6.4.20).
        """
        self._seq = 0
        self.born = True
        self._devices.clear()
        self._sent.clear()
        self._node = {m.name: m for m in metrics}
        out = [
            Metric(BDSEQ, None, DataType.Int64, self.bdseq, now),
            Metric(REBIRTH, None, DataType.Boolean, False, now),
            *(
                Metric(m.name, self.aliases.alias(NODE, m.name), m.datatype, m.value, now)
                for m in metrics
            ),
        ]
        return self._out(MessageType.NBIRTH, None, out, now)

    def node_data(self, metrics: Sequence[NodeMetric], now: int) -> Outgoing | None:
        """NDATA (4.2.1.2) with the node metrics that changed, or ``None``."""
        if not self.born:
            return None
        changed = [m for m in metrics if self._node.get(m.name) != m and m.name in self._node]
        if not changed:
            return None
        for m in changed:
            self._node[m.name] = m
        out = [
            Metric(
                None, self.aliases.alias(NODE, m.name), None, m.value, now, value_type=m.datatype
            )
            for m in changed
        ]
        return self._out(MessageType.NDATA, None, out, now)

    def node_death(self, now: int) -> Outgoing:
        """The NDEATH the edge node publishes itself before it disconnects (5.5), QoS 1.

        The session ends with it: its devices are dead too (5.5), and no data follows.
        """
        self.born = False
        self._devices.clear()
        self._sent.clear()
        topic = self.edge.topic(MessageType.NDEATH)
        return Outgoing(topic, node_death(self.bdseq, timestamp=now), MessageType.NDEATH, qos=1)

    # devices -------------------------------------------------------------------------------
    def alive(self, device_id: str) -> bool:
        """Whether ``device_id`` was born in this session and has not died since."""
        return device_id in self._devices

    @property
    def devices(self) -> list[str]:
        """The devices born in this session and alive, in order of birth."""
        return list(self._devices)

    def device_birth(self, spec: DeviceSpec, last: Mapping[str, Reading], now: int) -> Outgoing:
        """DBIRTH (4.2.2.1, 6.4.20): every property, with its value now (or null) and metadata.

        Raises:
            ValueError: the device has no valid Sparkplug device id.
        """
        device = sparkplug_device_id(spec.id)
        owner = spec.id
        metrics = []
        sent: dict[str, str] = {}
        for prop in spec.properties:
            datatype = datatype_of(prop.type)
            reading = last.get(prop.name)
            value = self._fits(datatype, reading.value) if reading is not None else None
            if reading is not None and value is not None:
                sent[prop.name] = reading.text
            metrics.append(
                Metric(
                    prop.name,
                    self.aliases.alias(owner, prop.name),
                    datatype,
                    value,
                    reading.timestamp if reading is not None else now,
                    info=property_info(prop),
                )
            )
        for name, text in _device_info(spec):
            metrics.append(
                Metric(name, self.aliases.alias(owner, name), DataType.String, text, now)
            )
        self._devices[spec.id] = spec
        self._sent[spec.id] = sent
        return self._out(MessageType.DBIRTH, device, metrics, now)

    def device_data(
        self,
        spec: DeviceSpec,
        readings: Iterable[Reading],
        now: int,
        *,
        force: Iterable[str] = (),
    ) -> Outgoing | None:
        """DDATA (4.2.2.2, 6.4.22) of the readings whose value changed since last sent, by alias.

        ``force``: properties to send whatever their value (the answer to a command). ``None``
        when nothing changed, or when the device is not alive in this session.
        """
        born = self._devices.get(spec.id)
        if born is None:
            return None
        sent = self._sent[spec.id]
        forced = set(force)
        metrics = []
        for reading in readings:
            if not born.has_property(reading.name):
                continue
            if sent.get(reading.name) == reading.text and reading.name not in forced:
                continue
            datatype = datatype_of(born.property(reading.name).type)
            value = self._fits(datatype, reading.value)
            if value is None:
                continue
            sent[reading.name] = reading.text
            alias = self.aliases.alias(spec.id, reading.name)
            metrics.append(Metric(None, alias, None, value, reading.timestamp, value_type=datatype))
        if not metrics:
            return None
        return self._out(MessageType.DDATA, sparkplug_device_id(spec.id), metrics, now)

    def history(self, device_id: str, readings: Sequence[Reading], now: int) -> Outgoing | None:
        """DDATA of past readings, each ``is_historical`` (6.4.6), by alias.

        Not remembered as sent. ``None`` when the device is not alive, or none of its
        properties is among them.
        """
        born = self._devices.get(device_id)
        if born is None:
            return None
        metrics = []
        for reading in readings:
            if not born.has_property(reading.name):
                continue
            datatype = datatype_of(born.property(reading.name).type)
            value = self._fits(datatype, reading.value)
            if value is None:
                continue
            alias = self.aliases.alias(device_id, reading.name)
            metrics.append(
                Metric(
                    None,
                    alias,
                    None,
                    value,
                    reading.timestamp,
                    historical=True,
                    value_type=datatype,
                )
            )
        if not metrics:
            return None
        return self._out(MessageType.DDATA, sparkplug_device_id(device_id), metrics, now)

    def device_death(self, device_id: str, now: int) -> Outgoing | None:
        """DDEATH (4.2.2.3, 6.4.26) of a device alive in this session, else ``None``."""
        if self._devices.pop(device_id, None) is None:
            return None
        self._sent.pop(device_id, None)
        return self._out(MessageType.DDEATH, sparkplug_device_id(device_id), [], now)

    # inside --------------------------------------------------------------------------------
    def _fits(self, datatype: DataType, value: Value) -> Value | None:
        """``value`` when it fits ``datatype``; else ``None``, counted and logged once."""
        try:
            check_fits(datatype, value)
        except (TypeError, ValueError) as exc:
            self.skipped += 1
            if self.skipped == 1 or self.skipped % 1000 == 0:
                log.warning(
                    "a value left out of Sparkplug messages: %s (%d so far)", exc, self.skipped
                )
            return None
        return value

    def _out(
        self, kind: MessageType, device: str | None, metrics: list[Metric], now: int
    ) -> Outgoing:
        payload = encode(metrics, timestamp=now, seq=self._next_seq())
        return Outgoing(self.edge.topic(kind, device), payload, kind)
