"""One accept loop for edgedev's TCP servers (health endpoint, embedded broker).

anyio's ``Listener.serve`` ends, and with it the process, the first time ``accept`` fails with
EMFILE (out of file descriptors); a flood of idle connections is enough. This loop survives it:
accept failures for lack of descriptors or memory are logged (once a minute while they last)
and retried after a short backoff, so the connections already open keep being served and new
ones are accepted once descriptors are free again.

It also caps the connections handled at once, counting busy ones, not idle ones: a connection
is *idle* until its handler calls :func:`mark_busy` (the health endpoint once it has read a
request head, the broker once a client's CONNECT is accepted). When the cap is reached, a new
connection closes the oldest idle one (slowloris and idle sockets make room for real clients);
only when every connection is busy is the new one closed at once. That keeps the descriptors
of the process for its real work (devices, the broker link).

The servers on uvicorn (the web view, the REST API) get the same rules from
:mod:`edgedev._http_guard`.
"""

from __future__ import annotations

import errno
import logging
import math
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar

import anyio
from anyio.abc import Listener, SocketListener, SocketStream

from edgedev._backoff import Backoff

_OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
_PEER_GONE = frozenset({errno.ECONNABORTED, errno.ECONNRESET, errno.EPROTO})
LOG_EVERY = 60.0
"""Seconds between two log lines about the same lasting accept problem."""


class ServeStats:
    """Counters of one server's accept loop.

    Attributes:
        active: connections being handled now.
        refused: connections closed at once because ``max_connections`` busy ones were open.
        evicted: idle connections closed to make room for a new one.
        accept_failures: accepts that failed for lack of descriptors or memory.
    """

    __slots__ = ("_logged", "accept_failures", "active", "evicted", "refused")

    def __init__(self) -> None:
        self.active = 0
        self.refused = 0
        self.evicted = 0
        self.accept_failures = 0
        self._logged: dict[str, float] = {}

    def log_now(self, kind: str) -> bool:
        """Whether a line about ``kind`` is due (the first, then one a minute)."""
        now = time.monotonic()
        if now - self._logged.get(kind, -math.inf) >= LOG_EVERY:
            self._logged[kind] = now
            return True
        return False


class _Slot:
    """One connection's place in :func:`serve_connections`."""

    __slots__ = ("busy", "scope")

    def __init__(self) -> None:
        self.busy = False
        self.scope = anyio.CancelScope()


_SLOT: ContextVar[_Slot | None] = ContextVar("edgedev_serve_slot", default=None)


def mark_busy() -> None:
    """Tell :func:`serve_connections` that the connection being handled is no longer idle.

    Call it from the handler once the client has sent what makes it a real client (a
    request head, an MQTT CONNECT): from then on the connection is never closed to make room.
    Outside a handler it does nothing.
    """
    slot = _SLOT.get()
    if slot is not None:
        slot.busy = True


async def serve_connections(
    listener: Listener[SocketStream],
    handler: Callable[[SocketStream], Awaitable[object]],
    *,
    max_connections: int,
    what: str,
    log: logging.Logger,
    stats: ServeStats | None = None,
) -> None:
    """Accept connections on ``listener`` and run ``handler`` on each, until cancelled.

    Args:
        listener: what :func:`anyio.create_tcp_listener` returned (one or more sockets).
        handler: serves one connection; the stream is closed after it returns.
        max_connections: connections handled at once; beyond, a new connection closes the
            oldest idle one (see :func:`mark_busy`), or is closed itself when all are busy.
        what: names the server in log lines ("health endpoint", "embedded broker").
        log: where to log.
        stats: counters to update; a fresh one when omitted.
    """
    stats = stats if stats is not None else ServeStats()
    sockets = [listener] if isinstance(listener, SocketListener) else _parts(listener)
    slots: dict[_Slot, None] = {}  # in the order accepted: the first idle one is the oldest

    def make_room() -> bool:
        for slot in slots:
            if not slot.busy:
                del slots[slot]
                slot.scope.cancel()
                stats.evicted += 1
                if stats.log_now("evict"):
                    log.warning(
                        "%s: %d connections open; closing idle ones (no request yet) to make "
                        "room (%d so far)",
                        what,
                        stats.active,
                        stats.evicted,
                    )
                return True
        return False

    async with anyio.create_task_group() as tg:

        async def handle(stream: SocketStream, slot: _Slot) -> None:
            _SLOT.set(slot)
            try:
                async with stream:
                    with slot.scope:
                        await handler(stream)
            finally:
                slots.pop(slot, None)
                stats.active -= 1

        async def accept_loop(sock: SocketListener) -> None:
            backoff = Backoff(0.05, 2.0)
            while True:
                try:
                    stream = await sock.accept()
                except OSError as exc:
                    if exc.errno in _PEER_GONE:
                        continue
                    if exc.errno not in _OUT_OF_RESOURCES:
                        raise
                    stats.accept_failures += 1
                    if stats.log_now("accept"):
                        log.warning(
                            "%s cannot accept connections: %s (%d open); retrying",
                            what,
                            exc.strerror,
                            stats.active,
                        )
                    await anyio.sleep(backoff.next())
                    continue
                backoff.reset()
                if len(slots) >= max_connections and not make_room():
                    stats.refused += 1
                    if stats.log_now("full"):
                        log.warning(
                            "%s: %d connections open and busy, the most it handles at once; "
                            "closing new ones until some end",
                            what,
                            stats.active,
                        )
                    await stream.aclose()
                    continue
                stats.active += 1
                slot = _Slot()
                slots[slot] = None
                tg.start_soon(handle, stream, slot)

        for sock in sockets:
            tg.start_soon(accept_loop, sock)


def _parts(listener: Listener[SocketStream]) -> list[SocketListener]:
    parts = getattr(listener, "listeners", None)
    if not parts or not all(isinstance(p, SocketListener) for p in parts):
        raise TypeError(f"cannot accept on {listener!r}: not TCP socket listeners")
    return list(parts)
