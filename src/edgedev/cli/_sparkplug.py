"""``watch --sparkplug`` and ``view --sparkplug``: Sparkplug B traffic read as a host reads it.

What a SCADA host sees of edge nodes, without a SCADA: ``edgedev watch --sparkplug`` prints one
line per message (births, data named from the aliases of the births, deaths, commands, host
states, and a ``seq`` that does not follow); ``edgedev view --sparkplug GROUP/EDGE_NODE`` feeds
the web view from one edge node. Both ask an edge node for its births when they join it
mid-session, as a host does. Needs ``edgedev[sparkplug]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from collections.abc import Callable

from edgedev.bus import Message
from edgedev.cli._watch import Publish, follow
from edgedev.sparkplug import (
    NAMESPACE,
    Decoder,
    EdgeNode,
    Event,
    MessageType,
    check_id,
    decode,
    kubeedge_device_id,
    property_type_of,
    rebirth_request,
)
from edgedev.twin import DeviceState
from edgedev.view import TwinView

NO_EXTRA = "error: Sparkplug B needs its extra: pip install 'edgedev[sparkplug]'"


def filters(scope: str) -> list[str]:
    """The topic filters of ``--sparkplug [GROUP[/EDGE_NODE]]``: every group, one, one node.

    Raises:
        ValueError: an id holds ``+``, ``/`` or ``#``, or is empty.
    """
    if not scope:
        return [f"{NAMESPACE}/#"]
    group, slash, node = scope.partition("/")
    check_id(group, "Sparkplug group id")
    state = f"{NAMESPACE}/{MessageType.STATE}/+"
    if not slash:
        return [f"{NAMESPACE}/{group}/#", state]
    check_id(node, "Sparkplug edge node id")
    return [f"{NAMESPACE}/{group}/+/{node}/#", state]


def _stamp(when: float) -> str:
    return dt.datetime.fromtimestamp(when).strftime("%H:%M:%S.%f")[:-3]


def _values(event: Event) -> str:
    return "  ".join(
        f"{m.name}={m.text}" + (" (historical)" if m.historical else "") for m in event.metrics
    )


def line(event: Event, when: float) -> str:
    """The line ``watch --sparkplug`` prints for one message."""
    head = f"{_stamp(when)} {event.where}  "
    kind = event.kind
    if kind is MessageType.STATE:
        text = "online" if event.online else "offline"
        text = event.problem or text
    elif kind in (MessageType.NBIRTH, MessageType.DBIRTH):
        text = "born: " + _values(event)
    elif kind is MessageType.NDEATH:
        text = f"dead (bdSeq {event.bdseq})"
    elif kind is MessageType.DDEATH:
        text = "dead"
    elif kind in (MessageType.NCMD, MessageType.DCMD):
        text = "command: " + _values(event)
    else:
        text = _values(event)
    notes = [text] if text else []
    if event.unknown:
        notes.append(f"({len(event.unknown)} metrics of aliases no birth named)")
    if event.problem and kind is not MessageType.STATE:
        notes.append(f"[{event.problem}]")
    return head + "  ".join(notes)


def raw(topic: str, payload: bytes, when: float) -> str:
    """One message as it is, its protobuf payload as JSON (``watch --sparkplug --json``)."""
    from google.protobuf.json_format import MessageToDict

    if topic.startswith(f"{NAMESPACE}/{MessageType.STATE}/"):
        text = payload.decode(errors="replace")
    else:
        try:
            text = json.dumps(MessageToDict(decode(payload)), separators=(",", ":"))
        except ValueError as exc:
            text = str(exc)
    return f"{_stamp(when)} {topic} {text}"


REBIRTH_EVERY = 30.0
"""Seconds between two rebirth requests of watch or view to one edge node, at least."""


class RebirthAsker:
    """Asks an edge node for its births when its data names aliases no birth named (5.17).

    What a host application joining a running edge node does (5.15); once per
    :data:`REBIRTH_EVERY` per edge node at most.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._asked: dict[EdgeNode, float] = {}
        self._clock = clock

    def check(self, event: Event, publish: Publish) -> bool:
        """Ask ``event``'s edge node for a rebirth if needed; whether it was asked now."""
        if not event.unknown or event.edge is None:
            return False
        now = self._clock()
        last = self._asked.get(event.edge)
        if last is not None and now - last < REBIRTH_EVERY:
            return False
        self._asked[event.edge] = now
        topic = event.edge.topic(MessageType.NCMD)
        publish(topic, rebirth_request(timestamp=int(time.time() * 1000)))
        return True


def watch(args: argparse.Namespace) -> int:
    """``edgedev watch --sparkplug``: print until SIGINT, ``--count`` lines or ``--seconds``."""
    try:
        wanted = filters(args.sparkplug)
    except ValueError as exc:
        print(f"error: --sparkplug: {exc}", file=sys.stderr)
        return 2
    decoder = Decoder()
    asker = RebirthAsker()

    def text_of(message: Message, now: float, publish: Publish) -> str | None:
        if args.json:
            return raw(message.topic, message.payload, now)
        event = decoder.feed(message.topic, message.payload)
        if event is None or (
            args.device is not None
            and (event.device is None or kubeedge_device_id(event.device) != args.device)
        ):
            return None
        text = line(event, now)
        if not args.no_rebirth and asker.check(event, publish):
            text += f"\n{_stamp(now)} {event.edge}  rebirth asked (NCMD)"
        return text

    return follow(args, wanted, text_of)


class SparkplugFeed:
    """The web view of one edge node's devices, fed from its Sparkplug messages.

    Devices appear under their KubeEdge ids (:func:`~edgedev.sparkplug.kubeedge_device_id`),
    with the units, ranges and access their DBIRTH says; DDEATH and the NDEATH of the
    session mark them offline. Historical values are left out (the view charts the present).
    """

    def __init__(self, edge: EdgeNode) -> None:
        self.edge = edge
        self.decoder = Decoder()
        self.asker = RebirthAsker()
        self._born: set[str] = set()

    def filters(self) -> list[str]:
        """This edge node's messages."""
        return [f"{NAMESPACE}/{self.edge.group}/+/{self.edge.node}/#"]

    def apply(
        self,
        view: TwinView,
        topic: str,
        payload: bytes,
        now: float,
        publish: Callable[[str, bytes], None],
    ) -> bool:
        """Take one message of the edge node into ``view``; ask for births it lacks."""
        event = self.decoder.feed(topic, payload)
        if event is None or event.edge != self.edge:
            return False
        self.asker.check(event, publish)
        if event.kind is MessageType.NDEATH:
            if event.problem is not None:  # an older session's
                return False
            for device_id in self._born:
                view.set_state(device_id, DeviceState.OFFLINE, now)
            self._born.clear()
            return True
        if event.device is None:
            return False
        device_id = kubeedge_device_id(event.device)
        if event.kind is MessageType.DBIRTH:
            self._birth(view, device_id, event, now)
        elif event.kind is MessageType.DDEATH:
            self._born.discard(device_id)
            view.set_state(device_id, DeviceState.OFFLINE, now)
        elif event.kind is MessageType.DDATA:
            current = {
                m.name: m.text for m in event.metrics if not m.historical and m.value is not None
            }
            if not current:
                return False
            view.report(device_id, current, now)
        else:
            return False
        return True

    def _birth(self, view: TwinView, device_id: str, event: Event, now: float) -> None:
        info = {m.name: m for m in event.metrics}
        protocol = info.get("Properties/Protocol")
        model = info.get("Properties/Model")
        view.describe_device(
            device_id,
            protocol=protocol.text if protocol is not None else "",
            model=model.text if model is not None else "",
        )
        values = {}
        for m in event.metrics:
            if m.name.startswith("Properties/"):
                continue
            meta = m.info
            view.describe_property(
                device_id,
                m.name,
                type_=property_type_of(m.datatype),
                unit=meta.unit if meta is not None else "",
                writable=None if meta is None or meta.read_only is None else not meta.read_only,
                minimum=meta.low if meta is not None else None,
                maximum=meta.high if meta is not None else None,
            )
            if m.value is not None:
                values[m.name] = m.text
        self._born.add(device_id)
        view.set_state(device_id, DeviceState.ONLINE, now)
        if values:
            view.report(device_id, values, now)
