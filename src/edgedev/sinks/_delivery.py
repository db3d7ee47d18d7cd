"""Delivery shared by every push sink: a bounded queue, batches, retries with backoff, counters.

A sink encodes; :class:`Delivery` decides when and how often. Values wait in a bounded queue
(the oldest are dropped, and counted, when it is full), leave in batches of at most
``max_batch`` after lingering ``linger`` seconds so that one cycle of many devices goes in one
round trip, and a failed batch goes back to the head of the queue and is retried with
exponential backoff. The first failure of an outage is logged once, in one line; the recovery
once. Nothing here ever blocks the caller of :meth:`Delivery.put`.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Generic, TypedDict, TypeVar

import anyio

from edgedev._backoff import Backoff

log = logging.getLogger("edgedev.sinks")

T = TypeVar("T")

QUEUE_LIMIT = 100_000
"""Values a sink keeps while its target is unreachable (per target), by default."""

MAX_BATCH = 5_000
"""Values sent in one round trip, at most."""

LINGER = 0.2
"""Seconds a sink waits after the first queued value, to gather one cycle of many devices."""

SEND_TIMEOUT = 10.0
"""Seconds one round trip may take before it counts as failed."""


class SinkError(Exception):
    """A sink's target refused or failed a batch; the message is one line, without secrets."""


class Refused(SinkError):
    """The target refused the batch itself (bad data, 4xx): it is dropped, not retried."""


class NotReady(Exception):
    """Part of a batch went through; the rest waits for the target to get ready.

    ``remaining`` goes back to the queue (tables being created, say): no failure is counted
    and no backoff taken.
    """

    def __init__(self, remaining: Sequence[object], trips: int = 1) -> None:
        super().__init__(f"{len(remaining)} values not ready")
        self.remaining = remaining
        self.trips = trips


class PartlyDelivered(SinkError):
    """Part of a batch went through before a failure: only ``remaining`` is tried again."""

    def __init__(self, message: str, remaining: Sequence[object]) -> None:
        super().__init__(message)
        self.remaining = remaining


class DeliveryOptions(TypedDict, total=False):
    """Queue and retry settings: :class:`Delivery`'s keyword arguments (documented there)."""

    limit: int
    max_batch: int
    linger: float
    timeout: float
    backoff: Backoff | None


@dataclass(slots=True)
class DeliveryStats:
    """Counters of one sink target, read by ``/metrics``.

    Attributes:
        delivered: values the target accepted.
        dropped: values dropped: the queue was full (the oldest go first), or the target
            refused them.
        refused: of ``dropped``, the values the target refused (bad data: not retried).
        failures: round trips that failed.
        requests: round trips that succeeded (requests, pipelines, transactions).
        up: whether the last round trip succeeded (True before the first).
    """

    delivered: int = 0
    dropped: int = 0
    refused: int = 0
    failures: int = 0
    requests: int = 0
    up: bool = True


class Delivery(Generic[T]):
    """A bounded queue drained in batches by :meth:`run`, with retry and backoff.

    Args:
        name: what to call the target in logs (``redis 127.0.0.1:6379``); no secrets.
        send: delivers one batch, in one round trip if it can; returns the round trips made
            when more than one (None: one); raises on failure (any exception).
        limit: the most values kept; beyond it the oldest are dropped and counted.
        max_batch: the most values per round trip.
        linger: seconds to wait after the first value before sending, to gather a cycle.
        timeout: seconds one round trip may take.
        backoff: retry delays; 0.5 s doubling to 30 s by default.
        batch_deadline: whether the whole of :meth:`send` is under ``timeout`` (False: the
            sink puts each of its requests under it, and reports what went through).
    """

    def __init__(
        self,
        name: str,
        send: Callable[[Sequence[T]], Awaitable[int | None]],
        *,
        limit: int = QUEUE_LIMIT,
        max_batch: int = MAX_BATCH,
        linger: float = LINGER,
        timeout: float = SEND_TIMEOUT,
        backoff: Backoff | None = None,
        batch_deadline: bool = True,
    ) -> None:
        if limit < 1 or max_batch < 1:
            raise ValueError("limit and max_batch must be at least 1")
        self.name = name
        self.limit = limit
        self.max_batch = max_batch
        self.linger = linger
        self.timeout = timeout
        self.batch_deadline = batch_deadline
        self.stats = DeliveryStats()
        self._send = send
        self._queue: deque[T] = deque()
        self._wake = anyio.Event()
        self._backoff = backoff or Backoff(0.5, 30.0)
        self._failing = False
        self._refusing = False
        self._in_flight = 0

    def __len__(self) -> int:
        return len(self._queue)

    @property
    def pending(self) -> int:
        """Values not delivered yet: queued, and in the round trip under way."""
        return len(self._queue) + self._in_flight

    def put(self, items: Iterable[T]) -> None:
        """Queue ``items``; never blocks. Over the limit the oldest values are dropped."""
        queue = self._queue
        queue.extend(items)
        excess = len(queue) - self.limit
        if excess > 0:
            for _ in range(excess):
                queue.popleft()
            self.stats.dropped += excess
        if queue:
            self._wake.set()

    async def run(self) -> None:
        """Deliver until cancelled: linger, send a batch, retry failures with backoff."""
        while True:
            if not self._queue:
                await self._wake.wait()
            self._wake = anyio.Event()
            if self.linger > 0 and len(self._queue) < self.max_batch:
                await anyio.sleep(self.linger)  # gather the rest of this cycle
            while self._queue:
                if not await self._attempt():
                    await anyio.sleep(self._backoff.next())
                elif len(self._queue) < self.max_batch:
                    break  # a partial batch left: linger for more first

    async def flush(self) -> None:
        """Send what is queued now, without backoff; stop at the first failure.

        Called once :meth:`run` has ended (the Mapper stops the sinks' tasks, then flushes them
        under a deadline), so it does the round trips itself.
        """
        while self._queue:
            if not await self._attempt():
                return

    async def _attempt(self) -> bool:
        count = min(self.max_batch, len(self._queue))
        batch = [self._queue.popleft() for _ in range(count)]
        self._in_flight = count
        try:
            with anyio.fail_after(self.timeout if self.batch_deadline else None):
                trips = await self._send(batch)
        except NotReady as exc:
            self.stats.delivered += count - len(exc.remaining)
            self.stats.requests += exc.trips
            self._requeue(list(exc.remaining))  # type: ignore[arg-type]
            self._in_flight = 0
            return True
        except Refused as exc:
            self.stats.dropped += len(batch)
            self.stats.refused += len(batch)
            self._in_flight = 0
            if not self._refusing:
                self._refusing = True
                log.error("%s: refused %d values, dropped: %s", self.name, len(batch), exc)
            return True
        except Exception as exc:
            if isinstance(exc, PartlyDelivered):
                self.stats.delivered += count - len(exc.remaining)
                batch = list(exc.remaining)  # type: ignore[arg-type]
            self._requeue(batch)
            self._in_flight = 0
            self.stats.failures += 1
            self.stats.up = False
            if not self._failing:
                self._failing = True
                log.error(
                    "%s: %s; retrying with backoff, keeping up to %d values",
                    self.name,
                    describe(exc),
                    self.limit,
                )
            else:
                log.debug("%s: still failing: %s", self.name, describe(exc))
            return False
        except BaseException:  # cancelled: the batch stays queued, for flush()
            self._requeue(batch)
            self._in_flight = 0
            raise
        self._in_flight = 0
        self.stats.delivered += count
        self.stats.requests += 1 if trips is None else trips
        self.stats.up = True
        self._refusing = False
        self._backoff.reset()
        if self._failing:
            self._failing = False
            log.warning("%s: delivering again", self.name)
        return True

    def _requeue(self, batch: list[T]) -> None:
        """Put a failed batch back at the head, dropping the oldest beyond the limit."""
        room = self.limit - len(self._queue)
        if room < len(batch):
            lost = len(batch) - max(room, 0)
            self.stats.dropped += lost
            batch = batch[lost:]
        self._queue.extendleft(reversed(batch))


def describe(exc: BaseException) -> str:
    """One line saying what failed: the message, else the exception's class."""
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    text = " ".join(str(exc).split())
    name = type(exc).__name__
    if not text:
        return name
    return text if isinstance(exc, SinkError) else f"{name}: {text}"


def seconds(timeout_ms: int, default: float = SEND_TIMEOUT) -> float:
    """A config's timeout in ms as seconds; 0 (unset) gives ``default``."""
    return timeout_ms / 1000 if timeout_ms > 0 and math.isfinite(timeout_ms) else default
