"""KubeEdge's device topic scheme: building topics and parsing them back. No I/O.

``{root}`` defaults to ``$hw/events``; a device is named ``{namespace}/{name}`` (two topic
levels). Brokers may refuse topics that start with ``$`` (amqtt does), hence the root is
configurable.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

DEFAULT_ROOT = "$hw/events"


class Channel(StrEnum):
    """What a device topic carries: the part after ``device/{ns}/{name}/``."""

    TWIN_UPDATE = "twin/update"
    TWIN_DELTA = "twin/update/delta"
    TWIN_RESULT = "twin/update/result"
    TWIN_DOCUMENT = "twin/update/document"
    TWIN_GET = "twin/get"
    TWIN_GET_RESULT = "twin/get/result"
    STATE_UPDATE = "state/update"
    STATE_CURRENT = "state/current"
    """edgedev's retained copy of the last ``state/update``, with the mapper that sent it.

    KubeEdge's EdgeCore subscribes none of it (``edge/pkg/eventbus/mqtt/client.go``
    ``SubTopics``), so that neither a retained state delivered again nor the empty payload
    that deletes it ever reaches EdgeCore's DeviceTwin.
    """


class NodeChannel(StrEnum):
    """What a node topic carries: the part after ``node/{node}/``."""

    MEMBERSHIP_GET = "membership/get"
    MEMBERSHIP_RESULT = "membership/get/result"
    MEMBERSHIP_UPDATED = "membership/updated"
    MAPPER_GET = "mapper/get"
    """Asks every mapper of the node to announce itself again (edgedev's; see
    :meth:`Topics.mapper`)."""


@dataclass(frozen=True, slots=True)
class DeviceTopic:
    """A parsed device topic."""

    namespace: str
    name: str
    channel: Channel

    @property
    def device_id(self) -> str:
        """``namespace/name``."""
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class NodeTopic:
    """A parsed node topic."""

    node: str
    channel: NodeChannel


@dataclass(frozen=True, slots=True)
class MapperTopic:
    """A parsed mapper topic: ``node/{node}/mapper/{mapper}/state`` (edgedev's)."""

    node: str
    mapper: str


_CHANNELS = {c.value: c for c in Channel}
_NODE_CHANNELS = {c.value: c for c in NodeChannel}


def topic_level_problem(text: str, what: str = "a name") -> str | None:
    """Why ``text`` cannot be one level of a topic, or ``None`` when it can.

    A level is not empty, holds no ``/``, no wildcard (``+``, ``#``) and no NUL, and is at
    most 256 characters long.
    """
    if not text:
        return f"{what} is empty"
    if len(text) > 256:
        return f"{what} is longer than 256 characters"
    bad = sorted({c for c in text if c in "/+#\0"})
    if bad:
        return f"{what} {text!r} holds {', '.join(repr(c) for c in bad)}, which no topic level may"
    return None


def split_device_id(device_id: str) -> tuple[str, str]:
    """Split ``namespace/name``; a bare ``name`` is in namespace ``default``.

    Raises:
        ValueError: the id is empty or has more than two parts, or a part is empty.
    """
    parts = device_id.split("/")
    if len(parts) == 1:
        parts = ["default", *parts]
    if len(parts) != 2 or not all(parts) or any(c in device_id for c in "+#"):
        raise ValueError(f"{device_id!r} is not a device id (NAMESPACE/NAME)")
    return parts[0], parts[1]


@dataclass(frozen=True, slots=True)
class Topics:
    """Topics under one root."""

    root: str = DEFAULT_ROOT

    def __post_init__(self) -> None:
        if not self.root or self.root.endswith("/") or any(c in self.root for c in "+#"):
            raise ValueError(f"{self.root!r} is not a topic root (no trailing '/', no wildcards)")

    def device(self, device_id: str, channel: Channel) -> str:
        """The topic of ``channel`` for ``device_id`` (``namespace/name``)."""
        ns, name = split_device_id(device_id)
        return f"{self.root}/device/{ns}/{name}/{channel.value}"

    def device_filter(self, channel: Channel, device_id: str | None = None) -> str:
        """A subscription filter for ``channel`` of one device, or of every device."""
        if device_id is None:
            return f"{self.root}/device/+/+/{channel.value}"
        return self.device(device_id, channel)

    def all_devices(self, device_id: str | None = None) -> str:
        """A filter for every device topic (of one device, when given)."""
        if device_id is None:
            return f"{self.root}/device/#"
        ns, name = split_device_id(device_id)
        return f"{self.root}/device/{ns}/{name}/#"

    def node(self, node: str, channel: NodeChannel) -> str:
        """The topic of ``channel`` for edge node ``node``."""
        return f"{self.root}/node/{node}/{channel.value}"

    def mapper(self, node: str, mapper: str) -> str:
        """The topic of mapper ``mapper`` on node ``node``: its announcement, retained.

        ``{root}/node/{node}/mapper/{mapper}/state`` (edgedev's): the devices it serves and
        whether it runs (its last will says ``offline``), one retained message per mapper, so
        that mappers of one node keep their own and a client that subscribes later learns it.
        """
        return f"{self.root}/node/{node}/mapper/{mapper}/state"

    def mapper_filter(self, node: str | None = None) -> str:
        """A filter for the announcements of every mapper (of one node, when given)."""
        return self.mapper("+" if node is None else node, "+")

    def parse(self, topic: str) -> DeviceTopic | NodeTopic | MapperTopic | None:
        """Parse a topic under this root; ``None`` when it is not one of ours."""
        prefix = self.root + "/"
        if not topic.startswith(prefix):
            return None
        parts = topic[len(prefix) :].split("/")
        if len(parts) >= 5 and parts[0] == "device" and parts[1] and parts[2]:
            channel = _CHANNELS.get("/".join(parts[3:]))
            return None if channel is None else DeviceTopic(parts[1], parts[2], channel)
        if (
            len(parts) == 5
            and parts[0] == "node"
            and parts[2] == "mapper"
            and parts[4] == "state"
            and parts[1]
            and parts[3]
        ):
            return MapperTopic(parts[1], parts[3])
        if len(parts) >= 4 and parts[0] == "node" and parts[1]:
            node_channel = _NODE_CHANNELS.get("/".join(parts[2:]))
            return None if node_channel is None else NodeTopic(parts[1], node_channel)
        return None
