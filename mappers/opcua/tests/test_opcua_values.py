"""Values as plants encode them, on OPC-UA: an enumeration node, an offset, a status word.

Against a plain asyncua server built here (not edgedev's simulator), and against the
simulator that ``edgedev simulate`` runs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from opcua_helpers import device, load, model, plain, portal, served, url, visit

from edgedev import ConfigError, DeviceSpec, WriteRefused
from edgedev.drivers import Endpoints
from edgedev_opcua import OpcuaDriver

NS = "urn:edgedev:test:plant"
STATUS = 0b1000_0000_0000_0101


async def _plant_server(address: str) -> Any:
    """A vendor's server: Mode (Int32 enum), RawTemp (UInt16 tenths +40), Status (UInt16)."""
    from asyncua import Server, ua

    server = Server()
    await server.init()
    server.set_endpoint(address)
    index = await server.register_namespace(NS)
    plc = await server.nodes.objects.add_object(index, "PLC")
    for name, value, kind in (
        ("Mode", 2, ua.VariantType.Int32),
        ("RawTemp", 615, ua.VariantType.UInt16),
        ("Status", STATUS, ua.VariantType.UInt16),
        ("Level", 0x1A2B, ua.VariantType.UInt16),
    ):
        node = await plc.add_variable(ua.NodeId(name, index), name, ua.Variant(value, kind))
        await node.set_writable()
    await server.start()
    return server


@pytest.fixture(scope="module")
def plant() -> Iterator[tuple[str, Any]]:
    """The vendor's server, in a thread of its own (asyncua servers take seconds to start)."""
    address = url()
    with portal() as p:
        server = p.call(_plant_server, address)
        try:
            yield address, p
        finally:
            p.call(server.stop)


def plant_docs(address: str, **mode: Any) -> list[dict[str, Any]]:
    props = [
        {"name": "mode", "type": "STRING"},
        {"name": "temperature", "type": "FLOAT"},
        {"name": "alarm", "type": "BOOLEAN", "accessMode": "ReadOnly"},
        {"name": "running", "type": "BOOLEAN", "accessMode": "ReadOnly"},
        {"name": "level", "type": "INT", "accessMode": "ReadOnly"},
    ]
    visits = [
        visit("mode", f"nsu={NS};s=Mode", mapping={0: "Off", 1: "Heat", 2: "Cool"}, **mode),
        visit("temperature", f"nsu={NS};s=RawTemp", scale=0.1, valueOffset=-40),
        visit("alarm", f"nsu={NS};s=Status", bit=15),
        visit("running", f"nsu={NS};s=Status", bit=1),
        visit("level", f"nsu={NS};s=Level", mask="0x0F00", shift=8),
    ]
    return [model("plant", props), device("plant", "plant", address, visits)]


@asynccontextmanager
async def connected(spec: DeviceSpec) -> AsyncIterator[OpcuaDriver]:
    async with Endpoints() as endpoints:
        driver = OpcuaDriver(spec, endpoints)  # type: ignore[arg-type]
        await driver.connect()
        try:
            yield driver
        finally:
            await driver.close()


async def test_an_enum_node_an_offset_and_a_status_word(
    tmp_path: Path, plant: tuple[str, Any]
) -> None:
    address, _ = plant
    (spec,) = load(tmp_path, plant_docs(address))
    async with connected(spec) as driver:
        assert plain(await driver.read(spec.properties)) == {
            "mode": "Cool",
            "temperature": 21.5,
            "alarm": True,
            "running": False,
            "level": 0xA,
        }
        await driver.write(spec.property("mode"), "Heat")
        await driver.write(spec.property("temperature"), 22.3)  # raw 623
        values = plain(await driver.read([spec.property("mode"), spec.property("temperature")]))
        assert values == {"mode": "Heat", "temperature": 22.3}
        with pytest.raises(WriteRefused, match="'Auto' is not one of Off, Heat, Cool"):
            await driver.write(spec.property("mode"), "Auto")
        with pytest.raises(WriteRefused, match="a bit of a node is read-only"):
            await driver.write(spec.property("alarm"), False)
        with pytest.raises(WriteRefused, match="mask 0xf00 keeps part of the register"):
            await driver.write(spec.property("level"), 3)
        await driver.write(spec.property("mode"), "Cool")
        await driver.write(spec.property("temperature"), 21.5)


def test_validate_explains_mistakes(tmp_path: Path) -> None:
    docs = [
        model("m", [{"name": "p", "type": "STRING"}]),
        device("d", "m", url(), [visit("p", "ns=2;s=P", dataType="String", mapping={0: "Off"})]),
    ]
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, docs)
    (problem,) = caught.value.problems
    assert problem.field == "spec.properties[0].visitors.configData.dataType"
    assert "a STRING property cannot live in an OPC-UA String node" in problem.message
    docs[1]["spec"]["properties"][0]["visitors"]["configData"] = {
        "nodeID": "ns=2;s=P",
        "dataType": "Double",
        "mask": 255,
    }
    docs[0]["spec"]["properties"][0]["type"] = "FLOAT"
    with pytest.raises(ConfigError, match="mask applies to integers, and the value is a float"):
        load(tmp_path, docs)


async def test_the_simulator_serves_enums_offsets_and_bits_of_one_node(tmp_path: Path) -> None:
    address = url()
    docs = plant_docs(address)
    for prop in docs[1]["spec"]["properties"]:  # the simulator makes the nodes, in ns=2
        config = prop["visitors"]["configData"]
        config["nodeID"] = config["nodeID"].replace(f"nsu={NS};", "ns=2;")
    (spec,) = load(tmp_path, docs)
    with portal() as p, served([spec], p) as server:
        server.sim.freeze("default/plant")
        server.call(server.sim.set, "default/plant", "alarm", True)
        server.call(server.sim.set, "default/plant", "running", True)
        async with connected(spec) as driver:
            values = plain(await driver.read(spec.properties))
            assert values["alarm"] is True and values["running"] is True  # one node, two bits
            assert values["mode"] in ("Off", "Heat", "Cool")
            await driver.write(spec.property("mode"), "Heat")
            await driver.write(spec.property("temperature"), 21.5)
            assert server.sim.get("default/plant", "mode") == "Heat"
            assert server.sim.get("default/plant", "temperature") == 21.5
