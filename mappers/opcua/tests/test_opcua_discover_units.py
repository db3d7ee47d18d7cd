"""The pure half of `edgedev discover opcua`: browse-path globs, and nodes to devices."""

from __future__ import annotations

import pytest

from edgedev.config import AccessMode
from edgedev.discover import PropertyDraft, Summary
from edgedev.twin import PropertyType
from edgedev_opcua.address_space import (
    DataTypeInfo,
    Held,
    Node,
    NodeKind,
    Variable,
    plan_devices,
    property_of,
)
from edgedev_opcua.pathglob import PathFilter, matches, split_glob

# globs ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("Plant/*/Temp", "Plant/Line1/Temp", True),
        ("Plant/*/Temp", "Plant/Line1/Pump/Temp", False),
        ("Plant/**", "Plant/Line1/Pump/Temp", True),
        ("Plant/**", "Plant", True),  # ** may take no level
        ("**/Temp*", "Plant/Line1/Temperature", True),
        ("**/Temp*", "Temp", True),
        ("Plant/Line[12]/**", "Plant/Line3/x", False),
        ("plant/**", "Plant/x", False),  # case matters, as in browse names
    ],
)
def test_globs_match_whole_paths(pattern: str, path: str, expected: bool) -> None:
    assert matches(split_glob(pattern), tuple(path.split("/"))) is expected


def test_a_filter_says_where_browsing_is_wasted() -> None:
    paths = PathFilter.of(["Plant/Line1/**"], ["**/Diagnostics/**"])
    assert paths.descend(("Plant",)) and paths.descend(("Plant", "Line1"))
    assert not paths.descend(("Plant", "Line2"))  # no include can match below
    assert not paths.descend(("Plant", "Line1", "Diagnostics"))  # everything below excluded
    assert paths.wants(("Plant", "Line1", "Temp"))
    assert not paths.wants(("Plant", "Line1", "Diagnostics", "Errors"))
    everything = PathFilter.of()
    assert everything.descend(("a",)) and everything.wants(("a", "b"))


@pytest.mark.parametrize("bad", ["", "/", "a//b"])
def test_malformed_globs_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="glob"):
        split_glob(bad)


# variables to properties ----------------------------------------------------------------------
def var(name: str, *, base: int | None = 11, path: tuple[str, ...] = (), **attrs: object) -> Node:
    data_type = attrs.pop("data_type", DataTypeInfo("T", base))
    variable = Variable(data_type=data_type, **attrs)  # type: ignore[arg-type]
    return Node(
        f"nsu=urn:x;s={name}",
        name,
        NodeKind.VARIABLE,
        Held.COMPONENT,
        path=path or ("Dev", name),
        variable=variable,
    )


@pytest.mark.parametrize(
    ("base", "type_"),
    [
        (1, PropertyType.BOOLEAN),
        (3, PropertyType.INT),
        (9, PropertyType.INT),
        (10, PropertyType.FLOAT),
        (11, PropertyType.FLOAT),
        (12, PropertyType.STRING),
        (13, PropertyType.STRING),
        (14, PropertyType.STRING),
        (15, PropertyType.BYTES),
        (20, PropertyType.STRING),
        (21, PropertyType.STRING),
    ],
)
def test_builtin_types_map_as_the_driver_reads_them(base: int, type_: PropertyType) -> None:
    found = property_of(var("v", base=base), "v")
    assert isinstance(found, PropertyDraft) and found.type is type_


@pytest.mark.parametrize(
    ("node", "reason"),
    [
        (var("a", value_rank=1), "an array (ValueRank 1)"),
        (var("a", value_rank=-2, value_is_array=True), "the value is an array"),
        (var("s", base=22, data_type=DataTypeInfo("Point", 22)), "a structure (Point)"),
        (var("n", base=17), "EdgeCore refuses"),
        (var("d", base=25), "data type DiagnosticInfo"),
        (var("x", base=None), "derives from no built-in type"),
        (var("b", base=24), "abstract data type T and no value"),
        (var("h", access_level=0), "not readable (AccessLevel)"),
        (var("u", user_access_level=0), "not readable by this user"),
        (var("p", problem="BadNodeIdUnknown"), "cannot be read (BadNodeIdUnknown)"),
    ],
)
def test_what_the_driver_cannot_read_is_skipped_with_the_reason(node: Node, reason: str) -> None:
    found = property_of(node, "x")
    assert isinstance(found, str) and reason in found


def test_attributes_become_the_model_and_the_visitor() -> None:
    speed = var(
        "Speed",
        access_level=3,
        user_access_level=3,
        eu_range=(-0.5, 3000.0),
        unit="rpm",
        description="shaft speed",
        minimum_sampling=250.4,
    )
    found = property_of(speed, "Motor.Speed")
    assert found == PropertyDraft(
        name="Motor.Speed",
        type=PropertyType.FLOAT,
        visitor={
            "nodeID": "nsu=urn:x;s=Speed",
            "dataType": "Double",
            "discoveredPath": "Dev/Speed",
        },
        access=AccessMode.READ_WRITE,
        description="shaft speed",
        minimum="-0.5",
        maximum="3000",
        unit="rpm",
        min_cycle=251,
    )
    # an integer's range is the whole numbers inside it; writable only for both levels
    count = var("Count", base=6, eu_range=(0.5, 9.5), access_level=3, user_access_level=1)
    found = property_of(count, "Count")
    assert isinstance(found, PropertyDraft)
    assert (found.minimum, found.maximum, found.access) == ("1", "9", AccessMode.READ_ONLY)
    # an enumeration: INT, the names in the description, the values as the range
    state = var(
        "State", data_type=DataTypeInfo("PumpState", 29, ((0, "Off"), (1, "On"), (4, "Fault")))
    )
    found = property_of(state, "State")
    assert isinstance(found, PropertyDraft)
    assert (found.type, found.minimum, found.maximum) == (PropertyType.INT, "0", "4")
    assert found.description == "enumeration: 0 Off, 1 On, 4 Fault"
    assert "dataType" not in found.visitor
    # an abstract type takes the value's own type
    number = var("N", base=26, value_type=6)
    found = property_of(number, "N")
    assert isinstance(found, PropertyDraft) and found.type is PropertyType.INT


# nodes to devices -----------------------------------------------------------------------------
def obj(name: str, *children: Node, type_def: str = "i=58", held: Held = Held.ORGANIZES) -> Node:
    node = Node(f"s={name}", name, NodeKind.OBJECT, held, type_definition=type_def)
    node.type_name = {"i=58": "BaseObjectType", "i=61": "FolderType"}.get(type_def, name + "Type")
    node.children = list(children)
    return node


def paths(node: Node, prefix: tuple[str, ...] = ()) -> Node:
    node.path = (*prefix, node.browse_name) if prefix or node.browse_name != "Objects" else ()
    for child in node.children:
        paths(child, node.path)
    return node


def test_typed_objects_absorb_their_components_and_folders_only_group() -> None:
    motor = obj("Motor", var("Current"), held=Held.COMPONENT)  # an untyped component
    pump1 = obj("Pump1", var("Speed"), motor, type_def="ns=2;i=1", held=Held.ORGANIZES)
    pump1.type_name = "PumpType"
    valve = obj("Valve", var("Open", base=1), type_def="ns=2;i=2", held=Held.COMPONENT)
    valve.type_name = "ValveType"
    cell = obj("Cell", var("Temp"), valve, held=Held.COMPONENT)  # untyped, with a typed part
    line = obj("Line1", pump1, cell, var("Flow"), type_def="i=61")
    start = Node("s=Start", "Start", NodeKind.METHOD)
    empty = obj("Empty", obj("Nothing"), start, type_def="i=61")
    root = paths(obj("Objects", line, empty, type_def="i=61"))
    summary = Summary("opc.tcp://x")
    devices = plan_devices([root], {"url": "opc.tcp://x"}, lambda _: True, summary)
    made = [(d.name, [p.name for p in d.properties], d.kind) for d in devices]
    assert made == [
        ("Line1", ["Flow"], None),  # a folder: its objects are on their own
        ("Line1/Pump1", ["Speed", "Motor.Current"], "PumpType"),
        ("Line1/Cell", ["Temp"], None),  # its typed part is a device of its kind
        ("Line1/Cell/Valve", ["Open"], "ValveType"),
    ]
    assert [(s.item, s.reason) for s in summary.skipped] == [
        ("Empty/Start", "a method: discovery makes properties of values")
    ]
    wanted = plan_devices([root], {}, lambda path: "Motor" not in path, Summary("x"))
    assert [p.name for p in wanted[1].properties] == ["Speed"]
