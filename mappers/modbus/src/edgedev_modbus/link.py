"""One Modbus endpoint shared by its devices: a TCP address or a serial line.

A Modbus TCP gateway answers for many slave ids and accepts few connections; an RS-485 line
is one port for every slave on it. A :class:`ModbusLink` is the transport of one such
endpoint in the runtime's :class:`~edgedev.drivers.Endpoints` registry: up to
``maxConnections`` pymodbus clients (one by default; always one on a serial line), each
taking one request at a time, with the devices' requests queued fairly
(:class:`~edgedev.drivers.Turns`, writes first).

The link keeps the figures of its load (:class:`~edgedev.drivers.Capacity`): the requests
per second its devices need, those it carried and how long each took; when even
``maxConnections`` connections cannot carry what the devices need, it says so in a warning
with those figures (at most once a minute) and in ``/metrics``.

Each request is bounded by the asking device's own timeout (half of it while the link is
shared), so a slave that stops answering holds the connection that long and no longer;
pymodbus' own timeout is set far beyond, because pymodbus closes a connection after a few of
its timeouts, which would take every other device on it down with the silent one.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Iterable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, TypeAlias

import anyio

from edgedev.drivers import Capacity, DeviceError, Metric, Transport, Turns

if TYPE_CHECKING:  # pymodbus is imported when a device connects
    from pymodbus.client import ModbusBaseClient
    from pymodbus.pdu import ModbusPDU

Request: TypeAlias = "Callable[[ModbusBaseClient], Awaitable[ModbusPDU]]"
"""One request, sent by calling the client's method for it:
``lambda client: client.read_coils(0, count=8, device_id=1)``."""

log = logging.getLogger("edgedev.modbus")

CLIENT_TIMEOUT = 3600.0
"""pymodbus' own request timeout, seconds: each request is bounded by its device's instead."""


class ModbusLink(Transport):
    """Up to ``max_connections`` pymodbus clients to one endpoint, one request at a time each.

    Args:
        where: the endpoint, for messages (``host:port`` or the serial port).
        make_client: builds an unconnected pymodbus client (``AsyncModbusTcpClient`` or
            ``AsyncModbusSerialClient``).
        max_connections: how many connections may carry requests in parallel.

    Attributes:
        connections: clients connected now.
        requests: requests sent over the link.
        capacity: the requests its devices need, and those it carries.
    """

    def __init__(
        self, where: str, make_client: Callable[[], ModbusBaseClient], max_connections: int
    ) -> None:
        self.where = where
        self._make_client = make_client
        self._turns = Turns(max_connections)
        self._idle: list[ModbusBaseClient] = []
        self._proven: set[int] = set()
        """Clients (by id) that carried a request: a failure on them is not a refusal."""
        self.connections = 0
        self.requests = 0
        self._closed = False
        self._failure: Callable[[], Awaitable[str]] | None = None
        self._held: dict[Hashable, _Held] = {}
        self.capacity = Capacity(
            where,
            max_connections,
            advice="raise maxConnections if the endpoint takes more connections, or lengthen "
            "collectCycle",
        )

    @classmethod
    async def open(
        cls,
        where: str,
        make_client: Callable[[], ModbusBaseClient],
        max_connections: int,
        timeout: float,
        *,
        failure: Callable[[], Awaitable[str]] | None = None,
    ) -> ModbusLink:
        """Open the first connection (within ``timeout`` seconds); more are opened on demand.

        Args:
            where: the endpoint, for messages.
            make_client: builds an unconnected pymodbus client.
            max_connections: how many connections may carry requests in parallel.
            timeout: seconds the first connection may take.
            failure: says why a connection failed (pymodbus only says that it did).

        Raises:
            DeviceError: the endpoint cannot be reached.
        """
        link = cls(where, make_client, max_connections)
        link._failure = failure
        with anyio.fail_after(timeout):
            link._idle.append(await link._connect())
        return link

    @property
    def alive(self) -> bool:
        """Whether a connection is still open (else the next device opens a new link)."""
        return not self._closed and self.connections > 0

    async def _connect(self) -> ModbusBaseClient:
        from pymodbus.exceptions import ModbusException

        client = self._make_client()
        try:
            connected = await client.connect()
        except ModbusException as exc:
            client.close()
            raise DeviceError(f"{self.where}: {exc}") from exc
        except BaseException:
            client.close()
            raise
        if not connected:
            client.close()
            why = await self._failure() if self._failure else f"cannot connect to {self.where}"
            raise DeviceError(why)
        self.connections += 1
        return client

    def _drop(self, client: ModbusBaseClient) -> None:
        self.connections -= 1
        client.close()

    async def _take(self) -> ModbusBaseClient:
        """An idle connected client, or a new one while fewer than the maximum are open."""
        while self._idle:
            client = self._idle.pop()
            if client.connected:
                return client
            self._drop(client)  # the endpoint closed it while idle
        return await self._connect()

    async def call(self, request: Request, *, timeout: float, urgent: bool) -> ModbusPDU:
        """Send ``request`` when its turn comes, and return the answer.

        Args:
            request: calls the client's method for the request, with the slave id
                (``lambda client: client.read_coils(0, count=8, device_id=1)``).
            timeout: seconds the request may take once sent (the device's timeout).
            urgent: go before the waiting reads (a write).

        Raises:
            DeviceError: the connection failed (the link then opens a new one for the next).
            TimeoutError: no answer within ``timeout``.
        """
        from pymodbus.exceptions import ConnectionException

        while True:
            await self._turns.acquire(urgent=urgent)
            fresh = not self._idle
            try:
                client = await self._take()
            except DeviceError:
                if self.connections == 0:
                    self._turns.release()
                    raise
                self._refused()
                continue
            except BaseException:
                self._turns.release()
                raise
            dropped = False
            try:
                self.requests += 1
                sent = anyio.current_time()
                with anyio.fail_after(timeout):
                    response = await request(client)
                self._proven.add(id(client))
                self.capacity.answered(anyio.current_time() - sent, self.connections)
                return response
            except (TimeoutError, ConnectionException):
                if (
                    not client.connected
                    and fresh
                    and self.connections > 1
                    and id(client) not in self._proven
                ):
                    # a new connection accepted, then closed: a gateway at its limit
                    self._drop(client)
                    dropped = True
                    self._refused()
                    continue
                raise
            finally:
                # kept unless it broke: a silent slave, or a device whose deadline cancelled
                # its request, leaves a working connection (pymodbus skips a late answer by
                # its transaction id)
                if not dropped:
                    if client.connected and not self._closed:
                        self._idle.append(client)
                    else:
                        self._proven.discard(id(client))
                        self._drop(client)
                    self._turns.release()

    @asynccontextmanager
    async def hold(self, keys: Iterable[Hashable]) -> AsyncIterator[None]:
        """Hold ``keys`` (registers: ``(slave, table, address)``) for the block, one holder each.

        Keys are taken in sorted order, so two holders of overlapping spans never wait for
        each other in a circle. A key nobody holds or waits for is forgotten.
        """
        taken: list[_Held] = []
        try:
            for key in sorted(set(keys), key=repr):
                held = self._held.get(key)
                if held is None:
                    held = self._held[key] = _Held(key)
                held.users += 1
                try:
                    await held.lock.acquire()
                except BaseException:
                    self._forget(held)
                    raise
                taken.append(held)
            yield
        finally:
            for held in reversed(taken):
                held.lock.release()
                self._forget(held)

    def _forget(self, held: _Held) -> None:
        held.users -= 1
        if not held.users:
            del self._held[held.key]

    def _refused(self) -> None:
        """The endpoint takes no more connections: live with those open.

        The caller keeps its turn for good (its slot has no connection); the others' turns
        carry the requests.
        """
        log.info("%s accepts %d connection(s); using those", self.where, self.connections)

    def metrics(self) -> list[Metric]:
        """The link's load (:class:`~edgedev.drivers.Capacity`)."""
        return self.capacity.metrics()

    async def aclose(self) -> None:
        """Close every connection."""
        self._closed = True
        idle, self._idle = self._idle, []
        for client in idle:
            self._drop(client)


class _Held:
    """One held key of :meth:`ModbusLink.hold`: its lock and how many hold or wait for it."""

    __slots__ = ("key", "lock", "users")

    def __init__(self, key: Hashable) -> None:
        self.key = key
        self.lock = anyio.Lock()
        self.users = 0
