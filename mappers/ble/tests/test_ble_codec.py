"""Pure decoding and conversion: KubeEdge's dataConverter, typed formats, the property codec."""

from __future__ import annotations

import math
from decimal import Decimal
from pathlib import Path

import pytest
from ble_helpers import device, load, model, visit
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from edgedev import ConfigError, PropertyType
from edgedev_ble import BleProtocol, BleVisitor, Codec, DataConverter, Format
from edgedev_ble.converter import convert, place
from edgedev_ble.formats import decode, encode


def conv(**fields: object) -> DataConverter:
    return DataConverter.model_validate(fields)


DATA = bytes([0x01, 0x02, 0x34, 0x12, 0xA5, 0x07])


# dataConverter ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"startIndex": 0, "endIndex": 1}, Decimal(0x0102)),  # bytes in order: big-endian
        ({"startIndex": 3, "endIndex": 2}, Decimal(0x1234)),  # counted down: little-endian
        ({"startIndex": 4}, Decimal(0xA5)),  # one byte when endIndex is absent
        ({"startIndex": 4, "endIndex": 4, "shiftRight": 4}, Decimal(0xA)),
        ({"startIndex": 5, "endIndex": 5, "shiftLeft": 2}, Decimal(28)),
        ({"startIndex": 4, "endIndex": 4, "signed": True}, Decimal(0xA5 - 256)),
        ({"startIndex": 4, "endIndex": 4, "mask": 0x0F}, Decimal(5)),
    ],
)
def test_converter_takes_bytes_in_the_order_given_and_shifts(
    fields: dict[str, object], expected: Decimal
):
    assert convert(DATA, conv(**fields)) == expected


@pytest.mark.parametrize(
    ("operation", "value", "expected"),
    [
        ("Add", 10, Decimal(268)),
        ("Subtract", 5, Decimal(253)),
        ("Multiply", 2.5, Decimal("645")),
        ("Divide", 100, Decimal("2.58")),
        ("divide", 8, Decimal("32.25")),  # KubeEdge compares operation types case-insensitively
    ],
)
def test_each_operation(operation: str, value: float, expected: Decimal):
    converter = conv(
        startIndex=0,
        endIndex=1,
        orderOfOperations=[{"operationType": operation, "operationValue": value}],
    )
    assert convert(DATA, converter) == expected


def test_operations_apply_in_order_without_float_noise():
    converter = conv(
        startIndex=0,
        endIndex=1,
        orderOfOperations=[
            {"operationType": "Multiply", "operationValue": 2},
            {"operationType": "Subtract", "operationValue": 16},
            {"operationType": "Divide", "operationValue": 4},
        ],
    )
    assert convert(DATA, converter) == 125
    tenths = conv(
        startIndex=1,
        endIndex=0,
        orderOfOperations=[{"operationType": "Multiply", "operationValue": 0.1}],
    )
    assert convert(bytes([0xEB, 0x00]), tenths) == Decimal("23.5")  # not 23.500000000000004


def test_sensortag_ambient_temperature():
    # TI CC2650 IR temperature: ambient int16 little-endian at bytes 2..3, >> 2, * 0.03125
    converter = conv(
        startIndex=3,
        endIndex=2,
        shiftRight=2,
        orderOfOperations=[{"operationType": "Multiply", "operationValue": 0.03125}],
    )
    raw = round(24.5 / 0.03125) << 2
    assert convert(bytes([0, 0]) + raw.to_bytes(2, "little"), converter) == Decimal("24.5")


def test_a_value_too_short_for_the_range_is_an_error():
    with pytest.raises(ValueError, match="byte 7"):
        convert(DATA, conv(startIndex=7))


def test_division_by_zero_and_wide_ranges_are_refused():
    with pytest.raises(ValidationError, match="by 0"):
        conv(orderOfOperations=[{"operationType": "Divide", "operationValue": 0}])
    with pytest.raises(ValidationError, match="8 bytes"):
        conv(startIndex=0, endIndex=8)
    with pytest.raises(ValidationError):
        conv(orderOfOperations=[{"operationType": "Modulo", "operationValue": 3}])


@given(st.integers(0, 0xFFFF), st.sampled_from([(0, 1), (1, 0)]))
def test_place_is_the_inverse_of_convert(raw: int, indices: tuple[int, int]):
    converter = conv(
        startIndex=indices[0],
        endIndex=indices[1],
        orderOfOperations=[
            {"operationType": "Subtract", "operationValue": 40},
            {"operationType": "Divide", "operationValue": 10},
        ],
    )
    value = convert(raw.to_bytes(2, "big"), converter)
    assert convert(place(b"", converter, value), converter) == value


def test_place_keeps_the_other_fields():
    high = conv(startIndex=0, shiftRight=4)
    low = conv(startIndex=0, mask=0x0F)
    data = place(place(b"", high, 0xA), low, 0x5)
    assert data == b"\xa5"
    assert convert(data, high) == 0xA and convert(data, low) == 5


# formats ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("data", "fmt", "expected"),
    [
        (b"\x66\x08", Format.INT16LE, 2150),
        (b"\x08\x66", Format.INT16BE, 2150),
        (b"\xff\xff", Format.INT16LE, -1),
        (b"\xff\xff", Format.UINT16LE, 65535),
        (b"\x01\x02\x03", Format.UINT24LE, 0x030201),
        (b"\x00\x00\xbc\x41", Format.FLOAT32LE, 23.5),
        (b"\x40\x37\x00\x00\x00\x00\x00\x00", Format.FLOAT64BE, 23.0),
        (b"\x6d\xf1", Format.MEDFLOAT16, 36.5),  # SFLOAT: 365 * 10^-1
        (b"\x6d\x01\x00\xff", Format.MEDFLOAT32, 36.5),  # FLOAT: 365 * 10^-1
        (b"\xfe\x07", Format.MEDFLOAT16, math.inf),
        (b"edge\x00\x00", Format.UTF8, "edge"),
        (b"\x02", Format.BOOL, True),
    ],
)
def test_formats_decode(data: bytes, fmt: Format, expected: object):
    assert decode(data, fmt) == expected


def test_medfloat_nan_and_round_trip():
    assert math.isnan(float(decode(b"\xff\x07", Format.MEDFLOAT16)))  # type: ignore[arg-type]
    for value in (36.5, -2.25, 0.0, 120.0, 5.6):
        for fmt in (Format.MEDFLOAT16, Format.MEDFLOAT32):
            assert decode(encode(value, fmt), fmt) == value


def test_integer_out_of_range_is_refused():
    with pytest.raises(ValueError, match="does not fit"):
        encode(300, Format.UINT8)


# the property codec ----------------------------------------------------------------------
def codec(type_: str, **visitor: object) -> Codec:
    return Codec(
        PropertyType(type_), BleVisitor.model_validate({"characteristicUUID": "2A6E", **visitor})
    )


def test_sig_temperature_in_hundredths_of_a_degree():
    temperature = codec("FLOAT", format="int16le", scale=0.01)
    assert temperature.decode(b"\x66\x08") == 21.5
    assert temperature.encode(-3.25) == (-325).to_bytes(2, "little", signed=True)


def test_format_at_an_offset_keeps_the_other_bytes():
    second = codec("INT", format="uint16be", offset=2)
    assert second.decode(b"\xaa\xbb\x01\x02") == 0x0102
    assert second.encode(7, b"\xaa\xbb\x01\x02\xcc") == b"\xaa\xbb\x00\x07\xcc"


def test_data_write_maps_values_to_bytes_both_ways():
    led = codec("STRING", dataWrite={"ON": [1], "OFF": [0]})
    assert led.encode("ON") == b"\x01"
    assert led.encode("off") == b"\x00"
    assert led.decode(b"\x01") == "ON"
    with pytest.raises(ValueError, match="ON, OFF"):
        led.encode("BLINK")
    switch = codec("BOOLEAN", dataWrite={"on": "AQ==", "off": [0]})  # base64 as Kubernetes
    assert switch.encode(True) == b"\x01"
    assert switch.decode(b"\x00") is False


def test_plain_decoding_by_type():
    assert codec("INT").decode(b"\xf9\xff") == -7
    assert codec("INT").encode(-7, b"\x00\x00") == b"\xf9\xff"
    assert codec("FLOAT").decode(b"\x00\x00\xbc\x41") == 23.5
    assert codec("BOOLEAN").decode(b"\x00\x01") is True
    assert codec("STRING").decode(b"Sensor-1\x00") == "Sensor-1"
    assert codec("BYTES").decode(b"\x00\x01") == b"\x00\x01"
    with pytest.raises(ValueError, match="4 or 8 bytes"):
        codec("FLOAT").decode(b"\x01\x02\x03")


def test_converter_results_take_the_property_type():
    half = {
        "startIndex": 0,
        "orderOfOperations": [{"operationType": "Divide", "operationValue": 2}],
    }
    assert codec("FLOAT", dataConverter=half).decode(b"\x07") == 3.5
    assert codec("INT", dataConverter=half).decode(b"\x08") == 4
    assert codec("BOOLEAN", dataConverter=half).decode(b"\x00") is False
    assert codec("STRING", dataConverter=half).decode(b"\x07") == "3.5"


# configuration ---------------------------------------------------------------------------
def test_protocol_config_normalizes_the_address_and_checks_the_backend():
    cfg = BleProtocol.model_validate({"macAddress": "c4-7c-8d-6a-00-01"})
    assert cfg.mac_address == "C4:7C:8D:6A:00:01"
    assert cfg.backend is None
    with pytest.raises(ValidationError, match="Bluetooth address"):
        BleProtocol.model_validate({"macAddress": "C4:7C:8D"})
    with pytest.raises(ValidationError, match="sim://HOST:PORT"):
        BleProtocol.model_validate({"macAddress": "C4:7C:8D:6A:00:01", "backend": "tcp://x"})


def test_visitor_normalizes_uuids():
    visitor = BleVisitor.model_validate({"characteristicUUID": "2a6e"})
    assert visitor.characteristic_uuid == "00002a6e-0000-1000-8000-00805f9b34fb"


def test_load_reports_a_bad_visitor_with_its_field(tmp_path: Path):
    docs = [
        model("m", [{"name": "t", "type": "INT", "accessMode": "ReadOnly"}]),
        device("d", "m", "C4:7C:8D:6A:00:01", 1, [visit("t", "2A6E", format="utf8")]),
    ]
    with pytest.raises(ConfigError) as info:
        load(tmp_path, docs)
    assert "format" in str(info.value)


_INTEGER_FORMATS = [f for f in Format if f.is_integer]


@given(st.sampled_from(_INTEGER_FORMATS), st.data())
def test_every_integer_format_round_trips(fmt: Format, data: st.DataObject):
    size = fmt.size or 1
    signed = fmt.value.startswith("int")
    low = -(1 << (8 * size - 1)) if signed else 0
    high = (1 << (8 * size - (1 if signed else 0))) - 1
    value = data.draw(st.integers(low, high))
    assert decode(encode(value, fmt), fmt) == value
    assert len(encode(value, fmt)) == size
