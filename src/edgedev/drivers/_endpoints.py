"""Connections shared by the devices that name the same endpoint.

A Modbus TCP gateway with 200 slave ids behind it, an RS-485 line, an OPC-UA server with 20
devices in its address space: each is one *endpoint*, and its devices should share one
connection to it rather than open one each. :class:`Endpoints` is the registry of those
shared connections (*transports*). The :class:`~edgedev.Mapper` owns one for its lifetime and
hands it to every driver it creates; a driver asks it for the transport of its endpoint with
:meth:`Endpoints.acquire` and gives it back with :meth:`Lease.release`. The registry opens a
transport for its first user, shares it with the next ones, and closes it after its last user
is gone; a transport that reports itself broken (:attr:`Transport.alive`) is not handed out
again, so that the next device to reconnect opens a fresh one for all.
"""

from __future__ import annotations

import abc
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Generic, TypeVar

import anyio
import anyio.lowlevel
from anyio.abc import TaskGroup

from edgedev._drops import Drops
from edgedev._metrics import Metric

log = logging.getLogger("edgedev.endpoints")


class Transport(abc.ABC):
    """A connection shared by the drivers of several devices.

    Subclasses implement :meth:`aclose`; they may override :attr:`alive` (to say the
    connection is broken and should not be handed out again) and :meth:`run` (background work
    while the transport is open, such as pumping an OPC-UA subscription).
    """

    @property
    def alive(self) -> bool:
        """Whether the connection still works; ``False`` makes the registry open a new one."""
        return True

    async def run(self) -> None:  # noqa: B027 - optional hook, empty on purpose
        """Background work while the transport is open; cancelled before :meth:`aclose`.

        Only run when the registry is entered (``async with``), as the Mapper's is. The
        default does nothing.
        """

    def metrics(self) -> list[Metric]:
        """Figures of the connection for ``/metrics`` (none by default)."""
        return []

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Close the connection; must not raise."""


T = TypeVar("T", bound=Transport)


class _Entry:
    """One open transport in the registry: its users and its background task."""

    __slots__ = ("key", "scope", "transport", "users")

    def __init__(self, key: Hashable, transport: Transport) -> None:
        self.key = key
        self.transport = transport
        self.users = 0
        self.scope: anyio.CancelScope | None = None


class _Opening:
    """A transport being opened; devices asking meanwhile wait for this one attempt."""

    __slots__ = ("done", "entry", "error", "waiters")

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.entry: _Entry | None = None
        self.error: BaseException | None = None
        self.waiters = 0


class Lease(Generic[T]):
    """One device's use of a shared transport; :meth:`release` it when the device closes."""

    __slots__ = ("_entry", "_registry", "transport")

    def __init__(self, registry: Endpoints, entry: _Entry, transport: T) -> None:
        self._registry = registry
        self._entry: _Entry | None = entry
        self.transport: T = transport
        """The shared transport."""

    @property
    def released(self) -> bool:
        """Whether :meth:`release` was called."""
        return self._entry is None

    async def release(self) -> None:
        """Give the transport back; the last user's release closes it. Idempotent."""
        entry, self._entry = self._entry, None
        if entry is not None:
            await self._registry._release(entry)


class Endpoints:
    """The shared transports of a mapper, keyed by endpoint and credentials.

    ``async with Endpoints() as endpoints:`` runs the transports' background tasks and closes
    every transport still open on the way out; the :class:`~edgedev.Mapper` does this for the
    drivers it creates. A registry that is not entered still shares and closes transports, but
    runs no background tasks (a transport that needs one says so when opened).

    Args:
        max_connections: the mapper-wide default of how many connections a transport may
            open to one endpoint where its protocol can use several in parallel (Modbus TCP:
            ``maxConnections``); a device's own setting wins. ``None``: the driver's default.
        drops: where the transports count the values they drop (the mapper's); a registry
            of its own when ``None``.

    Attributes:
        opened: transports opened so far (a figure for tests and benchmarks).
        drops: the values dropped on the way, by reason (``edgedev_values_dropped_total``).
    """

    def __init__(self, *, max_connections: int | None = None, drops: Drops | None = None) -> None:
        if max_connections is not None and max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        self.max_connections = max_connections
        self.drops = drops if drops is not None else Drops()
        self._entries: dict[Hashable, _Entry] = {}
        self._opening: dict[Hashable, _Opening] = {}
        self._retired: set[_Entry] = set()
        self._tg: TaskGroup | None = None
        self.opened = 0

    async def __aenter__(self) -> Endpoints:
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        tg, self._tg = self._tg, None
        with anyio.CancelScope(shield=True):
            for entry in [*self._entries.values(), *self._retired]:
                await self._close(entry)
            self._entries.clear()
            self._retired.clear()
        assert tg is not None
        tg.cancel_scope.cancel()
        return await tg.__aexit__(exc_type, exc, tb)

    @property
    def running(self) -> bool:
        """Whether background tasks can run (the registry is entered)."""
        return self._tg is not None

    def __len__(self) -> int:
        """Transports open now."""
        return len(self._entries) + len(self._retired)

    def metrics(self) -> list[Metric]:
        """The open transports' :meth:`Transport.metrics`."""
        return [m for e in [*self._entries.values(), *self._retired] for m in e.transport.metrics()]

    def users(self, key: Hashable) -> int:
        """Devices using the transport of ``key`` now (0 when none is open)."""
        entry = self._entries.get(key)
        return entry.users if entry is not None else 0

    async def acquire(self, key: Hashable, open_: Callable[[], Awaitable[T]]) -> Lease[T]:
        """The shared transport of ``key``, opened with ``open_()`` if there is none alive.

        Devices asking while it is being opened wait for that one attempt and share its
        result: a server that is down costs one connection attempt, not one per device.

        Args:
            key: the endpoint and everything that makes a connection differ (address,
                credentials, security); equal keys share one transport. Include the
                protocol's name, so that two protocols never share by accident.
            open_: opens a new transport; its exceptions reach every device waiting.
        """
        while True:
            entry = self._entries.get(key)
            if entry is not None and not entry.transport.alive:
                self._retire(entry)
                entry = None
            if entry is not None:
                entry.users += 1
                return Lease(self, entry, entry.transport)  # type: ignore[arg-type]
            opening = self._opening.get(key)
            if opening is None:
                break
            opening.waiters += 1  # counted as users from the moment it opens
            try:
                await opening.done.wait()
            except BaseException:
                if opening.entry is None:
                    opening.waiters -= 1
                else:  # opened for us as we were cancelled: give our place back
                    with anyio.CancelScope(shield=True):
                        await self._release(opening.entry)
                raise
            if opening.error is not None:
                raise opening.error
            if opening.entry is not None:
                return Lease(self, opening.entry, opening.entry.transport)  # type: ignore[arg-type]
        opening = self._opening[key] = _Opening()
        try:
            transport = await open_()
        except Exception as exc:
            opening.error = exc
            raise
        # cancelled (this device's deadline, or its removal): not the others' failure; the
        # first of them to wake opens anew
        finally:
            del self._opening[key]
            opening.done.set()
        self.opened += 1
        entry = self._entries[key] = _Entry(key, transport)
        # the devices that waited for this attempt are users already, so that a driver that
        # asks how many share the transport gets the answer at its first request
        entry.users += 1 + opening.waiters
        opening.entry = entry
        if self._tg is not None:
            entry.scope = anyio.CancelScope()
            self._tg.start_soon(self._run, entry)
        return Lease(self, entry, transport)

    def _retire(self, entry: _Entry) -> None:
        """Stop handing ``entry`` out; its last user's release closes it."""
        if self._entries.get(entry.key) is entry:
            del self._entries[entry.key]
            self._retired.add(entry)

    async def _run(self, entry: _Entry) -> None:
        assert entry.scope is not None
        with entry.scope:
            try:
                await entry.transport.run()
            except Exception:
                # the users see the broken transport through their own requests
                log.debug("a shared transport's background task ended", exc_info=True)

    async def _release(self, entry: _Entry) -> None:
        entry.users -= 1
        if entry.users > 0:
            return
        if self._entries.get(entry.key) is entry:
            del self._entries[entry.key]
        self._retired.discard(entry)
        await self._close(entry)

    @staticmethod
    async def _close(entry: _Entry) -> None:
        if entry.scope is not None:
            entry.scope.cancel()
        with anyio.CancelScope(shield=True):
            try:
                await entry.transport.aclose()
            except Exception:  # aclose must not raise; a faulty one is only noted
                log.debug("closing a shared transport failed", exc_info=True)


class Turns:
    """Fair turns at ``slots`` connections: first come first served, urgent requests first.

    Devices sharing a transport that takes one request at a time (per connection) queue
    here; each gets its turn in the order it asked, so no device starves the others, and an
    ``urgent`` request (a write) goes before every waiting read: it waits for the requests in
    flight only.
    """

    def __init__(self, slots: int = 1) -> None:
        if slots < 1:
            raise ValueError("need at least one slot")
        self._free = slots
        self._queues: tuple[deque[anyio.Event], deque[anyio.Event]] = (deque(), deque())

    @property
    def waiting(self) -> int:
        """Requests waiting for a turn."""
        return len(self._queues[0]) + len(self._queues[1])

    async def acquire(self, *, urgent: bool = False) -> None:
        """Wait for a turn; call :meth:`release` when done (or use :meth:`turn`)."""
        if self._free and not self.waiting:
            # no yield on the hot path: the request that follows waits for I/O anyway
            await anyio.lowlevel.checkpoint_if_cancelled()
            self._free -= 1
            return
        event = anyio.Event()
        queue = self._queues[0 if urgent else 1]
        queue.append(event)
        try:
            await event.wait()
        except BaseException:
            if event.is_set():  # the turn was handed over as we were cancelled: pass it on
                self.release()
            else:
                queue.remove(event)
            raise

    def release(self) -> None:
        """End a turn, handing it to the next waiting request."""
        for queue in self._queues:
            if queue:
                queue.popleft().set()
                return
        self._free += 1

    @asynccontextmanager
    async def turn(self, *, urgent: bool = False) -> AsyncIterator[None]:
        """``async with turns.turn():`` holds a turn for the block."""
        await self.acquire(urgent=urgent)
        try:
            yield
        finally:
            self.release()
