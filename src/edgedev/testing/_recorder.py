"""Record MQTT traffic in tests and wait for what a test expects, with a timeout."""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Any

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream

from edgedev.bus._client import Bus
from edgedev.bus._outbox import Message


class Recorder:
    """Subscribes to ``filters`` and keeps every message, in arrival order.

    Use inside an ``async with Bus(...)`` block::

        async with Recorder(bus, "$hw/events/device/#") as recorder:
            ...
            message = await recorder.wait_for(lambda m: m.topic.endswith("/state/update"))
    """

    def __init__(self, bus: Bus, *filters: str, ready_timeout: float | None = 10.0) -> None:
        """Record ``filters`` on ``bus``.

        Entering waits (up to ``ready_timeout`` seconds) until the bus is connected and the
        broker has confirmed the subscription, so that nothing published afterwards by
        another client can be missed; ``None`` does not wait (a bus meant to be offline).
        """
        self.bus = bus
        self.filters = filters
        self.ready_timeout = ready_timeout
        self.messages: list[Message] = []
        self._changed = anyio.Event()
        self._tg: TaskGroup | None = None
        self._cm: AbstractAsyncContextManager[MemoryObjectReceiveStream[Message]] | None = None

    async def __aenter__(self) -> Recorder:
        if self.ready_timeout is not None:
            with anyio.fail_after(self.ready_timeout):
                # connected means every subscription, ours included, is confirmed
                await self.bus.wait_connected()
        self._cm = self.bus.subscribe(*self.filters)
        stream = await self._cm.__aenter__()
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()

        async def pump() -> None:
            async for message in stream:
                self.messages.append(message)
                self._changed.set()
                self._changed = anyio.Event()

        self._tg.start_soon(pump)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._tg is not None and self._cm is not None
        self._tg.cancel_scope.cancel()
        await self._tg.__aexit__(exc_type, exc, tb)
        await self._cm.__aexit__(exc_type, exc, tb)

    async def wait_for(
        self, predicate: Callable[[Message], bool], *, timeout: float = 5.0, after: int = 0
    ) -> Message:
        """The first message (from index ``after`` on) that satisfies ``predicate``.

        Raises:
            TimeoutError: none arrived within ``timeout`` seconds.
        """
        index = after
        with anyio.fail_after(timeout):
            while True:
                while index < len(self.messages):
                    message = self.messages[index]
                    index += 1
                    if predicate(message):
                        return message
                await self._changed.wait()

    async def wait_count(
        self, predicate: Callable[[Message], bool], count: int, *, timeout: float = 5.0
    ) -> list[Message]:
        """Wait until ``count`` messages satisfy ``predicate``; returns them.

        Raises:
            TimeoutError: fewer arrived within ``timeout`` seconds.
        """
        with anyio.fail_after(timeout):
            while True:
                found = [m for m in self.messages if predicate(m)]
                if len(found) >= count:
                    return found
                await self._changed.wait()

    def json(self, predicate: Callable[[Message], bool]) -> list[dict[str, Any]]:
        """Payloads (parsed JSON) of the messages so far that satisfy ``predicate``."""
        return [json.loads(m.payload) for m in self.messages if predicate(m)]


def topic_endswith(suffix: str) -> Callable[[Message], bool]:
    """A predicate: the topic ends with ``suffix``."""
    return lambda message: message.topic.endswith(suffix)
