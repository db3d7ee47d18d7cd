"""KubeEdge ``devices.kubeedge.io/v1beta1`` resources as pydantic models.

These mirror the YAML users write. Fields that KubeEdge defines but edgedev does not use are
accepted and ignored; anything else is refused, so a typo is reported instead of lost.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
)
from pydantic.alias_generators import to_camel

from edgedev.twin._values import PropertyType

SHARED_PROPERTIES = "edgedev.shared_properties"
"""Validation context key of a dict in which identical Device property lists are interned."""
API_GROUP = "devices.kubeedge.io"
API_VERSION = f"{API_GROUP}/v1beta1"
_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"


class CamelModel(BaseModel):
    """Base of every configuration model: camelCase keys as in Kubernetes, frozen, strict keys."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, frozen=True, extra="forbid"
    )


class AccessMode(StrEnum):
    """Whether a property may be written through its desired value."""

    READ_WRITE = "ReadWrite"
    READ_ONLY = "ReadOnly"


def _to_text(value: Any) -> Any:
    """KubeEdge keeps numbers such as ``minimum`` as strings; accept YAML numbers too."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


class ObjectMeta(BaseModel):
    """The part of Kubernetes ``metadata`` that edgedev reads."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    name: str = Field(min_length=1, max_length=253, pattern=_NAME_PATTERN)
    namespace: str = Field("default", min_length=1, max_length=63, pattern=_NAME_PATTERN)
    labels: dict[str, str] = Field(default_factory=dict)


class ModelProperty(CamelModel):
    """One property a kind of device offers (``DeviceModel.spec.properties[]``)."""

    name: str = Field(min_length=1)
    description: str = ""
    type: PropertyType
    access_mode: AccessMode = AccessMode.READ_WRITE
    minimum: str | None = None
    maximum: str | None = None
    unit: str = ""

    @field_validator("type", mode="before")
    @classmethod
    def _upper_type(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("minimum", "maximum", mode="before")
    @classmethod
    def _bounds_text(cls, value: Any) -> Any:
        return _to_text(value)


class DeviceModelSpec(CamelModel):
    """``DeviceModel.spec``."""

    protocol: str = ""
    properties: list[ModelProperty] = Field(default_factory=list)


class DeviceModelResource(CamelModel):
    """A ``DeviceModel``: the reusable template of a kind of device."""

    model_config = ConfigDict(extra="ignore")

    api_version: Literal["devices.kubeedge.io/v1beta1"]
    kind: Literal["DeviceModel"]
    metadata: ObjectMeta
    spec: DeviceModelSpec


class Visitor(CamelModel):
    """Where a property lives on the device (protocol specific ``configData``)."""

    protocol_name: str = ""
    config_data: dict[str, Any] = Field(default_factory=dict)


class Desired(CamelModel):
    """The value an operator wants a property to have."""

    model_config = ConfigDict(extra="ignore")

    value: str | None = None

    @field_validator("value", mode="before")
    @classmethod
    def _value_text(cls, value: Any) -> Any:
        return _to_text(value)


class DeviceProperty(CamelModel):
    """One property of a Device instance (``Device.spec.properties[]``).

    ``collectCycle`` and ``reportCycle`` are milliseconds. ``reportOnChange`` and ``deadband``
    are edgedev extensions: report a value as soon as it changes by more than ``deadband``.
    """

    name: str = Field(min_length=1)
    desired: Desired | None = None
    collect_cycle: int = Field(1000, gt=0)
    report_cycle: int | None = Field(None, gt=0)
    report_to_cloud: bool = True
    visitors: Visitor = Field(default_factory=Visitor)
    report_on_change: bool = False
    deadband: float = Field(0.0, ge=0)
    # KubeEdge fields that edgedev accepts without using:
    push_method: Any = None


class ModelRef(CamelModel):
    """``spec.deviceModelRef``."""

    name: str = Field(min_length=1)


class ProtocolRef(CamelModel):
    """``spec.protocol``: the protocol and its connection settings."""

    protocol_name: str = Field(min_length=1)
    config_data: dict[str, Any] = Field(default_factory=dict)


class DeviceSpecModel(CamelModel):
    """``Device.spec``."""

    device_model_ref: ModelRef
    node_name: str | None = None
    protocol: ProtocolRef
    properties: list[DeviceProperty] = Field(default_factory=list)
    # KubeEdge fields that edgedev accepts without using:
    methods: Any = None

    @field_validator("properties", mode="wrap")
    @classmethod
    def _shared_properties(
        cls, value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo
    ) -> Any:
        """Validate a property list once per distinct list when the loader asks for it.

        A fleet's Devices repeat the same properties: with a dict under
        :data:`SHARED_PROPERTIES` in the validation context, equal lists (the same YAML
        values of the same types, which ``repr`` tells apart) share one validated list.
        """
        cache = info.context.get(SHARED_PROPERTIES) if isinstance(info.context, dict) else None
        if cache is None or not isinstance(value, list):
            return handler(value)
        key = repr(value)
        if "..." in key:
            return handler(value)  # a self-referencing list: not worth a key
        found = cache.get(key)
        if found is None:
            found = cache[key] = handler(value)
        return found


class DeviceResource(CamelModel):
    """A ``Device``: one instance of a DeviceModel, with its protocol settings."""

    model_config = ConfigDict(extra="ignore")

    api_version: Literal["devices.kubeedge.io/v1beta1"]
    kind: Literal["Device"]
    metadata: ObjectMeta
    spec: DeviceSpecModel
