"""Serving a Starlette app with uvicorn from the process's own task group (``edgedev[web]``).

The web view and the mapper's REST API both bind their socket first (so that a port in use is
a clear error before anything runs), then let uvicorn serve it from a task of the command's
task group. uvicorn's own signal handlers are left out: the command that owns the loop
handles signals. Connections are bounded (``limit_concurrency``: more are answered 503) and
idle keep-alive connections closed after a few seconds.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from typing import Any

import uvicorn

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


def server(app: Any, *, max_connections: int, **options: Any) -> QuietServer:
    """A uvicorn server of ``app``, logging only warnings, with no lifespan and no access log.

    Args:
        app: the ASGI application.
        max_connections: connections served at once; more are answered 503.
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
        limit_concurrency=max_connections,
        **options,
    )
    return QuietServer(config)
