"""One device's view of a shared OPC-UA session: node resolution, reads, writes, monitoring.

The driver's I/O half, kept apart so that loading the driver (``edgedev validate``) does not
import asyncua. The session itself is the endpoint's (:mod:`edgedev_opcua.endpoint`), shared
by every device on the server. On open a device resolves every property's node (namespace URIs
and browse paths included, each kind in one request) and reads all their ``DataType``
attributes in one request, so that writes use each node's own type and a node the server does
not know is reported once, by name, and left out.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import anyio
from asyncua import ua
from asyncua.client.client import Client
from asyncua.common.ua_utils import data_type_to_variant_type
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.uaerrors import UaError

from edgedev.drivers import DeviceError, Report, ValueRules, WriteRefused
from edgedev.twin import Quality, Sample, Value
from edgedev_opcua.config import OpcuaDeviceSpec, OpcuaPropertySpec, OpcuaProtocol
from edgedev_opcua.connection import device_errors, status_name
from edgedev_opcua.convert import (
    Builtin,
    builtin_of_data_type,
    from_opcua,
    number_from_opcua,
    number_to_opcua,
    source_millis,
    to_opcua,
)
from edgedev_opcua.endpoint import Deliver, Monitored, OpcuaEndpoint
from edgedev_opcua.nodeid import BrowseStep, IdKind, NodeRef
from edgedev_opcua.subscriptions import QUEUE_SIZE

log = logging.getLogger("edgedev.opcua")

FORWARD: Any = False  # asyncua types these flags as its Boolean marker class
SUBTYPES: Any = True
OBJECTS_FOLDER = 85
HIERARCHICAL_REFERENCES = 33

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

    prop: OpcuaPropertySpec
    node_id: ua.NodeId
    builtin: Builtin | None = None
    data_type: str = "?"


class Session:
    """One device on a shared endpoint session.

    Attributes:
        endpoint: the shared session of the device's server.
    """

    def __init__(
        self, device: OpcuaDeviceSpec, cfg: OpcuaProtocol, endpoint: OpcuaEndpoint
    ) -> None:
        self.device = device
        self.cfg = cfg
        self.endpoint = endpoint
        self._nodes: dict[str, _Node] = {}
        self._by_node: dict[ua.NodeId, list[str]] = {}
        self._monitored: list[Monitored] = []
        self._report: Report | None = None
        self._wanted: set[str] = set()
        self._early: list[tuple[str, Value | Sample]] = []
        self._rules = {
            p.name: ValueRules(device.id, p) for p in device.properties if not p.visitor.plain
        }

    @property
    def client(self) -> Client:
        """The endpoint's client."""
        return self.endpoint.client

    @property
    def requests(self) -> int:
        """Read requests the endpoint sent for property values (of every device on it)."""
        return self.endpoint.requests

    @classmethod
    async def open(
        cls, device: OpcuaDeviceSpec, cfg: OpcuaProtocol, endpoint: OpcuaEndpoint
    ) -> Session:
        """Resolve the device's nodes and their types, and monitor them in subscribe mode.

        Raises:
            DeviceError: the server does not answer.
        """
        session = cls(device, cfg, endpoint)
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
        """Remove the device's monitored items from the shared subscriptions; never raises."""
        monitored, self._monitored = self._monitored, []
        with anyio.CancelScope(shield=True):
            await self.endpoint.unmonitor(monitored)

    # nodes ---------------------------------------------------------------------------------
    async def _resolve(self) -> None:
        """Find each property's node on the server, and the type the server declares for it.

        A property whose node cannot be found, or whose type the server will not tell, is
        left out (and logged); the others are kept in ``_nodes``.
        """
        nodes = await self._locate()
        if not nodes:
            return
        types = await self.endpoint.read_attribute(
            [n.node_id for n in nodes], AttributeIds.DataType
        )
        for node, result in zip(nodes, types, strict=True):
            if await self._learn_type(node, result):
                self._nodes[node.prop.name] = node
                self._by_node.setdefault(node.node_id, []).append(node.prop.name)

    async def _locate(self) -> list[_Node]:
        """The node of each property, in property order: by node id, or by browse path."""
        visitors = {p.name: p.visitor for p in self.device.properties}
        refs = {name: v.node for name, v in visitors.items() if v.node is not None}
        namespaces = await self._namespace_indexes(refs.values())
        located = await self._browse({n: v.path for n, v in visitors.items() if v.node is None})
        located.update(self._node_ids(refs, namespaces))
        return [_Node(p, located[p.name]) for p in self.device.properties if p.name in located]

    async def _namespace_indexes(self, refs: Iterable[NodeRef]) -> dict[str, int]:
        """The server's namespace index of each URI, asked only if a node id names a URI."""
        if not any(isinstance(r.namespace, str) for r in refs):
            return {}
        array = await self.client.get_namespace_array()
        return {uri: i for i, uri in enumerate(array)}

    def _node_ids(
        self, refs: Mapping[str, NodeRef], namespaces: Mapping[str, int]
    ) -> dict[str, ua.NodeId]:
        """The NodeId of each property's ``refs``; a namespace URI the server lacks is logged."""
        ids: dict[str, ua.NodeId] = {}
        for name, ref in refs.items():
            index = (
                namespaces.get(ref.namespace) if isinstance(ref.namespace, str) else ref.namespace
            )
            if index is None:
                log.warning(
                    "%s: property %s: the server has no namespace %r; left out",
                    self.device.id,
                    name,
                    ref.namespace,
                )
                continue
            ids[name] = to_ua_node_id(ref, index)
        return ids

    async def _learn_type(self, node: _Node, result: ua.DataValue) -> bool:
        """Set ``node``'s type from the server's answer ``result``; false (logged) if refused."""
        status = result.StatusCode
        if status is not None and not status.is_good():
            log.warning(
                "%s: property %s: node %s: %s; left out",
                self.device.id,
                node.prop.name,
                node.node_id.to_string(),
                status_name(status.value),
            )
            return False
        dtype = result.Value.Value if result.Value is not None else None
        if isinstance(dtype, ua.NodeId):
            node.data_type = dtype.to_string()
            node.builtin = builtin_of_data_type(dtype.NamespaceIndex, dtype.Identifier)
            if node.builtin is None:
                node.builtin = await self._builtin_by_browsing(dtype)
        return True

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
    async def read(self, properties: Sequence[OpcuaPropertySpec]) -> Mapping[str, Value | Sample]:
        """Read the values of ``properties``, in one Read with the other devices' due now.

        Each with its status code's class and its source timestamp, where the server gives
        them (see :meth:`_decode`).

        A server whose ``MaxNodesPerRead`` is smaller than the batch gets as few requests as
        that limit allows.
        """
        nodes = [self._nodes[p.name] for p in properties if p.name in self._nodes]
        if not nodes:
            return {}
        with device_errors(self.cfg):
            results = await self.endpoint.read_values([n.node_id for n in nodes])
        return {
            node.prop.name: self._decode(node, result)
            for node, result in zip(nodes, results, strict=True)
        }

    def _decode(self, node: _Node, result: ua.DataValue) -> Value | Sample:
        """The property's value in ``result``, with the status code's class and source time.

        A Bad status code, or a value the property cannot take (null, an array ...), is a Bad
        sample with the reason; an Uncertain one keeps its value and says so.
        """
        prop = node.prop
        status = result.StatusCode
        source = source_millis(result.SourceTimestamp)
        if status is not None and status.is_bad():
            return Sample.bad(status_name(status.value), source)
        try:
            raw = result.Value.Value if result.Value else None
            rules = self._rules.get(prop.name)
            if rules is None:
                value = from_opcua(raw, prop.type, node.builtin)
            else:
                value = rules.value(number_from_opcua(raw, node.builtin))
        except ValueError as exc:
            return Sample.bad(str(exc), source)
        if status is not None and status.is_uncertain():
            return Sample(value, Quality.UNCERTAIN, source, status_name(status.value))
        return value if source is None else Sample(value, Quality.GOOD, source)

    # writes --------------------------------------------------------------------------------
    async def write(self, prop: OpcuaPropertySpec, value: Value) -> None:
        """Write ``value`` as the node's own type, without timestamps.

        Raises:
            WriteRefused: the node is unknown, its type cannot hold the value, or the server
                refused the write (the status code says why).
        """
        node = self._nodes.get(prop.name)
        if node is None:
            node_id = prop.visitor.node_id
            raise WriteRefused(f"{prop.name}: node {node_id} is not on the server")
        if node.builtin is None:
            raise WriteRefused(
                f"{prop.name}: node type {node.data_type} cannot be written by edgedev"
            )
        rules = self._rules.get(prop.name)
        try:
            if rules is None:
                raw = to_opcua(value, node.builtin)
            else:
                if rules.bit is not None or rules.transform.refusal is not None:
                    why = rules.transform.refusal or "a bit of a node is read-only"
                    raise WriteRefused(f"{prop.name}: {why}")
                raw = number_to_opcua(rules.raw(value), node.builtin)
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
        """Monitor every node, sampled at its property's ``collectCycle``."""
        groups: dict[int, list[_Node]] = {}
        for node in self._nodes.values():
            groups.setdefault(round(node.prop.collect_cycle * 1000), []).append(node)
        for cycle_ms, nodes in sorted(groups.items()):
            sinks = [self._sink(n) for n in nodes]
            results = await self.endpoint.monitor(cycle_ms, [n.node_id for n in nodes], sinks)
            for node, result in zip(nodes, results, strict=True):
                if isinstance(result, ua.StatusCode):
                    log.warning(
                        "%s: property %s: cannot monitor node %s: %s",
                        self.device.id,
                        node.prop.name,
                        node.node_id.to_string(),
                        status_name(result.value),
                    )
                else:
                    self._monitored.append(result)

    def _sink(self, node: _Node) -> Deliver:
        name = node.prop.name

        def deliver(data: ua.DataValue) -> None:
            value = self._decode(node, data)
            if self._report is None:  # published before watch() began: kept, bounded
                early = self._early
                if len(early) >= len(self._nodes) * QUEUE_SIZE:
                    early.pop(0)
                    self.endpoint.subscriptions.drops.add(
                        "push_queue", 1, f"{self.device.id}: values published before it watched"
                    )
                early.append((name, value))
            elif name in self._wanted:
                self._report(name, value)

        return deliver

    async def watch(self, properties: Sequence[OpcuaPropertySpec], report: Report) -> None:
        """Report the values the server publishes until the session is lost.

        Raises:
            DeviceError: the session or a subscription was lost.
        """
        self._wanted = {p.name for p in properties}
        self._report = report
        early, self._early = self._early, []
        for name, value in early:
            if name in self._wanted:
                report(name, value)
        await self.endpoint.lost.wait()
        raise DeviceError(f"{self.cfg.url}: connection lost")
