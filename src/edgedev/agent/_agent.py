"""The twin agent process: one bus connection, one SQLite file, the logic of :mod:`._core`.

Messages are taken in batches (whatever has arrived, up to :data:`BATCH`), handled by the pure
:class:`~edgedev.agent.AgentCore`, stored in one transaction in a worker thread, and only then
answered: a result, a document or a delta is never published for a change that is not on disk.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import anyio
from anyio.abc import TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream

from edgedev._text import plural
from edgedev.agent._core import AgentCore, Reply
from edgedev.agent._input import AgentLimits
from edgedev.agent._store import MEMORY, TwinStore
from edgedev.bus._client import Bus
from edgedev.bus._outbox import Message, Outbox
from edgedev.bus._topics import DEFAULT_ROOT, Channel, NodeChannel, Topics
from edgedev.bus._url import DEFAULT_BROKER, BrokerURL
from edgedev.config._spec import DeviceSpec
from edgedev.wire import now_ms, request

log = logging.getLogger("edgedev.agent")

BATCH = 500
"""Most messages handled, and stored, in one transaction."""


class Agent:
    """The edge-side twin service: keeps every device's twin and drives mappers to desired state.

    ``await agent.run()`` runs until cancelled. It works without the broker (the bus
    reconnects by itself) and keeps everything in ``db``, so a restart loses nothing.

    Args:
        devices: Devices whose models and ``desired`` values the agent takes (``-f`` files).
        broker: the MQTT broker URL.
        topic_root: the topic root, ``$hw/events`` by default.
        db: the SQLite file, or ``":memory:"`` for a twin store that a restart forgets.
        node: the edge node's name; devices bound to another node are skipped.
        name: the agent's MQTT client id (default: from node and process id).
        synchronous: SQLite's ``synchronous`` pragma (``FULL``: an answered update survives
            a power loss; ``NORMAL``: it survives a crash of the process).
        outbox: where replies wait while the broker is away (default: in memory).
        limits: sizes and counts accepted from the bus (see :class:`AgentLimits`).
    """

    def __init__(
        self,
        devices: Sequence[DeviceSpec] = (),
        *,
        broker: str | BrokerURL = DEFAULT_BROKER,
        topic_root: str = DEFAULT_ROOT,
        db: str | Path = MEMORY,
        node: str | None = None,
        name: str | None = None,
        synchronous: str = "FULL",
        outbox: Outbox | None = None,
        limits: AgentLimits | None = None,
    ) -> None:
        self.node = node or socket.gethostname()
        self.devices = [d for d in devices if node is None or d.node_name in (None, node)]
        self.topics = Topics(topic_root)
        self.broker = broker
        self.db = str(db)
        self.name = name or f"edgedev-agent-{self.node}-{os.getpid()}"
        self.synchronous = synchronous
        self.core = AgentCore(self.topics, self.node, limits)
        self.bus: Bus | None = None
        self.handled = 0
        """Messages handled so far."""
        self.store_failures = 0
        """Transactions that failed (their updates were answered with code 500)."""
        self._outbox = outbox
        self._store: TwinStore | None = None

    @property
    def commits(self) -> int:
        """Transactions committed to the database so far."""
        return self._store.commits if self._store is not None else 0

    def filters(self) -> list[str]:
        """The topics the agent subscribes to (mappers first: their retained announcements)."""
        t = self.topics
        return [
            t.mapper_filter(),
            t.device_filter(Channel.STATE_CURRENT),
            t.device_filter(Channel.TWIN_UPDATE),
            t.device_filter(Channel.STATE_UPDATE),
            t.device_filter(Channel.TWIN_GET),
            f"{t.root}/node/+/{NodeChannel.MEMBERSHIP_GET.value}",
        ]

    async def run(self, *, task_status: TaskStatus[Agent] = anyio.TASK_STATUS_IGNORED) -> None:
        """Serve twins until cancelled.

        With ``task_group.start(agent.run)`` this returns once the twins are loaded and the
        subscriptions are registered (use ``agent.bus.wait_connected()`` to wait for the
        broker).

        Raises:
            edgedev.agent.StoreError: the database cannot be opened or is not a twin store.
        """
        store = self._store = await anyio.to_thread.run_sync(
            functools.partial(TwinStore, self.db, synchronous=self.synchronous)
        )
        try:
            rows = await anyio.to_thread.run_sync(store.load)
            self.core.load(*rows)
            self.core.store_bytes = store.bytes
            initial = self.core.adopt(self.devices, now_ms())
            stored = await self._save(store)
            log.info(
                "agent %s: %d twins from %s, %d devices from files",
                self.name,
                len(self.core.records),
                self.db,
                len(self.devices),
            )
            async with (
                Bus(self.broker, client_id=self.name, outbox=self._outbox) as bus,
                bus.subscribe(*self.filters()) as messages,
            ):
                self.bus = bus
                mapper_get = self.topics.node(self.node, NodeChannel.MAPPER_GET)

                def connected() -> None:
                    log.info(
                        "agent %s serving %s on %s",
                        self.name,
                        plural(len(self.core.records), "twin"),
                        bus.url,
                    )
                    # the mappers that started before us announce their devices again
                    bus.publish(mapper_get, request())

                bus.on_connect(connected)
                if bus.connected:  # connected before the listener was there
                    connected()
                self._publish(bus, initial, stored)
                task_status.started(self)
                await self._serve(bus, store, messages)
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(store.close)

    async def _serve(
        self, bus: Bus, store: TwinStore, messages: MemoryObjectReceiveStream[Message]
    ) -> None:
        async for first in messages:
            batch = [first]
            while len(batch) < BATCH:
                try:
                    batch.append(messages.receive_nowait())
                except (anyio.WouldBlock, anyio.EndOfStream):
                    break
            replies: list[Reply] = []
            for message in batch:
                try:
                    replies += self.core.handle(message, now_ms())
                except Exception:  # one bad message must not stop the agent
                    log.exception("failed to handle a message on %s", message.topic)
            self.handled += len(batch)
            stored = await self._save(store)
            self._publish(bus, replies, stored)

    async def _save(self, store: TwinStore) -> bool:
        """Store what changed; on failure, go back to what is stored and say so."""
        devices, props = self.core.take_dirty()
        if not devices and not props:
            return True
        try:
            await anyio.to_thread.run_sync(store.save, devices, props)
            self.core.store_bytes = store.bytes
            return True
        except sqlite3.Error as exc:
            self.store_failures += 1
            log.error("could not store %d twin changes in %s: %s", len(props), self.db, exc)
            try:
                self.core.load(*await anyio.to_thread.run_sync(store.load))
            except sqlite3.Error:
                log.exception("could not reload the twins from %s", self.db)
            return False

    @staticmethod
    def _publish(bus: Bus, replies: Sequence[Reply], stored: bool) -> None:
        for reply in replies:
            message = reply.message if stored or not reply.needs_store else reply.on_failure
            if message is not None:
                bus.publish(message.topic, message.payload, message.qos, message.retain)
