"""The REST API's server: its socket, TLS, and uvicorn in the process's task group."""

from __future__ import annotations

import ipaddress
import logging
import socket

import anyio
from anyio.abc import TaskStatus

from edgedev._asgi import bind_tcp
from edgedev._asgi import server as asgi_server
from edgedev._http_guard import ConnectionGuard, InFlightLimit
from edgedev.mapper._mapper import Mapper
from edgedev.rest import DEFAULT_HOST, DEFAULT_PORT
from edgedev.rest._api import WRITE_TIMEOUT, RestApi
from edgedev.rest._tls import RestError, TlsFiles

log = logging.getLogger("edgedev.rest")

MAX_REQUESTS = 64
"""Requests served at once; more are answered 503 (idle sockets do not count: see
:mod:`edgedev._http_guard`)."""


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class RestServer:
    """KubeEdge mapper-framework's REST API over a :class:`~edgedev.Mapper`.

    Run it in a task group (``await tg.start(server.run)``); :attr:`port` is then the port it
    listens on and :attr:`url` its address. Routes: see :mod:`edgedev.rest` and
    docs/rest-api.md.

    Args:
        mapper: the mapper whose devices it serves.
        host: the address to listen on (loopback by default).
        port: the port; ``0`` picks a free one.
        tls: certificate, key and (for client certificates) CA; plain HTTP when ``None``.
        write_timeout: seconds a write may take before it is answered 504.
    """

    def __init__(
        self,
        mapper: Mapper,
        *,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        tls: TlsFiles | None = None,
        write_timeout: float = WRITE_TIMEOUT,
    ) -> None:
        self.host = host
        self.port = port
        self.tls = tls
        self.api = RestApi(mapper, loopback=_loopback(host), write_timeout=write_timeout)
        self.guard = ConnectionGuard("REST API", log)
        """The connections: a deadline for each request head, idle ones closed for new ones."""

    @property
    def url(self) -> str:
        """The API's base address (``http(s)://host:port/api/v1``)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://{host}:{self.port}/api/v1"

    def bind(self) -> socket.socket:
        """Check the TLS files and listen on ``host:port``; :attr:`port` becomes the bound port.

        Raises:
            RestError: a TLS file cannot be used, or the address cannot be bound.
        """
        if self.tls is not None:
            self.tls.context()
        try:
            sock = bind_tcp(self.host, self.port)
        except OSError as exc:
            raise RestError(f"cannot serve the REST API on {self.host}:{self.port}: {exc}") from exc
        self.port = sock.getsockname()[1]
        return sock

    async def run(
        self,
        *,
        sock: socket.socket | None = None,
        task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve until cancelled.

        Args:
            sock: the listening socket from :meth:`bind`; bound here by default.
            task_status: started once the socket listens.

        Raises:
            RestError: the address or the TLS files cannot be used.
        """
        if sock is None:
            sock = self.bind()
        options = self.tls.uvicorn_options() if self.tls is not None else {}
        app = InFlightLimit(self.api, limit=MAX_REQUESTS)
        server = asgi_server(app, guard=self.guard, **options)
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(server.serve, [sock])
                log.info("REST API on %s", self.url)
                task_status.started()
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(3):
                if server.started:
                    await server.shutdown([sock])
            sock.close()
        raise RestError("the REST server stopped")
