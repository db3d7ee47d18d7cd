"""A browsed OPC-UA address space, and the devices and properties made of it, with no I/O.

:mod:`edgedev_opcua.browser` fills :class:`Node` trees from a live server; this module
decides, as OPC-UA models a plant, what becomes a device and what a property:

* an Object whose type definition is an ObjectType of its own (not ``BaseObjectType`` or
  ``FolderType``) is a device of that kind: instances of one ObjectType with the same
  variables share one DeviceModel;
* an Object or folder holding variables, directly or through its components, is a device
  with a DeviceModel of its own;
* the variables of a typed device's components (child objects held by ``HasComponent``,
  typed or not) are properties of that device, named by their path (``Motor.Speed``); a
  device of its own takes its untyped components the same way, while a typed component is a
  device of its kind; objects only organized (``Organizes``, and anything a folder holds)
  are looked at on their own.

Each variable becomes a property where the OPC-UA driver can read it (scalar values of
built-in types and enumerations), and is skipped with the reason otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from edgedev.discover import DeviceDraft, PropertyDraft, Summary
from edgedev.drivers import AccessMode
from edgedev.twin import PropertyType, plain_float
from edgedev_opcua.convert import Builtin

BUILTIN_NAMES = {
    1: "Boolean",
    2: "SByte",
    3: "Byte",
    4: "Int16",
    5: "UInt16",
    6: "Int32",
    7: "UInt32",
    8: "Int64",
    9: "UInt64",
    10: "Float",
    11: "Double",
    12: "String",
    13: "DateTime",
    14: "Guid",
    15: "ByteString",
    16: "XmlElement",
    17: "NodeId",
    18: "ExpandedNodeId",
    19: "StatusCode",
    20: "QualifiedName",
    21: "LocalizedText",
    22: "Structure",
    23: "DataValue",
    24: "BaseDataType",
    25: "DiagnosticInfo",
    26: "Number",
    27: "Integer",
    28: "UInteger",
    29: "Enumeration",
}
"""Namespace-0 DataType ids of the built-in types, and of the abstract types above them."""

STRUCTURE = 22
ENUMERATION = 29
ABSTRACT = frozenset({24, 26, 27, 28})
"""BaseDataType, Number, Integer, UInteger: the value's own type tells what it is."""
UNTYPED_OBJECTS = frozenset({"i=58", "i=61"})
"""BaseObjectType and FolderType: an object of these is no kind of device."""

_TYPES: dict[int, PropertyType] = {
    1: PropertyType.BOOLEAN,
    **dict.fromkeys(range(2, 10), PropertyType.INT),
    10: PropertyType.FLOAT,
    11: PropertyType.FLOAT,
    **dict.fromkeys((12, 13, 14, 20, 21), PropertyType.STRING),
    15: PropertyType.BYTES,
    27: PropertyType.INT,
    28: PropertyType.INT,
}
"""The property type of each built-in type the driver reads."""
_REFUSED = {
    17: "NodeId values (ns=2;s=...) always hold = and ;, which EdgeCore refuses in twin values",
    18: "ExpandedNodeId values always hold = and ;, which EdgeCore refuses in twin values",
}
"""Built-in types the driver reads but whose values never reach a twin."""

CURRENT_READ = 1
CURRENT_WRITE = 2
"""AccessLevel bits (Part 3, 8.57)."""


class NodeKind(StrEnum):
    """The node classes a browse takes."""

    OBJECT = "Object"
    VARIABLE = "Variable"
    METHOD = "Method"


class Held(StrEnum):
    """How a node's parent holds it: its reference type, as far as discovery cares."""

    COMPONENT = "component"
    """HasComponent and its subtypes: part of the parent."""
    PROPERTY = "property"
    """HasProperty: a characteristic of the parent (a variable's EURange ...)."""
    ORGANIZES = "organizes"
    """Organizes and any other hierarchical reference: grouped under the parent."""


@dataclass(frozen=True, slots=True)
class DataTypeInfo:
    """What a variable's DataType is.

    Attributes:
        name: the DataType's browse name (``Double``, ``PumpState``, ``MachineStatus``).
        base: the namespace-0 type it derives from: a built-in type's id (1 to 25), or
            one of the abstract types (26 Number to 29 Enumeration); ``None`` when unknown.
        enum: an enumeration's values and names.
    """

    name: str
    base: int | None
    enum: tuple[tuple[int, str], ...] = ()


@dataclass(slots=True)
class Variable:
    """The attributes of a variable that decide its property.

    Attributes:
        data_type: its DataType.
        value_rank: -1 scalar, -3 scalar or one dimension, -2 any, 0 or more: an array.
        access_level: the AccessLevel bits.
        user_access_level: the UserAccessLevel bits (for the session's user).
        description: the Description text.
        display_name: the DisplayName text.
        minimum_sampling: MinimumSamplingInterval in ms (-1 indeterminate, 0 continuous).
        eu_range: the EURange property (low, high).
        unit: the EngineeringUnits property's display name.
        enum: the variable's own EnumStrings or EnumValues (a multi-state variable).
        value_type: the built-in type id of the current value, where it was read.
        value_is_array: whether the current value is an array, where it was read.
        problem: why the attributes could not be read, if they could not.
    """

    data_type: DataTypeInfo | None = None
    value_rank: int = -1
    access_level: int = CURRENT_READ
    user_access_level: int = CURRENT_READ
    description: str = ""
    display_name: str = ""
    minimum_sampling: float | None = None
    eu_range: tuple[float, float] | None = None
    unit: str = ""
    enum: tuple[tuple[int, str], ...] = ()
    value_type: int | None = None
    value_is_array: bool | None = None
    problem: str | None = None


@dataclass(slots=True)
class Node:
    """A node found by browsing.

    Attributes:
        node_id: its id as a file names it (``nsu=<uri>;s=Line1.Temp``, ``i=2253``).
        browse_name: its browse name, without the namespace.
        kind: Object, Variable or Method.
        held: how its parent holds it.
        path: the browse names from the browse root to it, both excluded and included.
        type_definition: the id of its type definition.
        type_name: the type definition's browse name.
        children: the nodes it holds, in browse-name order.
        variable: a variable's attributes.
    """

    node_id: str
    browse_name: str
    kind: NodeKind
    held: Held = Held.ORGANIZES
    path: tuple[str, ...] = ()
    type_definition: str | None = None
    type_name: str | None = None
    children: list[Node] = field(default_factory=list)
    variable: Variable | None = None

    @property
    def typed(self) -> bool:
        """Whether the node is an Object of an ObjectType of its own (a kind of device)."""
        return (
            self.kind is NodeKind.OBJECT
            and self.type_definition is not None
            and self.type_definition not in UNTYPED_OBJECTS
        )

    @property
    def where(self) -> str:
        """The node's browse path, for messages."""
        return "/".join(self.path) or self.browse_name


def _number_text(value: float, integer: bool, *, low: bool) -> str | None:
    """A bound as the DeviceModel writes it: ``0`` and ``3000``, ``0.5``; none if not finite."""
    if not math.isfinite(value):
        return None
    if value.is_integer():
        return str(int(value))
    if integer:  # the whole numbers inside the range
        return str(math.ceil(value) if low else math.floor(value))
    return plain_float(float(value))


def property_type(variable: Variable) -> PropertyType | str:
    """The property type of ``variable``, or why the driver cannot read it."""
    if variable.value_rank >= 0:
        return f"an array (ValueRank {variable.value_rank}): the OPC-UA driver reads scalars"
    if variable.value_is_array:
        return "the value is an array: the OPC-UA driver reads scalars"
    data_type = variable.data_type
    if data_type is None or data_type.base is None:
        name = data_type.name if data_type else "?"
        return f"data type {name} derives from no built-in type the driver knows"
    base = data_type.base
    if base == ENUMERATION:
        return PropertyType.INT
    if base == STRUCTURE:
        return f"a structure ({data_type.name}): the OPC-UA driver reads built-in types"
    if base in ABSTRACT:
        if variable.value_type is None:
            return f"abstract data type {data_type.name} and no value to tell its type"
        base = variable.value_type
    found = _TYPES.get(base)
    if base in _REFUSED:
        return _REFUSED[base]
    if found is None:
        return f"data type {BUILTIN_NAMES.get(base, data_type.name)}: the driver cannot read it"
    return found


def _enum_text(enum: Sequence[tuple[int, str]]) -> str:
    return "enumeration: " + ", ".join(f"{value} {name}" for value, name in enum)


def property_of(node: Node, name: str) -> PropertyDraft | str:
    """The property a variable node becomes, named ``name``, or why it is skipped."""
    variable = node.variable
    assert variable is not None
    if variable.problem is not None:
        return f"its attributes cannot be read ({variable.problem})"
    if not variable.access_level & CURRENT_READ:
        return "not readable (AccessLevel)"
    if not variable.user_access_level & CURRENT_READ:
        return "not readable by this user (UserAccessLevel)"
    type_ = property_type(variable)
    if not isinstance(type_, PropertyType):  # a StrEnum is a str too: ask for the enum
        return type_
    writable = variable.access_level & variable.user_access_level & CURRENT_WRITE
    enum = variable.enum or (variable.data_type.enum if variable.data_type else ())
    description = variable.description
    if description == node.browse_name:
        description = ""  # many servers repeat the name: say nothing rather than that
    if not description and variable.display_name not in ("", node.browse_name):
        description = variable.display_name
    minimum = maximum = None
    if enum:
        description = f"{description} ({_enum_text(enum)})" if description else _enum_text(enum)
        values = [value for value, _ in enum]
        minimum, maximum = str(min(values)), str(max(values))
    elif variable.eu_range is not None and type_.is_number:
        low, high = variable.eu_range
        integer = type_ is PropertyType.INT
        minimum = _number_text(low, integer, low=True)
        maximum = _number_text(high, integer, low=False)
        if minimum is None or maximum is None or float(minimum) > float(maximum):
            minimum = maximum = None
    visitor: dict[str, str] = {"nodeID": node.node_id}
    builtin = variable.data_type.base if variable.data_type else None
    if builtin is not None and builtin in Builtin._value2member_map_ and not enum:
        visitor["dataType"] = Builtin(builtin).opcua_name
    visitor["discoveredPath"] = node.where
    cycle = variable.minimum_sampling
    return PropertyDraft(
        name=name,
        type=type_,
        visitor=visitor,
        access=AccessMode.READ_WRITE if writable else AccessMode.READ_ONLY,
        description=description,
        minimum=minimum,
        maximum=maximum,
        unit=variable.unit,
        min_cycle=math.ceil(cycle) if cycle is not None and 0 < cycle < math.inf else None,
    )


FOLDER = "i=61"


def _absorbs(parent: Node, child: Node, typed_device: bool) -> bool:
    """Whether the device made of ``parent`` takes ``child``'s variables as its own."""
    return (
        child.kind is NodeKind.OBJECT
        and child.held is Held.COMPONENT
        and parent.type_definition != FOLDER  # a folder groups; it is made of nothing
        and (typed_device or not child.typed)
    )


def _holds_values(node: Node, typed_device: bool) -> bool:
    """Whether ``node`` holds variables, directly or through the components it absorbs."""
    return any(
        child.kind is NodeKind.VARIABLE
        or (_absorbs(node, child, typed_device) and _holds_values(child, typed_device))
        for child in node.children
    )


@dataclass
class _Planner:
    """Walks a browsed tree and makes its devices."""

    config: dict[str, object]
    wants: Callable[[Sequence[str]], bool]
    summary: Summary
    devices: list[DeviceDraft] = field(default_factory=list)
    filtered: int = 0

    def visit(self, node: Node) -> None:
        """A node on its own: a device, or a place to look for devices below."""
        if node.kind is NodeKind.METHOD:
            self._method(node)
            return
        if node.kind is not NodeKind.OBJECT:
            return
        typed = node.typed
        if not (typed or _holds_values(node, typed)):
            for child in node.children:
                self.visit(child)
            return
        properties: list[PropertyDraft] = []
        place = len(self.devices)  # before the devices found inside it
        self._absorb(node, (), properties, typed)
        if properties:
            draft = DeviceDraft(
                name=node.where,
                properties=properties,
                protocol_config=self.config,
                kind=node.type_name if typed else None,
            )
            self.devices.insert(place, draft)

    def _absorb(
        self, node: Node, prefix: tuple[str, ...], into: list[PropertyDraft], typed: bool
    ) -> None:
        for child in node.children:
            if child.kind is NodeKind.VARIABLE:
                self._variable(child, (*prefix, child.browse_name), into)
            elif child.kind is NodeKind.METHOD:
                self._method(child)
            elif _absorbs(node, child, typed):
                self._absorb(child, (*prefix, child.browse_name), into, typed)
            else:
                self.visit(child)  # on its own

    def _variable(self, node: Node, name: tuple[str, ...], into: list[PropertyDraft]) -> None:
        if self.wants(node.path):
            found = property_of(node, ".".join(name))
            if isinstance(found, str):
                self.summary.skip(node.where, found)
            else:
                into.append(found)
        else:
            self.filtered += 1
        for child in node.children:  # the parts of a complex variable (not its properties)
            if child.kind is NodeKind.VARIABLE and child.held is Held.COMPONENT:
                self._variable(child, (*name, child.browse_name), into)

    def _method(self, node: Node) -> None:
        if self.wants(node.path):
            self.summary.skip(node.where, "a method: discovery makes properties of values")


def plan_devices(
    roots: Sequence[Node],
    config: dict[str, object],
    wants: Callable[[Sequence[str]], bool],
    summary: Summary,
) -> list[DeviceDraft]:
    """The devices found under the browse root, in browse order.

    Args:
        roots: the browse root's children (or the root itself, when it holds variables).
        config: the Devices' protocol ``configData``.
        wants: whether a variable at a browse path is wanted (``--include``/``--exclude``).
        summary: receives every variable skipped, with the reason.
    """
    planner = _Planner(config, wants, summary)
    for root in roots:
        planner.visit(root)
    if planner.filtered:
        summary.note(f"{planner.filtered} variables left out by --include/--exclude")
    return planner.devices
