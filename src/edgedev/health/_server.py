"""A small HTTP server for Kubernetes probes and Prometheus, on the process's event loop.

It answers ``GET /healthz`` (liveness), ``GET /readyz`` (readiness) and ``GET /metrics``
(Prometheus text format 0.0.4), one request per connection, and nothing else. Serving from
the same event loop as the devices makes ``/healthz`` an honest liveness check: a blocked
loop stops answering it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio
from anyio.abc import Listener, SocketStream, TaskStatus

from edgedev._errors import EdgedevError
from edgedev._metrics import Metric
from edgedev._serve import ServeStats, mark_busy, serve_connections
from edgedev.health._metrics import CONTENT_TYPE, render

log = logging.getLogger("edgedev.health")

_MAX_REQUEST = 8192

DEFAULT_HOST = "0.0.0.0"
"""Every address: kubelet probes the pod's IP. Use ``127.0.0.1`` to keep it on the host."""

MAX_CONNECTIONS = 64
"""Connections served at once; beyond, a new one closes the oldest that has not sent its
request yet (idle sockets and slowloris make room for probes), or is closed itself when every
one is busy."""

READ_TIMEOUT = 5.0
"""Seconds a client has to send its request before the connection is closed."""


class HealthError(EdgedevError):
    """The health endpoint cannot be served (its port is taken, or not allowed)."""


@dataclass(frozen=True, slots=True)
class Health:
    """What the endpoints report; each callable is asked on every request.

    Attributes:
        live: ``(ok, reason)`` for ``/healthz``.
        ready: ``(ok, reason)`` for ``/readyz``.
        metrics: the metric families for ``/metrics``.
    """

    live: Callable[[], tuple[bool, str]]
    ready: Callable[[], tuple[bool, str]]
    metrics: Callable[[], Iterable[Metric]]


def respond(health: Health, method: str, path: str) -> tuple[int, str, str]:
    """``(status, content type, body)`` for a request line: pure, no I/O."""
    path = path.split("?", 1)[0]
    if method not in ("GET", "HEAD"):
        return 405, "text/plain; charset=utf-8", "method not allowed\n"
    if path in ("/healthz", "/readyz"):
        ok, reason = (health.live if path == "/healthz" else health.ready)()
        return (200 if ok else 503), "text/plain; charset=utf-8", f"{reason}\n"
    if path == "/metrics":
        return 200, CONTENT_TYPE, render(health.metrics())
    return 404, "text/plain; charset=utf-8", "not found (try /healthz, /readyz, /metrics)\n"


_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}
_REASONS[503] = "Service Unavailable"
_REASONS[500] = "Internal Server Error"


class HealthServer:
    """Serves :class:`Health` over HTTP on ``host:port``; ``port=0`` picks a free port.

    Run it in a task group with ``await tg.start(server.run)``; :attr:`port` is then the port
    it listens on. A client has ``read_timeout`` seconds to send its request; at most
    ``max_connections`` are served at once (a new one beyond closes the oldest connection
    still waiting for its request, so that idle sockets cannot lock probes out), and running
    out of file descriptors only pauses accepting: the server, and the process around it, go
    on.
    """

    def __init__(
        self,
        health: Health,
        port: int,
        host: str = DEFAULT_HOST,
        *,
        max_connections: int = MAX_CONNECTIONS,
        read_timeout: float = READ_TIMEOUT,
    ) -> None:
        self.health = health
        self.host = host
        self.port = port
        self.max_connections = max_connections
        self.read_timeout = read_timeout
        self.stats = ServeStats()
        """Open, refused and failed connections (see :class:`edgedev._serve.ServeStats`)."""

    async def listen(self) -> Listener[SocketStream]:
        """Bind ``host:port``; :attr:`port` becomes the bound port.

        Raises:
            HealthError: the address cannot be bound (in use, not allowed).
        """
        try:
            listener = await anyio.create_tcp_listener(
                local_host=self.host, local_port=self.port, reuse_port=False
            )
        except OSError as exc:
            raise HealthError(f"cannot serve health on {self.host}:{self.port}: {exc}") from exc
        self.port = listener.extra(anyio.abc.SocketAttribute.local_port)
        return listener

    async def run(
        self,
        listener: Listener[SocketStream] | None = None,
        *,
        task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Listen (on ``listener``, else on a new one) until cancelled."""
        if listener is None:
            listener = await self.listen()
        async with listener:
            log.info("health endpoint on http://%s:%d/healthz", self.host, self.port)
            task_status.started()
            await serve_connections(
                listener,
                self._handle,
                max_connections=self.max_connections,
                what=f"health endpoint on port {self.port}",
                log=log,
                stats=self.stats,
            )

    async def _handle(self, stream: SocketStream) -> None:
        async with stream:
            try:
                with anyio.fail_after(self.read_timeout):
                    head = await _read_head(stream)
            except (TimeoutError, anyio.EndOfStream, anyio.BrokenResourceError, OSError):
                return
            mark_busy()  # a request came: never closed to make room for another connection
            status, ctype, body = self._answer(head)
            data = body.encode()
            method = head.split(b" ", 1)[0]
            header = (
                f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
                f"Content-Type: {ctype}\r\nContent-Length: {len(data)}\r\n"
                "Connection: close\r\n\r\n"
            ).encode()
            with contextlib.suppress(anyio.BrokenResourceError, OSError):
                await stream.send(header if method == b"HEAD" else header + data)

    def _answer(self, head: bytes) -> tuple[int, str, str]:
        parts = head.split(b"\r\n", 1)[0].split(b" ")
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/"):
            return 400, "text/plain; charset=utf-8", "bad request\n"
        try:
            return respond(self.health, parts[0].decode("ascii"), parts[1].decode("ascii"))
        except UnicodeDecodeError:
            return 400, "text/plain; charset=utf-8", "bad request\n"
        except Exception:  # a failing probe callable is reported, never fatal
            log.exception("health check failed")
            return 500, "text/plain; charset=utf-8", "health check failed\n"


@asynccontextmanager
async def serving(
    health: Health, port: int | None, host: str = DEFAULT_HOST
) -> AsyncIterator[HealthServer | None]:
    """Serve ``health`` on ``port`` for the duration of the block (nothing when ``None``).

    Raises:
        HealthError: the port cannot be bound.
    """
    if port is None:
        yield None
        return
    server = HealthServer(health, port, host)
    listener = await server.listen()  # a port in use is a HealthError here, not in a group
    try:
        async with anyio.create_task_group() as tg:
            await tg.start(server.run, listener)
            yield server
            tg.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        if len(group.exceptions) == 1:  # the block's own exception, as if no server ran
            raise group.exceptions[0] from None
        raise


async def _read_head(stream: SocketStream) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data and b"\n\n" not in data:
        if len(data) > _MAX_REQUEST:
            break
        data += await stream.receive(4096)
    return data
