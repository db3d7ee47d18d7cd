"""Outgoing messages waiting for the broker's acknowledgement.

The client publishes from an outbox in order and removes a message only when the broker has
acknowledged it, so a connection lost mid-flight resends what was not confirmed (at least
once; a resent message keeps its ``event_id``). :class:`MemoryOutbox` is the default; a
persistent outbox implements the same interface (:class:`~edgedev.bus.SqliteOutbox`).
"""

from __future__ import annotations

import abc
import logging
from collections import OrderedDict, deque
from dataclasses import dataclass

log = logging.getLogger("edgedev.bus")


@dataclass(frozen=True, slots=True)
class Message:
    """An MQTT message.

    Attributes:
        topic: the topic.
        payload: the payload.
        qos: 0, 1 or 2.
        retain: the retain flag.
        values: the device readings it carries (a twin report's values; 0 for a state
            change, a write failure, a mapper state): counted as values dropped if the
            outbox drops it, and the first dropped when the outbox is full.
    """

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = False
    values: int = 0


class Outbox(abc.ABC):
    """Queue of messages to publish, bounded, in order, acknowledged one by one.

    Attributes:
        limit: most messages kept; at the limit the oldest unsent message is dropped.
        dropped: messages dropped at the limit since the outbox was made.
        dropped_values: the device readings those messages carried.
    """

    limit: int
    dropped: int = 0
    dropped_values: int = 0

    @abc.abstractmethod
    def put(self, message: Message) -> None:
        """Append ``message``; drops the oldest unsent one (counted, logged) when full."""

    @abc.abstractmethod
    def take(self) -> tuple[int, Message] | None:
        """The oldest message not in flight, now marked in flight, with its sequence number."""

    @abc.abstractmethod
    def ack(self, seq: int) -> None:
        """Forget message ``seq``: the broker has it."""

    @abc.abstractmethod
    def requeue(self) -> None:
        """Put every in-flight message back, in order, ahead of the rest (connection lost)."""

    @abc.abstractmethod
    def __len__(self) -> int:
        """Messages not yet acknowledged, in flight or not."""

    def peek(self, seq: int) -> Message | None:
        """The in-flight message ``seq``, if the outbox can tell (for log lines)."""
        return None

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (a file, a database)."""

    def _count_drop(self, message: Message) -> None:
        self.dropped += 1
        self.dropped_values += message.values
        if self.dropped == 1 or self.dropped % 1000 == 0:
            log.warning(
                "outbox full (%d messages): dropped the oldest (%s); %d dropped so far",
                self.limit,
                message.topic,
                self.dropped,
            )


class MemoryOutbox(Outbox):
    """An outbox in memory: survives broker outages, not a restart of the process.

    A persistent outbox keeps this queue and mirrors it elsewhere by overriding
    :meth:`_stored` and :meth:`_discarded`.
    """

    def __init__(self, limit: int = 100_000) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        self.dropped = 0
        self.dropped_values = 0
        self._seq = 0
        self._queue: deque[tuple[int, Message]] = deque()
        self._inflight: OrderedDict[int, Message] = OrderedDict()

    def put(self, message: Message) -> None:
        self._seq += 1
        self._queue.append((self._seq, message))
        self._stored(self._seq, message)
        if len(self) > self.limit and self._queue:
            seq, old = self._queue.popleft()
            self._discarded(seq)
            self._count_drop(old)

    def take(self) -> tuple[int, Message] | None:
        if not self._queue:
            return None
        seq, message = self._queue.popleft()
        self._inflight[seq] = message
        return seq, message

    def ack(self, seq: int) -> None:
        if self._inflight.pop(seq, None) is not None:
            self._discarded(seq)

    def peek(self, seq: int) -> Message | None:
        return self._inflight.get(seq)

    def requeue(self) -> None:
        self._queue.extendleft(reversed(self._inflight.items()))
        self._inflight.clear()

    def __len__(self) -> int:
        return len(self._queue) + len(self._inflight)

    def _stored(self, seq: int, message: Message) -> None:
        """Hook: ``message`` was queued as ``seq``."""

    def _discarded(self, seq: int) -> None:
        """Hook: ``seq`` left the queue for good (acknowledged, or dropped at the limit)."""
