"""The MQTT ``configData`` schemas: KubeEdge's proposal as written, and edgedev's keys.

KubeEdge's proposal of a common MQTT mapper (kubeedge/kubeedge
``docs/proposals/sig-device-iot/provide-a-commom-mqtt-mapper.md``, lines 103-153) puts the
broker in the protocol (``ip``, ``port``) and everything else in each property's visitor:
``topic``, ``qos``, ``retain``, and the client's ``clientId``, ``username``, ``password``,
``cleanSession``, ``keepAlive``. kubeedge/mappers-go's copy names the broker ``brokerURL``
(``mappers/device-v1beta1/mqtt-mapper/driver/devicetype.go:29-39``). Both load here.

A device is one connection to its broker, so the client settings of its properties must agree;
given in the protocol, they hold for every property.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import Field, field_validator, model_validator

from edgedev.bus import BrokerURL
from edgedev.drivers import DeviceSpec, PropertySpec, ProtocolConfig, VisitorConfig
from edgedev_mqtt.payload import Path, parse_path

CLIENT_KEYS = ("clientId", "username", "password", "keepAlive", "cleanSession")
"""Visitor keys that are settings of the device's connection, not of the property."""


class _Client(VisitorConfig):
    """Settings of the MQTT client: in the protocol, or (as the proposal has them) per property."""

    client_id: str | None = Field(None, max_length=128)
    username: str | None = None
    password: str | None = Field(None, repr=False)
    keep_alive: int | None = Field(None, ge=5, le=65535)
    clean_session: bool | None = None


class MqttProtocol(ProtocolConfig):
    """``spec.protocol.configData`` of an MQTT device: the broker it publishes to.

    ``ip`` and ``port`` (1883) as the proposal has them, or ``brokerURL``
    (``mqtt://HOST:PORT``, ``mqtts://`` for TLS; ``tcp://`` and ``ssl://`` too) as mappers-go
    has it. The client: ``clientId``, ``username``, ``password`` or ``passwordFile``,
    ``keepAlive`` (seconds, 30). TLS, as the mapper's own bus takes it: ``tls: true`` (or an
    ``mqtts://`` URL), ``caFile``, ``certFile``, ``keyFile``, ``tlsInsecure``.
    """

    ip: str | None = None
    port: int | None = Field(None, ge=1, le=65535)
    broker_url: str | None = Field(None, alias="brokerURL")
    tls: bool = False
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    tls_insecure: bool = False
    client_id: str | None = Field(None, max_length=128, alias="clientID")
    username: str | None = None
    password: str | None = Field(None, repr=False)
    password_file: str | None = None
    keep_alive: int | None = Field(None, ge=5, le=65535)

    @model_validator(mode="before")
    @classmethod
    def _client_id_spelling(cls, data: Any) -> Any:
        """``clientId`` (the proposal's visitor spelling) for ``clientID`` (mappers-go's)."""
        if isinstance(data, dict) and "clientId" in data and "clientID" not in data:
            data = {("clientID" if k == "clientId" else k): v for k, v in data.items()}
        return data

    @model_validator(mode="after")
    def _one_broker(self) -> MqttProtocol:
        if self.broker_url is None and self.ip is None:
            raise ValueError("give the broker: ip (and port), or brokerURL")
        if self.broker_url is not None and (self.ip is not None or self.port is not None):
            raise ValueError("give either brokerURL or ip and port, not both")
        if self.broker_url is not None:
            BrokerURL.parse(self.broker_url)  # ValueError names what is wrong
        else:
            BrokerURL.parse(f"mqtt://{self.host_port}")
        return self

    @property
    def host_port(self) -> str:
        """``ip:port`` (``[ip]:port`` for IPv6)."""
        host = f"[{self.ip}]" if self.ip and ":" in self.ip else self.ip
        return f"{host}:{self.port or 1883}"


class MqttVisitor(_Client):
    """``visitors.configData`` of an MQTT property.

    ``topic``: where the device publishes the value (no wildcards). ``jsonPath``: where the
    value is in a JSON payload (``$.sensor.temperature``; without it the payload is the value).
    ``commandTopic``: where a write goes (default: ``topic`` + ``/set``). ``qos`` (0) of the
    subscription and of writes, ``retain`` (false) of writes. ``clientId``, ``username``,
    ``password``, ``keepAlive``, ``cleanSession``: the client's, as the proposal has them.
    """

    topic: str = Field(min_length=1, max_length=65535)
    json_path: str | None = None
    command_topic: str | None = Field(None, min_length=1)
    qos: int = Field(0, ge=0, le=2)
    retain: bool = False

    @field_validator("topic", "command_topic")
    @classmethod
    def _no_wildcards(cls, value: str | None) -> str | None:
        if value is not None and ("+" in value or "#" in value):
            raise ValueError(f"{value!r}: a property's topic names one topic, no + or # wildcard")
        return value

    @field_validator("json_path")
    @classmethod
    def _path(cls, value: str | None) -> str | None:
        if value is not None:
            parse_path(value)  # ValueError names what is wrong
        return value

    @property
    def path(self) -> Path | None:
        """The parsed ``jsonPath`` (``None``: the payload is the value)."""
        return parse_path(self.json_path) if self.json_path is not None else None

    @property
    def commands(self) -> str:
        """Where writes go: ``commandTopic``, else ``topic`` + ``/set``."""
        return self.command_topic or f"{self.topic}/set"


MqttDeviceSpec = DeviceSpec[MqttProtocol, MqttVisitor]
MqttPropertySpec = PropertySpec[MqttVisitor]


@dataclass(frozen=True, slots=True)
class Connection:
    """Everything that makes one MQTT connection differ from another (an endpoint's key).

    Attributes:
        url: the broker with its TLS files and credentials.
        client_id: the client id ("": a new random one per connection).
        keep_alive: seconds between pings when idle.
        clean_session: as asked (edgedev always starts a clean session).
    """

    url: BrokerURL
    client_id: str
    keep_alive: int
    clean_session: bool


def client_settings(device: MqttDeviceSpec) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The client settings of a device, and ``(field, message)`` where its properties disagree.

    A setting comes from the protocol, else from the properties' visitors; wherever it is
    given, it must be the same. Fields are relative to ``spec``.
    """
    settings: dict[str, Any] = {}
    where: dict[str, str] = {}
    problems: list[tuple[str, str]] = []
    config = device.config
    for key in ("client_id", "username", "password", "keep_alive"):
        if getattr(config, key) is not None:
            settings[key] = getattr(config, key)
            where[key] = "the protocol"
    for i, prop in enumerate(device.properties):
        visitor = prop.visitor
        for key in ("client_id", "username", "password", "keep_alive", "clean_session"):
            value = getattr(visitor, key)
            if value is None:
                continue
            if key in settings and settings[key] != value:
                name = _client_key(key)
                problems.append(
                    (
                        f"properties[{i}].visitors.configData.{name}",
                        f"{name} differs from {where[key]}'s: one device is one connection",
                    )
                )
            elif key not in settings:
                settings[key] = value
                where[key] = f"property {prop.name!r}"
    return settings, problems


def _client_key(key: str) -> str:
    return {
        "client_id": "clientId",
        "keep_alive": "keepAlive",
        "clean_session": "cleanSession",
    }.get(key, key)


def connection(device: MqttDeviceSpec) -> Connection:
    """The connection of a device, from its protocol settings and its properties' visitors."""
    config = device.config
    settings, _ = client_settings(device)
    url = BrokerURL.parse(config.broker_url or f"mqtt://{config.host_port}")
    tls = url.tls or config.tls
    url = BrokerURL(
        host=url.host,
        port=url.port if config.broker_url or config.port or not tls else 8883,
        tls=tls,
        username=settings.get("username") or url.username,
        password=settings.get("password") if "password" in settings else url.password,
        password_file=config.password_file,
        ca_file=config.ca_file,
        cert_file=config.cert_file,
        key_file=config.key_file,
        tls_insecure=config.tls_insecure,
    )
    return Connection(
        url=url,
        client_id=settings.get("client_id") or "",
        keep_alive=settings.get("keep_alive") or 30,
        clean_session=settings.get("clean_session", True),
    )
