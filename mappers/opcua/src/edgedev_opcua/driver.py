"""The OPC-UA driver: one Read request per cycle, or subscriptions; typed writes (asyncua).

This module does not import asyncua, so that loading the driver to validate files stays
fast; the live half is :mod:`edgedev_opcua.session`, imported when a device connects.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from edgedev.drivers import (
    DeviceError,
    Driver,
    Endpoints,
    Expectations,
    Lease,
    Raw,
    Report,
    ValueRules,
    WriteRefused,
    value_problems,
    value_warnings,
)
from edgedev.twin import PropertyType, Sample, Value
from edgedev_opcua.config import (
    OpcuaDeviceSpec,
    OpcuaPropertySpec,
    OpcuaProtocol,
    OpcuaVisitor,
)
from edgedev_opcua.convert import (
    Builtin,
    compatible,
    from_opcua,
    number_from_opcua,
    number_to_opcua,
    to_opcua,
)

if TYPE_CHECKING:
    from edgedev_opcua.endpoint import OpcuaEndpoint
    from edgedev_opcua.session import Session


class OpcuaDriver(Driver[OpcuaProtocol, OpcuaVisitor]):
    """OPC-UA through asyncua, in poll or subscribe mode (``configData.mode``).

    Every device on one server (same URL, security and identity) shares one session, the
    endpoint's (:class:`~edgedev_opcua.endpoint.OpcuaEndpoint`). Poll: the properties due in
    a cycle, of every device on the server due at that moment, are read with one Read request
    (more only where the server's ``MaxNodesPerRead`` says so). Subscribe: the properties are
    monitored items in the endpoint's subscription of their ``collectCycle`` (its publishing
    and sampling interval), shared by every device with that cycle and split where the server's
    limits or ours say (see :mod:`edgedev_opcua.subscriptions`); the server pushes changes and
    the driver reports them through :meth:`watch`. Either way writes go out as the node's
    own type, which the driver reads from the server once per connection.
    """

    protocol_config = OpcuaProtocol
    visitor_config = OpcuaVisitor

    def __init__(self, device: OpcuaDeviceSpec, endpoints: Endpoints | None = None) -> None:
        super().__init__(device, endpoints)
        self._session: Session | None = None
        self._lease: Lease[OpcuaEndpoint] | None = None
        self._expect = Expectations(device.properties) or None

    @classmethod
    def check_property(cls, prop: OpcuaPropertySpec) -> list[tuple[str, str]]:
        """Check the node is named once, ``dataType`` can hold the property, the value keys."""
        visitor = prop.visitor
        problems = visitor.problems()
        if problems:
            return problems
        data_type = visitor.data_type
        # a mapping or a bit reads a number: the node is an integer one, as for an INT;
        # transforms make a number of any numeric node (a FLOAT from a scaled UInt16)
        numbered = visitor.mapping is not None or visitor.bit is not None
        type_ = PropertyType.INT if numbered else prop.type
        transformed = not visitor.transform.identity and prop.type.is_number
        if data_type is not None and not (
            compatible(type_, data_type)
            or (transformed and _raw_kind(data_type) in (Raw.INTEGER, Raw.FLOAT))
        ):
            return [
                (
                    "dataType",
                    f"a {prop.type} property cannot live in an OPC-UA {data_type.opcua_name} node",
                )
            ]
        found = value_problems(prop, _raw_kind(data_type))
        if found:
            return found
        if visitor.bit is not None and prop.writable and prop.desired is not None:
            return [("bit", "a bit of an OPC-UA node is read-only: a write replaces the node")]
        return []

    @classmethod
    def held_value(cls, prop: OpcuaPropertySpec, value: Value) -> Value:
        """What the node reads back after ``value`` is written, when ``dataType`` names it.

        Written and read as the driver does, as a node of that type (an integer node under a
        ``scale`` rounds, a ``Float`` keeps 7 digits). Without ``dataType`` only the server
        knows the node's type: the value keys alone say what it holds (a float).

        Raises:
            ValueError: the node's type cannot hold the value, or the keys cannot write it.
        """
        builtin = prop.visitor.data_type
        if builtin is None:
            return super().held_value(prop, value)
        if prop.visitor.plain:
            return from_opcua(to_opcua(value, builtin), prop.type, builtin)
        rules = ValueRules("", prop)
        if rules.bit is not None or rules.transform.refusal is not None:
            raise ValueError(rules.transform.refusal or "a bit of a node is read-only")
        try:
            raw = number_to_opcua(rules.raw(value), builtin)
        except WriteRefused as exc:
            raise ValueError(str(exc)) from None
        return rules.value(number_from_opcua(raw, builtin))

    @classmethod
    def property_warnings(cls, prop: OpcuaPropertySpec) -> list[tuple[str, str]]:
        """Readings EdgeCore refuses: an INT with fractions, mapping texts beyond its charset."""
        return value_warnings(prop)

    @classmethod
    def check_device(cls, device: OpcuaDeviceSpec) -> list[tuple[str, str]]:
        """Check security, login and certificate settings together."""
        config = device.config
        return [(f"protocol.configData.{field}", message) for field, message in config.problems()]

    def phase_key(self) -> str:
        """Devices on one server read in the same phase of their cycle, so reads batch."""
        return self.config.url

    def pushes(self, prop: OpcuaPropertySpec) -> bool:
        """In subscribe mode every property is pushed by the server."""
        return self.config.mode == "subscribe"

    @property
    def requests(self) -> int:
        """Read requests sent for property values by the endpoint's session (all devices)."""
        return self._session.requests if self._session else 0

    @property
    def session(self) -> Session:
        """The live session.

        Raises:
            DeviceError: not connected.
        """
        if self._session is None:
            raise DeviceError(f"{self.config.url}: not connected")
        return self._session

    async def connect(self) -> None:
        """Join the server's shared session; resolve the nodes, their types; monitor them."""
        from edgedev_opcua.endpoint import OpcuaEndpoint, endpoint_key
        from edgedev_opcua.session import Session

        cfg = self.config
        if cfg.mode == "subscribe" and not self.endpoints.running:
            raise DeviceError(
                f"{cfg.url}: subscribe mode needs the shared endpoints running "
                "(async with Endpoints(), as the Mapper does)"
            )
        drops = self.endpoints.drops
        self._lease = await self.endpoints.acquire(
            endpoint_key(cfg), lambda: OpcuaEndpoint.open(cfg, drops)
        )
        try:
            self._session = await Session.open(self.device, cfg, self._lease.transport)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Leave the shared session (closed by its last device); never raises."""
        session, self._session = self._session, None
        lease, self._lease = self._lease, None
        if session is not None:
            await session.close()
        if lease is not None:
            await lease.release()

    async def read(self, properties: Sequence[OpcuaPropertySpec]) -> Mapping[str, Value | Sample]:
        """Read the values of ``properties`` with one Read request, as samples.

        Each keeps its status code's class (Good, Uncertain, Bad) and its source timestamp.
        """
        values = await self.session.read(properties)
        if self._expect is not None:
            self._expect.check(values)
        return values

    async def write(self, prop: OpcuaPropertySpec, value: Value) -> None:
        """Write ``value`` as the node's own type (see :meth:`Session.write`)."""
        await self.session.write(prop, value)

    async def watch(self, properties: Sequence[OpcuaPropertySpec], report: Report) -> None:
        """Report the values the server publishes until the connection is lost."""
        await self.session.watch(properties, report)


def _raw_kind(data_type: Builtin | None) -> Raw:
    """What a node of ``data_type`` holds (a number of either kind when it is not given)."""
    if data_type is None:
        return Raw.NUMBER
    if data_type.is_integer:
        return Raw.INTEGER
    if data_type in (Builtin.FLOAT, Builtin.DOUBLE):
        return Raw.FLOAT
    return Raw.BOOLEAN if data_type is Builtin.BOOLEAN else Raw.TEXT
