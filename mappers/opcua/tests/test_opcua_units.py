"""Pure parts of the OPC-UA mapper: node ids, value conversion, and configData checks."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from opcua_helpers import device, model, visit, write_yaml

from edgedev import ConfigError, load_devices
from edgedev.twin import PropertyType
from edgedev_opcua import Builtin, parse_node_id, self_signed
from edgedev_opcua.certs import application_uri_of
from edgedev_opcua.convert import from_opcua, shortest_float32, to_opcua
from edgedev_opcua.nodeid import BrowseStep, IdKind, parse_browse_path


@pytest.mark.parametrize(
    ("text", "namespace", "kind", "identifier"),
    [
        ("ns=2;i=1001", 2, IdKind.NUMERIC, 1001),
        ("ns=2;s=Line1.Temp", 2, IdKind.STRING, "Line1.Temp"),
        ("i=2258", 0, IdKind.NUMERIC, 2258),
        ("nsu=urn:vendor:plant;s=A;B", "urn:vendor:plant", IdKind.STRING, "A;B"),
        (
            "ns=3;g=09087e75-8e5e-499b-954f-f2a9603db28a",
            3,
            IdKind.GUID,
            uuid.UUID("09087e75-8e5e-499b-954f-f2a9603db28a"),
        ),
        ("ns=1;b=AQID", 1, IdKind.OPAQUE, b"\x01\x02\x03"),
    ],
)
def test_node_ids_parse_and_print_back(
    text: str, namespace: Any, kind: IdKind, identifier: Any
) -> None:
    ref = parse_node_id(text)
    assert (ref.namespace, ref.kind, ref.identifier) == (namespace, kind, identifier)
    assert parse_node_id(str(ref)) == ref


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("ns=2;x=5", "is not a node id"),
        ("ns=70000;i=1", "namespace index"),
        ("ns=2;i=-1", "numeric identifier"),
        ("ns=2;s=", "string identifier is empty"),
        ("ns=2;g=nope", "is not a GUID"),
        ("ns=2", "expected ';'"),
    ],
)
def test_bad_node_ids_say_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_node_id(text)


def test_browse_paths_parse_into_steps() -> None:
    assert parse_browse_path("/2:Line1/2:Temp") == (BrowseStep(2, "Line1"), BrowseStep(2, "Temp"))
    assert parse_browse_path("Server/0:ServerStatus") == (
        BrowseStep(0, "Server"),
        BrowseStep(0, "ServerStatus"),
    )
    assert parse_browse_path("3:Line1.Temp") == (BrowseStep(3, "Line1.Temp"),)
    for bad in ("2:Line1//2:Temp", "", "2:"):
        with pytest.raises(ValueError):
            parse_browse_path(bad)


def test_values_convert_to_the_node_type_and_refuse_what_does_not_fit() -> None:
    assert to_opcua(200, Builtin.BYTE) == 200
    assert to_opcua(30.0, Builtin.INT16) == 30
    assert to_opcua(1, Builtin.BOOLEAN) is True
    assert to_opcua("2026-01-02T03:04:05", Builtin.DATETIME) == datetime(
        2026, 1, 2, 3, 4, 5, tzinfo=UTC
    )
    for value, builtin, says in [
        (256, Builtin.BYTE, "out of range for Byte"),
        (-1, Builtin.UINT64, "out of range for UInt64"),
        (2.5, Builtin.INT32, "not an integer"),
        (1e39, Builtin.FLOAT, "out of range for Float"),
        ("noon", Builtin.DATETIME, "ISO 8601"),
    ]:
        with pytest.raises(ValueError, match=says):
            to_opcua(value, builtin)


def test_values_from_the_server_become_property_values() -> None:
    assert from_opcua(23.100000381469727, PropertyType.FLOAT, Builtin.FLOAT) == 23.1
    assert from_opcua(0.1, PropertyType.DOUBLE, Builtin.DOUBLE) == 0.1
    assert from_opcua(7, PropertyType.DOUBLE) == 7.0
    assert from_opcua(1, PropertyType.BOOLEAN) is True
    assert from_opcua(datetime(2026, 1, 2, tzinfo=UTC), PropertyType.STRING) == (
        "2026-01-02T00:00:00Z"  # UTC as Z: EdgeCore refuses "+"
    )
    with pytest.raises(ValueError, match="null"):
        from_opcua(None, PropertyType.INT)
    with pytest.raises(ValueError, match="array"):
        from_opcua([1, 2], PropertyType.INT)
    assert shortest_float32(float("inf")) == float("inf")
    assert shortest_float32(16777217.0) == 16777216.0


def test_self_signed_certificates_name_the_application_uri() -> None:
    credentials = self_signed("urn:edgedev:test:units")
    assert application_uri_of(credentials.certificate) == "urn:edgedev:test:units"
    assert b"PRIVATE KEY" in credentials.private_key


def problems(tmp_path: Path, config: dict[str, Any], **visitor: Any) -> list[str]:
    props = [{"name": "a", "type": "BOOLEAN"}]
    docs = [
        model("m", props),
        device("d-1", "m", "opc.tcp://127.0.0.1:4840", [visit("a", **visitor)]),
    ]
    docs[1]["spec"]["protocol"]["configData"].update(config)
    path = write_yaml(tmp_path, docs)
    with pytest.raises(ConfigError) as caught:
        load_devices([path])
    return [str(p) for p in caught.value.problems]


@pytest.mark.parametrize(
    ("config", "visitor", "field", "says"),
    [
        ({}, {"node_id": "ns=2;q=1"}, "properties[0].visitors.configData.nodeID", "not a node id"),
        (
            {},
            {"node_id": "ns=2;i=1", "dataType": "Double"},
            "properties[0].visitors.configData.dataType",
            "BOOLEAN property cannot live in an OPC-UA Double node",
        ),
        ({"mode": "push"}, {"node_id": "ns=2;i=1"}, "protocol.configData.mode", "poll"),
        (
            {},
            {"node_id": "ns=2;i=1", "browsePath": "2:A/2:B"},
            "properties[0].visitors.configData.nodeID",
            "either nodeID",
        ),
        (
            {},
            {"node_id": "ns=2;i=1", "browsePath": "2:A//2:B"},
            "properties[0].visitors.configData.browsePath",
            "empty step",
        ),
        (
            {"securityPolicy": "Basic256Sha256", "securityMode": "SignAndEncrypt"},
            {"node_id": "ns=2;i=1"},
            "protocol.configData.certificate",
            "needs certificate",
        ),
        (
            {"securityPolicy": "Basic256Sha256"},
            {"node_id": "ns=2;i=1"},
            "protocol.configData.securityMode",
            "go together",
        ),
        ({"userName": "op"}, {"node_id": "ns=2;i=1"}, "protocol.configData.password", "without"),
        (
            {"passwordFile": "/run/secrets/opcua"},
            {"node_id": "ns=2;i=1"},
            "protocol.configData.userName",
            "passwordFile is given without userName",
        ),
        (
            {"userName": "op", "password": "x", "passwordFile": "/run/secrets/opcua"},
            {"node_id": "ns=2;i=1"},
            "protocol.configData.passwordFile",
            "not both",
        ),
        ({"url": "http://x"}, {"node_id": "ns=2;i=1"}, "protocol.configData.url", "opc.tcp://"),
    ],
)
def test_validation_names_file_device_and_field(
    tmp_path: Path, config: dict[str, Any], visitor: dict[str, Any], field: str, says: str
) -> None:
    node_id = visitor.pop("node_id")
    found = problems(tmp_path, config, node_id=node_id, **visitor)
    assert all(".yaml" in message and "default/d-1" in message for message in found)
    assert [m for m in found if f"spec.{field}:" in m and says in m], found


def test_a_password_file_is_read_at_each_connect(tmp_path: Path) -> None:
    from edgedev import DeviceError
    from edgedev_opcua import OpcuaProtocol
    from edgedev_opcua.connection import password_of

    secret = tmp_path / "password"
    secret.write_text("s3cret\nignored\n")
    cfg = OpcuaProtocol.model_validate(
        {"url": "opc.tcp://plc", "userName": "op", "passwordFile": str(secret)}
    )
    assert cfg.problems() == []
    assert password_of(cfg) == "s3cret"
    secret.write_text("changed")
    assert password_of(cfg) == "changed"
    secret.unlink()
    with pytest.raises(DeviceError, match=r"passwordFile .* cannot be read"):
        password_of(cfg)


def test_node_ids_and_qualified_names_read_as_their_standard_text() -> None:
    from asyncua import ua

    assert from_opcua(ua.QualifiedName("Foo", 2), PropertyType.STRING) == "2:Foo"
    assert from_opcua(ua.NodeId("Line1.Temp", 2), PropertyType.STRING) == "ns=2;s=Line1.Temp"
    assert from_opcua(ua.LocalizedText("bonjour"), PropertyType.STRING) == "bonjour"


def test_public_names_are_exported_and_registered() -> None:
    import edgedev_opcua
    from edgedev.drivers import drivers
    from edgedev.simulate import simulators

    assert all(getattr(edgedev_opcua, name) for name in edgedev_opcua.__all__)
    assert drivers.get("opcua") is edgedev_opcua.OpcuaDriver
    assert simulators.get("opcua") is edgedev_opcua.OpcuaSimulator
