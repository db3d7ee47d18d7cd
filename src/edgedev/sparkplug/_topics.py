"""Sparkplug B topics, and the Sparkplug device id of a KubeEdge device: pure.

Section numbers are those of the Eclipse Sparkplug 3.0.0 specification. A topic is
``spBv1.0/group_id/message_type/edge_node_id[/device_id]`` (4.1), or
``spBv1.0/STATE/sparkplug_host_id`` for a host application's state (4.2.3). Group, edge node,
device and host ids are UTF-8 strings without ``+``, ``/`` and ``#`` (4.1.2, 4.1.4, 4.1.5).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

NAMESPACE = "spBv1.0"
"""The topic namespace of Sparkplug B (4.1.1)."""

_RESERVED = frozenset("+/#")


class MessageType(enum.StrEnum):
    """The ``message_type`` element of a topic (4.1.3)."""

    NBIRTH = "NBIRTH"
    NDEATH = "NDEATH"
    DBIRTH = "DBIRTH"
    DDEATH = "DDEATH"
    NDATA = "NDATA"
    DDATA = "DDATA"
    NCMD = "NCMD"
    DCMD = "DCMD"
    STATE = "STATE"

    @property
    def device_level(self) -> bool:
        """Whether the topic has a ``device_id`` (4.1.5: DBIRTH, DDEATH, DDATA, DCMD)."""
        return self in _DEVICE_LEVEL


_DEVICE_LEVEL = frozenset(
    (MessageType.DBIRTH, MessageType.DDEATH, MessageType.DDATA, MessageType.DCMD)
)


def check_id(text: str, what: str) -> str:
    """``text`` when it is a valid Sparkplug id (4.1.2, 4.1.4, 4.1.5), else an error.

    Raises:
        ValueError: empty, or holds ``+``, ``/`` or ``#``.
    """
    if not text:
        raise ValueError(f"the {what} is empty")
    bad = sorted(_RESERVED.intersection(text))
    if bad:
        raise ValueError(f"the {what} {text!r} holds {' '.join(bad)}, reserved in topics")
    return text


@dataclass(frozen=True, slots=True)
class EdgeNode:
    """An Edge Node Descriptor: its group id and edge node id (4.1.2, 4.1.4).

    Attributes:
        group: the group id.
        node: the edge node id.
    """

    group: str
    node: str

    def __post_init__(self) -> None:
        check_id(self.group, "Sparkplug group id")
        check_id(self.node, "Sparkplug edge node id")

    @classmethod
    def parse(cls, text: str) -> EdgeNode:
        """``GROUP/EDGE_NODE``, as ``--sparkplug`` takes it.

        Raises:
            ValueError: not two ids separated by one ``/``, or an id is invalid.
        """
        group, slash, node = text.partition("/")
        if not slash:
            raise ValueError(f"give GROUP/EDGE_NODE, not {text!r}")
        return cls(group, node)

    def __str__(self) -> str:
        return f"{self.group}/{self.node}"

    def topic(self, kind: MessageType, device: str | None = None) -> str:
        """The topic of a message of this edge node (4.2), or of its ``device``."""
        if kind.device_level:
            if device is None:
                raise ValueError(f"a {kind} topic names a device")
            return f"{NAMESPACE}/{self.group}/{kind}/{self.node}/{device}"
        return f"{NAMESPACE}/{self.group}/{kind}/{self.node}"

    def commands(self) -> tuple[str, str]:
        """The filters of the commands to this edge node: NCMD, and DCMD to every device (5.4)."""
        return self.topic(MessageType.NCMD), self.topic(MessageType.DCMD, "+")


def state_topic(host_id: str) -> str:
    """The topic of a host application's STATE (4.2.3.1.1)."""
    return f"{NAMESPACE}/{MessageType.STATE}/{check_id(host_id, 'Sparkplug host id')}"


@dataclass(frozen=True, slots=True)
class Topic:
    """A parsed Sparkplug topic.

    Attributes:
        kind: the message type.
        edge: the edge node (``None`` for STATE).
        device: the device id (device-level messages only).
        host: the host application id (STATE only).
    """

    kind: MessageType
    edge: EdgeNode | None = None
    device: str | None = None
    host: str | None = None

    @classmethod
    def parse(cls, topic: str) -> Topic | None:
        """The Sparkplug B topic ``topic``, or ``None`` when it is not one."""
        parts = topic.split("/")
        if len(parts) < 3 or parts[0] != NAMESPACE:
            return None
        if parts[1] == MessageType.STATE:
            return cls(MessageType.STATE, host=parts[2]) if len(parts) == 3 and parts[2] else None
        try:
            kind = MessageType(parts[2])
        except ValueError:
            return None
        if kind is MessageType.STATE or len(parts) != (5 if kind.device_level else 4):
            return None
        try:
            edge = EdgeNode(parts[1], parts[3])
        except ValueError:
            return None
        device = parts[4] if kind.device_level else None
        if device == "":
            return None
        return cls(kind, edge, device)


DEFAULT_NAMESPACE = "default"
"""The Kubernetes namespace whose devices keep their bare name as Sparkplug device id."""


def sparkplug_device_id(device_id: str) -> str:
    """The Sparkplug device id of KubeEdge device ``namespace/name`` (4.1.5).

    ``name`` in the ``default`` namespace, ``namespace:name`` in any other: short where it can
    be, valid as a topic level (Kubernetes names hold no ``+``, ``/``, ``#`` or ``:``), and one
    device id for one device. :func:`kubeedge_device_id` turns it back.

    Raises:
        ValueError: the result would not be a valid Sparkplug id.
    """
    namespace, _, name = device_id.partition("/")
    text = name if namespace == DEFAULT_NAMESPACE else f"{namespace}:{name}"
    return check_id(text, f"Sparkplug device id of {device_id}")


def kubeedge_device_id(device: str) -> str:
    """The KubeEdge id ``namespace/name`` of Sparkplug device id ``device``.

    The inverse of :func:`sparkplug_device_id`; a device id of another edge node's making
    without ``:`` is read as a name in the ``default`` namespace.
    """
    namespace, colon, name = device.partition(":")
    return f"{namespace}/{name}" if colon else f"{DEFAULT_NAMESPACE}/{device}"
