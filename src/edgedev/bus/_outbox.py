"""Outgoing messages waiting for the broker's acknowledgement.

The client publishes from an outbox in order and removes a message only when the broker has
acknowledged it, so a connection lost mid-flight resends what was not confirmed (at least
once; a resent message keeps its ``event_id``). :class:`MemoryOutbox` is the default; a
persistent outbox implements the same interface (:class:`~edgedev.bus.SqliteOutbox`).

An outbox is bounded three ways: a number of messages (``limit``), their bytes
(``max_bytes``: topic, payload and :data:`ENTRY_OVERHEAD` each) and their age (``ttl``).
Messages older than ``ttl`` are dropped (counted in :attr:`Outbox.expired`); at the limit or
the byte bound the **oldest reading** goes first (a message with
:attr:`Message.values`, a twin report), and a message without readings (a device's state, a
failed write, the mapper's state) only when no reading is left to drop (counted in
:attr:`Outbox.dropped`). Each kind of drop is logged at most once a minute, with the count.
"""

from __future__ import annotations

import abc
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("edgedev.bus")

ENTRY_OVERHEAD = 48
"""Bytes counted for each message besides its topic and payload (its row, its entry)."""
MEMORY_MAX_BYTES = 64 * 2**20
"""The default byte bound of a :class:`MemoryOutbox` (64 MiB)."""
LOG_INTERVAL = 60.0
"""Seconds at least between two log lines about drops of one kind."""
EXPIRE_BATCH = 1000
"""Messages older than the ttl dropped at most per message put or taken: a restart after a
long outage does not read the whole queue back in one go."""


@dataclass(frozen=True, slots=True)
class Message:
    """An MQTT message.

    Attributes:
        topic: the topic.
        payload: the payload.
        qos: 0, 1 or 2.
        retain: the retain flag.
        values: the device readings it carries (a twin report's values; 0 for a state
            change, a write failure, a mapper state): a message with readings is dropped
            before one without when the outbox is full, and its readings are counted as
            values dropped.
    """

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = False
    values: int = 0


def entry_size(message: Message) -> int:
    """The bytes ``message`` counts for in an outbox's ``max_bytes``."""
    return len(message.topic) + len(message.payload) + ENTRY_OVERHEAD


Entry = tuple[int, Message, float]
"""A queued message: its sequence number, itself, and when it was queued (epoch seconds)."""


class _Throttled:
    """Drops of one kind, logged at most once per :data:`LOG_INTERVAL` with the counts.

    ``text`` is formatted with ``messages`` and ``readings`` (since the last line), ``since``
    (`` in the last N s``, empty the first time) and ``total`` (messages in all).
    """

    __slots__ = ("_at", "_clock", "_messages", "_readings", "text")

    def __init__(self, text: str, clock: Callable[[], float]) -> None:
        self.text = text
        self._clock = clock
        self._at: float | None = None
        self._messages = 0
        self._readings = 0

    def add(self, message: Message, total: int) -> None:
        self._messages += 1
        self._readings += message.values
        now = self._clock()
        if self._at is None or now - self._at >= LOG_INTERVAL:
            self.flush(total, now)

    def flush(self, total: int, now: float | None = None) -> None:
        if not self._messages:
            return
        now = self._clock() if now is None else now
        since = "" if self._at is None else f" in the last {now - self._at:.0f} s"
        log.warning(
            self.text.format(
                messages=self._messages, readings=self._readings, since=since, total=total
            )
        )
        self._at = now
        self._messages = self._readings = 0


class Outbox(abc.ABC):
    """Queue of messages to publish, bounded, in order, acknowledged one by one.

    Attributes:
        limit: most messages kept.
        max_bytes: most bytes kept (:func:`entry_size` of each message); 0: no bound.
        ttl: seconds a message may wait; older ones are dropped. ``None``: no bound.
        dropped: messages dropped at the limit or the byte bound.
        dropped_values: the readings those messages carried.
        expired: messages dropped because they waited longer than ``ttl``.
        expired_values: the readings those messages carried.
    """

    limit: int
    max_bytes: int = 0
    ttl: float | None = None
    dropped: int = 0
    dropped_values: int = 0
    expired: int = 0
    expired_values: int = 0

    @abc.abstractmethod
    def put(self, message: Message) -> None:
        """Append ``message``; drops as the bounds say (counted, logged) when full."""

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

    @property
    def bytes(self) -> int:
        """Bytes of the messages not yet acknowledged (see :func:`entry_size`)."""
        return 0

    @property
    def full(self) -> bool:
        """Whether the outbox is at a bound: the last message put made it drop one."""
        return len(self) >= self.limit

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (a file, a database)."""


class MemoryOutbox(Outbox):
    """An outbox in memory: survives broker outages, not a restart of the process.

    Messages with readings and those without wait in two queues in publishing order (a
    message goes out when it is the oldest of both), so that the oldest reading is always at
    hand to be dropped. A persistent outbox keeps these queues and mirrors them elsewhere by
    overriding :meth:`_stored`, :meth:`_discarded`, :meth:`_keep` and :meth:`_refill`.

    Args:
        limit: most messages kept.
        max_bytes: most bytes kept (:data:`MEMORY_MAX_BYTES` by default); 0: no bound.
        ttl: seconds a message may wait before it is dropped; ``None``: no bound.
        clock: epoch seconds (for tests).
    """

    def __init__(
        self,
        limit: int = 100_000,
        *,
        max_bytes: int = MEMORY_MAX_BYTES,
        ttl: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        if max_bytes < 0:
            raise ValueError("max_bytes must not be negative")
        if ttl is not None and not ttl > 0:
            raise ValueError("ttl must be positive")
        self.limit = limit
        self.max_bytes = max_bytes
        self.ttl = ttl
        self.dropped = self.dropped_values = 0
        self.expired = self.expired_values = 0
        self._clock = clock
        self._seq = 0
        self._bytes = 0
        self._dropping = False
        self._control: deque[Entry] = deque()  # no readings: states, failed writes
        self._readings: deque[Entry] = deque()
        self._inflight: OrderedDict[int, Entry] = OrderedDict()
        mb = f", {max_bytes / 2**20:g} MiB" if max_bytes else ""
        self._full_log = _Throttled(
            f"outbox full (at most {limit} messages{mb}): {{messages}} messages "
            "({readings} readings) dropped{since}, the oldest readings first; {total} in all",
            clock,
        )
        self._expired_log = _Throttled(
            f"outbox: {{messages}} messages ({{readings}} readings) waited longer than "
            f"{ttl or 0:g} s and were dropped{{since}}; {{total}} in all",
            clock,
        )

    # the queue ------------------------------------------------------------------------------
    def put(self, message: Message) -> None:
        now = self._clock()
        self._seq += 1
        entry = (self._seq, message, now)
        self._bytes += entry_size(message)
        self._stored(entry)
        if self._keep(entry):
            (self._readings if message.values else self._control).append(entry)
        self._expire(now)
        self._bound()

    def take(self) -> tuple[int, Message] | None:
        self._expire(self._clock())
        entry = self._pop_head()
        if entry is None:
            return None
        self._inflight[entry[0]] = entry
        return entry[0], entry[1]

    def ack(self, seq: int) -> None:
        entry = self._inflight.pop(seq, None)
        if entry is not None:
            self._bytes -= entry_size(entry[1])
            self._discarded(seq)

    def peek(self, seq: int) -> Message | None:
        entry = self._inflight.get(seq)
        return None if entry is None else entry[1]

    def requeue(self) -> None:
        entries = list(self._inflight.values())  # in the order taken: publishing order
        self._inflight.clear()
        self._control.extendleft(reversed([e for e in entries if not e[1].values]))
        self._readings.extendleft(reversed([e for e in entries if e[1].values]))

    def __len__(self) -> int:
        return len(self._control) + len(self._readings) + len(self._inflight) + self._elsewhere()

    @property
    def bytes(self) -> int:
        return self._bytes

    def close(self) -> None:
        """Log the drops not yet logged."""
        self._full_log.flush(self.dropped)
        self._expired_log.flush(self.expired)

    # the bounds -----------------------------------------------------------------------------
    def _bound(self) -> None:
        """Drop until the outbox is within ``limit`` and its byte bound."""
        bound = self._byte_bound()
        self._dropping = False
        while len(self) > self.limit or (bound and self._bytes > bound):
            if not self._drop_oldest():
                break
            self._dropping = True

    @property
    def full(self) -> bool:
        """Whether the outbox is at a bound: the last message put made it drop one."""
        return self._dropping or len(self) >= self.limit

    def _byte_bound(self) -> int:
        """The bytes kept at most now (``max_bytes``; 0: no bound)."""
        return self.max_bytes

    def _pop_head(self) -> Entry | None:
        """The oldest queued message, taken off its queue."""
        if not self._readings:
            self._refill()
        control, readings = self._control, self._readings
        if control and (not readings or control[0][0] < readings[0][0]):
            return control.popleft()
        if readings:
            return readings.popleft()
        return None

    def _expire(self, now: float, budget: int = EXPIRE_BATCH) -> None:
        """Drop the messages older than ``ttl``, ``budget`` at most (the rest next time)."""
        if self.ttl is None:
            return
        oldest = now - self.ttl
        for queue in (self._control, self._readings):
            while budget > 0:
                if queue is self._readings and not queue:
                    self._refill()
                if not queue or queue[0][2] > oldest:
                    break
                budget -= 1
                entry = queue.popleft()
                self.expired += 1
                self.expired_values += entry[1].values
                self._gone(entry)
                self._expired_log.add(entry[1], self.expired)

    def _drop_oldest(self) -> bool:
        """Drop the oldest reading, else the oldest message; whether one was there."""
        if not self._readings:
            self._refill()
        queue = self._readings or self._control
        if not queue:
            return False
        entry = queue.popleft()
        self.dropped += 1
        self.dropped_values += entry[1].values
        self._gone(entry)
        self._full_log.add(entry[1], self.dropped)
        return True

    def _gone(self, entry: Entry) -> None:
        self._bytes -= entry_size(entry[1])
        self._discarded(entry[0])

    # hooks of a persistent outbox -------------------------------------------------------------
    def _stored(self, entry: Entry) -> None:
        """Hook: ``entry`` was queued."""

    def _discarded(self, seq: int) -> None:
        """Hook: ``seq`` left the queue for good (acknowledged, or dropped)."""

    def _keep(self, entry: Entry) -> bool:
        """Hook: whether ``entry`` waits in memory (else only elsewhere, until refilled)."""
        return True

    def _refill(self) -> None:
        """Hook: the readings queue is empty; bring back the next ones kept elsewhere."""

    def _elsewhere(self) -> int:
        """Hook: messages queued but kept elsewhere (not in memory)."""
        return 0
