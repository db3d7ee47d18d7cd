"""Serving a Starlette app with uvicorn from the process's own task group (``edgedev[web]``).

The web view and the mapper's REST API both bind their socket first (so that a port in use is
a clear error before anything runs), then let uvicorn serve it from a task of the command's
task group. uvicorn's own signal handlers are left out: the command that owns the loop
handles signals. Every server keeps the rules of :mod:`edgedev._http_guard`: a deadline for
each request head, idle connections closed to make room for new ones (``guard``), and, in the
app, a limit on requests in flight (:class:`~edgedev._http_guard.InFlightLimit`) and bodies
checked before they are read (:func:`~edgedev._http_guard.read_body`). Idle keep-alive
connections are closed after a few seconds.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from typing import Any

import uvicorn

from edgedev._http_guard import ConnectionGuard

KEEP_ALIVE = 5.0
"""Seconds an idle keep-alive connection stays open."""


class QuietServer(uvicorn.Server):
    """uvicorn, minus its signal handlers: the command that owns the loop handles signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def bind_tcp(host: str, port: int) -> socket.socket:
    """A non-blocking socket listening on ``host:port`` (``0`` picks a free port).

    Raises:
        OSError: the address cannot be bound (in use, not allowed, unknown name).
    """
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def server(app: Any, *, guard: ConnectionGuard, **options: Any) -> QuietServer:
    """A uvicorn server of ``app``, logging only warnings, with no lifespan and no access log.

    Args:
        app: the ASGI application (wrap it in :class:`~edgedev._http_guard.InFlightLimit`).
        guard: the server's connections: a deadline for each request head, idle ones
            closed to make room (uvicorn's ``limit_concurrency``, which counts idle sockets
            and let 64 of them lock every client out, is not used).
        options: more :class:`uvicorn.Config` settings (TLS files ...).
    """
    config = uvicorn.Config(
        app,
        log_config=None,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=2,
        timeout_keep_alive=int(KEEP_ALIVE),
        http=guard.protocol(),
        **options,
    )
    return QuietServer(config)
