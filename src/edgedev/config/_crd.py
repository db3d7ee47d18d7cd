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

DEFAULT_CYCLE_MS = 1000
"""A property's ``collectCycle`` when it is 0 or left out (mapper-framework's
``DefaultCollectCycle``, ``pkg/common/const.go``)."""
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


def _null_is_empty(value: Any) -> Any:
    """``configData:`` left empty is null in YAML (and pruned by the API server): no settings."""
    return {} if value is None else value


class Visitor(CamelModel):
    """Where a property lives on the device (protocol specific ``configData``)."""

    protocol_name: str = ""
    config_data: dict[str, Any] = Field(default_factory=dict)

    @field_validator("config_data", mode="before")
    @classmethod
    def _null_config(cls, value: Any) -> Any:
        return _null_is_empty(value)


class ModelProperty(CamelModel):
    """One property a kind of device offers (``DeviceModel.spec.properties[]``).

    ``visitors`` (KubeEdge v1.22) are the defaults of the Devices' visitors: a Device's own
    ``visitors.configData`` keys override the model's, key by key, as EdgeCore merges them.
    """

    name: str = Field(min_length=1)
    description: str = ""
    type: PropertyType
    access_mode: AccessMode = AccessMode.READ_WRITE
    minimum: str | None = None
    maximum: str | None = None
    unit: str = ""
    visitors: Visitor | None = None

    @field_validator("type", mode="before")
    @classmethod
    def _upper_type(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("minimum", "maximum", mode="before")
    @classmethod
    def _bounds_text(cls, value: Any) -> Any:
        return _to_text(value)


class DeviceModelSpec(CamelModel):
    """``DeviceModel.spec``.

    ``protocolConfigData`` (KubeEdge v1.22) holds defaults of the Devices' protocol
    ``configData``; a Device's own keys override them.
    """

    protocol: str = ""
    protocol_config_data: dict[str, Any] = Field(default_factory=dict)
    properties: list[ModelProperty] = Field(default_factory=list)

    @field_validator("protocol_config_data", mode="before")
    @classmethod
    def _null_config(cls, value: Any) -> Any:
        return _null_is_empty(value)


class DeviceModelResource(CamelModel):
    """A ``DeviceModel``: the reusable template of a kind of device."""

    model_config = ConfigDict(extra="ignore")

    api_version: Literal["devices.kubeedge.io/v1beta1"]
    kind: Literal["DeviceModel"]
    metadata: ObjectMeta
    spec: DeviceModelSpec


class Desired(CamelModel):
    """The value an operator wants a property to have."""

    model_config = ConfigDict(extra="ignore")

    value: str | None = None

    @field_validator("value", mode="before")
    @classmethod
    def _value_text(cls, value: Any) -> Any:
        return _to_text(value)


class MqttPush(CamelModel):
    """``pushMethod.mqtt``: publish each value to a broker."""

    address: str = ""
    topic: str = ""
    qos: int = Field(0, ge=0, le=2)
    retained: bool = False


class HttpPush(CamelModel):
    """``pushMethod.http``: POST each value."""

    host_name: str = ""
    port: int = Field(80, ge=1, le=65535)
    request_path: str = ""
    timeout: int = Field(0, ge=0)


class OtelPush(CamelModel):
    """``pushMethod.otel``: export each value as an OpenTelemetry metric."""

    endpoint_url: str = Field("", alias="endpointURL")


class Influxdb2ClientConfig(CamelModel):
    """``dbMethod.influxdb2.influxdb2ClientConfig``."""

    url: str = ""
    org: str = ""
    bucket: str = ""


class Influxdb2DataConfig(CamelModel):
    """``dbMethod.influxdb2.influxdb2DataConfig``."""

    measurement: str = ""
    tag: dict[str, str] = Field(default_factory=dict)
    field_key: str = ""


class Influxdb2(CamelModel):
    """``dbMethod.influxdb2``."""

    influxdb2_client_config: Influxdb2ClientConfig = Field(default_factory=Influxdb2ClientConfig)
    influxdb2_data_config: Influxdb2DataConfig = Field(default_factory=Influxdb2DataConfig)


class RedisClientConfig(CamelModel):
    """``dbMethod.redis.redisClientConfig``."""

    addr: str = ""
    db: int = Field(0, ge=0)
    poolsize: int = Field(0, ge=0)
    min_idle_conns: int = Field(0, ge=0)


class Redis(CamelModel):
    """``dbMethod.redis``."""

    redis_client_config: RedisClientConfig = Field(default_factory=RedisClientConfig)


class TdengineClientConfig(CamelModel):
    """``dbMethod.TDEngine.TDEngineClientConfig``."""

    addr: str = ""
    db_name: str = ""


class Tdengine(CamelModel):
    """``dbMethod.TDEngine``."""

    client_config: TdengineClientConfig = Field(
        default_factory=TdengineClientConfig, alias="TDEngineClientConfig"
    )


class MysqlClientConfig(CamelModel):
    """``dbMethod.mysql.mysqlClientConfig``."""

    addr: str = ""
    database: str = ""
    user_name: str = ""


class Mysql(CamelModel):
    """``dbMethod.mysql``."""

    mysql_client_config: MysqlClientConfig = Field(default_factory=MysqlClientConfig)


class DbMethod(CamelModel):
    """``pushMethod.dbMethod``: store each value in a database."""

    influxdb2: Influxdb2 | None = None
    redis: Redis | None = None
    tdengine: Tdengine | None = Field(None, alias="TDEngine")
    mysql: Mysql | None = None

    @property
    def names(self) -> list[str]:
        """The databases named, as the YAML spells them."""
        spelled = {"influxdb2": "influxdb2", "redis": "redis", "tdengine": "TDEngine"}
        spelled["mysql"] = "mysql"
        return [key for name, key in spelled.items() if getattr(self, name) is not None]


class PushMethod(CamelModel):
    """``pushMethod`` of a Device property: where else each value goes (KubeEdge v1beta1)."""

    mqtt: MqttPush | None = None
    http: HttpPush | None = None
    otel: OtelPush | None = None
    db_method: DbMethod | None = None
    anomaly_detection: dict[str, Any] | None = None

    @property
    def names(self) -> list[str]:
        """The targets named (``mqtt``, ``dbMethod.redis`` ...)."""
        found = [n for n in ("mqtt", "http", "otel") if getattr(self, n) is not None]
        if self.db_method is not None:
            found += [f"dbMethod.{n}" for n in self.db_method.names]
        if self.anomaly_detection is not None:
            found.append("anomalyDetection")
        return found


class DeviceProperty(CamelModel):
    """One property of a Device instance (``Device.spec.properties[]``).

    ``collectCycle`` and ``reportCycle`` are milliseconds; a ``collectCycle`` of 0 is 1 s (as
    upstream's mapper has it), a ``reportCycle`` of 0 (or none) the collect cycle. ``visitors``
    may be left out when the DeviceModel's property gives them. ``reportToCloud`` left out is
    true in a file (over DMI, EdgeCore sends false for it). ``reportOnChange`` and ``deadband``
    here are the deprecated place of edgedev's extensions (the upstream CRD refuses them): they
    belong in ``visitors.configData``.
    """

    name: str = Field(min_length=1)
    desired: Desired | None = None
    collect_cycle: int = Field(DEFAULT_CYCLE_MS, ge=0)
    report_cycle: int | None = Field(None, ge=0)
    report_to_cloud: bool = True
    visitors: Visitor | None = None
    push_method: PushMethod | None = None
    report_on_change: bool | None = None
    deadband: float | None = Field(None, ge=0)


class Extensions(CamelModel):
    """edgedev's keys inside ``visitors.configData``, taken out before the driver's keys.

    Attributes:
        report_on_change: report a value as soon as it changes (beyond ``deadband``).
        deadband: smallest change of a number that counts as a change.
        customized_values: KubeEdge's free-form ``customizedValues``, kept for drivers.
    """

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, frozen=True, extra="ignore"
    )

    report_on_change: bool = False
    deadband: float = Field(0.0, ge=0)
    customized_values: dict[str, Any] | None = None


EXTENSION_KEYS = ("reportOnChange", "deadband", "customizedValues")
"""Keys of ``visitors.configData`` that edgedev reads itself (see :class:`Extensions`)."""


class ModelRef(CamelModel):
    """``spec.deviceModelRef``."""

    name: str = Field(min_length=1)


class ProtocolRef(CamelModel):
    """``spec.protocol``: the protocol and its connection settings."""

    protocol_name: str = Field(min_length=1)
    config_data: dict[str, Any] = Field(default_factory=dict)

    @field_validator("config_data", mode="before")
    @classmethod
    def _null_config(cls, value: Any) -> Any:
        return _null_is_empty(value)


class DeviceMethod(CamelModel):
    """``spec.methods[]``: a named group of properties (KubeEdge's device methods)."""

    name: str = Field(min_length=1)
    description: str = ""
    property_names: list[str] = Field(default_factory=list)


class StateReport(CamelModel):
    """``spec.stateReport`` (KubeEdge v1.23): whether the device's state is reported, how often.

    ``reportCycle`` is milliseconds between two reports of the state (0 or none: 1 s, as
    upstream's mapper has it). In a file, ``reportToCloud`` left out is true (edgedev's agent and
    tools need the states); over DMI, EdgeCore sends false for it, and the state is not reported.
    """

    report_cycle: int | None = Field(None, ge=0)
    report_to_cloud: bool = True


class DeviceSpecModel(CamelModel):
    """``Device.spec``."""

    device_model_ref: ModelRef
    node_name: str | None = None
    protocol: ProtocolRef
    properties: list[DeviceProperty] = Field(default_factory=list)
    methods: list[DeviceMethod] = Field(default_factory=list)
    state_report: StateReport | None = None

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
