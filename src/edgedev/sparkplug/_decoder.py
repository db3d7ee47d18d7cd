"""Sparkplug B traffic as a host reads it: births remembered, data named, order checked. Pure.

Behind ``edgedev watch --sparkplug`` and ``edgedev view --sparkplug``. Section numbers are those
of the Eclipse Sparkplug 3.0.0 specification. A host learns each metric's name, datatype and
alias from the NBIRTH and DBIRTHs of a session, then reads data messages by alias (6.4.6); it
checks that ``seq`` runs on by one from the NBIRTH's 0 (5.9), and pairs an NDEATH with its
NBIRTH by ``bdSeq`` (an NDEATH of an older session is no news, 5.4). STATE messages are JSON
(4.2.3).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from edgedev.sparkplug._payloads import (
    BDSEQ,
    DataType,
    MetricInfo,
    bdseq_of,
    decode,
    metric_info,
    metric_value,
    property_type_of,
)
from edgedev.sparkplug._pb import sparkplug_b_pb2 as pb
from edgedev.sparkplug._topics import EdgeNode, MessageType, Topic
from edgedev.twin._values import Value, format_value

MAX_EDGE_NODES = 10_000
"""Edge nodes a decoder remembers the births of at most (the oldest are forgotten)."""
MAX_METRICS = 10_000
"""Metrics of one birth a decoder remembers at most."""


@dataclass(frozen=True, slots=True)
class MetricUpdate:
    """One metric of a message, named.

    Attributes:
        name: its name (from the message, or from the birth that gave its alias).
        value: its value; ``None`` when null.
        text: the value as edgedev writes values (:func:`~edgedev.twin.format_value`).
        datatype: its datatype (from the message, or from the birth).
        historical: ``is_historical``.
        info: metadata (births only).
    """

    name: str
    value: Value | None
    text: str
    datatype: int
    historical: bool = False
    info: MetricInfo | None = None


@dataclass(frozen=True, slots=True)
class Event:
    """One Sparkplug message, read.

    Attributes:
        kind: its message type.
        edge: the edge node (``None`` for STATE).
        device: the Sparkplug device id (device-level messages).
        host: the host application id (STATE).
        metrics: its metrics, named.
        seq: its ``seq``, if any.
        bdseq: the ``bdSeq`` of an NBIRTH or NDEATH.
        online: a STATE's ``online``.
        unknown: aliases no birth of this session named.
        problem: what is wrong with it (a ``seq`` that does not follow, an NDEATH of an
            older session, a payload that is not Sparkplug's).
    """

    kind: MessageType
    edge: EdgeNode | None = None
    device: str | None = None
    host: str | None = None
    metrics: tuple[MetricUpdate, ...] = ()
    seq: int | None = None
    bdseq: int | None = None
    online: bool | None = None
    unknown: tuple[int, ...] = ()
    problem: str | None = None

    @property
    def where(self) -> str:
        """``GROUP/EDGE_NODE[/DEVICE]``, or ``host HOST_ID``."""
        if self.edge is None:
            return f"host {self.host}"
        return f"{self.edge}/{self.device}" if self.device is not None else str(self.edge)


@dataclass(slots=True)
class _Birth:
    by_alias: dict[int, tuple[str, int]] = field(default_factory=dict)
    types: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class _Node:
    bdseq: int | None = None
    seq: int | None = None
    births: dict[str | None, _Birth] = field(default_factory=dict)


class Decoder:
    """Reads Sparkplug messages as a host application would (see the module docstring)."""

    def __init__(self) -> None:
        self._nodes: dict[EdgeNode, _Node] = {}

    def feed(self, topic: str, payload: bytes) -> Event | None:
        """The message on ``topic``, read; ``None`` when the topic is not Sparkplug B's."""
        parsed = Topic.parse(topic)
        if parsed is None:
            return None
        if parsed.kind is MessageType.STATE:
            return self._state(parsed, payload)
        assert parsed.edge is not None
        try:
            message = decode(payload)
        except ValueError as exc:
            return Event(parsed.kind, parsed.edge, parsed.device, problem=str(exc))
        node = self._node(parsed.edge)
        kind = parsed.kind
        seq = message.seq if message.HasField("seq") else None
        problem = None
        if kind is MessageType.NBIRTH:
            node.bdseq = bdseq_of(message)
            node.births = {None: _Birth()}
        elif kind is MessageType.NDEATH:
            bdseq = bdseq_of(message)
            if node.bdseq is not None and bdseq != node.bdseq:
                problem = f"of an older session (bdSeq {bdseq}, born with {node.bdseq})"
            else:
                node.births.clear()
                node.seq = None
            return Event(kind, parsed.edge, bdseq=bdseq, problem=problem)
        elif kind is MessageType.DBIRTH:
            node.births[parsed.device] = _Birth()
        if kind in _SEQUENCED:
            problem = self._follows(node, kind, seq)
        birth = node.births.get(parsed.device)
        metrics, unknown = self._metrics(message.metrics, birth, kind)
        if kind is MessageType.DDEATH:
            node.births.pop(parsed.device, None)
        return Event(
            kind,
            parsed.edge,
            parsed.device,
            metrics=metrics,
            seq=seq,
            bdseq=node.bdseq if kind is MessageType.NBIRTH else None,
            unknown=unknown,
            problem=problem,
        )

    def _node(self, edge: EdgeNode) -> _Node:
        node = self._nodes.get(edge)
        if node is None:
            if len(self._nodes) >= MAX_EDGE_NODES:
                self._nodes.pop(next(iter(self._nodes)))
            node = self._nodes[edge] = _Node()
        return node

    @staticmethod
    def _follows(node: _Node, kind: MessageType, seq: int | None) -> str | None:
        previous, node.seq = node.seq, seq
        if seq is None:
            return "no seq"
        if kind is MessageType.NBIRTH:
            return None if seq == 0 else f"NBIRTH with seq {seq}, not 0"
        if previous is None:
            return None  # joined mid-session: nothing to compare with
        if seq != (previous + 1) % 256:
            return f"seq {seq} after {previous}"
        return None

    @staticmethod
    def _metrics(
        metrics: Sequence[pb.Payload.Metric], birth: _Birth | None, kind: MessageType
    ) -> tuple[tuple[MetricUpdate, ...], tuple[int, ...]]:
        born = kind in (MessageType.NBIRTH, MessageType.DBIRTH)
        out = []
        unknown = []
        for m in metrics:
            name: str | None = m.name or None
            datatype = m.datatype
            if name is None and birth is not None and m.HasField("alias"):
                found = birth.by_alias.get(m.alias)
                if found is not None:
                    name, datatype = found[0], datatype or found[1]
            if name is None:
                unknown.append(m.alias)
                continue
            if not datatype and birth is not None:
                datatype = birth.types.get(name, DataType.Unknown)
            if born and birth is not None and len(birth.types) < MAX_METRICS:
                birth.types[name] = datatype
                if m.HasField("alias"):
                    birth.by_alias[m.alias] = (name, datatype)
            value = metric_value(m, datatype)
            text = "null" if value is None else format_value(value, property_type_of(datatype))
            info = metric_info(m) if born else None
            out.append(MetricUpdate(name, value, text, datatype, m.is_historical, info))
        return tuple(out), tuple(unknown)

    @staticmethod
    def _state(topic: Topic, payload: bytes) -> Event:
        try:
            body = json.loads(payload)
            online = body["online"]
            if not isinstance(online, bool):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            return Event(MessageType.STATE, host=topic.host, problem="not a STATE payload")
        return Event(MessageType.STATE, host=topic.host, online=online)


_SEQUENCED = frozenset(
    (
        MessageType.NBIRTH,
        MessageType.DBIRTH,
        MessageType.NDATA,
        MessageType.DDATA,
        MessageType.DDEATH,
    )
)


def bdseq_metric(event: Event) -> MetricUpdate | None:
    """The ``bdSeq`` metric of an NBIRTH event, if it has one."""
    return next((m for m in event.metrics if m.name == BDSEQ), None)
