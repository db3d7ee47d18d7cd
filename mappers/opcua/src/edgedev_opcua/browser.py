"""Browsing a live OPC-UA server into :class:`~edgedev_opcua.address_space.Node` trees.

Every request carries as many nodes as the server allows: Browse requests take up to
``MaxNodesPerBrowse`` nodes (one level of the tree at a time), continuation points are
followed with BrowseNext, and the attributes of the variables found (DataType, ValueRank,
AccessLevel, UserAccessLevel, Description, DisplayName, MinimumSamplingInterval), their
EURange, EngineeringUnits, EnumStrings and EnumValues, and the supertypes and names of their
DataTypes are read in Read requests of up to ``MaxNodesPerRead`` values. Only Browse,
BrowseNext and Read are sent: discovery never writes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from asyncua import ua
from asyncua.client.client import Client
from asyncua.ua.attribute_ids import AttributeIds

from edgedev.discover import Summary
from edgedev_opcua.address_space import (
    BUILTIN_NAMES,
    ENUMERATION,
    DataTypeInfo,
    Held,
    Node,
    NodeKind,
    Variable,
)
from edgedev_opcua.connection import status_name
from edgedev_opcua.nodeid import IdKind, NodeRef
from edgedev_opcua.pathglob import PathFilter

log = logging.getLogger("edgedev.opcua.discover")

OBJECTS_FOLDER = 85
NAMESPACE_ARRAY = 2255
MAX_NODES_PER_READ = 11705
MAX_NODES_PER_BROWSE = 11710
MAX_BROWSE_CONTINUATION_POINTS = 2735
REFERENCES_PER_NODE = 1000
"""References asked for per node in one Browse; the rest come by BrowseNext."""
MAX_TYPE_DEPTH = 32
"""Supertypes climbed at most to find the built-in type under a DataType."""

_HIERARCHICAL = 33
_HAS_SUBTYPE = 45
_HAS_PROPERTY = 46
_COMPONENTS = frozenset({47, 49, 17604})  # HasComponent, HasOrderedComponent, HasAddIn
_EVENTS = frozenset({36, 48})  # HasEventSource, HasNotifier: the event tree, not the plant
_BAD_NO_CONTINUATION_POINTS = 0x804B0000  # BadNoContinuationPoints
_METADATA = ("EURange", "EngineeringUnits", "EnumStrings", "EnumValues")
_VARIABLE = int(ua.NodeClass.Variable)
_DATA_TYPE = int(ua.NodeClass.DataType)
_OBJECT_MASK = int(ua.NodeClass.Object) | _VARIABLE | int(ua.NodeClass.Method)
_KINDS = {
    ua.NodeClass.Object: NodeKind.OBJECT,
    ua.NodeClass.Variable: NodeKind.VARIABLE,
    ua.NodeClass.Method: NodeKind.METHOD,
}
_ID_KINDS = {
    ua.NodeIdType.TwoByte: IdKind.NUMERIC,
    ua.NodeIdType.FourByte: IdKind.NUMERIC,
    ua.NodeIdType.Numeric: IdKind.NUMERIC,
    ua.NodeIdType.String: IdKind.STRING,
    ua.NodeIdType.Guid: IdKind.GUID,
    ua.NodeIdType.ByteString: IdKind.OPAQUE,
}
TRUE: Any = True  # asyncua types these flags as its Boolean marker class
FALSE: Any = False
_VARIABLE_ATTRIBUTES = (
    AttributeIds.DataType,
    AttributeIds.ValueRank,
    AttributeIds.AccessLevel,
    AttributeIds.UserAccessLevel,
    AttributeIds.MinimumSamplingInterval,
    AttributeIds.Description,
    AttributeIds.DisplayName,
)


def describe(
    node_id: ua.NodeId,
    *,
    reference: int = _HIERARCHICAL,
    mask: int = _OBJECT_MASK,
    inverse: bool = False,
    subtypes: bool = True,
) -> ua.BrowseDescription:
    """What to browse from ``node_id``: references of type ``reference`` to ``mask`` nodes."""
    return ua.BrowseDescription(
        NodeId=node_id,
        BrowseDirection=ua.BrowseDirection.Inverse if inverse else ua.BrowseDirection.Forward,
        ReferenceTypeId=ua.NodeId(ua.Int32(reference)),
        IncludeSubtypes=TRUE if subtypes else FALSE,
        NodeClassMask=ua.UInt32(mask),
        ResultMask=ua.UInt32(int(ua.BrowseResultMask.All)),
    )


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _good(result: ua.DataValue) -> bool:
    return result.StatusCode is None or result.StatusCode.is_good()


def _value(result: ua.DataValue) -> Any:
    return result.Value.Value if result.Value is not None and _good(result) else None


def _status(result: ua.DataValue) -> str:
    return status_name(result.StatusCode.value) if result.StatusCode is not None else "Good"


def _text(value: Any) -> str:
    """The text of a LocalizedText (or of a string)."""
    text = getattr(value, "Text", value)
    return text.strip() if isinstance(text, str) else ""


def _collect(
    result: ua.BrowseResult,
    index: int,
    found: list[list[ua.ReferenceDescription] | str],
    points: dict[bytes, int],
) -> None:
    """Add the references of ``result`` to ``found[index]``, its continuation point to ``points``.

    A refused node gets the status's name instead of references.
    """
    if not result.StatusCode.is_good():
        found[index] = status_name(result.StatusCode.value)
        return
    cast(list[ua.ReferenceDescription], found[index]).extend(result.References)
    if result.ContinuationPoint:
        points[result.ContinuationPoint] = index


@dataclass(slots=True)
class _Pending:
    """A node to browse, and where its children go."""

    node: Node
    node_id: ua.NodeId
    depth: int


@dataclass(slots=True)
class Found:
    """What a browse found: the tree, and the variables' ids for the attribute reads.

    Attributes:
        root: the browse root, its children below it.
        variables: every variable node with its id.
        metadata: per variable id, its metadata properties (EURange ...) by name.
        type_definitions: the objects' type definitions, written id to id.
        truncated: whether ``--max-nodes`` stopped the browse.
    """

    root: Node
    variables: list[tuple[Node, ua.NodeId]] = field(default_factory=list)
    metadata: dict[ua.NodeId, dict[str, ua.NodeId]] = field(default_factory=dict)
    type_definitions: dict[str, ua.NodeId] = field(default_factory=dict)
    truncated: bool = False


class Browser:
    """Browses one server through a connected client, counting every request.

    Args:
        client: a connected asyncua client.
        summary: receives the request counts, the limits met and the nodes skipped.
        per_request: the most nodes or values in one request (the server's own limits
            apply when smaller).
    """

    def __init__(self, client: Client, summary: Summary, *, per_request: int) -> None:
        self.client = client
        self.summary = summary
        self.per_request = per_request
        self.per_browse = per_request
        self.per_read = per_request
        self.namespaces: list[str] = []
        self._types: dict[ua.NodeId, DataTypeInfo] = {}

    # requests ------------------------------------------------------------------------------
    async def read(self, ids: Sequence[ua.NodeId], attributes: Sequence[int]) -> list[ua.DataValue]:
        """``attributes`` of every node of ``ids`` (node by node), in as few Reads as allowed."""
        items = [
            ua.ReadValueId(NodeId=node_id, AttributeId=ua.UInt32(attribute))
            for node_id in ids
            for attribute in attributes
        ]
        results: list[ua.DataValue] = []
        for chunk in _chunks(items, self.per_read):
            params = ua.ReadParameters()
            params.TimestampsToReturn = ua.TimestampsToReturn.Neither
            params.NodesToRead = list(chunk)
            self.summary.sent("Read")
            results += await self.client.uaclient.read(params)
        return results

    async def browse(
        self, descriptions: Sequence[ua.BrowseDescription]
    ) -> list[list[ua.ReferenceDescription] | str]:
        """The references of each description (or why the server refused it).

        Nodes go ``per_browse`` to a request; continuation points are followed with
        BrowseNext before the next request, so that the server keeps few at a time. Nodes
        refused for want of continuation points are asked again, as many at once as the
        server gave points in that request.
        """
        found: list[list[ua.ReferenceDescription] | str] = [[] for _ in descriptions]
        waiting = list(range(len(descriptions)))
        retry: list[int] = []  # refused for want of continuation points
        retry_size = 1
        while waiting or retry:
            if retry:
                batch, retry = retry[:retry_size], retry[retry_size:]
            else:
                batch, waiting = waiting[: self.per_browse], waiting[self.per_browse :]
            params = ua.BrowseParameters()
            params.RequestedMaxReferencesPerNode = ua.UInt32(REFERENCES_PER_NODE)
            params.NodesToBrowse = [descriptions[i] for i in batch]
            self.summary.sent("Browse")
            results = await self.client.uaclient.browse(params)
            again = []
            points: dict[bytes, int] = {}
            for index, result in zip(batch, results, strict=True):
                if result.StatusCode.value == _BAD_NO_CONTINUATION_POINTS:
                    again.append(index)
                else:
                    _collect(result, index, found, points)
            await self._browse_next(points, found)  # frees the server's points
            if again and not points and len(batch) == 1:
                found[again[0]] = status_name(_BAD_NO_CONTINUATION_POINTS)
            elif again:
                # the server holds this many points at a time: ask again that many at once
                retry_size = max(1, len(points))
                retry = again + retry
        return found

    async def _browse_next(
        self, points: dict[bytes, int], found: list[list[ua.ReferenceDescription] | str]
    ) -> None:
        while points:
            params = ua.BrowseNextParameters()
            params.ReleaseContinuationPoints = FALSE
            params.ContinuationPoints = list(points)
            self.summary.sent("BrowseNext")
            results = await self.client.uaclient.browse_next(params)
            following: dict[bytes, int] = {}
            for point, result in zip(list(points), results, strict=True):
                _collect(result, points[point], found, following)
            points = following

    # server ----------------------------------------------------------------------------------
    async def learn_server(self) -> None:
        """The namespace array and the operation limits, in one Read."""
        ids = [
            ua.NodeId(ua.Int32(i))
            for i in (NAMESPACE_ARRAY, MAX_NODES_PER_BROWSE, MAX_NODES_PER_READ)
        ]
        namespaces, per_browse, per_read = await self.read(ids, [AttributeIds.Value])
        array = _value(namespaces)
        self.namespaces = [str(uri) for uri in array] if isinstance(array, list) else []
        limits = []
        for name, result in (("MaxNodesPerBrowse", per_browse), ("MaxNodesPerRead", per_read)):
            limit = _value(result)
            if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0:
                limits.append(f"{name} {limit}")
                if name == "MaxNodesPerBrowse":
                    self.per_browse = min(self.per_request, limit)
                else:
                    self.per_read = min(self.per_request, limit)
        if limits:
            self.summary.note(f"server limits: {', '.join(limits)}")

    def written(self, node_id: ua.NodeId) -> str:
        """``node_id`` as a file names it: with the namespace URI (``nsu=``), not the index."""
        index = node_id.NamespaceIndex
        namespace: int | str = index
        if 0 < index < len(self.namespaces) and ";" not in self.namespaces[index]:
            namespace = self.namespaces[index]
        identifier = node_id.Identifier
        kind = _ID_KINDS.get(node_id.NodeIdType, IdKind.STRING)
        return str(NodeRef(namespace, kind, identifier))

    def local(self, target: ua.ExpandedNodeId | ua.NodeId) -> ua.NodeId | None:
        """The local NodeId of a reference's target (``None`` on another server).

        asyncua decodes an ExpandedNodeId without URI or server index as a plain NodeId.
        """
        if getattr(target, "ServerIndex", 0):
            return None
        index = int(target.NamespaceIndex)
        uri = getattr(target, "NamespaceUri", None)
        if uri:
            if uri not in self.namespaces:
                return None
            index = self.namespaces.index(uri)
        return ua.NodeId(target.Identifier, ua.Int16(index), target.NodeIdType)

    async def root(self, node_id: ua.NodeId) -> Node:
        """The browse root's node.

        Raises:
            LookupError: the server does not know it, or it is no Object.
        """
        name, node_class = await self.read(
            [node_id], [AttributeIds.BrowseName, AttributeIds.NodeClass]
        )
        if not _good(name):
            raise LookupError(f"{self.written(node_id)}: {_status(name)}")
        if _value(node_class) != ua.NodeClass.Object:
            raise LookupError(f"{self.written(node_id)} is no Object (a folder or an object)")
        browse_name = _value(name)
        return Node(
            node_id=self.written(node_id),
            browse_name=getattr(browse_name, "Name", "") or self.written(node_id),
            kind=NodeKind.OBJECT,
        )

    # the tree --------------------------------------------------------------------------------
    async def tree(
        self, root_id: ua.NodeId, *, paths: PathFilter, max_depth: int, max_nodes: int
    ) -> Found:
        """Browse from ``root_id`` one level at a time, every node of a level in few requests.

        Args:
            root_id: where to start (the Objects folder by default).
            paths: which browse paths are wanted: objects where nothing can be wanted are
                not browsed.
            max_depth: levels below the root to browse.
            max_nodes: stop after finding this many nodes (the summary says so).
        """
        found = Found(await self.root(root_id))
        seen = {root_id}
        level = [_Pending(found.root, root_id, 0)]
        left_out: list[str] = []
        count = 0
        while level and not found.truncated:
            descriptions = [self._description(p) for p in level]
            results = await self.browse(descriptions)
            following: list[_Pending] = []
            for pending, refs in zip(level, results, strict=True):
                if isinstance(refs, str):
                    self.summary.skip(pending.node.where, f"cannot be browsed ({refs})")
                    continue
                for child, child_id in self._children(pending, refs, seen, found, left_out):
                    if count >= max_nodes:
                        found.truncated = True
                        break
                    count += 1
                    seen.add(child_id)
                    pending.node.children.append(child)
                    if child.kind is NodeKind.VARIABLE:
                        found.variables.append((child, child_id))
                        following.append(_Pending(child, child_id, pending.depth + 1))
                    elif (
                        child.kind is NodeKind.OBJECT
                        and pending.depth + 1 < max_depth
                        and paths.descend(child.path)
                    ):
                        following.append(_Pending(child, child_id, pending.depth + 1))
                    elif child.kind is NodeKind.OBJECT and pending.depth + 1 >= max_depth:
                        self.summary.skip(
                            child.where,
                            f"not browsed: what it holds is below --max-depth {max_depth}",
                        )
            level = following
        if left_out:
            self.summary.note(
                f"left out the server's own objects under Objects: {', '.join(left_out)}"
            )
        if found.truncated:
            self.summary.note(
                f"stopped at --max-nodes {max_nodes}: the server has more nodes (narrow --root "
                "or --include, or raise --max-nodes)"
            )
        self.summary.note(f"browsed {count} nodes, {len(found.variables)} of them variables")
        return found

    def _description(self, pending: _Pending) -> ua.BrowseDescription:
        variable = pending.node.kind is NodeKind.VARIABLE
        return describe(pending.node_id, mask=_VARIABLE if variable else _OBJECT_MASK)

    def _children(
        self,
        pending: _Pending,
        refs: Sequence[ua.ReferenceDescription],
        seen: set[ua.NodeId],
        found: Found,
        left_out: list[str],
    ) -> list[tuple[Node, ua.NodeId]]:
        """The new nodes among ``refs``, in browse-name order; a variable's metadata noted."""
        parent = pending.node
        children: dict[ua.NodeId, Node] = {}
        for ref in refs:
            ref_type = ref.ReferenceTypeId
            kind = _KINDS.get(ref.NodeClass)
            target = self.local(ref.NodeId)
            if kind is None or target is None or target in seen or target in children:
                continue
            number = ref_type.Identifier if ref_type.NamespaceIndex == 0 else None
            if number in _EVENTS or not ref.IsForward:
                continue
            name = ref.BrowseName.Name or self.written(target)
            if (
                pending.node_id == ua.NodeId(ua.Int32(OBJECTS_FOLDER))
                and target.NamespaceIndex == 0
            ):
                left_out.append(name)
                continue
            held = (
                Held.COMPONENT
                if number in _COMPONENTS
                else Held.PROPERTY
                if number == _HAS_PROPERTY
                else Held.ORGANIZES
            )
            if parent.kind is NodeKind.VARIABLE:
                if held is Held.PROPERTY:
                    if name in _METADATA:
                        found.metadata.setdefault(pending.node_id, {})[name] = target
                    continue
                if held is not Held.COMPONENT:
                    continue
            type_id = self.local(ref.TypeDefinition) if kind is NodeKind.OBJECT else None
            type_written = self.written(type_id) if type_id is not None else None
            if type_id is not None and type_written is not None:
                found.type_definitions[type_written] = type_id
            children[target] = Node(
                node_id=self.written(target),
                browse_name=name,
                kind=kind,
                held=held,
                path=(*parent.path, name),
                type_definition=type_written,
            )
        ordered = sorted(children.items(), key=lambda item: (item[1].browse_name, item[1].node_id))
        return [(node, node_id) for node_id, node in ordered]

    # attributes ------------------------------------------------------------------------------
    async def attributes(self, found: Found) -> None:
        """Read the attributes, metadata and data types of every variable found."""
        variables = found.variables
        ids = [node_id for _, node_id in variables]
        results = await self.read(ids, _VARIABLE_ATTRIBUTES)
        width = len(_VARIABLE_ATTRIBUTES)
        type_ids: dict[int, ua.NodeId] = {}
        for index, (node, _) in enumerate(variables):
            row = results[index * width : (index + 1) * width]
            node.variable = self._variable(row)
            data_type = _value(row[0])
            if isinstance(data_type, ua.NodeId):
                type_ids[index] = data_type
        await self._metadata(found)
        types = await self.data_types(set(type_ids.values()))
        for index, type_id in type_ids.items():
            variable = variables[index][0].variable
            assert variable is not None
            variable.data_type = types.get(type_id)
        await self._values(variables)
        await self._type_names(found)

    def _variable(self, row: Sequence[ua.DataValue]) -> Variable:
        data_type, rank, access, user_access, sampling, description, display = row
        if not _good(data_type):
            return Variable(problem=_status(data_type))
        variable = Variable()
        value_rank = _value(rank)
        if isinstance(value_rank, int):
            variable.value_rank = value_rank
        for attribute, result in (("access_level", access), ("user_access_level", user_access)):
            bits = _value(result)
            if isinstance(bits, int):
                setattr(variable, attribute, bits)
        interval = _value(sampling)
        if isinstance(interval, int | float) and not isinstance(interval, bool):
            variable.minimum_sampling = float(interval)
        variable.description = _text(_value(description))
        variable.display_name = _text(_value(display))
        return variable

    async def _metadata(self, found: Found) -> None:
        """EURange, EngineeringUnits, EnumStrings, EnumValues of the variables that have them."""
        wanted = [
            (owner, name, node_id)
            for owner, properties in found.metadata.items()
            for name, node_id in properties.items()
        ]
        if not wanted:
            return
        nodes = {node_id: node for node, node_id in found.variables}
        results = await self.read([node_id for _, _, node_id in wanted], [AttributeIds.Value])
        for (owner, name, _), result in zip(wanted, results, strict=True):
            variable = nodes[owner].variable
            value = _value(result)
            if variable is None or value is None:
                continue
            if name == "EURange" and hasattr(value, "Low") and hasattr(value, "High"):
                variable.eu_range = (float(value.Low), float(value.High))
            elif name == "EngineeringUnits":
                variable.unit = _text(getattr(value, "DisplayName", None))
            elif name in ("EnumStrings", "EnumValues") and not variable.enum:
                variable.enum = _enum(value)

    async def _values(self, variables: Sequence[tuple[Node, ua.NodeId]]) -> None:
        """The current value's type, where the declared type does not tell enough."""
        unsure = [
            (node, node_id)
            for node, node_id in variables
            if node.variable is not None
            and node.variable.problem is None
            and (
                node.variable.value_rank in (-2, -3)
                or (
                    node.variable.data_type is not None
                    and node.variable.data_type.base in (24, 26, 27, 28)
                )
            )
        ]
        if not unsure:
            return
        results = await self.read([node_id for _, node_id in unsure], [AttributeIds.Value])
        for (node, _), result in zip(unsure, results, strict=True):
            assert node.variable is not None
            if _good(result) and result.Value is not None:
                variant = result.Value
                node.variable.value_is_array = bool(variant.is_array)
                if variant.VariantType != ua.VariantType.Null:
                    node.variable.value_type = int(variant.VariantType.value)

    async def data_types(self, ids: set[ua.NodeId]) -> dict[ua.NodeId, DataTypeInfo]:
        """What each DataType is: its name, the built-in type below it, an enum's names."""
        unknown = [i for i in ids if i not in self._types]
        builtin = [i for i in unknown if i.NamespaceIndex == 0 and i.Identifier in BUILTIN_NAMES]
        for type_id in builtin:
            self._types[type_id] = DataTypeInfo(
                BUILTIN_NAMES[int(type_id.Identifier)], int(type_id.Identifier)
            )
        others = [i for i in unknown if i not in self._types]
        if others:
            names = await self.read(others, [AttributeIds.BrowseName])
            bases = await self._bases(others)
            enums = [t for t in others if bases.get(t) == ENUMERATION]
            values = await self._enum_values(enums)
            for type_id, name in zip(others, names, strict=True):
                browse_name = getattr(_value(name), "Name", None) or self.written(type_id)
                self._types[type_id] = DataTypeInfo(
                    browse_name, bases.get(type_id), values.get(type_id, ())
                )
        return {i: self._types[i] for i in ids if i in self._types}

    async def _bases(self, ids: Sequence[ua.NodeId]) -> dict[ua.NodeId, int]:
        """The namespace-0 type (1 to 29) each DataType derives from, climbing all at once."""
        climbing = {type_id: type_id for type_id in ids}  # type -> the supertype reached
        bases: dict[ua.NodeId, int] = {}
        for _ in range(MAX_TYPE_DEPTH):
            if not climbing:
                break
            tops = sorted(set(climbing.values()), key=str)
            results = await self.browse(
                [
                    describe(
                        top, reference=_HAS_SUBTYPE, mask=_DATA_TYPE, inverse=True, subtypes=False
                    )
                    for top in tops
                ]
            )
            supertype: dict[ua.NodeId, ua.NodeId | None] = {}
            for top, refs in zip(tops, results, strict=True):
                parent = None
                if not isinstance(refs, str) and refs:
                    parent = self.local(refs[0].NodeId)
                supertype[top] = parent
            for type_id, top in list(climbing.items()):
                parent = supertype.get(top)
                if parent is None:
                    del climbing[type_id]  # no supertype: unknown
                elif parent.NamespaceIndex == 0 and parent.Identifier in BUILTIN_NAMES:
                    bases[type_id] = int(parent.Identifier)
                    del climbing[type_id]
                else:
                    climbing[type_id] = parent
        return bases

    async def _enum_values(
        self, ids: Sequence[ua.NodeId]
    ) -> dict[ua.NodeId, tuple[tuple[int, str], ...]]:
        """The values and names of enumeration DataTypes.

        From their DataTypeDefinition attribute (OPC-UA 1.04 on), else from their
        EnumStrings or EnumValues property.
        """
        if not ids:
            return {}
        found: dict[ua.NodeId, tuple[tuple[int, str], ...]] = {}
        definitions = await self.read(ids, [AttributeIds.DataTypeDefinition])
        for type_id, result in zip(ids, definitions, strict=True):
            fields = getattr(_value(result), "Fields", None)
            if isinstance(fields, list) and fields:
                found[type_id] = tuple((int(f.Value), str(f.Name)) for f in fields)
        rest = [type_id for type_id in ids if type_id not in found]
        if not rest:
            return found
        results = await self.browse(
            [describe(type_id, reference=_HAS_PROPERTY, mask=_VARIABLE) for type_id in rest]
        )
        wanted: list[tuple[ua.NodeId, ua.NodeId]] = []
        for type_id, refs in zip(rest, results, strict=True):
            if isinstance(refs, str):
                continue
            for ref in refs:
                target = self.local(ref.NodeId)
                if ref.BrowseName.Name in ("EnumStrings", "EnumValues") and target is not None:
                    wanted.append((type_id, target))
                    break
        if wanted:
            values = await self.read([target for _, target in wanted], [AttributeIds.Value])
            for (type_id, _), value in zip(wanted, values, strict=True):
                found[type_id] = _enum(_value(value))
        return found

    async def _type_names(self, found: Found) -> None:
        """The browse names of the objects' type definitions (the kinds of device)."""
        typed = {k: v for k, v in found.type_definitions.items() if k not in ("i=58", "i=61")}
        if not typed:
            return
        results = await self.read(list(typed.values()), [AttributeIds.BrowseName])
        names = {
            written: getattr(_value(result), "Name", None) or written
            for written, result in zip(typed, results, strict=True)
        }
        stack = [found.root]
        while stack:
            node = stack.pop()
            if node.type_definition in names:
                node.type_name = names[node.type_definition]
            stack.extend(node.children)


def _enum(value: Any) -> tuple[tuple[int, str], ...]:
    """The values and names of an EnumStrings (LocalizedText[]) or EnumValues array."""
    if not isinstance(value, list):
        return ()
    found: list[tuple[int, str]] = []
    for index, item in enumerate(value):
        if hasattr(item, "Value") and hasattr(item, "DisplayName"):  # EnumValueType
            found.append((int(item.Value), _text(item.DisplayName)))
        else:
            found.append((index, _text(item)))
    return tuple(found)
