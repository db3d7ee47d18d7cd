"""One OPC-UA session shared by every device on one server (URL, security, identity).

The transport of an OPC-UA endpoint in the runtime's :class:`~edgedev.drivers.Endpoints`
registry. Devices resolve their nodes and write through its client; their cyclic reads go
through :meth:`OpcuaEndpoint.read_values`, which coalesces the reads that devices ask for in
the same turn of the event loop into as few Read requests as the server's
``MaxNodesPerRead`` allows; in subscribe mode their monitored items join one subscription
per publishing interval (:meth:`OpcuaEndpoint.monitor`), pumped by the endpoint's own task.
When the session is lost, :attr:`OpcuaEndpoint.lost` is set and every device on it goes
offline; the next device to reconnect opens a new session for all.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import anyio
import anyio.lowlevel
from asyncua import ua
from asyncua.client.client import Client
from asyncua.client.ua_client import UaClientState
from asyncua.common.subscription import DataChangeEvent, StatusChangeEvent, Subscription
from asyncua.ua.attribute_ids import AttributeIds

from edgedev import DeviceError
from edgedev.drivers import Transport
from edgedev_opcua.config import OpcuaProtocol
from edgedev_opcua.connection import close_client, device_errors, open_client, status_name

log = logging.getLogger("edgedev.opcua")

MAX_NODES_PER_READ = 11705
"""Server_ServerCapabilities_OperationLimits_MaxNodesPerRead, in namespace 0."""

Deliver = Callable[[ua.DataValue], None]
"""Called with each value the server publishes for a monitored node."""


def endpoint_key(cfg: OpcuaProtocol) -> tuple[Any, ...]:
    """What devices share a session by: the URL, the security and the identity."""
    password = cfg.password.get_secret_value() if cfg.password else None
    return (
        "opcua",
        cfg.url,
        cfg.security_policy,
        cfg.security_mode,
        cfg.user_name,
        password,
        str(cfg.password_file),
        str(cfg.certificate),
        str(cfg.private_key),
        str(cfg.server_certificate),
    )


class _Batch:
    """The reads asked for in one turn of the event loop, sent together."""

    __slots__ = ("done", "error", "node_ids", "results")

    def __init__(self) -> None:
        self.node_ids: list[ua.NodeId] = []
        self.results: list[ua.DataValue] | None = None
        self.error: BaseException | None = None
        self.done = anyio.Event()


class OpcuaEndpoint(Transport):
    """One client session shared by the devices of one endpoint.

    Attributes:
        client: the asyncua client.
        max_per_read: the server's ``MaxNodesPerRead`` (0: no limit).
        requests: Read requests sent for property values.
        lost: set when the session is lost (every device on it goes offline).
    """

    def __init__(self, cfg: OpcuaProtocol, client: Client) -> None:
        self.cfg = cfg
        self.client = client
        self.max_per_read = 0
        self.requests = 0
        self.lost = anyio.Event()
        self._batch: _Batch | None = None
        self._subscriptions: dict[int, Subscription] = {}
        self._subscribing = anyio.Lock()
        self._routes: dict[ua.NodeId, list[Deliver]] = {}
        self._new, self._pumps = anyio.create_memory_object_stream[Subscription](100)

    @classmethod
    async def open(cls, cfg: OpcuaProtocol) -> OpcuaEndpoint:
        """Connect a session and learn the server's ``MaxNodesPerRead``.

        Raises:
            DeviceError: the server cannot be reached or refuses the session.
        """
        endpoint = cls(cfg, await open_client(cfg, watchdog=cfg.timeout / 1000))
        try:
            with device_errors(cfg):
                await endpoint._read_limit()
        except BaseException:
            await endpoint.aclose()
            raise
        return endpoint

    @property
    def alive(self) -> bool:
        """Whether the session still works."""
        return not self.lost.is_set() and self.client.uaclient.state is UaClientState.CONNECTED

    async def aclose(self) -> None:
        """Close the session (deleting its subscriptions) and the socket; never raises."""
        self.lost.set()
        self._subscriptions = {}
        self._new.close()
        self._pumps.close()
        await close_client(self.client)

    # reads ---------------------------------------------------------------------------------
    async def _read_limit(self) -> None:
        """Learn the server's ``MaxNodesPerRead`` (0 or unknown: no limit)."""
        limit_node = ua.NodeId(ua.Int32(MAX_NODES_PER_READ))
        [result] = await self.client.uaclient.read_attributes([limit_node], AttributeIds.Value)
        limit = result.Value.Value if result.Value is not None else None
        good = result.StatusCode is None or result.StatusCode.is_good()
        if good and isinstance(limit, int) and not isinstance(limit, bool) and limit > 0:
            self.max_per_read = limit

    async def read_attribute(
        self, node_ids: Sequence[ua.NodeId], attribute: AttributeIds
    ) -> list[ua.DataValue]:
        """One attribute of many nodes, in as few Read requests as ``MaxNodesPerRead`` allows."""
        results: list[ua.DataValue] = []
        step = self.max_per_read or len(node_ids) or 1
        for start in range(0, len(node_ids), step):
            params = ua.ReadParameters()
            params.TimestampsToReturn = ua.TimestampsToReturn.Neither
            params.NodesToRead = [
                ua.ReadValueId(NodeId=node_id, AttributeId=ua.UInt32(attribute))
                for node_id in node_ids[start : start + step]
            ]
            if attribute is AttributeIds.Value:
                self.requests += 1
            results += await self.client.uaclient.read(params)
        return results

    async def read_values(self, node_ids: Sequence[ua.NodeId]) -> list[ua.DataValue]:
        """The values of ``node_ids``, read together with the other devices' due now.

        The first device to ask in a turn of the event loop waits that turn out, so that the
        devices due at the same moment add their nodes, then sends the whole batch.

        Raises:
            DeviceError: the batch's request failed (the session is likely lost).
        """
        while True:
            batch = self._batch
            leader = batch is None
            if batch is None:
                batch = self._batch = _Batch()
            start = len(batch.node_ids)
            batch.node_ids += node_ids
            if leader:
                try:
                    # two turns: devices woken by the same deadline run in the next one
                    await anyio.lowlevel.checkpoint()
                    await anyio.lowlevel.checkpoint()
                    self._batch = None
                    with device_errors(self.cfg):
                        batch.results = await self.read_attribute(
                            batch.node_ids, AttributeIds.Value
                        )
                except Exception as exc:
                    batch.error = exc
                    raise
                finally:
                    if self._batch is batch:
                        self._batch = None
                    batch.done.set()
            else:
                await batch.done.wait()
                if batch.error is not None:
                    raise DeviceError(str(batch.error)) from batch.error
                if batch.results is None:
                    continue  # the device sending it was cancelled first: ask again
            assert batch.results is not None
            return batch.results[start : start + len(node_ids)]

    # subscriptions -------------------------------------------------------------------------
    async def monitor(
        self, interval_ms: int, nodes: Sequence[ua.NodeId], deliver: Sequence[Deliver]
    ) -> list[int | ua.StatusCode]:
        """Monitor ``nodes`` in the endpoint's subscription of ``interval_ms``.

        The subscription is created with its first items and shared by every device with the
        same interval; ``deliver[i]`` receives the values published for ``nodes[i]``.

        Returns:
            Per node, the monitored item's handle (for :meth:`unmonitor`) or why it failed.
        """
        for node, sink in zip(nodes, deliver, strict=True):
            self._routes.setdefault(node, []).append(sink)
        async with self._subscribing:
            subscription = self._subscriptions.get(interval_ms)
            if subscription is None:
                subscription = await self.client.create_subscription(
                    float(interval_ms), handler=None
                )
                self._subscriptions[interval_ms] = subscription
                self._new.send_nowait(subscription)
        return await subscription.subscribe_data_change(
            [self.client.get_node(n) for n in nodes], sampling_interval=ua.Double(interval_ms)
        )

    async def unmonitor(
        self,
        interval_ms: int,
        nodes: Sequence[ua.NodeId],
        deliver: Sequence[Deliver],
        handles: Sequence[int],
    ) -> None:
        """Stop monitoring what :meth:`monitor` started (a device leaving); never raises."""
        for node, sink in zip(nodes, deliver, strict=True):
            sinks = self._routes.get(node, [])
            if sink in sinks:
                sinks.remove(sink)
            if not sinks:
                self._routes.pop(node, None)
        subscription = self._subscriptions.get(interval_ms)
        if subscription is None or not handles or not self.alive:
            return
        try:
            with anyio.fail_after(self.cfg.timeout / 1000):
                await subscription.unsubscribe(list(handles))
        except Exception:
            log.debug("removing monitored items from %s failed", self.cfg.url, exc_info=True)

    async def run(self) -> None:
        """Pump every subscription to its devices; set :attr:`lost` when the session is lost."""
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._watch_state)
                async for subscription in self._pumps:
                    tg.start_soon(self._pump, subscription)
        finally:
            self.lost.set()

    async def _watch_state(self) -> None:
        uaclient = self.client.uaclient
        async with uaclient.subscribe_state() as states:
            while uaclient.state is UaClientState.CONNECTED:
                await states.next_change()
        log.debug("OPC-UA session to %s lost", self.cfg.url)
        self.lost.set()

    async def _pump(self, subscription: Subscription) -> None:
        async for event in subscription:
            if isinstance(event, DataChangeEvent):
                data: ua.DataValue = event.data.monitored_item.Value
                for sink in self._routes.get(event.node.nodeid, ()):
                    sink(data)
            elif isinstance(event, StatusChangeEvent):
                status = event.notification.Status
                if status.is_bad():
                    log.warning(
                        "%s: subscription ended (%s)", self.cfg.url, status_name(status.value)
                    )
                    self.lost.set()
                    return
        self.lost.set()
