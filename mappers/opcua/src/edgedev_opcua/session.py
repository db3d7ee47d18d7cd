"""A live OPC-UA session for one device: node resolution, reads, writes, subscriptions.

The driver's I/O half, kept apart so that loading the driver (``edgedev validate``) does not
import asyncua. On open it resolves every property's node (namespace URIs and browse paths
included, each kind in one request) and reads all their ``DataType`` attributes in one
request, so that writes use each node's own type and a node the server does not know is
reported once, by name, and left out.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import anyio
from asyncua import ua
from asyncua.client.client import Client
from asyncua.client.ua_client import UaClientState
from asyncua.common.subscription import DataChangeEvent, StatusChangeEvent, Subscription
from asyncua.common.ua_utils import data_type_to_variant_type
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.uaerrors import UaError

from edgedev import DeviceError, DeviceSpec, PropertySpec, Value, WriteRefused
from edgedev.drivers import Report
from edgedev_opcua.config import OpcuaProtocol, OpcuaVisitor
from edgedev_opcua.connection import close_client, device_errors, open_client, status_name
from edgedev_opcua.convert import Builtin, builtin_of_data_type, from_opcua, to_opcua
from edgedev_opcua.nodeid import BrowseStep, IdKind, NodeRef

log = logging.getLogger("edgedev.opcua")

IDLE_WATCHDOG = 3600.0
"""asyncua's liveness probe in poll mode, seconds: the cycle's own reads already probe."""

FORWARD: Any = False  # asyncua types these flags as its Boolean marker class
SUBTYPES: Any = True
OBJECTS_FOLDER = 85
HIERARCHICAL_REFERENCES = 33
MAX_NODES_PER_READ = 11705
"""Server_ServerCapabilities_OperationLimits_MaxNodesPerRead, in namespace 0."""

_KINDS = {
    IdKind.NUMERIC: ua.NodeIdType.Numeric,
    IdKind.STRING: ua.NodeIdType.String,
    IdKind.GUID: ua.NodeIdType.Guid,
    IdKind.OPAQUE: ua.NodeIdType.ByteString,
}


def to_ua_node_id(ref: NodeRef, namespace: int) -> ua.NodeId:
    """The asyncua NodeId of ``ref`` in namespace index ``namespace``."""
    return ua.NodeId(cast(Any, ref.identifier), ua.Int16(namespace), _KINDS[ref.kind])


@dataclass(slots=True)
class _Node:
    """Where one property lives on the connected server, and the node's type."""

    prop: PropertySpec
    node_id: ua.NodeId
    builtin: Builtin | None = None
    data_type: str = "?"


class Session:
    """One connected client for one device.

    Attributes:
        requests: Read requests sent for property values (not counting those at open).
    """

    def __init__(self, device: DeviceSpec, cfg: OpcuaProtocol, client: Client) -> None:
        self.device = device
        self.cfg = cfg
        self.client = client
        self._nodes: dict[str, _Node] = {}
        self._by_node: dict[ua.NodeId, list[str]] = {}
        self._subscriptions: list[Subscription] = []
        self._bad: dict[str, str] = {}
        self._max_per_read = 0
        self.requests = 0

    @classmethod
    async def open(cls, device: DeviceSpec, cfg: OpcuaProtocol) -> Session:
        """Connect, resolve the nodes and their types, and subscribe in subscribe mode.

        Raises:
            DeviceError: the server cannot be reached or refuses the session.
        """
        watchdog = cfg.timeout / 1000 if cfg.mode == "subscribe" else IDLE_WATCHDOG
        session = cls(device, cfg, await open_client(cfg, watchdog=watchdog))
        try:
            with device_errors(cfg):
                await session._resolve()
                if cfg.mode == "subscribe":
                    await session._subscribe()
        except BaseException:
            await session.close()
            raise
        return session

    async def close(self) -> None:
        """Close the session (deleting its subscriptions) and the socket; never raises."""
        self._subscriptions = []
        await close_client(self.client)

    # nodes ---------------------------------------------------------------------------------
    async def _resolve(self) -> None:
        visitors: dict[str, OpcuaVisitor] = {}
        for prop in self.device.properties:
            assert isinstance(prop.visitor, OpcuaVisitor)
            visitors[prop.name] = prop.visitor
        refs = {name: v.node for name, v in visitors.items() if v.node is not None}
        namespaces: dict[str, int] = {}
        if any(isinstance(r.namespace, str) for r in refs.values()):
            array = await self.client.get_namespace_array()
            namespaces = {uri: i for i, uri in enumerate(array)}
        found = await self._browse({n: v.path for n, v in visitors.items() if v.node is None})
        nodes: list[_Node] = []
        for prop in self.device.properties:
            if prop.name in found:
                nodes.append(_Node(prop, found[prop.name]))
                continue
            ref = refs.get(prop.name)
            if ref is None:
                continue  # a browse path the server could not follow (logged)
            index = (
                namespaces.get(ref.namespace) if isinstance(ref.namespace, str) else ref.namespace
            )
            if index is None:
                log.warning(
                    "%s: property %s: the server has no namespace %r; left out",
                    self.device.id,
                    prop.name,
                    ref.namespace,
                )
                continue
            nodes.append(_Node(prop, to_ua_node_id(ref, index)))
        if not nodes:
            return
        await self._read_limit()
        types = await self._read_many([n.node_id for n in nodes], AttributeIds.DataType)
        for node, result in zip(nodes, types, strict=True):
            status = result.StatusCode
            if status is not None and not status.is_good():
                log.warning(
                    "%s: property %s: node %s: %s; left out",
                    self.device.id,
                    node.prop.name,
                    node.node_id.to_string(),
                    status_name(status.value),
                )
                continue
            dtype = result.Value.Value if result.Value is not None else None
            if isinstance(dtype, ua.NodeId):
                node.data_type = dtype.to_string()
                node.builtin = builtin_of_data_type(dtype.NamespaceIndex, dtype.Identifier)
                if node.builtin is None:
                    node.builtin = await self._builtin_by_browsing(dtype)
            self._nodes[node.prop.name] = node
            self._by_node.setdefault(node.node_id, []).append(node.prop.name)

    async def _browse(self, paths: dict[str, tuple[BrowseStep, ...]]) -> dict[str, ua.NodeId]:
        """The nodes at browse ``paths`` from the Objects folder, in one request."""
        if not paths:
            return {}
        requests = []
        for steps in paths.values():
            elements = [
                ua.RelativePathElement(
                    ReferenceTypeId=ua.NodeId(ua.Int32(HIERARCHICAL_REFERENCES)),
                    IsInverse=FORWARD,
                    IncludeSubtypes=SUBTYPES,
                    TargetName=ua.QualifiedName(step.name, ua.UInt16(step.namespace)),
                )
                for step in steps
            ]
            requests.append(
                ua.BrowsePath(
                    StartingNode=ua.NodeId(ua.Int32(OBJECTS_FOLDER)),
                    RelativePath=ua.RelativePath(Elements=elements),
                )
            )
        results = await self.client.uaclient.translate_browsepaths_to_nodeids(requests)
        found: dict[str, ua.NodeId] = {}
        for (name, steps), result in zip(paths.items(), results, strict=True):
            status = result.StatusCode
            if (status is not None and not status.is_good()) or not result.Targets:
                problem = status_name(status.value) if status is not None else "no target"
                path = "/".join(map(str, steps))
                log.warning(
                    "%s: property %s: browse path %s: %s; left out",
                    self.device.id,
                    name,
                    path,
                    problem,
                )
                continue
            target = result.Targets[0].TargetId
            found[name] = ua.NodeId(target.Identifier, target.NamespaceIndex, target.NodeIdType)
        return found

    async def _builtin_by_browsing(self, dtype: ua.NodeId) -> Builtin | None:
        """The built-in type under an enumeration or vendor subtype (browses its supertypes)."""
        try:
            variant = await data_type_to_variant_type(self.client.get_node(dtype))
        except (UaError, ValueError):
            return None
        return Builtin(variant.value) if variant.value in Builtin._value2member_map_ else None

    def builtin(self, name: str) -> Builtin | None:
        """The OPC-UA type of property ``name``'s node, as the server declares it."""
        node = self._nodes.get(name)
        return node.builtin if node else None

    # reads ---------------------------------------------------------------------------------
    async def _read_many(
        self, node_ids: Sequence[ua.NodeId], attribute: AttributeIds
    ) -> list[ua.DataValue]:
        """One attribute of many nodes in one Read request (more if ``MaxNodesPerRead`` says)."""
        results: list[ua.DataValue] = []
        step = self._max_per_read or len(node_ids)
        for start in range(0, len(node_ids), step):
            params = ua.ReadParameters()
            params.TimestampsToReturn = ua.TimestampsToReturn.Neither
            params.NodesToRead = [
                ua.ReadValueId(NodeId=node_id, AttributeId=ua.UInt32(attribute))
                for node_id in node_ids[start : start + step]
            ]
            results += await self.client.uaclient.read(params)
            if attribute is AttributeIds.Value:
                self.requests += 1
        return results

    async def _read_limit(self) -> None:
        """Learn the server's ``MaxNodesPerRead`` (0 or unknown: no limit)."""
        limit_node = ua.NodeId(ua.Int32(MAX_NODES_PER_READ))
        [result] = await self.client.uaclient.read_attributes([limit_node], AttributeIds.Value)
        limit = result.Value.Value if result.Value is not None else None
        good = result.StatusCode is None or result.StatusCode.is_good()
        if good and isinstance(limit, int) and not isinstance(limit, bool) and limit > 0:
            self._max_per_read = limit

    async def read(self, properties: Sequence[PropertySpec]) -> Mapping[str, Value]:
        """Read the values of ``properties`` with one Read request.

        A server whose ``MaxNodesPerRead`` is smaller than their number gets as few requests
        as that limit allows.
        """
        nodes = [self._nodes[p.name] for p in properties if p.name in self._nodes]
        if not nodes:
            return {}
        with device_errors(self.cfg):
            results = await self._read_many([n.node_id for n in nodes], AttributeIds.Value)
        values: dict[str, Value] = {}
        for node, result in zip(nodes, results, strict=True):
            value = self._decode(node, result)
            if value is not None:
                values[node.prop.name] = value
        return values

    def _decode(self, node: _Node, result: ua.DataValue) -> Value | None:
        """The property value in ``result``, or ``None`` (logged once) when it has none."""
        prop = node.prop
        status = result.StatusCode
        problem: str | None = None
        value: Value | None = None
        if status is not None and status.is_bad():
            problem = status_name(status.value)
        else:
            try:
                raw = result.Value.Value if result.Value else None
                value = from_opcua(raw, prop.type, node.builtin)
            except ValueError as exc:
                problem = str(exc)
        if problem is None:
            if self._bad.pop(prop.name, None) is not None:
                log.info("%s: property %s has a value again", self.device.id, prop.name)
            return value
        if self._bad.get(prop.name) != problem:
            log.warning("%s: property %s: %s", self.device.id, prop.name, problem)
            self._bad[prop.name] = problem
        return None

    # writes --------------------------------------------------------------------------------
    async def write(self, prop: PropertySpec, value: Value) -> None:
        """Write ``value`` as the node's own type, without timestamps.

        Raises:
            WriteRefused: the node is unknown, its type cannot hold the value, or the server
                refused the write (the status code says why).
        """
        node = self._nodes.get(prop.name)
        if node is None:
            assert isinstance(prop.visitor, OpcuaVisitor)
            raise WriteRefused(f"{prop.name}: node {prop.visitor.node_id} is not on the server")
        if node.builtin is None:
            raise WriteRefused(
                f"{prop.name}: node type {node.data_type} cannot be written by edgedev"
            )
        try:
            raw = to_opcua(value, node.builtin)
        except ValueError as exc:
            raise WriteRefused(f"{prop.name}: {exc}") from None
        # value only: no status code or timestamps, which some PLCs refuse to have written
        data = ua.DataValue(ua.Variant(raw, ua.VariantType(node.builtin.value)), StatusCode=None)
        with device_errors(self.cfg):
            results = await self.client.uaclient.write_attributes(
                [node.node_id], [data], AttributeIds.Value
            )
        status = results[0]
        if not status.is_good():
            raise WriteRefused(
                f"{prop.name}: the server refused the write ({status_name(status.value)})"
            )

    # subscriptions -------------------------------------------------------------------------
    async def _subscribe(self) -> None:
        groups: dict[int, list[_Node]] = {}
        for node in self._nodes.values():
            groups.setdefault(round(node.prop.collect_cycle * 1000), []).append(node)
        for cycle_ms, nodes in sorted(groups.items()):
            subscription = await self.client.create_subscription(float(cycle_ms), handler=None)
            self._subscriptions.append(subscription)
            handles = await subscription.subscribe_data_change(
                [self.client.get_node(n.node_id) for n in nodes],
                sampling_interval=ua.Double(cycle_ms),
            )
            for node, handle in zip(nodes, handles, strict=True):
                if isinstance(handle, ua.StatusCode):
                    log.warning(
                        "%s: property %s: cannot monitor node %s: %s",
                        self.device.id,
                        node.prop.name,
                        node.node_id.to_string(),
                        status_name(handle.value),
                    )

    async def watch(self, properties: Sequence[PropertySpec], report: Report) -> None:
        """Report the values the server publishes until the connection is lost.

        Raises:
            DeviceError: the connection or a subscription was lost.
        """
        wanted = {p.name for p in properties}
        async with anyio.create_task_group() as tg:
            for subscription in self._subscriptions:
                tg.start_soon(self._pump, subscription, wanted, report)
            await self._until_lost()

    async def _pump(self, subscription: Subscription, wanted: set[str], report: Report) -> None:
        async for event in subscription:
            if isinstance(event, DataChangeEvent):
                self._deliver(event, wanted, report)
            elif isinstance(event, StatusChangeEvent):
                status = event.notification.Status
                if status.is_bad():
                    raise DeviceError(
                        f"{self.cfg.url}: subscription ended ({status_name(status.value)})"
                    )
        raise DeviceError(f"{self.cfg.url}: subscription closed")

    def _deliver(self, event: DataChangeEvent, wanted: set[str], report: Report) -> None:
        data: ua.DataValue = event.data.monitored_item.Value
        for name in self._by_node.get(event.node.nodeid, ()):
            if name in wanted:
                value = self._decode(self._nodes[name], data)
                if value is not None:
                    report(name, value)

    async def _until_lost(self) -> None:
        uaclient = self.client.uaclient
        async with uaclient.subscribe_state() as states:
            while uaclient.state is UaClientState.CONNECTED:
                await states.next_change()
        raise DeviceError(f"{self.cfg.url}: connection lost")
