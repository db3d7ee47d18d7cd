"""Resolved device descriptions: what the runtime and drivers work from.

A :class:`DeviceSpec` joins a Device with its DeviceModel and with the driver's typed view of
the protocol settings, so that nothing downstream looks at raw YAML again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Generic

from pydantic import BaseModel
from typing_extensions import TypeVar

from edgedev.config._crd import AccessMode, DeviceMethod, PushMethod, StateReport
from edgedev.twin._values import PropertyType

ConfigT_co = TypeVar("ConfigT_co", bound=BaseModel, covariant=True, default=BaseModel)
"""The type of a device's protocol settings: its driver's ``protocol_config``."""
VisitorT_co = TypeVar("VisitorT_co", bound=BaseModel, covariant=True, default=BaseModel)
"""The type of a property's visitor settings: its driver's ``visitor_config``."""


@dataclass(frozen=True, slots=True)
class PropertySpec(Generic[VisitorT_co]):
    """One property of one device, fully resolved.

    Generic over the type of its visitor settings: a driver sees
    ``PropertySpec[ModbusVisitor]``; code that serves every protocol sees the plain
    ``PropertySpec`` (visitor settings as a ``BaseModel``).

    Attributes:
        name: the property name, unique within the device.
        type: the value type from the DeviceModel.
        access_mode: ``ReadOnly`` properties refuse writes.
        minimum: lowest value a write may set (numbers only), or ``None``.
        maximum: highest value a write may set (numbers only), or ``None``.
        unit: unit of measure, informative.
        description: text from the DeviceModel.
        collect_cycle: seconds between two reads of the device.
        report_cycle: seconds between two reports of the last value.
        report_to_cloud: KubeEdge's flag, carried through.
        report_on_change: report as soon as the value changes (beyond ``deadband``).
        deadband: smallest change of a number that counts as a change.
        desired: the desired value from the Device file, as its wire string.
        visitor: the driver's validated ``visitors.configData``.
        push_method: KubeEdge's ``pushMethod``, where the readings also go (``edgedev.sinks``).
        customized_values: KubeEdge's free-form ``customizedValues`` from the visitor.
    """

    name: str
    type: PropertyType
    visitor: VisitorT_co
    access_mode: AccessMode = AccessMode.READ_WRITE
    minimum: float | None = None
    maximum: float | None = None
    unit: str = ""
    description: str = ""
    collect_cycle: float = 1.0
    report_cycle: float = 1.0
    report_to_cloud: bool = True
    report_on_change: bool = False
    deadband: float = 0.0
    desired: str | None = None
    push_method: PushMethod | None = None
    customized_values: dict[str, Any] | None = None

    @property
    def writable(self) -> bool:
        """Whether the DeviceModel allows writes to this property."""
        return self.access_mode is AccessMode.READ_WRITE


@dataclass(frozen=True, slots=True)
class DeviceCommand:
    """A command of a DeviceModel, as KubeEdge's DMI carries it (``DeviceModelSpec.commands``).

    The Kubernetes resource has no such field, so EdgeCore has none to send today; a model that
    carries them over DMI keeps them, and they go back out with it.

    Attributes:
        name: the command's name.
        url: where the command is accessed.
        method: its method (such as an HTTP method).
        status_code: the status codes it may return.
        parameters: the parameters it carries.
        response: an example response.
    """

    name: str
    url: str = ""
    method: str = ""
    status_code: tuple[str, ...] = ()
    parameters: tuple[str, ...] = ()
    response: bytes = b""


_last_by_name: tuple[tuple[Any, ...], dict[str, Any]] = ((), {})
"""The last property tuple a :class:`DeviceSpec` indexed by name, with its index."""


@dataclass(frozen=True, slots=True)
class DeviceSpec(Generic[ConfigT_co, VisitorT_co]):
    """One device, fully resolved.

    Generic over the types of its protocol and visitor settings, those of its driver: a
    driver declared as ``Driver[ModbusProtocol, ModbusVisitor]`` is given a
    ``DeviceSpec[ModbusProtocol, ModbusVisitor]`` and reads typed settings with no cast.
    The loader, which picks the driver by protocol name, produces the plain ``DeviceSpec``
    (settings as ``BaseModel``); the runtime hands each to the driver whose models
    validated it.

    Attributes:
        namespace: Kubernetes namespace (``default`` when the file names none).
        name: the Device's name.
        model: the DeviceModel's name.
        protocol: the protocol name, which selects the driver.
        config: the driver's validated ``spec.protocol.configData``.
        properties: the device's properties, in file order.
        node_name: the edge node the device is bound to, if any.
        source: the file the Device came from.
        timeout_ms: the deadline of one operation (``configData.timeout``), resolved by the
            loader from the driver's typed settings.
        methods: KubeEdge's ``spec.methods`` (named groups of properties that a client may
            write through the REST API), checked: each names properties of the device.
        state_report: KubeEdge's ``spec.stateReport``, if given.
        commands: the DeviceModel's commands, when it came over DMI with some.
    """

    namespace: str
    name: str
    model: str
    protocol: str
    config: ConfigT_co
    properties: tuple[PropertySpec[VisitorT_co], ...]
    node_name: str | None = None
    source: str = ""
    timeout_ms: int = 3000
    methods: tuple[DeviceMethod, ...] = ()
    state_report: StateReport | None = None
    commands: tuple[DeviceCommand, ...] = ()
    _by_name: dict[str, PropertySpec[VisitorT_co]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        global _last_by_name
        props = self.properties
        by_name = _last_by_name[1] if _last_by_name[0] is props else None
        if by_name is None:  # a fleet's devices share their property tuple: and this (read only)
            by_name = {p.name: p for p in props}
            _last_by_name = (props, by_name)
        object.__setattr__(self, "_by_name", by_name)

    @property
    def properties_by_name(self) -> Mapping[str, PropertySpec[VisitorT_co]]:
        """The properties by name (read only)."""
        return self._by_name

    @property
    def id(self) -> str:
        """``namespace/name``, the device's identity on the bus."""
        return f"{self.namespace}/{self.name}"

    def property(self, name: str) -> PropertySpec[VisitorT_co]:
        """The property called ``name``.

        Raises:
            KeyError: the device has no such property.
        """
        return self._by_name[name]

    def has_property(self, name: str) -> bool:
        """Whether the device has a property called ``name``."""
        return name in self._by_name
