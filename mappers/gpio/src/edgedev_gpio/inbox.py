"""A thread-safe handoff from gpiozero's threads into the event loop.

gpiozero calls its callbacks from its own threads (lgpio's callback thread, RPi.GPIO's
event thread), or from whichever thread drives a mock pin. Such a callback must not touch
anyio primitives, and should not block either: it may run while the event loop is busy
closing the very pin that calls it. So it only appends to a deque and writes one byte to a
socket pair (the classic self-pipe), and the loop side waits on the socket with
:func:`anyio.wait_readable`, which works on every anyio backend.
"""

from __future__ import annotations

import contextlib
import socket
from collections import deque
from types import TracebackType
from typing import Generic, TypeVar

import anyio

T = TypeVar("T")


class ThreadInbox(Generic[T]):
    """Items put from any thread, taken in order by one task of the event loop.

    Use it as a context manager (sync), which closes its sockets::

        with ThreadInbox[int]() as inbox:
            pin.when_changed = inbox.put     # any thread, never blocks
            batch = await inbox.get()        # the event loop
    """

    def __init__(self) -> None:
        self._items: deque[T] = deque()
        self._receiver, self._sender = socket.socketpair()
        self._receiver.setblocking(False)
        self._sender.setblocking(False)

    def __enter__(self) -> ThreadInbox[T]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def put(self, item: T) -> None:
        """Hand ``item`` to the loop; safe from any thread, never blocks, never raises."""
        self._items.append(item)  # deque.append is atomic
        # buffer full (a wake-up is pending anyway) or inbox closed
        with contextlib.suppress(OSError):
            self._sender.send(b"\x00")

    async def get(self) -> list[T]:
        """Wait for items, then return every item waiting, oldest first."""
        while not self._items:
            await anyio.wait_readable(self._receiver)
            try:
                while self._receiver.recv(4096):
                    pass
            except BlockingIOError:
                pass
        batch: list[T] = []
        while self._items:
            batch.append(self._items.popleft())
        return batch

    def close(self) -> None:
        """Close the sockets; later :meth:`put` calls are dropped silently."""
        self._sender.close()
        self._receiver.close()
