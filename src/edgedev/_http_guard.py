"""Hardening shared by edgedev's HTTP servers on uvicorn (the web view, the REST API).

Use all three pieces for any Starlette app served by uvicorn (``edgedev[web]``)::

    guard = ConnectionGuard("web view", log)
    app = InFlightLimit(starlette_app, limit=64, streams=lambda scope: ..., stream_limit=32)
    config = uvicorn.Config(app, http=guard.protocol(), ...)   # no limit_concurrency
    ...
    body = await read_body(request, 4096)                         # in a route; BodyRefused

What each one stops:

- **A deadline for the request head** (:class:`ConnectionGuard`, ``head_timeout``): a
  connection that has not sent a complete request head within a few seconds of opening, or of
  its previous response, is closed. Idle sockets and slowloris (headers a byte at a time)
  cost nothing past it; uvicorn alone waits for ever.
- **Idle connections make room** (:class:`ConnectionGuard`, ``max_connections``): beyond the
  limit a new connection closes the oldest one that is still waiting for its request, never one
  being served; only when none is idle is the new one closed. Idle sockets can no longer lock
  real requests out, as uvicorn's ``limit_concurrency`` (which counts sockets) let them.
- **A limit on requests in flight** (:class:`InFlightLimit`): requests being served, not
  sockets; beyond, 503 at once. Long-lived responses (server-sent events) have their own
  limit, so that open pages cannot take every slot.
- **Bodies checked before they are read** (:func:`read_body`): ``Content-Length`` is checked
  first (413 without reading a byte); a body without one is read up to the limit and no
  further, under a deadline. A refused body closes the connection (``Connection: close``).

This module imports uvicorn and h11, which only the ``web`` extra brings: import it from the
modules that serve HTTP, never from the core.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any, Final

import anyio
import h11
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from edgedev._serve import ServeStats

__all__ = (
    "HEAD_TIMEOUT",
    "BodyRefused",
    "ConnectionGuard",
    "InFlightLimit",
    "read_body",
)

HEAD_TIMEOUT: Final = 5.0
"""Seconds a connection has to send a complete request head."""

MAX_CONNECTIONS: Final = 512
"""Connections open at once, idle or not (idle ones make room for new ones)."""

BODY_TIMEOUT: Final = 10.0
"""Seconds a request has to send its body."""


class ConnectionGuard:
    """The connections of one uvicorn server: a head deadline, and idle ones making room.

    Pass :meth:`protocol` as uvicorn's ``http=`` setting (it is uvicorn's h11 protocol with
    these two rules added).

    Args:
        what: names the server in log lines ("web view").
        log: where to log (once a minute per kind of event).
        max_connections: sockets open at once.
        head_timeout: seconds to send a complete request head.
    """

    def __init__(
        self,
        what: str,
        log: logging.Logger,
        *,
        max_connections: int = MAX_CONNECTIONS,
        head_timeout: float = HEAD_TIMEOUT,
    ) -> None:
        self.what = what
        self.log = log
        self.max_connections = max_connections
        self.head_timeout = head_timeout
        self.stats = ServeStats()
        """``active`` sockets, ``refused`` ones (closed at once: no idle one to close)."""
        self.evicted = 0
        """Idle connections closed to make room for a new one."""
        self.timed_out = 0
        """Connections closed for sending no complete request head in time."""
        self._open: dict[H11Protocol, asyncio.TimerHandle | None] = {}

    def protocol(self) -> type[asyncio.Protocol]:
        """Uvicorn's h11 protocol class bound to this guard (for ``uvicorn.Config(http=)``)."""
        guard = self

        class GuardedH11Protocol(H11Protocol):
            def connection_made(  # type: ignore[override]
                self, transport: asyncio.Transport
            ) -> None:
                super().connection_made(transport)
                guard._opened(self)

            def connection_lost(self, exc: Exception | None) -> None:
                guard._closed(self)
                super().connection_lost(exc)

            def on_response_complete(self) -> None:
                super().on_response_complete()
                if not self.transport.is_closing():
                    guard._arm(self)

        return GuardedH11Protocol

    def _opened(self, protocol: H11Protocol) -> None:
        self.stats.active = len(self._open) + 1
        if len(self._open) >= self.max_connections and not self._evict_idle():
            self.stats.refused += 1
            if self.stats.log_now("full"):
                self.log.warning(
                    "%s: %d connections open, all of them busy; closing new ones until some end",
                    self.what,
                    len(self._open),
                )
            protocol.transport.close()
            return
        self._open[protocol] = None
        self._arm(protocol)

    def _closed(self, protocol: H11Protocol) -> None:
        timer = self._open.pop(protocol, None)
        if timer is not None:
            timer.cancel()
        self.stats.active = len(self._open)

    def _arm(self, protocol: H11Protocol) -> None:
        if protocol not in self._open:
            return
        timer = self._open[protocol]
        if timer is not None:
            timer.cancel()
        self._open[protocol] = protocol.loop.call_later(self.head_timeout, self._head_due, protocol)

    def _head_due(self, protocol: H11Protocol) -> None:
        if protocol in self._open:
            self._open[protocol] = None
        if _idle(protocol) and not protocol.transport.is_closing():
            self.timed_out += 1
            if self.stats.log_now("slow"):
                self.log.info(
                    "%s: closed a connection that sent no complete request within %gs (%d so far)",
                    self.what,
                    self.head_timeout,
                    self.timed_out,
                )
            protocol.transport.close()

    def _evict_idle(self) -> bool:
        """Close the oldest connection waiting for its request; whether there was one."""
        for protocol in self._open:
            if _idle(protocol) and not protocol.transport.is_closing():
                self._closed(protocol)
                protocol.transport.close()
                self.evicted += 1
                if self.stats.log_now("evict"):
                    self.log.warning(
                        "%s: %d connections open; closing idle ones to make room (%d so far)",
                        self.what,
                        self.max_connections,
                        self.evicted,
                    )
                return True
        return False


def _idle(protocol: H11Protocol) -> bool:
    """Whether the connection waits for (the rest of) a request head."""
    return protocol.conn.their_state is h11.IDLE


class InFlightLimit:
    """ASGI middleware: at most ``limit`` requests served at once; more are answered 503.

    Args:
        app: the application.
        limit: requests in flight (long-lived ones not counted).
        streams: tells long-lived requests (an event stream) by their scope.
        stream_limit: long-lived requests at once.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        limit: int,
        streams: Callable[[Scope], bool] | None = None,
        stream_limit: int = 0,
    ) -> None:
        self.app = app
        self.limit = limit
        self.streams = streams
        self.stream_limit = stream_limit
        self.in_flight = 0
        """Requests being served now (not counting streams)."""
        self.streaming = 0
        """Long-lived requests open now."""
        self.refused = 0
        """Requests answered 503 because the limit was reached."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the request, or answer 503 when too many are in flight."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        stream = self.streams is not None and self.streams(scope)
        if stream:
            if self.streaming >= self.stream_limit:
                await self._refuse(send, f"{self.stream_limit} event streams are open")
                return
            self.streaming += 1
        else:
            if self.in_flight >= self.limit:
                await self._refuse(send, f"{self.limit} requests are being served")
                return
            self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            if stream:
                self.streaming -= 1
            else:
                self.in_flight -= 1

    async def _refuse(self, send: Send, why: str) -> None:
        self.refused += 1
        await _send_json(send, 503, f"busy: {why}; try again", close=False)


class BodyRefused(Exception):
    """The request body is refused: :attr:`status` (400, 408 or 413) and :attr:`reason`."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


async def read_body(request: Request, limit: int, *, timeout: float = BODY_TIMEOUT) -> bytes:
    """The body of ``request``, at most ``limit`` bytes, read within ``timeout`` seconds.

    ``Content-Length`` is checked before a byte is read; without one (chunked), reading stops
    as soon as ``limit`` is passed.

    Raises:
        BodyRefused: 413 too large, 400 a malformed ``Content-Length``, 408 too slow.
            Answer it with ``Connection: close`` (:func:`refusal_headers`): the rest of the
            body is not read.
    """
    length = request.headers.get("content-length")
    if length is not None:
        if not length.isdigit() or len(length) > 18:
            raise BodyRefused(400, "Content-Length is not a number of bytes")
        if int(length) > limit:
            raise BodyRefused(413, f"a request carries {limit} bytes at most")
    body = bytearray()
    with anyio.move_on_after(timeout) as scope:
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise BodyRefused(413, f"a request carries {limit} bytes at most")
    if scope.cancelled_caught:
        raise BodyRefused(408, f"the body did not arrive within {timeout:g}s")
    return bytes(body)


def refusal_headers() -> dict[str, str]:
    """Headers of an answer to a refused body: the connection closes (the body is unread)."""
    return {"Connection": "close"}


async def _send_json(send: Send, status: int, reason: str, *, close: bool) -> None:
    body = json.dumps({"code": status, "reason": reason}).encode()
    headers: list[tuple[bytes, bytes]] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"retry-after", b"1"),
    ]
    if close:
        headers.append((b"connection", b"close"))
    start: dict[str, Any] = {"type": "http.response.start", "status": status, "headers": headers}
    await send(start)
    await send({"type": "http.response.body", "body": body})
