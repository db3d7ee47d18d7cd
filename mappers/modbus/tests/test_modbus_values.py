"""Values as plants encode them, on Modbus: bits, enums, offsets, masks and expected values.

Against a plain pymodbus server (:class:`~modbus_helpers.ForeignServer`, requests counted
through pymodbus' ``trace_pdu``) and against ``edgedev simulate``'s simulator.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest
from modbus_helpers import (
    ForeignServer,
    device,
    fleet,
    fleet_on,
    free_port,
    load,
    model,
    root,
    visit,
)

from edgedev import ConfigError, DeviceFault, WriteRefused
from edgedev.drivers import Endpoints, Expectations
from edgedev.testing import topic_endswith
from edgedev.twin import DeviceState, Sample
from edgedev_modbus import ModbusDriver
from edgedev_modbus.codec import Table

STATUS = 0b1010_0000_0001_0101


def status_word(port: int, name: str = "boiler", bits: range = range(16)) -> list[dict[str, Any]]:
    """A DeviceModel and Device whose 16 BOOLEAN properties are the bits of holding 0."""
    props = [{"name": f"bit{n}", "type": "BOOLEAN"} for n in bits]
    visits = [visit(f"bit{n}", register="HoldingRegister", offset=0, bit=n) for n in bits]
    return [model(f"{name}-model", props), device(name, f"{name}-model", port, visits)]


async def test_a_status_word_reads_as_16_booleans_in_one_request(tmp_path: Path) -> None:
    async with ForeignServer().running() as server:
        await server.set_holding(0, [STATUS])
        (spec,) = load(tmp_path, status_word(server.port))
        driver = ModbusDriver(spec)
        await driver.connect()
        try:
            values = await driver.read(spec.properties)
        finally:
            await driver.close()
    assert values == {f"bit{n}": bool(STATUS >> n & 1) for n in range(16)}
    assert server.reads == [(3, 0, 1)]  # read holding registers: address 0, one register


async def test_one_bit_written_leaves_the_others_while_another_device_writes_the_same_register(
    tmp_path: Path,
) -> None:
    """Two Devices on one slave set bits of one register at once: each write keeps the others'.

    Each bit write is a read of the register and a write of it; without one writer per
    register at a time, a device would write back a word read before the other's write.
    """
    target = 0b0101_1100_1010_0011
    written = {"left": range(4), "right": range(8, 12)}  # bits 4..7 and 12..15 untouched
    async with ForeignServer().running() as server:
        await server.set_holding(0, [STATUS])
        docs = status_word(server.port, "left", range(8)) + status_word(
            server.port, "right", range(8, 16)
        )
        specs = load(tmp_path, docs)
        async with Endpoints() as endpoints:
            drivers = [ModbusDriver(spec, endpoints) for spec in specs]
            for driver in drivers:
                await driver.connect()

            async def set_bits(driver: ModbusDriver) -> None:
                for n in written[driver.device.name]:  # one task per device, as the runtime
                    await driver.write(driver.device.property(f"bit{n}"), bool(target >> n & 1))

            async with anyio.create_task_group() as tg:
                for driver in drivers:
                    tg.start_soon(set_bits, driver)
            for driver in drivers:
                await driver.close()
        (word,) = await server.holding(0)
    assert word == (STATUS & ~0x0F0F) | (target & 0x0F0F)
    assert len([r for r in server.requests if r[0] == 6]) == 8  # a write per bit
    assert len(server.reads) == 8  # and a read of the register before it


async def test_a_bit_of_a_register_that_cannot_be_written_is_refused(tmp_path: Path) -> None:
    props = [{"name": "alarm", "type": "BOOLEAN"}]
    visits = [visit("alarm", register="InputRegister", offset=0, bit=3)]
    (spec,) = load(tmp_path, [model("ro", props), device("ro", "ro", free_port(), visits)])
    with pytest.raises(WriteRefused, match="InputRegister cannot be written"):
        await ModbusDriver(spec).write(spec.properties[0], True)


ENUM_AND_OFFSET = [
    {"name": "mode", "type": "STRING"},
    {"name": "temperature", "type": "FLOAT", "minimum": "-40", "maximum": "125"},
    {"name": "fan", "type": "INT", "accessMode": "ReadOnly"},
]


def plant(port: int, **mode: Any) -> list[dict[str, Any]]:
    visits = [
        visit(
            "mode",
            register="HoldingRegister",
            offset=1,
            mapping={0: "Off", 1: "Heat", 2: "Cool", 3: "Auto"},
            **mode,
        ),
        visit(
            "temperature",
            register="HoldingRegister",
            offset=2,
            dataType="uint16",
            scale=0.1,
            valueOffset=-40,
        ),
        visit("fan", register="HoldingRegister", offset=3, mask="0x0F00", shift=8),
    ]
    return [model("plant", ENUM_AND_OFFSET), device("plant", "plant", port, visits)]


async def test_an_enum_register_written_by_name_and_an_offset_temperature(tmp_path: Path) -> None:
    async with ForeignServer().running() as server:
        await server.set_holding(1, [2, 615, 0x1A2B])
        (spec,) = load(tmp_path, plant(server.port))
        driver = ModbusDriver(spec)
        await driver.connect()
        try:
            assert await driver.read(spec.properties) == {
                "mode": "Cool",
                "temperature": 21.5,
                "fan": 0xA,
            }
            await driver.write(spec.property("mode"), "Auto")
            await driver.write(spec.property("temperature"), 22.3)
            assert await server.holding(1, 2) == [3, 623]
            with pytest.raises(WriteRefused, match="'Warm' is not one of Off, Heat, Cool, Auto"):
                await driver.write(spec.property("mode"), "Warm")
            with pytest.raises(WriteRefused, match="fan: mask 0xf00 keeps part of the register"):
                await driver.write(spec.property("fan"), 3)
            await server.set_holding(1, [7])  # a mode the mapping does not know
            assert (await driver.read([spec.property("mode")]))["mode"] == "7"
        finally:
            await driver.close()


async def test_a_strict_mapping_makes_an_unknown_raw_value_bad(tmp_path: Path) -> None:
    async with ForeignServer().running() as server:
        await server.set_holding(1, [9, 615])
        (spec,) = load(tmp_path, plant(server.port, strict=True))
        driver = ModbusDriver(spec)
        await driver.connect()
        try:
            assert await driver.read(spec.properties) == {
                "mode": Sample.bad("raw value 9 is not in mapping (strict)"),
                "temperature": 21.5,
                "fan": 0,
            }
            with pytest.raises(WriteRefused, match="'5' is not one of Off, Heat, Cool, Auto"):
                await driver.write(spec.property("mode"), "5")
            await server.set_holding(1, [1])
            assert (await driver.read(spec.properties))["mode"] == "Heat"
        finally:
            await driver.close()


async def test_an_expected_value_that_reads_otherwise_makes_the_device_unhealthy(
    tmp_path: Path, mqtt_url: str
) -> None:
    props = [{"name": "deviceType", "type": "INT"}, {"name": "level", "type": "INT"}]
    visits = [
        visit("deviceType", register="InputRegister", offset=0, dataType="uint16", expect="0x4D42"),
        visit("level", register="InputRegister", offset=1),
    ]
    docs = [model("tank", props), device("tank", "tank", free_port(), visits)]
    with pytest.raises(ConfigError, match=r"expect: '0x4D42' is not an integer"):
        load(tmp_path, docs)
    visits[0]["visitors"]["configData"]["expect"] = 19778  # 0x4D42, as YAML reads it
    devices = load(tmp_path, docs)
    async with fleet(devices, mqtt_url, root()) as (sim, mapper, recorder):
        runner = mapper.runners["default/tank"]
        await recorder.wait_for(topic_endswith("/twin/update"))
        assert runner.state is DeviceState.ONLINE
        sim.freeze("default/tank")
        sim.set_words("default/tank", Table.INPUT, 0, [0x4D43])  # another device answers
        state = await recorder.wait_for(
            lambda m: (
                m.topic.endswith("/state/update") and json.loads(m.payload)["state"] == "unhealthy"
            )
        )
        assert state
        assert runner.reason == "property deviceType reads 19779, expected 19778"
        sim.set_words("default/tank", Table.INPUT, 0, [0x4D42])
        await recorder.wait_for(
            lambda m: (
                m.topic.endswith("/state/update") and json.loads(m.payload)["state"] == "online"
            )
        )


def test_an_expectation_fails_until_the_property_reads_as_expected(tmp_path: Path) -> None:
    props = [{"name": "version", "type": "INT"}, {"name": "level", "type": "INT"}]
    visits = [
        visit("version", register="InputRegister", offset=0, expect=5),
        visit("level", register="InputRegister", offset=1),
    ]
    (spec,) = load(tmp_path, [model("v", props), device("v", "v", free_port(), visits)])
    expectations = Expectations(spec.properties)
    expectations.check({"version": 5, "level": 1})
    with pytest.raises(DeviceFault, match="property version reads 6, expected 5"):
        expectations.check({"version": 6})
    with pytest.raises(DeviceFault, match="reads 6"):  # until version is read again
        expectations.check({"level": 2})
    expectations.check({"version": 5})


async def test_the_simulator_serves_bits_enums_and_offsets(tmp_path: Path, mqtt_url: str) -> None:
    port = free_port()
    docs = status_word(port) + plant(port)
    docs[-1]["spec"]["protocol"]["configData"]["slaveID"] = 2
    devices = load(tmp_path, docs)
    async with fleet(devices, mqtt_url, root()) as (sim, mapper, recorder):
        await recorder.wait_for(topic_endswith("/boiler/twin/update"))
        sim.freeze("default/boiler")
        sim.set_words("default/boiler", Table.HOLDING, 0, [STATUS])
        sim.requests.clear()
        boiler = mapper.runners["default/boiler"]
        result = await boiler.desired.write("bit1", "true")
        assert result.ok
        assert sim.words("default/boiler", Table.HOLDING, 0, 1) == [STATUS | 0b10]
        runner = mapper.runners["default/plant"]
        assert (await runner.desired.write("mode", "Heat")).ok
        assert (await runner.desired.write("temperature", "21.5")).ok
        assert sim.words("default/plant", Table.HOLDING, 1, 2) == [1, 615]
        assert runner.last["mode"].value == "Heat" and runner.last["temperature"].value == 21.5
        refused = await runner.desired.write("mode", "Warm")
        assert not refused.ok and "is not one of Off, Heat, Cool, Auto" in (refused.reason or "")
        await sim.wait_requests(len(sim.requests) + 2)
        reads = [r for r in sim.requests if r.is_read and r.device == "default/boiler"]
        assert reads and all(r.count == 1 for r in reads)  # 16 bits: one register per read


# edgedev validate: each mistake named by field, the wrong value quoted -----------------
MISTAKES: list[tuple[str, dict[str, Any], str, str]] = [
    ("BOOLEAN", {"register": "CoilRegister", "bit": 2}, "bit", "CoilRegister holds single bits"),
    ("BOOLEAN", {"bit": 16}, "bit", "bit 16 is beyond the 16 bits of uint16"),
    ("BOOLEAN", {"bit": 70}, "bit", "bit 70 is beyond a 64-bit value"),
    ("BOOLEAN", {"bit": 3, "dataType": "float32"}, "dataType", "not dataType float32"),
    ("BOOLEAN", {"bit": 3, "scale": 2}, "scale", "bit reads one bit as it is: drop scale"),
    ("INT", {"valueOfset": -40}, "valueOfset", "did you mean 'valueOffset'?"),
    ("INT", {"maks": 3}, "maks", "did you mean 'mask'?"),
    ("INT", {"mask": "0xFG"}, "mask", "mask '0xFG' is not an integer"),
    ("INT", {"mask": 0}, "mask", "mask 0 keeps no bit"),
    ("INT", {"shift": 70}, "shift", "shift 70 is beyond a 64-bit value"),
    ("INT", {"base": 1}, "base", "base 1.0 leaves nothing to read"),
    ("INT", {"valueOffset": "warm"}, "valueOffset", "valid number"),
    ("INT", {"strict": True}, "strict", "strict applies to mapping, which is not given"),
    ("INT", {"mapping": {0: "Off"}}, "mapping", "the property must be STRING, not INT"),
    ("FLOAT", {"dataType": "float32", "mask": 255}, "mask", "mask applies to integers"),
    ("STRING", {"scale": 2}, "scale", "a STRING property needs mapping (number to text)"),
    ("STRING", {"mapping": {"zero": "Off"}}, "mapping", "mapping key 'zero' is not a number"),
    ("STRING", {"mapping": {1: "On", "0x1": "Up"}}, "mapping", "'1' and '0x1' name the same"),
    (
        "STRING",
        {"mapping": {0: "Off", 1: "Heat"}, "expect": 1},
        "expect",
        "expect '1' is a raw number; the property reads its text (did you mean 'Heat'?)",
    ),
    ("INT", {"expect": "high"}, "expect", "'high' is not an integer (the property is INT)"),
]


@pytest.mark.parametrize(("type_", "keys", "field", "message"), MISTAKES)
def test_validate_explains_each_mistake(
    tmp_path: Path, type_: str, keys: dict[str, Any], field: str, message: str
) -> None:
    config = {"register": "HoldingRegister", "offset": 0, **keys}
    docs = [
        model("m", [{"name": "p", "type": type_}]),
        device("d", "m", free_port(), [visit("p", **config)]),
    ]
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, docs)
    (problem,) = caught.value.problems
    assert problem.field == f"spec.properties[0].visitors.configData.{field}"
    assert message in problem.message


@pytest.mark.parametrize(
    ("keys", "desired", "field", "message"),
    [
        ({"mask": 0xF0}, "3", "mask", "'3' cannot be written: mask 0xf0 keeps part"),
        ({"shift": 4}, "3", "shift", "shift 4 drops the 4 low bit(s)"),
        ({"base": 10}, "3", "base", "base 10 would need a logarithm"),
    ],
)
def test_a_desired_value_no_write_can_reach_is_refused(
    tmp_path: Path, keys: dict[str, Any], desired: str, field: str, message: str
) -> None:
    prop = visit("p", register="HoldingRegister", offset=0, **keys)
    prop["desired"] = {"value": desired}
    docs = [model("m", [{"name": "p", "type": "FLOAT"}]), device("d", "m", free_port(), [prop])]
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, docs)
    (problem,) = caught.value.problems
    assert problem.field == f"spec.properties[0].visitors.configData.{field}"
    assert message in problem.message


async def test_a_block_refused_while_its_neighbours_answer_makes_its_properties_bad(
    tmp_path: Path, mqtt_url: str
) -> None:
    """The register map says 100, the device has 64: that request is refused, not the others."""
    props = [{"name": n, "type": "INT", "accessMode": "ReadOnly"} for n in ("flow", "beyond")]
    visits = [
        visit("flow", register="HoldingRegister", offset=3),
        visit("beyond", register="HoldingRegister", offset=100),
    ]
    async with ForeignServer(size=64).running() as server:
        await server.set_holding(3, [42])
        docs = [model("meter", props), device("meter", "meter", server.port, visits, maxGap=0)]
        (spec,) = load(tmp_path, docs)
        driver = ModbusDriver(spec)
        await driver.connect()
        try:
            assert await driver.read(spec.properties) == {
                "flow": 42,
                "beyond": Sample.bad("exception code 2 (illegal data address)"),
            }
        finally:
            await driver.close()
        async with fleet_on(spec, mqtt_url) as (mapper, recorder):
            update = await recorder.wait_for(
                lambda m: m.topic.endswith("/twin/update") and "beyond" in m.payload.decode(),
                timeout=10,
            )
            runner = mapper.runners[spec.id]
            assert runner.state is DeviceState.ONLINE  # reachable, one register missing
            assert set(runner.bad) == {"beyond"} and runner.bad_values >= 1
    entry = json.loads(update.payload)["twin"]["beyond"]
    assert "actual" not in entry
    assert entry["quality"]["reason"] == "exception code 2 (illegal data address)"
