"""The OPC-UA ``configData`` schemas, as KubeEdge users write them."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, field_validator

from edgedev.drivers import DeviceSpec, PropertySpec, ProtocolConfig, ValueConfig
from edgedev_opcua.convert import Builtin
from edgedev_opcua.nodeid import BrowseStep, NodeRef, parse_browse_path, parse_node_id

DEFAULT_PORT = 4840
SecurityPolicy = Literal["None", "Basic256Sha256", "Aes128Sha256RsaOaep", "Aes256Sha256RsaPss"]
SecurityMode = Literal["None", "Sign", "SignAndEncrypt"]
Mode = Literal["poll", "subscribe"]

_POLICIES = {
    p.lower(): p for p in ("None", "Basic256Sha256", "Aes128Sha256RsaOaep", "Aes256Sha256RsaPss")
}
_MODES = {m.lower(): m for m in ("None", "Sign", "SignAndEncrypt")}
_POLICY_URI_PREFIX = "http://opcfoundation.org/ua/securitypolicy#"


class OpcuaProtocol(ProtocolConfig):
    """``spec.protocol.configData`` of an OPC-UA Device.

    ``url`` is the server's endpoint (``opc.tcp://host:4840/path``). ``userName`` and
    ``password`` (or ``passwordFile``, edgedev: a file holding it, read at each connect)
    log in; without them the session is anonymous. ``securityPolicy``
    (``Basic256Sha256``, ``Aes128Sha256RsaOaep``, ``Aes256Sha256RsaPss``) with
    ``securityMode`` (``Sign`` or ``SignAndEncrypt``) secures the channel with the client's
    ``certificate`` and ``privateKey`` (PEM or DER files); ``serverCertificate`` (optional)
    pins the server's certificate instead of taking the one the server offers. ``mode``
    (edgedev) is ``poll`` (one Read request per cycle) or ``subscribe`` (monitored items
    that the server publishes, at the properties' ``collectCycle``). ``timeout`` (ms)
    bounds every request.
    """

    url: str
    user_name: str | None = Field(None, min_length=1)
    password: SecretStr | None = None
    password_file: Path | None = None
    security_policy: SecurityPolicy = "None"
    security_mode: SecurityMode = "None"
    certificate: Path | None = None
    private_key: Path | None = None
    server_certificate: Path | None = None
    mode: Mode = "poll"

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        if parts.scheme != "opc.tcp":
            raise ValueError(f"{value!r} is not an opc.tcp:// URL")
        try:
            port = parts.port
        except ValueError:
            raise ValueError(f"{value!r} has an invalid port") from None
        if not parts.hostname:
            raise ValueError(f"{value!r} names no host")
        if port is None:
            parts = parts._replace(netloc=f"{parts.netloc}:{DEFAULT_PORT}")
        return urlunsplit(parts)

    @field_validator("security_policy", mode="before")
    @classmethod
    def _policy(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        key = value.strip().lower().removeprefix(_POLICY_URI_PREFIX)
        return _POLICIES.get(key, value)

    @field_validator("security_mode", mode="before")
    @classmethod
    def _mode(cls, value: Any) -> Any:
        return _MODES.get(value.strip().lower(), value) if isinstance(value, str) else value

    @field_validator("mode", mode="before")
    @classmethod
    def _lower_mode(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    def problems(self) -> list[tuple[str, str]]:
        """Cross-field problems, as ``(configData field, message)`` pairs (none when valid)."""
        found: list[tuple[str, str]] = []
        secured = self.security_policy != "None"
        if secured != (self.security_mode != "None"):
            field = "securityMode" if secured else "securityPolicy"
            found.append(
                (
                    field,
                    "securityPolicy and securityMode go together: both None, or a policy "
                    f"with Sign or SignAndEncrypt (got securityPolicy {self.security_policy}, "
                    f"securityMode {self.security_mode})",
                )
            )
        if secured:
            for field, path in (
                ("certificate", self.certificate),
                ("privateKey", self.private_key),
            ):
                if path is None:
                    found.append(
                        (
                            field,
                            f"securityPolicy {self.security_policy} needs {field} "
                            "(the client's PEM or DER file)",
                        )
                    )
        given = [n for n in ("password", "password_file") if getattr(self, n) is not None]
        if given and self.user_name is None:
            key = "password" if given[0] == "password" else "passwordFile"
            found.append(("userName", f"{key} is given without userName"))
        if self.user_name is not None and not given:
            found.append(("password", f"userName {self.user_name!r} is given without password"))
        if len(given) == 2:
            found.append(("passwordFile", "give password or passwordFile, not both"))
        return found

    @property
    def host(self) -> str:
        """The server's host name or address."""
        return urlsplit(self.url).hostname or ""

    @property
    def port(self) -> int:
        """The server's TCP port."""
        return urlsplit(self.url).port or DEFAULT_PORT

    @property
    def secured(self) -> bool:
        """Whether the channel is signed (and perhaps encrypted)."""
        return self.security_policy != "None"


class OpcuaVisitor(ValueConfig):
    """``visitors.configData`` of an OPC-UA property.

    ``nodeID`` is the node's id (``ns=2;i=1001``, ``ns=2;s=Line1.Temp``, ``nsu=<uri>;s=...``).
    ``browsePath`` (edgedev), instead of ``nodeID``, finds the node by browse names from the
    Objects folder (``2:Line1/2:Temp``), resolved on the server at each connect.
    ``dataType`` (optional: ``Boolean``, ``SByte`` ... ``UInt64``, ``Float``, ``Double``,
    ``String``, ``DateTime``, ``ByteString``) is the node's OPC-UA type: the simulator
    creates the node with it; the driver always asks the server for the node's real type,
    once per connection, and writes with that. ``browseName`` (KubeEdge's OPC-UA visitor) is
    the node's own name, accepted and informative: the node is found by ``nodeID``.
    ``discoveredPath`` (edgedev, informative) is the node's browse names from where
    ``edgedev discover opcua`` started (``Plant/Line1/Temp``), kept beside the ``nodeID``
    it found.

    The value keys (``scale``, ``mask``, ``shift``, ``base``, ``valueOffset``, ``bit``,
    ``mapping``, ``strict``, ``expect``: :class:`~edgedev.drivers.ValueConfig`) apply to a
    numeric node's value: ``mapping`` names the values of an enumeration node, ``bit`` reads
    one bit of an integer node (read-only: a write would replace the whole node value).
    """

    node_id: str | None = Field(None, alias="nodeID")
    browse_path: str | None = None
    browse_name: str | None = None
    discovered_path: str | None = None
    data_type: Builtin | None = None

    @field_validator("node_id")
    @classmethod
    def _node_id(cls, value: str | None) -> str | None:
        return None if value is None else str(parse_node_id(value))

    @field_validator("browse_path")
    @classmethod
    def _browse_path(cls, value: str | None) -> str | None:
        return None if value is None else "/".join(map(str, parse_browse_path(value)))

    def problems(self) -> list[tuple[str, str]]:
        """Cross-field problems, as ``(configData field, message)`` pairs (none when valid)."""
        if (self.node_id is None) == (self.browse_path is None):
            return [("nodeID", "give either nodeID (ns=2;i=1001) or browsePath (2:Line1/2:Temp)")]
        return []

    @field_validator("data_type", mode="before")
    @classmethod
    def _data_type(cls, value: Any) -> Any:
        return Builtin.parse(value) if isinstance(value, str) else value

    @property
    def node(self) -> NodeRef | None:
        """The parsed node id (``None`` when the property is found by ``browsePath``)."""
        return None if self.node_id is None else parse_node_id(self.node_id)

    @property
    def path(self) -> tuple[BrowseStep, ...]:
        """The parsed browse path (empty when the property has a ``nodeID``)."""
        return () if self.browse_path is None else parse_browse_path(self.browse_path)


OpcuaDeviceSpec = DeviceSpec[OpcuaProtocol, OpcuaVisitor]
"""A device resolved with the OPC-UA driver's settings models."""
OpcuaPropertySpec = PropertySpec[OpcuaVisitor]
"""A property of an OPC-UA device."""
