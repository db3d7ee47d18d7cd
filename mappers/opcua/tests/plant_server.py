"""An OPC-UA plant built by the tests, not by edgedev, for ``edgedev discover opcua``.

A plain asyncua server with what real plants have: object types with instances (one with a
variable more), folders, enumerations (one by DataTypeDefinition, one by EnumStrings, one
multi-state variable), arrays, a structure, a method, a variable nobody may read, odd and
duplicate names, a second namespace with over a thousand variables, every scalar built-in
type, a subtype of Double, a slow sensor. ``renumber=True`` registers other namespaces
first, so every namespace index changes while the URIs and identifiers stay.

The server's request processor is wrapped (:class:`Wiretap`) to do what asyncua's does not:
it hands out at most ``max_references`` references per node and the rest through
continuation points (BrowseNext), keeps at most ``max_points`` of them per server, and counts
every service request by type, so that a test can say which services discovery used.
``EXPECTED`` holds each variable's value as the twin must report it.
"""

from __future__ import annotations

import itertools
import uuid
import weakref
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from asyncua import Server, ua
from asyncua.common.structures104 import new_enum, new_struct, new_struct_field
from asyncua.server import binary_server_asyncio
from asyncua.server.uaprocessor import UaProcessor
from asyncua.ua.ua_binary import struct_from_binary

PLANT = "urn:test:plant"
VENDOR = "urn:test:vendor"
RACKS = 20
CHANNELS = 60  # above MAX_REFERENCES: each rack is browsed with BrowseNext
MAX_REFERENCES = 25
MAX_POINTS = 8
BROWSE = ua.ObjectIds.BrowseRequest_Encoding_DefaultBinary
BROWSE_NEXT = ua.ObjectIds.BrowseNextRequest_Encoding_DefaultBinary
READ = ua.ObjectIds.ReadRequest_Encoding_DefaultBinary
WRITE = ua.ObjectIds.WriteRequest_Encoding_DefaultBinary
SESSION = {
    ua.ObjectIds.CreateSessionRequest_Encoding_DefaultBinary,
    ua.ObjectIds.ActivateSessionRequest_Encoding_DefaultBinary,
    ua.ObjectIds.CloseSessionRequest_Encoding_DefaultBinary,
    ua.ObjectIds.GetEndpointsRequest_Encoding_DefaultBinary,
}
"""Requests that open and close a session: every client sends them."""
STAMP = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
GUID = uuid.UUID("12345678-1234-5678-9abc-def012345678")

# browse path -> the value the twin reports
EXPECTED: dict[str, str] = {}
# browse path -> why discovery skips it
SKIPPED: dict[str, str] = {}


@dataclass
class Wiretap:
    """What one server received, and the continuation points it holds."""

    max_references: int = MAX_REFERENCES
    max_points: int = MAX_POINTS
    services: Counter[int] = field(default_factory=Counter)
    points: dict[bytes, list[Any]] = field(default_factory=dict)
    counter: itertools.count[int] = field(default_factory=itertools.count)

    def cut(self, result: ua.BrowseResult) -> None:
        """Keep ``max_references`` references in ``result``, the rest behind a point."""
        if len(result.References) <= self.max_references:
            return
        if len(self.points) >= self.max_points:
            result.References = []
            result.StatusCode = ua.StatusCode(ua.StatusCodes.BadNoContinuationPoints)
            return
        point = f"cp{next(self.counter)}".encode()
        self.points[point] = result.References[self.max_references :]
        result.References = result.References[: self.max_references]
        result.ContinuationPoint = point

    def next(self, point: bytes, release: bool) -> ua.BrowseResult:
        """BrowseNext of one continuation point."""
        result = ua.BrowseResult()
        rest = self.points.pop(point, None)
        if rest is None:
            result.StatusCode = ua.StatusCode(ua.StatusCodes.BadContinuationPointInvalid)
        elif not release:
            result.References = rest
            self.cut(result)
        return result

    @property
    def writes(self) -> int:
        """Write requests received."""
        return self.services[WRITE]

    def used(self) -> set[int]:
        """The services used, besides opening and closing the session."""
        return set(self.services) - SESSION


_TAPS: weakref.WeakKeyDictionary[Any, Wiretap] = weakref.WeakKeyDictionary()


class _TappedProcessor(UaProcessor):
    """asyncua's processor, with continuation points and counts on tapped servers."""

    async def _process_message(self, typeid: Any, requesthdr: Any, seqhdr: Any, body: Any) -> Any:
        tap = _TAPS.get(self.iserver)
        if tap is None:
            return await super()._process_message(typeid, requesthdr, seqhdr, body)
        tap.services[typeid.Identifier] += 1
        active = self.session is not None and self.session.is_activated()
        if active and typeid.Identifier == BROWSE:
            params = struct_from_binary(ua.BrowseParameters, body)
            results = await self.session.browse(params)
            for result in results:
                tap.cut(result)
            response = ua.BrowseResponse()
            response.Results = results
            self.send_response(requesthdr.RequestHandle, seqhdr, response)
            return True
        if active and typeid.Identifier == BROWSE_NEXT:
            params = struct_from_binary(ua.BrowseNextParameters, body)
            response = ua.BrowseNextResponse()
            response.Parameters.Results = [
                tap.next(point, params.ReleaseContinuationPoints)
                for point in params.ContinuationPoints
            ]
            self.send_response(requesthdr.RequestHandle, seqhdr, response)
            return True
        return await super()._process_message(typeid, requesthdr, seqhdr, body)


binary_server_asyncio.UaProcessor = _TappedProcessor  # type: ignore[misc]


async def _variable(
    parent: Any, node_id: ua.NodeId, name: str, value: Any, variant: ua.VariantType, **kw: Any
) -> Any:
    return await parent.add_variable(node_id, name, ua.Variant(value, variant), **kw)


async def _build(server: Server, renumber: bool) -> None:
    if renumber:
        await server.register_namespace("urn:test:filler:a")
        await server.register_namespace("urn:test:filler:b")
    ns = await server.register_namespace(PLANT)
    vendor = await server.register_namespace(VENDOR)
    if not renumber:
        await server.register_namespace("urn:test:filler:a")

    def sid(text: str, index: int = ns) -> ua.NodeId:
        return ua.NodeId(text, index)

    pump_state = await new_enum(server, sid("PumpState"), "PumpState", ["Off", "On", "Fault"])
    mode_enum = await server.nodes.enum_data_type.add_data_type(sid("ModeEnum"), "ModeEnum")
    await mode_enum.add_property(
        sid("ModeEnum.EnumStrings"),
        "0:EnumStrings",
        ua.Variant([ua.LocalizedText("Manual"), ua.LocalizedText("Auto")]),
    )
    point, _ = await new_struct(
        server,
        sid("Point"),
        "Point",
        [
            new_struct_field("X", ua.VariantType.Double),
            new_struct_field("Y", ua.VariantType.Double),
        ],
    )
    await server.load_data_type_definitions()

    pump_type = await server.nodes.base_object_type.add_object_type(sid("PumpType"), "PumpType")
    for name, value, variant in (
        ("Speed", 0.0, ua.VariantType.Double),
        ("Running", False, ua.VariantType.Boolean),
    ):
        child = await _variable(pump_type, sid(f"PumpType.{name}"), f"{ns}:{name}", value, variant)
        await child.set_modelling_rule(True)
    state = await pump_type.add_variable(
        sid("PumpType.State"),
        f"{ns}:State",
        ua.Variant(0, ua.VariantType.Int32),
        datatype=pump_state.nodeid,
    )
    await state.set_modelling_rule(True)
    motor = await pump_type.add_object(sid("PumpType.Motor"), f"{ns}:Motor")
    await motor.set_modelling_rule(True)
    for name, variant in (
        ("Current", ua.VariantType.Float),
        ("Temperature", ua.VariantType.Double),
    ):
        child = await _variable(motor, sid(f"PumpType.Motor.{name}"), f"{ns}:{name}", 0.0, variant)
        await child.set_modelling_rule(True)

    plant = await server.nodes.objects.add_folder(sid("Plant"), f"{ns}:Plant")
    line1 = await plant.add_folder(sid("Plant.Line1"), f"{ns}:Line1")
    line2 = await plant.add_folder(sid("Plant.Line2"), f"{ns}:Line2")
    for number, line in ((1, line1), (2, line1), (3, line2)):
        where = f"Plant/Line{1 if line is line1 else 2}/Pump{number}"
        pump = await line.add_object(sid(where.replace("/", ".")), f"{ns}:Pump{number}", pump_type)
        values = {
            "Speed": (1500.0 + number, "{}"),
            "Running": (number % 2 == 1, None),
            "State": (number % 3, None),
            "Motor/Current": (3.5 + number, "{}"),
            "Motor/Temperature": (40.25 + number, "{}"),
        }
        for path, (value, _) in values.items():
            node = pump
            for step in path.split("/"):
                node = await node.get_child(f"{ns}:{step}")
            variant = (await node.read_data_value()).Value.VariantType
            await node.write_value(ua.Variant(value, variant))
            text = str(value).lower() if isinstance(value, bool) else str(value)
            EXPECTED[f"{where}/{path}"] = text
        speed = await pump.get_child(f"{ns}:Speed")
        await speed.add_property(sid(f"{where}.Speed.EURange"), "0:EURange", ua.Range(0.0, 3000.0))
        await speed.add_property(
            sid(f"{where}.Speed.EngineeringUnits"),
            "0:EngineeringUnits",
            ua.EUInformation(DisplayName=ua.LocalizedText("rpm"), UnitId=4877647),
        )
        running = await pump.get_child(f"{ns}:Running")
        await running.set_writable()
        if number == 3:  # an instance with one variable more: a DeviceModel of its own
            await _variable(
                pump, sid(f"{where}.Vibration"), f"{ns}:Vibration", 0.5, ua.VariantType.Float
            )
            EXPECTED[f"{where}/Vibration"] = "0.5"

    # Line1 holds variables itself: odd names, types the driver reads and types it does not
    odd = {
        "Temp °C": (21.5, ua.VariantType.Float, "21.5"),
        "Temp C": (22.25, ua.VariantType.Double, "22.25"),
        "Flow (m³/h)": (12.5, ua.VariantType.Double, "12.5"),
    }
    for name, (value, variant, text) in odd.items():
        await _variable(line1, sid(f"Line1.{name}"), f"{ns}:{name}", value, variant)
        EXPECTED[f"Plant/Line1/{name}"] = text
    mode = await line1.add_variable(
        sid("Line1.Mode"),
        f"{ns}:Mode",
        ua.Variant(1, ua.VariantType.Int32),
        datatype=mode_enum.nodeid,
    )
    assert mode is not None
    EXPECTED["Plant/Line1/Mode"] = "1"
    await _variable(line1, sid("Line1.Recipe"), f"{ns}:Recipe", ["a", "b"], ua.VariantType.String)
    SKIPPED["Plant/Line1/Recipe"] = "array"
    position = ua.Variant(ua.Point(X=1.0, Y=2.0), ua.VariantType.ExtensionObject)  # type: ignore[attr-defined]
    await line1.add_variable(
        sid("Line1.Position"), f"{ns}:Position", position, datatype=point.nodeid
    )
    SKIPPED["Plant/Line1/Position"] = "structure"
    hidden = await _variable(line1, sid("Line1.Hidden"), f"{ns}:Hidden", 7, ua.VariantType.Int32)
    for attribute in (ua.AttributeIds.AccessLevel, ua.AttributeIds.UserAccessLevel):
        await hidden.write_attribute(attribute, ua.DataValue(ua.Variant(0, ua.VariantType.Byte)))
    SKIPPED["Plant/Line1/Hidden"] = "not readable"
    await _variable(line1, sid("Line1.Owner"), f"{ns}:Owner", ua.NodeId(85), ua.VariantType.NodeId)
    SKIPPED["Plant/Line1/Owner"] = "EdgeCore"

    async def start() -> list[ua.Variant]:
        return []

    await line1.add_method(sid("Line1.Start"), f"{ns}:Start", start, [], [])
    SKIPPED["Plant/Line1/Start"] = "method"

    # two objects whose names become one: tank-a and tank-a-2
    for index, name in enumerate(("Tank A", "Tank-A")):
        tank = await plant.add_object(sid(f"Plant.Tank{index}"), f"{ns}:{name}")
        await _variable(
            tank,
            sid(f"Plant.Tank{index}.Level"),
            f"{ns}:Level",
            1.25 + index,
            ua.VariantType.Double,
        )
        EXPECTED[f"Plant/{name}/Level"] = str(1.25 + index)

    # every scalar type the driver reads, in an object of its own
    values = await plant.add_object(sid("Plant.Values"), f"{ns}:Values")
    typed: dict[str, tuple[Any, ua.VariantType, str]] = {
        "Int16": (-12, ua.VariantType.Int16, "-12"),
        "Byte": (200, ua.VariantType.Byte, "200"),
        "SByte": (-5, ua.VariantType.SByte, "-5"),
        "UInt32": (4_000_000_000, ua.VariantType.UInt32, "4000000000"),
        "Int64": (-9_000_000_000, ua.VariantType.Int64, "-9000000000"),
        "UInt64": (18_000_000_000, ua.VariantType.UInt64, "18000000000"),
        "Float": (10.1, ua.VariantType.Float, "10.1"),
        "Double": (0.125, ua.VariantType.Double, "0.125"),
        "Boolean": (True, ua.VariantType.Boolean, "true"),
        "String": ("hello-world", ua.VariantType.String, "hello-world"),
        "LocalizedText": (ua.LocalizedText("bonjour"), ua.VariantType.LocalizedText, "bonjour"),
        "QualifiedName": (ua.QualifiedName("Foo", 0), ua.VariantType.QualifiedName, "0:Foo"),
        "Guid": (GUID, ua.VariantType.Guid, str(GUID)),
        "DateTime": (STAMP, ua.VariantType.DateTime, "2026-01-02T03:04:05Z"),
        "ByteString": (b"\x01\xab", ua.VariantType.ByteString, "01ab"),
    }
    for name, (value, variant, text) in typed.items():
        await _variable(values, sid(f"Values.{name}"), f"{ns}:{name}", value, variant)
        EXPECTED[f"Plant/Values/{name}"] = text
    await values.add_variable(
        sid("Values.Duration"),
        f"{ns}:Duration",
        ua.Variant(2.5, ua.VariantType.Double),
        datatype=ua.NodeId(290),
    )
    EXPECTED["Plant/Values/Duration"] = "2.5"
    multi = await _variable(
        values, sid("Values.MultiState"), f"{ns}:MultiState", 2, ua.VariantType.UInt32
    )
    await multi.add_property(
        sid("Values.MultiState.EnumStrings"),
        "0:EnumStrings",
        ua.Variant([ua.LocalizedText(t) for t in ("Idle", "Busy", "Done")]),
    )
    EXPECTED["Plant/Values/MultiState"] = "2"
    slow = await _variable(values, sid("Values.Slow"), f"{ns}:Slow", 7.5, ua.VariantType.Double)
    await slow.write_attribute(
        ua.AttributeIds.MinimumSamplingInterval,
        ua.DataValue(ua.Variant(5000.0, ua.VariantType.Double)),
    )
    EXPECTED["Plant/Values/Slow"] = "7.5"

    # the second namespace: racks of channels, more than a thousand variables
    bulk = await server.nodes.objects.add_folder(ua.NodeId("Bulk", vendor), f"{vendor}:Bulk")
    for rack in range(RACKS):
        node = await bulk.add_object(
            ua.NodeId(1000 * (rack + 1), vendor), f"{vendor}:Rack{rack:02}"
        )
        for channel in range(CHANNELS):
            value = rack * 100 + channel + 0.25
            await _variable(
                node,
                ua.NodeId(1000 * (rack + 1) + channel + 1, vendor),
                f"{vendor}:Ch{channel:02}",
                value,
                ua.VariantType.Double,
            )
            EXPECTED[f"Bulk/Rack{rack:02}/Ch{channel:02}"] = str(value)


@asynccontextmanager
async def plant_server(
    url: str, *, renumber: bool = False
) -> AsyncIterator[tuple[Server, Wiretap]]:
    """The plant served at ``url`` until the block ends, with its :class:`Wiretap`."""
    server = Server()
    await server.init()
    server.set_endpoint(url)
    server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
    await _build(server, renumber)
    tap = Wiretap()
    _TAPS[server.iserver] = tap
    async with server:
        yield server, tap
