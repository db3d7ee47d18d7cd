"""KubeEdge's Modbus mapper vocabulary: what each word means here (no I/O)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from modbus_helpers import device, load, model, visit

from edgedev import ConfigError, PropertyType
from edgedev_modbus.codec import DataType, Table
from edgedev_modbus.driver import Layout


def layout(tmp_path: Path, type_: str, **config: Any) -> Layout:
    (spec,) = load(
        tmp_path,
        [
            model("m", [{"name": "p", "type": type_}]),
            device("d", "m", 5020, [visit("p", **config)]),
        ],
    )
    return Layout.of(spec.properties[0])


@pytest.mark.parametrize(
    ("type_", "word", "register", "limit", "data_type"),
    [
        ("FLOAT", "float", "HoldingRegister", 1, DataType.UINT16),  # one register times scale
        ("FLOAT", "Float", "HoldingRegister", 2, DataType.FLOAT32),
        ("DOUBLE", "double", "InputRegister", 4, DataType.FLOAT64),
        ("INT", "int", "HoldingRegister", 1, DataType.UINT16),
        ("INT", "int", "InputRegister", 2, DataType.UINT32),
        ("INT", "int", "CoilRegister", 1, DataType.BOOLEAN),  # the bit, as 0 or 1
        ("BOOLEAN", "bool", "DiscreteInputRegister", 1, DataType.BOOLEAN),
        ("BOOLEAN", "bool", "HoldingRegister", 1, DataType.BOOLEAN),  # non-zero is true
        ("STRING", "string", "HoldingRegister", 4, DataType.STRING),
        ("BYTES", "bytes", "HoldingRegister", 3, DataType.BYTES),
    ],
)
def test_kubeedge_data_type_words(
    tmp_path: Path, type_: str, word: str, register: str, limit: int, data_type: DataType
):
    found = layout(tmp_path, type_, register=register, offset=0, limit=limit, dataType=word)
    assert (found.data_type, found.count) == (data_type, limit)


def test_int_on_a_coil_reads_as_zero_or_one(tmp_path: Path):
    found = layout(tmp_path, "INT", register="CoilRegister", offset=0)
    assert found.table is Table.COIL
    assert found.decode([True], PropertyType.INT) == 1
    assert found.decode([False], PropertyType.INT) == 0


def test_bytes_round_trip_over_registers(tmp_path: Path):
    found = layout(tmp_path, "BYTES", register="HoldingRegister", offset=0, limit=2)
    words = found.encode(b"\x01\x02\x03")
    assert words == [0x0102, 0x0300]
    assert found.decode(words, PropertyType.BYTES) == b"\x01\x02\x03\x00"


def test_communicate_mode_chooses_the_settings(tmp_path: Path):
    docs = [model("m", [{"name": "p", "type": "INT"}])]
    dev = device("d", "m", 5020, [visit("p", register="HoldingRegister", offset=0)])
    dev["spec"]["protocol"]["configData"] = {
        "communicateMode": "rtu",
        "serialName": "/dev/ttyUSB0",
        "ip": "10.0.0.1",
        "port": "5502",
        "rs485Enabled": True,
        "parity": "Even",
    }
    (spec,) = load(tmp_path, [*docs, dev])
    assert (spec.config.ip, spec.config.serial_port, spec.config.parity) == (
        None,
        "/dev/ttyUSB0",
        "E",
    )
    dev["spec"]["protocol"]["configData"] = {"communicateMode": "TCP", "port": "5502"}
    with pytest.raises(ConfigError, match="communicateMode TCP needs ip"):
        load(tmp_path, [*docs, dev])


def test_a_kubeedge_word_that_cannot_fit_is_named(tmp_path: Path):
    with pytest.raises(ConfigError, match="dataType float cannot live there"):
        layout(tmp_path, "FLOAT", register="CoilRegister", offset=0, dataType="float")
    with pytest.raises(ConfigError, match="spans 1, 2 or 4 registers, not limit 3"):
        layout(tmp_path, "INT", register="HoldingRegister", offset=0, limit=3, dataType="int")
