"""One accept loop for edgedev's TCP servers (health endpoint, embedded broker).

anyio's ``Listener.serve`` ends, and with it the process, the first time ``accept`` fails with
EMFILE (out of file descriptors); a flood of idle connections is enough. This loop survives it:
accept failures for lack of descriptors or memory are logged (once a minute while they last)
and retried after a short backoff, so the connections already open keep being served and new
ones are accepted once descriptors are free again. It also caps the connections handled at
once: beyond the cap a new connection is closed as soon as it is accepted, which keeps the
descriptors of the process for its real work (devices, the broker link).
"""

from __future__ import annotations

import errno
import logging
import math
import time
from collections.abc import Awaitable, Callable

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
        refused: connections closed at once because ``max_connections`` were open.
        accept_failures: accepts that failed for lack of descriptors or memory.
    """

    __slots__ = ("_logged", "accept_failures", "active", "refused")

    def __init__(self) -> None:
        self.active = 0
        self.refused = 0
        self.accept_failures = 0
        self._logged: dict[str, float] = {}

    def log_now(self, kind: str) -> bool:
        """Whether a line about ``kind`` is due (the first, then one a minute)."""
        now = time.monotonic()
        if now - self._logged.get(kind, -math.inf) >= LOG_EVERY:
            self._logged[kind] = now
            return True
        return False


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
        max_connections: connections handled at once; more are closed as soon as accepted.
        what: names the server in log lines ("health endpoint", "embedded broker").
        log: where to log.
        stats: counters to update; a fresh one when omitted.
    """
    stats = stats if stats is not None else ServeStats()
    sockets = [listener] if isinstance(listener, SocketListener) else _parts(listener)
    async with anyio.create_task_group() as tg:

        async def handle(stream: SocketStream) -> None:
            try:
                async with stream:
                    await handler(stream)
            finally:
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
                if stats.active >= max_connections:
                    stats.refused += 1
                    if stats.log_now("full"):
                        log.warning(
                            "%s: %d connections open, the most it handles at once; closing new "
                            "ones until some end",
                            what,
                            stats.active,
                        )
                    await stream.aclose()
                    continue
                stats.active += 1
                tg.start_soon(handle, stream)

        for sock in sockets:
            tg.start_soon(accept_loop, sock)


def _parts(listener: Listener[SocketStream]) -> list[SocketListener]:
    parts = getattr(listener, "listeners", None)
    if not parts or not all(isinstance(p, SocketListener) for p in parts):
        raise TypeError(f"cannot accept on {listener!r}: not TCP socket listeners")
    return list(parts)
