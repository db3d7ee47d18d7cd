"""The driver interface: what a protocol implements to become an edgedev mapper.

A driver is one connection to one device. The runtime owns scheduling, reporting, retries,
timeouts and the bus; a driver only moves values. Its docstrings are the specification for
third-party drivers, in the way bleak's ``BaseBleakClient`` is for its backends.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Generic, TypeVar, cast

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from edgedev.config._spec import DeviceSpec, PropertySpec
from edgedev.drivers._endpoints import Endpoints
from edgedev.twin._quality import Sample
from edgedev.twin._values import Value


class ProtocolConfig(BaseModel):
    """Base of a driver's ``spec.protocol.configData`` model.

    Subclasses add their connection settings; keys are camelCase in YAML and unknown keys are
    refused so that a typo is reported. ``timeout`` (milliseconds) bounds every connect, read
    and write of the device: a device that does not answer in time is marked offline.
    """

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, frozen=True, extra="forbid"
    )

    timeout: int = Field(3000, gt=0, description="Deadline of one operation, in milliseconds.")


class VisitorConfig(BaseModel):
    """Base of a driver's ``visitors.configData`` model (where a property lives)."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, frozen=True, extra="forbid"
    )


ProtocolT = TypeVar("ProtocolT", bound=ProtocolConfig)
"""A driver's protocol settings model (its ``protocol_config``)."""
VisitorT = TypeVar("VisitorT", bound=VisitorConfig)
"""A driver's visitor settings model (its ``visitor_config``)."""

Report = Callable[[str, Value | Sample], None]
"""Callback a pushing driver calls with ``(property name, value)`` for each pushed value."""


class Driver(abc.ABC, Generic[ProtocolT, VisitorT]):
    """One connection to one device over one protocol.

    Subclasses name their settings models twice, as type arguments and as class attributes
    (``class ModbusDriver(Driver[ModbusProtocol, ModbusVisitor])`` with ``protocol_config =
    ModbusProtocol``): the loader validates files with the class attributes, and the type
    arguments type what the driver is given (``self.device`` is a
    ``DeviceSpec[ModbusProtocol, ModbusVisitor]``, each property a
    ``PropertySpec[ModbusVisitor]``), so a driver reads ``self.config.port`` and
    ``prop.visitor.offset`` with no cast. Subclasses implement the four I/O methods. The runtime
    calls :meth:`connect`, :meth:`read`, :meth:`write` and :meth:`close` from one task per
    device, one at a time, each under the device's deadline (``configData.timeout``); for a
    driver that pushes values, :meth:`watch` runs in a task beside them while the connection
    lasts, so a read or a write may come while it watches.

    Class attributes:
        protocol_config: pydantic model of ``spec.protocol.configData``.
        visitor_config: pydantic model of ``visitors.configData``.
        streams: whether the driver serves ``type: STREAM`` properties (none of edgedev's
            drivers does yet: the loader refuses them with a message naming the driver).

    Errors: raise :class:`edgedev.DeviceError` (or let ``OSError``/``TimeoutError`` escape)
    when the device cannot be reached; the runtime then marks it offline, closes the driver
    and reconnects with backoff. A property that cannot be read this cycle may simply be left
    out of :meth:`read`'s result.

    Shared connections: ``self.endpoints`` is the runtime's :class:`~edgedev.drivers.Endpoints`
    registry (one per Mapper). A driver whose devices may share a connection (a gateway, a
    bus, a server with many devices) asks it for the endpoint's transport in :meth:`connect`
    and releases it in :meth:`close`, instead of opening a connection of its own.
    """

    protocol_config: ClassVar[type[ProtocolConfig]]
    visitor_config: ClassVar[type[VisitorConfig]]
    streams: ClassVar[bool] = False

    def __init__(
        self, device: DeviceSpec[ProtocolT, VisitorT], endpoints: Endpoints | None = None
    ) -> None:
        self.device = device
        """The device, resolved with this driver's settings models."""
        self.endpoints = endpoints if endpoints is not None else Endpoints()
        """Shared transports by endpoint (the Mapper's; a private one when none is given)."""

    @property
    def config(self) -> ProtocolT:
        """The device's validated protocol settings."""
        return self.device.config

    @classmethod
    def check_property(cls, prop: PropertySpec[VisitorT]) -> list[tuple[str, str]]:
        """Cross-field checks of one property, done when files are loaded.

        Return ``(field, message)`` pairs, ``field`` relative to ``visitors.configData`` (for
        example ``("offset", "offset 70000 is beyond 65535")``). The default finds nothing.
        """
        return []

    @classmethod
    def property_warnings(cls, prop: PropertySpec[VisitorT]) -> list[tuple[str, str]]:
        """What loads but deserves a look in one property, reported as warnings.

        Same pairs as :meth:`check_property` (for example a fractional ``scale`` on an INT
        property: :func:`edgedev.drivers.fractional_scale`). The default finds nothing.
        """
        return []

    @classmethod
    def held_value(cls, prop: PropertySpec[VisitorT], value: Value) -> Value:
        """The value ``prop`` reads back once ``value`` is written: what the device holds.

        Asked before a desired value is stored or written (by the twin agent, which loads the
        same files, the mapper's desired writer, its REST API and DMI's desired values, and
        ``edgedev validate``: :func:`edgedev.drivers.check_desired`), with a value that
        passed the type and range checks. A desired value the device would hold otherwise is
        refused, naming the value it would hold: it could never be reported back as desired.
        Pure, no I/O; called with the property of a file, not a connected device.

        The default: the device holds what it is given, through the value keys of a
        :class:`~edgedev.drivers.ValueConfig` visitor (``scale``, ``valueOffset``, a
        ``mapping``; the raw number kept as a float:
        :func:`~edgedev.drivers.held_through_rules`). A driver
        whose location holds less returns what a read would give after the write: an
        integer register under a ``scale`` rounds (22.55555 at scale 0.1 holds 22.6), a
        float32 keeps 7 digits, a text register pads to its length.

        Raises:
            ValueError: no value near it fits the location (out of an integer range); the
                message says why.
        """
        from edgedev.drivers._values import ValueConfig, held_through_rules  # imports us

        if isinstance(prop.visitor, ValueConfig):
            return held_through_rules(cast("PropertySpec[ValueConfig]", prop), value)
        return value

    @classmethod
    def check_device(cls, device: DeviceSpec[ProtocolT, VisitorT]) -> list[tuple[str, str]]:
        """Cross-property checks of one device; ``field`` relative to ``spec``."""
        return []

    def phase_key(self) -> str:
        """Where in its cycle the runtime reads the device.

        Devices with equal keys (and cycles) are read at the same moments, so that a shared
        transport can batch their reads.

        The default, the device id, spreads a fleet over its cycle so that it does not read
        in one burst; a driver whose endpoint takes one request for many devices returns the
        endpoint (OPC-UA: the server URL).
        """
        return self.device.id

    def pushes(self, prop: PropertySpec[VisitorT]) -> bool:
        """Whether ``prop`` arrives by push (:meth:`watch`) rather than by polling."""
        return False

    @abc.abstractmethod
    async def connect(self) -> None:
        """Open the connection to the device."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Close the connection; must not raise, and may be called when not connected."""

    @abc.abstractmethod
    async def read(
        self, properties: Sequence[PropertySpec[VisitorT]]
    ) -> Mapping[str, Value | Sample]:
        """Read ``properties`` with as few requests as the protocol allows.

        Returns:
            The value of each property read, by name. Values are Python values of the
            property's type (``int``, ``float``, ``bool``, ``str``, ``bytes``), Good and
            measured as they were read; a :class:`~edgedev.twin.Sample` says otherwise (its
            quality, when the device measured it). A Bad sample (the device says the value is
            no good, or answered that property's request with an exception) is counted and
            shown as the property's state, not reported as a value.
        """

    @abc.abstractmethod
    async def write(self, prop: PropertySpec[VisitorT], value: Value) -> None:
        """Write ``value`` (already parsed, typed and range-checked) to ``prop``."""

    async def watch(self, properties: Sequence[PropertySpec[VisitorT]], report: Report) -> None:
        """Deliver pushed values of ``properties`` by calling ``report`` until cancelled.

        Only called with properties for which :meth:`pushes` is true. Returning or raising
        means the device was lost. The default never pushes anything.

        ``report`` never blocks: it queues the value (a bare value, or a
        :class:`~edgedev.twin.Sample` with its quality and source time) with the time of the
        call and wakes the runner. Every value reported is delivered, in order: values of
        different properties reported between two wake-ups of the runner share one report,
        and a property reported twice gets a report for each value, so a driver need not
        yield between two calls. The queue holds :data:`~edgedev.mapper.PUSH_QUEUE_LIMIT`
        values; if the runner falls that far behind, the oldest are dropped and counted.
        """
        raise NotImplementedError(f"{type(self).__name__} does not push values")


AnyDriver = Driver[Any, Any]
"""A driver of any protocol: what the registry holds and the runtime runs.

The runtime picks the driver class by protocol name and gives it the device that the loader
validated with that same class's models, a link the type checker cannot follow: the type
arguments are left open here, once, instead of a cast in every driver.
"""
