"""MQTT payloads to values and back, jsonPath, and the connection a device's settings make."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgedev import ConfigError, PropertyType
from edgedev.testing import load_documents
from edgedev_mqtt import PayloadError, decode, encode, parse_path
from edgedev_mqtt.config import connection

INT, FLOAT, BOOLEAN = PropertyType.INT, PropertyType.FLOAT, PropertyType.BOOLEAN
STRING, BYTES = PropertyType.STRING, PropertyType.BYTES


def test_paths_name_one_value():
    assert parse_path("$.sensor.temperature") == ("sensor", "temperature")
    assert parse_path("sensor.temperature") == ("sensor", "temperature")
    assert parse_path("$.readings[2].value") == ("readings", 2, "value")
    assert parse_path("$['a.b'][\"c d\"]") == ("a.b", "c d")
    for bad in ("$", "", "$.a..b", "$.a[*]", "$..a", "$.a[-1]", "$[?(@.x)]"):
        with pytest.raises(ValueError, match=r"path|document"):
            parse_path(bad)


@pytest.mark.parametrize(
    ("payload", "type_", "path", "value"),
    [
        (b"21.5", FLOAT, None, 21.5),
        (b" 30\n", INT, None, 30),
        (b"30.0", INT, None, 30),
        (b"on", BOOLEAN, None, True),
        (b"hello world", STRING, None, "hello world"),
        (b"\x00\xff", BYTES, None, b"\x00\xff"),
        (b'{"temperature": 21.5}', FLOAT, ("temperature",), 21.5),
        (b'{"t": "21.5"}', FLOAT, ("t",), 21.5),
        (b'{"s": {"on": true}}', BOOLEAN, ("s", "on"), True),
        (b'{"s": 1}', BOOLEAN, ("s",), True),
        (b'{"r": [1, 2, 3]}', INT, ("r", 1), 2),
        (b'{"n": 7}', STRING, ("n",), "7"),
    ],
)
def test_values_are_read_from_plain_or_json_payloads(
    payload: bytes, type_: PropertyType, path: Any, value: Any
):
    assert decode(payload, type_, path) == value


@pytest.mark.parametrize(
    ("payload", "type_", "path", "reason"),
    [
        (b"warm", FLOAT, None, "not a number"),
        (b"nan", FLOAT, None, "not a finite number"),
        (b"30.5", INT, None, "not an integer"),
        (b"\xff", STRING, None, "not UTF-8"),
        (b"{", FLOAT, ("t",), "not a JSON document"),
        (b'{"x": 1}', FLOAT, ("t",), "no 't'"),
        (b'{"t": null}', FLOAT, ("t",), "null"),
        (b'{"t": {"v": 1}}', FLOAT, ("t",), "object"),
        (b'{"t": true}', FLOAT, ("t",), "not a number"),
        (b'{"t": 2.5}', INT, ("t",), "not an integer"),
        (b'{"r": [1]}', INT, ("r", 3), "no [3]"),
        (b"x" * 300_000, STRING, None, "more than"),
    ],
)
def test_payloads_without_a_value_say_why(
    payload: bytes, type_: PropertyType, path: Any, reason: str
):
    with pytest.raises(PayloadError, match=reason.replace("[", r"\[")):
        decode(payload, type_, path)


def test_writes_are_the_value_or_a_document_with_it():
    assert encode(25, INT) == b"25"
    assert encode(21.5, FLOAT) == b"21.5"
    assert encode(True, BOOLEAN) == b"true"
    assert encode(b"\x01", BYTES) == b"\x01"
    assert json.loads(encode(25, INT, ("set", "temperature"))) == {"set": {"temperature": 25}}
    assert json.loads(encode(True, BOOLEAN, ("on",))) == {"on": True}
    with pytest.raises(ValueError, match="list index"):
        encode(1, INT, ("r", 0))


@given(st.integers(-(2**53), 2**53), st.lists(st.text(min_size=1), min_size=1, max_size=3))
def test_a_written_document_reads_back_as_the_value(value: int, keys: list[str]):
    path = tuple(keys)
    assert decode(encode(value, INT, path), INT, path) == value


def load(tmp_path: Path, protocol: dict[str, Any], *visitors: dict[str, Any]) -> Any:
    docs = [
        {
            "apiVersion": "devices.kubeedge.io/v1beta1",
            "kind": "DeviceModel",
            "metadata": {"name": "m"},
            "spec": {
                "protocol": "mqtt",
                "properties": [{"name": f"p{i}", "type": "INT"} for i in range(len(visitors))],
            },
        },
        {
            "apiVersion": "devices.kubeedge.io/v1beta1",
            "kind": "Device",
            "metadata": {"name": "d"},
            "spec": {
                "deviceModelRef": {"name": "m"},
                "protocol": {"protocolName": "mqtt", "configData": protocol},
                "properties": [
                    {"name": f"p{i}", "visitors": {"protocolName": "mqtt", "configData": v}}
                    for i, v in enumerate(visitors)
                ],
            },
        },
    ]
    return load_documents(tmp_path, docs)


def test_the_connection_comes_from_the_protocol_and_the_visitors(tmp_path: Path):
    visit = {"topic": "a", "clientId": "c1", "username": "u", "password": "p", "keepAlive": 20}
    [device] = load(tmp_path, {"ip": "10.0.0.5", "port": 1884}, visit, {"topic": "b"})
    conn = connection(device)
    assert (conn.url.host, conn.url.port, conn.url.tls) == ("10.0.0.5", 1884, False)
    assert (conn.url.username, conn.url.password, conn.client_id, conn.keep_alive) == (
        "u",
        "p",
        "c1",
        20,
    )
    tls = {"brokerURL": "mqtts://broker.local", "caFile": "/ca.pem", "username": "n"}
    [device] = load(tmp_path, tls, {"topic": "a"})
    conn = connection(device)
    assert (conn.url.port, conn.url.tls, conn.url.ca_file, conn.url.username) == (
        8883,
        True,
        "/ca.pem",
        "n",
    )
    [device] = load(tmp_path, {"ip": "b.local", "tls": True, "passwordFile": "/p"}, {"topic": "a"})
    assert (connection(device).url.port, connection(device).url.password_file) == (8883, "/p")


@pytest.mark.parametrize(
    ("protocol", "visitors", "field", "words"),
    [
        ({}, [{"topic": "a"}], "configData", "give the broker"),
        ({"ip": "h", "brokerURL": "mqtt://h"}, [{"topic": "a"}], "configData", "not both"),
        ({"brokerURL": "http://h"}, [{"topic": "a"}], "configData", "unknown scheme"),
        ({"ip": "h"}, [{"topic": "a/+"}], "topic", "wildcard"),
        ({"ip": "h"}, [{"topic": "a", "jsonPath": "$..x"}], "jsonPath", "path to one value"),
        ({"ip": "h"}, [{"topic": "a", "jsonPath": "$.r[0]"}], "jsonPath", "list index"),
        ({"ip": "h"}, [{"topic": "a", "qos": 3}], "qos", "less than or equal to 2"),
        ({"ip": "h"}, [{"topic": "a", "clientId": "x"}, {"topic": "b", "clientId": "y"}],
         "properties[1].visitors.configData.clientId", "one device is one connection"),
        ({"ip": "h", "username": "a"}, [{"topic": "a", "username": "b"}],
         "properties[0].visitors.configData.username", "differs from the protocol"),
        ({"ip": "h"}, [{"topic": "a"}, {"topic": "a"}], "properties[1]", "same value"),
    ],
)  # fmt: skip
def test_settings_that_cannot_work_are_refused_naming_the_field(
    tmp_path: Path, protocol: dict[str, Any], visitors: list[dict[str, Any]], field: str, words: str
):
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, protocol, *visitors)
    text = str(caught.value)
    assert field in text and words in text, text
