"""One client connection: its bounded outgoing queue, its batched writer and its QoS state.

Everything that goes to a client (acknowledgements and delivered messages alike) is appended
to one in-memory queue, in order, by synchronous code; a single writer task per connection
joins whatever has accumulated into one buffer and sends it with one call. Under load that
turns hundreds of small packets into one socket write.

The queue is bounded in delivered messages and in bytes, as mosquitto's
``max_queued_messages`` and ``max_queued_bytes`` bound a session's queue: a message that would
go beyond is dropped for that client and counted (:attr:`Connection.dropped`), and the client
stays connected; the publisher and the other subscribers are never slowed down. A client whose
queue is half full is *backlogged*: the server stops reading from it until its writer catches
up, so a client that publishes faster than it reads its own acknowledgements is slowed down.
Control packets (acknowledgements) are never dropped; a client that lets even those pile up
beyond the byte limit is disconnected.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import anyio
import anyio.abc

from edgedev.broker._codec import PubRel, Will, encode, publish_prefix

__all__ = ("Connection", "OutgoingMessage")

# Rough per-packet cost of headers and bookkeeping, so that a flood of empty messages still
# counts against the byte limit.
_PACKET_OVERHEAD: Final = 16

# Outbound QoS states, per packet identifier.
_AWAIT_PUBACK: Final = 1
_AWAIT_PUBREC: Final = 2
_AWAIT_PUBCOMP: Final = 3


class OutgoingMessage:
    """A message being delivered: encodes its PUBLISH header once for all subscribers."""

    __slots__ = ("_prefixes", "_topic_bytes", "payload", "topic")

    def __init__(self, topic: str, payload: bytes) -> None:
        self.topic = topic
        self.payload = payload
        self._topic_bytes = topic.encode("utf-8")
        self._prefixes: dict[int, bytes] = {}

    def prefix(self, qos: int, retain: bool) -> bytes:
        """The PUBLISH packet up to its topic, for this QoS and RETAIN flag."""
        key = qos * 2 + retain
        prefix = self._prefixes.get(key)
        if prefix is None:
            prefix = publish_prefix(self._topic_bytes, len(self.payload), qos, retain)
            self._prefixes[key] = prefix
        return prefix


class Connection:
    """State of one connected client, owned by the server's connection task.

    Attributes:
        client_id: the MQTT client identifier.
        peer: the remote address, for log lines.
        keepalive: the keepalive the client asked for, in seconds (0: none).
        will: the last will, until it is published or discarded.
        scope: cancelling it ends the connection's tasks.
        awaiting_release: identifiers of inbound QoS 2 messages already delivered, awaiting
            PUBREL; a re-sent PUBLISH with one of them is not delivered twice.
        closed: set once the server has dropped the connection.
        dropped: messages not delivered to this client because its queue was full.
        told_subscription_limit: whether the refusal of filters beyond the per-client limit
            was logged already (once per connection).
    """

    def __init__(
        self,
        stream: anyio.abc.ByteSendStream,
        client_id: str,
        peer: str,
        *,
        keepalive: int,
        will: Will | None,
        max_queued_messages: int,
        max_queued_bytes: int,
        on_lost: Callable[[Connection, str], None],
    ) -> None:
        self.client_id = client_id
        self.peer = peer
        self.keepalive = keepalive
        self.will = will
        self.scope = anyio.CancelScope()
        self.awaiting_release: set[int] = set()
        self.closed = False
        self.dropped = 0
        self.told_subscription_limit = False
        self._stream = stream
        self._on_lost = on_lost
        self._max_messages = max_queued_messages
        self._max_bytes = max_queued_bytes
        self._out: list[bytes] = []
        self._queued_messages = 0
        self._queued_bytes = 0
        self._wakeup = anyio.Event()
        self._drained: anyio.Event | None = None
        self._in_flight: dict[int, int] = {}
        self._last_id = 0

    def __repr__(self) -> str:
        return f"<Connection {self.client_id!r} from {self.peer}>"

    @property
    def in_flight(self) -> int:
        """Outbound QoS 1 and 2 messages not yet acknowledged by the client."""
        return len(self._in_flight)

    @property
    def queued(self) -> int:
        """Messages (PUBLISH packets) waiting for the writer."""
        return self._queued_messages

    @property
    def backlogged(self) -> bool:
        """Whether the queue is more than half full; stop reading from the client until not."""
        return (
            self._queued_messages > self._max_messages // 2
            or self._queued_bytes > self._max_bytes // 2
        )

    async def wait_drained(self) -> None:
        """Wait until the queue is no longer backlogged."""
        while self.backlogged:
            self._drained = anyio.Event()
            await self._drained.wait()

    def send(self, packet: bytes) -> bool:
        """Queue an encoded control packet; ``False`` when the client has fallen hopelessly behind.

        Control packets are never dropped: they may take the queue to twice its byte limit
        (a full queue of messages plus as many bytes of acknowledgements) before the client is
        given up.
        """
        if self.closed:
            return True
        self._out.append(packet)
        self._queued_bytes += len(packet) + _PACKET_OVERHEAD
        self._wakeup.set()
        return self._queued_bytes <= 2 * self._max_bytes

    def deliver(self, message: OutgoingMessage, qos: int, retain: bool = False) -> bool:
        """Queue ``message`` at ``qos``; ``False`` when it was dropped (the queue is full)."""
        if self.closed:
            return True
        size = len(message.payload) + len(message.topic) + _PACKET_OVERHEAD
        if (
            self._queued_messages >= self._max_messages
            or self._queued_bytes + size > self._max_bytes
        ):
            self.dropped += 1
            return False
        out = self._out
        if qos:
            packet_id = self._allocate_id()
            if packet_id is None:
                self.dropped += 1
                return False
            self._in_flight[packet_id] = _AWAIT_PUBACK if qos == 1 else _AWAIT_PUBREC
            out.append(message.prefix(qos, retain))
            out.append(packet_id.to_bytes(2, "big"))
        else:
            out.append(message.prefix(0, retain))
        out.append(message.payload)
        self._queued_messages += 1
        self._queued_bytes += size
        self._wakeup.set()
        return True

    def on_puback(self, packet_id: int) -> None:
        """The client acknowledged a QoS 1 message."""
        if self._in_flight.get(packet_id) == _AWAIT_PUBACK:
            del self._in_flight[packet_id]

    def on_pubrec(self, packet_id: int) -> bool:
        """The client received a QoS 2 message: answer with PUBREL (even for unknown ids)."""
        if self._in_flight.get(packet_id) == _AWAIT_PUBREC:
            self._in_flight[packet_id] = _AWAIT_PUBCOMP
        return self.send(encode(PubRel(packet_id)))

    def on_pubcomp(self, packet_id: int) -> None:
        """The client completed a QoS 2 exchange."""
        if self._in_flight.get(packet_id) == _AWAIT_PUBCOMP:
            del self._in_flight[packet_id]

    def close(self) -> None:
        """Discard everything queued and cancel the connection's tasks (idempotent)."""
        self.closed = True
        self._out.clear()
        self._in_flight.clear()
        self.scope.cancel()

    async def write_loop(self) -> None:
        """Send queued packets, batched, until cancelled or the connection breaks."""
        out = self._out
        try:
            while True:
                if not out:
                    self._wakeup = anyio.Event()
                    await self._wakeup.wait()
                    continue
                data = b"".join(out)
                out.clear()
                self._queued_messages = 0
                self._queued_bytes = 0
                await self._stream.send(data)
                if self._drained is not None:
                    self._drained.set()
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
            self._on_lost(self, f"write failed ({exc!r})")

    def _allocate_id(self) -> int | None:
        in_flight = self._in_flight
        if len(in_flight) >= 0xFFFF:
            return None
        packet_id = self._last_id
        while True:
            packet_id = packet_id % 0xFFFF + 1
            if packet_id not in in_flight:
                self._last_id = packet_id
                return packet_id
