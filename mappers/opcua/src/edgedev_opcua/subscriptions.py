"""The subscriptions of one OPC-UA session: monitored items grouped, split, delivered whole.

How asyncua 2.1 delivers a publish response (``asyncua/common/subscription.py``): its session
sends one Publish request at a time and awaits ``Subscription.publish_callback`` with each
response before it sends the next; the callback turns every notification into an event and
hands each to ``Subscription._deliver``. In iterator mode that puts the event in an
``asyncio.Queue`` of ``queue_maxsize`` (1,000 by default) and, when full, drops the oldest
without a word: one publish of 2,500 changes loses 1,500. Here ``_deliver`` hands each
notification straight to its device (:class:`Deliver`, which queues it in the device's
runner), inside asyncua's publish loop: there is no queue between the response and the
devices, and the next Publish request leaves once this response is handed over, so a mapper
that falls behind makes the server hold the values (in the monitored items' queues), not lose
them in the client.

Subscriptions are split: one per publishing interval holds at most
:data:`ITEMS_PER_SUBSCRIPTION` monitored items (fewer where the server's
``MaxMonitoredItemsPerSubscription`` says so), created in calls of at most
``MaxMonitoredItemsPerCall`` items, and no more subscriptions than
``MaxSubscriptionsPerSession`` allows (the items beyond are refused, by name, with the limit).
Each monitored item samples at its property's ``collectCycle``, the subscription's publishing
interval, and keeps :data:`QUEUE_SIZE` values at the server (``MaxMonitoredItemsQueueSize``
where smaller), discarding the oldest when full: a publish may come a few cycles late without
losing a value, and when it comes later still the newest value wins. A server that discarded
values says so with the Overflow bit of the value's status; each counts as at least one value
dropped (reason ``server_queue``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import anyio
import anyio.lowlevel
from asyncua import ua
from asyncua.client.client import Client
from asyncua.common.subscription import (
    DataChangeEvent,
    StatusChangeEvent,
    SubEvent,
    Subscription,
)
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.status_codes import StatusCodes

from edgedev.drivers import Drops
from edgedev_opcua.connection import status_name

log = logging.getLogger("edgedev.opcua")

ITEMS_PER_SUBSCRIPTION = 1000
"""Most monitored items in one subscription: a publish response of at most this many changes
(about 30 kB of Doubles) keeps the event loop free between two."""
QUEUE_SIZE = 4
"""Values a monitored item keeps at the server until they are published (the oldest go)."""

_INFO_DATA_VALUE = 0x0400
_INFO_TYPE_MASK = 0x0C00
_OVERFLOW = 0x0080

Deliver = Callable[[ua.DataValue], None]
"""Called with each value the server publishes for a monitored node; must not block."""


def overflowed(status: ua.StatusCode | None) -> bool:
    """Whether a published value's status says the server discarded values before it.

    OPC-UA Part 4, 7.39 (StatusCode): InfoType ``DataValue`` (bits 10-11 = 01) with the
    Overflow bit (7) set.
    """
    if status is None:
        return False
    code = int(status.value)
    return code & _INFO_TYPE_MASK == _INFO_DATA_VALUE and bool(code & _OVERFLOW)


@dataclass(frozen=True, slots=True)
class Limits:
    """What the server allows, from its ``ServerCapabilities`` (0: it does not say).

    Attributes:
        items_per_call: ``OperationLimits.MaxMonitoredItemsPerCall``.
        items_per_subscription: ``MaxMonitoredItemsPerSubscription``.
        subscriptions: ``MaxSubscriptionsPerSession``.
        queue_size: ``MaxMonitoredItemsQueueSize``.
    """

    items_per_call: int = 0
    items_per_subscription: int = 0
    subscriptions: int = 0
    queue_size: int = 0


LIMIT_NODES = {
    "items_per_call": 11714,  # Server_ServerCapabilities_OperationLimits_MaxMonitoredItemsPerCall
    "items_per_subscription": 24104,  # Server_ServerCapabilities_MaxMonitoredItemsPerSubscription
    "subscriptions": 24098,  # Server_ServerCapabilities_MaxSubscriptionsPerSession
    "queue_size": 31916,  # Server_ServerCapabilities_MaxMonitoredItemsQueueSize
}
"""The numeric node ids (namespace 0) of the limits :class:`Limits` holds."""


class _Feed(Subscription):
    """One asyncua subscription whose notifications go to their devices as they come."""

    def __init__(
        self,
        session: object,
        params: ua.CreateSubscriptionParameters,
        owner: Subscriptions,
        interval_ms: int,
    ) -> None:
        # iterator mode with a queue that stays empty: _deliver below is the only way out
        super().__init__(session, params, None, queue_maxsize=1)  # type: ignore[arg-type]
        self.owner = owner
        self.interval_ms = interval_ms
        self.items = 0
        """Monitored items in this subscription (created, or being created)."""

    def _deliver(self, event: SubEvent) -> None:
        self.owner.deliver(event)


@dataclass(frozen=True, slots=True)
class Monitored:
    """One monitored item, as :meth:`Subscriptions.monitor` made it (for :meth:`unmonitor`)."""

    feed: _Feed
    item_id: int
    handle: int


class Subscriptions:
    """The monitored items of one session, in subscriptions split by interval and by bounds.

    Args:
        client: the session's client.
        url: the server, for log lines.
        limits: what the server allows.
        drops: where values the server discarded are counted.
        lost: called when a subscription ends (the server says so): the session is unusable.
        timeout: seconds that removing items may take when monitoring fails half-way.
    """

    def __init__(
        self,
        client: Client,
        url: str,
        limits: Limits,
        drops: Drops,
        lost: Callable[[], None],
        timeout: float = 5.0,
    ) -> None:
        self.client = client
        self.timeout = timeout
        self.url = url
        self.limits = limits
        self.drops = drops
        self._lost = lost
        per_subscription = ITEMS_PER_SUBSCRIPTION
        if limits.items_per_subscription:
            per_subscription = min(per_subscription, limits.items_per_subscription)
        self.per_subscription = per_subscription
        self.queue_size = min(QUEUE_SIZE, limits.queue_size or QUEUE_SIZE)
        self._feeds: list[_Feed] = []
        self._routes: dict[int, Deliver] = {}
        self._next_handle = 0
        self._changing = anyio.Lock()

    async def monitor(
        self, interval_ms: int, nodes: Sequence[ua.NodeId], deliver: Sequence[Deliver]
    ) -> list[Monitored | ua.StatusCode]:
        """Monitor ``nodes``, sampled every ``interval_ms``; ``deliver[i]`` gets ``nodes[i]``'s.

        The items join the subscriptions of that publishing interval that have room, and new
        ones as needed.

        Returns:
            Per node, the monitored item or why the server (or its limits) refused it.

        Raises:
            UaError, OSError, TimeoutError: the server did not answer (the session is lost).
        """
        pending = list(zip(nodes, deliver, strict=True))
        batches: list[tuple[_Feed, list[tuple[ua.NodeId, Deliver]]]] = []
        refused: list[ua.StatusCode] = []
        async with self._changing:  # room is taken here; the items are made side by side
            while pending:
                feed = await self._feed_with_room(interval_ms)
                if feed is None:
                    code = ua.StatusCode(ua.UInt32(StatusCodes.BadTooManySubscriptions))
                    log.warning(
                        "%s: the server allows %d subscriptions per session; %d items of "
                        "%d ms not monitored",
                        self.url,
                        self.limits.subscriptions,
                        len(pending),
                        interval_ms,
                    )
                    refused = [code] * len(pending)
                    break
                room = self.per_subscription - feed.items
                if self.limits.items_per_call:
                    room = min(room, self.limits.items_per_call)
                batch, pending = pending[:room], pending[room:]
                feed.items += len(batch)
                batches.append((feed, batch))
        results: list[Monitored | ua.StatusCode] = []
        done = 0
        try:
            # shielded (each request bounded by the client's timeout): a device whose deadline
            # passes meanwhile learns the items' ids, so that it can remove them again
            with anyio.CancelScope(shield=True):
                for feed, batch in batches:
                    results += await self._create(feed, batch)
                    done += 1
            await anyio.lowlevel.checkpoint_if_cancelled()
        except BaseException:
            for feed, batch in batches[done:]:
                feed.items -= len(batch)
            with anyio.CancelScope(shield=True), anyio.move_on_after(self.timeout):
                await self.unmonitor([r for r in results if isinstance(r, Monitored)])
            raise
        return results + refused

    async def unmonitor(self, items: Sequence[Monitored]) -> None:
        """Stop the monitored ``items`` (a device leaving); an emptied subscription is deleted.

        The bookkeeping is done at once; the requests go out side by side with those of other
        devices leaving (a mapper stopping). Never raises: a session that is gone took its
        subscriptions with it.
        """
        by_feed: dict[_Feed, list[int]] = {}
        for item in items:
            if self._routes.pop(item.handle, None) is not None:
                by_feed.setdefault(item.feed, []).append(item.item_id)
        emptied = []
        for feed, ids in by_feed.items():
            feed.items -= len(ids)
            if feed.items <= 0 and feed in self._feeds:
                self._feeds.remove(feed)  # no device joins it any more
                emptied.append(feed)
        for feed, ids in by_feed.items():
            try:
                if feed in emptied:
                    await feed.delete()
                    if feed in self.client._subscriptions:
                        self.client._subscriptions.remove(feed)
                else:
                    await feed.unsubscribe(ids)
            except Exception:
                log.debug("removing monitored items from %s failed", self.url, exc_info=True)

    def forget(self, items: Sequence[Monitored]) -> None:
        """Forget ``items`` without asking the server (the session is gone)."""
        for item in items:
            if self._routes.pop(item.handle, None) is not None:
                item.feed.items -= 1

    def close(self) -> None:
        """Forget every route (the session is closing)."""
        self._routes.clear()
        self._feeds.clear()

    # delivery, inside asyncua's publish loop --------------------------------------------------
    def deliver(self, event: SubEvent) -> None:
        """Hand one notification to its device; never raises into asyncua."""
        if isinstance(event, DataChangeEvent):
            item = event.data.monitored_item
            value = item.Value
            if overflowed(value.StatusCode):
                self.drops.add("server_queue", 1, f"{self.url}: a monitored item's queue")
            route = self._routes.get(item.ClientHandle)
            if route is None:
                return  # the device left while the response was on its way
            try:
                route(value)
            except Exception:
                self.drops.add("error", 1, f"{self.url}: delivering a value failed")
                log.exception("%s: delivering a published value failed", self.url)
        elif isinstance(event, StatusChangeEvent):
            status = event.notification.Status
            if status.is_bad():
                log.warning("%s: subscription ended (%s)", self.url, status_name(status.value))
                self._lost()

    # subscriptions and items ------------------------------------------------------------------
    async def _feed_with_room(self, interval_ms: int) -> _Feed | None:
        for feed in self._feeds:
            if feed.interval_ms == interval_ms and feed.items < self.per_subscription:
                return feed
        if self.limits.subscriptions and len(self._feeds) >= self.limits.subscriptions:
            return None
        # shielded (bounded by the client's timeout): made, it is kept for the next device
        with anyio.CancelScope(shield=True):
            feed = await self._subscribe(interval_ms)
        self._feeds.append(feed)
        return feed

    async def _subscribe(self, interval_ms: int) -> _Feed:
        """A new subscription publishing every ``interval_ms``.

        Made as ``Client.create_subscription`` makes one, with our bound on the notifications
        per publish and our :class:`_Feed`.
        """
        client = self.client
        params = ua.CreateSubscriptionParameters()
        params.RequestedPublishingInterval = float(interval_ms)
        params.RequestedLifetimeCount = 10000
        params.RequestedMaxKeepAliveCount = client.get_keepalive_count(interval_ms)
        params.MaxNotificationsPerPublish = self.per_subscription * self.queue_size
        params.PublishingEnabled = True
        params.Priority = 0
        feed = _Feed(client.uaclient.session, params, self, interval_ms)
        result = await feed.init()
        revised = client.get_subscription_revised_params(params, result)
        if revised is not None:
            await feed.update(revised)
        # asyncua's stale-subscription watchdog re-creates the subscriptions it knows of
        client._subscriptions.append(feed)
        return feed

    async def _create(
        self, feed: _Feed, batch: Sequence[tuple[ua.NodeId, Deliver]]
    ) -> list[Monitored | ua.StatusCode]:
        """Create ``batch``'s items in ``feed``, whose room they took already."""
        requests = []
        handles = []
        for node, sink in batch:
            self._next_handle += 1
            handle = self._next_handle
            handles.append(handle)
            self._routes[handle] = sink  # values may come before the answer
            requests.append(self._request(node, handle, feed.interval_ms))
        try:
            answers = await feed.create_monitored_items(requests)
        except BaseException:
            for handle in handles:
                self._routes.pop(handle, None)
            raise
        results: list[Monitored | ua.StatusCode] = []
        for handle, answer in zip(handles, answers, strict=True):
            if isinstance(answer, ua.StatusCode):
                feed.items -= 1
                self._routes.pop(handle, None)
                results.append(answer)
            else:
                results.append(Monitored(feed, answer, handle))
        return results

    def _request(
        self, node: ua.NodeId, handle: int, interval_ms: int
    ) -> ua.MonitoredItemCreateRequest:
        params = ua.MonitoringParameters()
        params.ClientHandle = ua.UInt32(handle)
        params.SamplingInterval = ua.Double(interval_ms)
        params.QueueSize = ua.UInt32(self.queue_size)
        params.DiscardOldest = True
        request = ua.MonitoredItemCreateRequest()
        request.ItemToMonitor = ua.ReadValueId(
            NodeId=node, AttributeId=ua.UInt32(AttributeIds.Value)
        )
        request.MonitoringMode = ua.MonitoringMode.Reporting
        request.RequestedParameters = params
        return request
