"""Values as devices encode them, on BLE: status bits, enums, offsets and masks in a value.

Pure codec tests, then one mapper against the simulated peripheral (``sim://`` backend).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from ble_helpers import TIMEOUT, device, fleet, free_port, load, model, reports, root, visit

from edgedev import ConfigError, WriteRefused
from edgedev.config import PropertySpec
from edgedev_ble import Codec

MAC = "C4:7C:8D:6A:00:02"


def prop(tmp_path: Path, type_: str, access: str = "ReadWrite", **visitor: Any) -> PropertySpec:
    docs = [
        model("m", [{"name": "p", "type": type_, "accessMode": access}]),
        device("d", "m", MAC, 1, [visit("p", "FFF1", notify=False, **visitor)]),
    ]
    (spec,) = load(tmp_path, docs)
    return spec.properties[0]


def codec(tmp_path: Path, type_: str, **visitor: Any) -> Codec:
    return Codec.of("default/d", prop(tmp_path, type_, **visitor))  # type: ignore[arg-type]


def test_a_status_byte_reads_bits_and_writes_one_keeping_the_others(tmp_path: Path) -> None:
    door = codec(tmp_path, "BOOLEAN", format="uint8", offset=1, bit=7)
    assert door.needs_current
    assert door.decode(b"\x00\x80\x01") is True
    assert door.decode(b"\x00\x7f\x01") is False
    assert door.encode(False, b"\xaa\xff\x01") == b"\xaa\x7f\x01"
    assert door.encode(True, b"\xaa\x01\x01") == b"\xaa\x81\x01"
    signed = codec(tmp_path, "BOOLEAN", format="int16le", bit=15)  # the sign bit of an int16
    assert signed.decode(b"\x00\x80") is True
    assert signed.encode(True, b"\x01\x00") == b"\x01\x80"
    plain = codec(tmp_path, "BOOLEAN", bit=9)  # no format: the value as an INT
    assert plain.decode(b"\x00\x02") is True
    assert plain.encode(False, b"\xff\xff") == b"\xff\xfd"


def test_an_enum_byte_is_text_both_ways(tmp_path: Path) -> None:
    mode = codec(tmp_path, "STRING", format="uint8", mapping={0: "Off", 1: "Eco", 2: "Boost"})
    assert mode.decode(b"\x02") == "Boost"
    assert mode.encode("Eco") == b"\x01"
    with pytest.raises(WriteRefused, match="'Turbo' is not one of Off, Eco, Boost"):
        mode.encode("Turbo")
    plain = codec(tmp_path, "STRING", mapping={"0x10": "Ready"})  # no format: read as an INT
    assert plain.decode(b"\x10") == "Ready"


def test_an_offset_temperature_and_a_masked_nibble(tmp_path: Path) -> None:
    temperature = codec(tmp_path, "FLOAT", format="uint16le", scale=0.1, valueOffset=-40)
    assert temperature.decode((615).to_bytes(2, "little")) == 21.5
    assert temperature.encode(21.5) == (615).to_bytes(2, "little")
    level = codec(tmp_path, "INT", format="uint16be", mask="0x0F00", shift=8)
    assert level.decode(b"\x1a\x2b") == 0xA
    with pytest.raises(WriteRefused, match="mask 0xf00 keeps part of the register"):
        level.encode(3)
    assert level.place(3, b"\x1a\x2b") == b"\x13\x2b"  # what the simulator stores
    with_converter = codec(tmp_path, "STRING", dataConverter={"startIndex": 0}, mapping={1: "On"})
    assert with_converter.decode(b"\x01") == "On"


@pytest.mark.parametrize(
    ("type_", "visitor", "field", "message"),
    [
        ("INT", {"dataConverter": {"startIndex": 0}, "mask": 3}, "mask", "dataConverter has its"),
        ("BOOLEAN", {"format": "float32le", "bit": 1}, "bit", "bit applies to integers"),
        ("STRING", {"format": "utf8", "mapping": {0: "Off"}}, "format", "does not give a number"),
        ("FLOAT", {"format": "utf8", "valueOffset": 2}, "format", "does not give a number"),
        ("INT", {"format": "int16le", "valueOfset": 2}, "valueOfset", "'valueOffset'"),
    ],
)
def test_validate_explains_each_mistake(
    tmp_path: Path, type_: str, visitor: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        prop(tmp_path, type_, **visitor)
    (problem,) = caught.value.problems
    assert problem.field == f"spec.properties[0].visitors.configData.{field}"
    assert message in problem.message


@pytest.mark.broker
async def test_bits_and_an_enum_through_the_mapper(tmp_path: Path, mqtt_url: str) -> None:
    props = [
        {"name": "door", "type": "BOOLEAN"},
        {"name": "light", "type": "BOOLEAN"},
        {"name": "mode", "type": "STRING"},
    ]
    visits = [
        visit("door", "FFF1", notify=False, format="uint8", bit=0),
        visit("light", "FFF1", notify=False, format="uint8", bit=1),
        visit("mode", "FFF2", notify=False, format="uint8", mapping={0: "Off", 1: "Eco"}),
    ]
    devices = load(tmp_path, [model("box", props), device("box", "box", MAC, free_port(), visits)])
    async with fleet(devices, mqtt_url, root()) as (sim, mapper, _, recorder):
        await recorder.wait_for(reports("default/box", "mode"), timeout=TIMEOUT)
        runner = mapper.runners["default/box"]
        assert (await runner.desired.write("door", "true")).ok
        assert (await runner.desired.write("light", "true")).ok
        assert (await runner.desired.write("door", "false")).ok
        status = sim.peripheral("default/box").of_property["door"].value
        assert status == b"\x02"
        assert (await runner.desired.write("mode", "Eco")).ok
        assert sim.peripheral("default/box").of_property["mode"].value == b"\x01"
        await recorder.wait_for(reports("default/box", "mode", "Eco"), timeout=TIMEOUT)
