"""One OPC-UA session shared by every device on one server (URL, security, identity).

The transport of an OPC-UA endpoint in the runtime's :class:`~edgedev.drivers.Endpoints`
registry. Devices resolve their nodes and write through its client; their cyclic reads go
through :meth:`OpcuaEndpoint.read_values`, which coalesces the reads that devices ask for in
the same turn of the event loop into as few Read requests as the server's
``MaxNodesPerRead`` allows; in subscribe mode their monitored items join the session's
subscriptions (:attr:`OpcuaEndpoint.subscriptions`, split by publishing interval and by the
server's limits, see :mod:`edgedev_opcua.subscriptions`). When the session is lost,
:attr:`OpcuaEndpoint.lost` is set and every device on it goes offline; the next device to
reconnect opens a new session for all.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import anyio
import anyio.lowlevel
from asyncua import ua
from asyncua.client.client import Client
from asyncua.client.ua_client import UaClientState
from asyncua.ua.attribute_ids import AttributeIds

from edgedev.drivers import DeviceError, Drops, Transport
from edgedev_opcua.config import OpcuaProtocol
from edgedev_opcua.connection import close_client, device_errors, open_client
from edgedev_opcua.subscriptions import (
    LIMIT_NODES,
    Deliver,
    Limits,
    Monitored,
    Subscriptions,
)

log = logging.getLogger("edgedev.opcua")

MAX_NODES_PER_READ = 11705
"""Server_ServerCapabilities_OperationLimits_MaxNodesPerRead, in namespace 0."""

__all__ = ("Deliver", "Monitored", "OpcuaEndpoint", "endpoint_key")


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
        subscriptions: the session's monitored items and subscriptions.
        lost: set when the session is lost (every device on it goes offline).
    """

    def __init__(
        self, cfg: OpcuaProtocol, client: Client, drops: Drops, limits: Limits | None = None
    ) -> None:
        self.cfg = cfg
        self.client = client
        self.max_per_read = 0
        self.requests = 0
        self.lost = anyio.Event()
        self._batch: _Batch | None = None
        self.subscriptions = Subscriptions(
            client, cfg.url, limits or Limits(), drops, self.lost.set, cfg.timeout / 1000
        )

    @classmethod
    async def open(cls, cfg: OpcuaProtocol, drops: Drops | None = None) -> OpcuaEndpoint:
        """Connect a session and learn the server's limits, in one Read.

        ``MaxNodesPerRead``, and those of subscriptions (:class:`Limits`).

        Args:
            cfg: the device's protocol settings.
            drops: where values lost on the way are counted (the mapper's).

        Raises:
            DeviceError: the server cannot be reached or refuses the session.
        """
        client = await open_client(cfg, watchdog=cfg.timeout / 1000)
        try:
            with device_errors(cfg):
                per_read, limits = await _read_limits(client)
        except BaseException:
            await close_client(client)
            raise
        endpoint = cls(cfg, client, drops if drops is not None else Drops(), limits)
        endpoint.max_per_read = per_read
        return endpoint

    @property
    def alive(self) -> bool:
        """Whether the session still works."""
        return not self.lost.is_set() and self.client.uaclient.state is UaClientState.CONNECTED

    async def aclose(self) -> None:
        """Close the session (deleting its subscriptions) and the socket; never raises."""
        self.lost.set()
        self.subscriptions.close()
        await close_client(self.client)

    # reads ---------------------------------------------------------------------------------
    async def read_attribute(
        self, node_ids: Sequence[ua.NodeId], attribute: AttributeIds
    ) -> list[ua.DataValue]:
        """One attribute of many nodes, in as few Read requests as ``MaxNodesPerRead`` allows."""
        results: list[ua.DataValue] = []
        step = self.max_per_read or len(node_ids) or 1
        for start in range(0, len(node_ids), step):
            params = ua.ReadParameters()
            # a value comes with the time the device measured it; other attributes with none
            params.TimestampsToReturn = (
                ua.TimestampsToReturn.Source
                if attribute is AttributeIds.Value
                else ua.TimestampsToReturn.Neither
            )
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
    ) -> list[Monitored | ua.StatusCode]:
        """Monitor ``nodes`` sampled every ``interval_ms``; ``deliver[i]`` gets ``nodes[i]``'s.

        Returns:
            Per node, the monitored item (for :meth:`unmonitor`) or why it was refused.
        """
        return await self.subscriptions.monitor(interval_ms, nodes, deliver)

    async def unmonitor(self, items: Sequence[Monitored]) -> None:
        """Stop monitoring ``items`` (a device leaving); never raises."""
        if not self.alive:
            self.subscriptions.forget(items)
            return
        with anyio.move_on_after(self.cfg.timeout / 1000):
            await self.subscriptions.unmonitor(items)

    async def run(self) -> None:
        """Watch the session; set :attr:`lost` when it is lost.

        The subscriptions need no task of ours: asyncua's publish loop hands each
        notification to its device (see :mod:`edgedev_opcua.subscriptions`).
        """
        try:
            uaclient = self.client.uaclient
            async with uaclient.subscribe_state() as states:
                while uaclient.state is UaClientState.CONNECTED:
                    await states.next_change()
            log.debug("OPC-UA session to %s lost", self.cfg.url)
        finally:
            self.lost.set()


async def _read_limits(client: Client) -> tuple[int, Limits]:
    """The server's ``MaxNodesPerRead`` and subscription :class:`Limits` (0: not said)."""
    names = list(LIMIT_NODES)
    node_ids = [ua.NodeId(ua.Int32(MAX_NODES_PER_READ))]
    node_ids += [ua.NodeId(ua.Int32(LIMIT_NODES[n])) for n in names]
    results = await client.uaclient.read_attributes(node_ids, AttributeIds.Value)
    values = [_positive(r) for r in results]
    return values[0], Limits(**dict(zip(names, values[1:], strict=True)))


def _positive(result: ua.DataValue) -> int:
    """A limit the server states: a positive integer, else 0 (absent, unknown, refused)."""
    good = result.StatusCode is None or result.StatusCode.is_good()
    value = result.Value.Value if result.Value is not None else None
    if good and isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return 0
