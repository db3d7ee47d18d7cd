"""The examples of docs/protocols/opcua.md, as written: the packing line against a plain
asyncua server and against ``edgedev simulate``, the connection and property examples as one
device of a plain server (the security example: test_opcua_security.py)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import pytest
import yaml
from opcua_helpers import load, model, plain, portal, root, url

from edgedev import Bus, DeviceSpec, Mapper
from edgedev.drivers import Endpoints
from edgedev.loader import load_devices
from edgedev.mqtt import KubeEdgeMqtt
from edgedev.testing import Recorder, docs_example, edgedev_process, free_port, wait_for_port
from edgedev.testing import device as kube_device
from edgedev_opcua import OpcuaDriver

PAGE = Path(__file__).resolve().parents[3] / "docs" / "protocols" / "opcua.md"
NS = "urn:acme:packer"


def packer(tmp_path: Path, address: str) -> DeviceSpec:
    text = docs_example(PAGE, "opcua-packer").replace("opc.tcp://127.0.0.1:4840", address)
    path = tmp_path / "packer.yaml"
    path.write_text(text, encoding="utf-8")
    (spec,) = load_devices([path])
    return spec


async def _vendor_server(address: str) -> Any:
    from asyncua import Server, ua

    server = Server()
    await server.init()
    server.set_endpoint(address)
    index = await server.register_namespace(NS)
    for name, value, kind in (
        ("Packer.State", 1, ua.VariantType.Int32),
        ("Packer.RawTemp", 1850, ua.VariantType.UInt16),
        ("Packer.Status", 0x8001, ua.VariantType.UInt16),
    ):
        node = await server.nodes.objects.add_variable(
            ua.NodeId(name, index), name, ua.Variant(value, kind)
        )
        await node.set_writable()
    await server.start()
    return server


async def exercise(spec: DeviceSpec) -> dict[str, Any]:
    """Read everything, write state and temperature as the page does, read again."""
    async with Endpoints() as endpoints:
        driver = OpcuaDriver(spec, endpoints)  # type: ignore[arg-type]
        await driver.connect()
        try:
            before = dict(plain(await driver.read(spec.properties)))
            await driver.write(spec.property("state"), "Held")  # type: ignore[arg-type]
            await driver.write(spec.property("sealTemperature"), 150.0)  # type: ignore[arg-type]
            after = plain(await driver.read(spec.properties))
        finally:
            await driver.close()
    return {"before": before, "after": after}


async def test_the_packer_reads_and_writes_as_the_page_says(tmp_path: Path) -> None:
    address = url()
    spec = packer(tmp_path, address)
    with portal() as p:
        server = p.call(_vendor_server, address)
        try:
            seen = await exercise(spec)
        finally:
            p.call(server.stop)
    assert seen["before"] == {
        "state": "Running",
        "sealTemperature": 145.0,
        "doorClosed": True,
        "filmLow": False,
        "emergencyStop": True,
    }
    assert (seen["after"]["state"], seen["after"]["sealTemperature"]) == ("Held", 150.0)


async def test_the_packer_runs_against_edgedev_simulate(tmp_path: Path) -> None:
    address = url()
    spec = packer(tmp_path, address)
    path = tmp_path / "packer.yaml"
    with edgedev_process("simulate", "-f", str(path)):
        parts = urlsplit(address)
        await anyio.to_thread.run_sync(wait_for_port, parts.hostname, parts.port, 30.0)
        seen = await exercise(spec)
    assert seen["before"]["state"] in ("Idle", "Running", "Held", "Fault")
    assert {type(seen["before"][n]) for n in ("doorClosed", "filmLow", "emergencyStop")} == {bool}
    assert (seen["after"]["state"], seen["after"]["sealTemperature"]) == ("Held", 150.0)


async def _line_server(address: str) -> Any:
    """A plain asyncua server with the page's node: ``ns=2;s=Line1.Temp``, a Double."""
    from asyncua import Server, ua

    server = Server()
    await server.init()
    server.set_endpoint(address)
    index = await server.register_namespace("urn:example:line1")
    assert index == 2  # the first namespace a server registers after OPC-UA's and its own
    await server.nodes.objects.add_variable(
        ua.NodeId("Line1.Temp", index), "Line1.Temp", ua.Variant(21.5, ua.VariantType.Double)
    )
    await server.start()
    return server


async def _set_temperature(server: Any, value: float) -> None:
    from asyncua import ua

    node = server.get_node(ua.NodeId("Line1.Temp", 2))
    await node.write_value(ua.Variant(value, ua.VariantType.Double))


@pytest.mark.broker
async def test_the_connection_and_property_examples_subscribe_to_a_plain_server(
    tmp_path: Path, mqtt_url: str
) -> None:
    """The page's connection (its endpoint path, ``mode: subscribe``, ``timeout``) and its
    temperature property, at a local address, through a mapper to the twin."""
    protocol = yaml.safe_load(docs_example(PAGE, "opcua-connection"))["protocol"]
    (prop,) = yaml.safe_load(docs_example(PAGE, "opcua-temperature"))
    path = urlsplit(protocol["configData"]["url"]).path
    address = f"opc.tcp://127.0.0.1:{free_port()}{path}"
    config = {**protocol["configData"], "url": address}
    line = [{"name": "temperature", "type": "DOUBLE", "accessMode": "ReadOnly"}]
    (spec,) = load(
        tmp_path, [model("line", line), kube_device("line-1", "line", "opcua", config, [prop])]
    )
    assert (spec.config.mode, spec.timeout_ms, path) == ("subscribe", 3000, "/plant/line1")
    topic_root = root()
    mapper = Mapper([spec], transports=[KubeEdgeMqtt(mqtt_url, topic_root=topic_root)])

    def temperature(value: str) -> Callable[[Any], bool]:
        def match(message: Any) -> bool:
            if not message.topic.endswith("/line-1/twin/update"):
                return False
            twin = json.loads(message.payload)["twin"]
            return bool(twin.get("temperature", {}).get("actual", {}).get("value") == value)

        return match

    with portal() as p:
        server = p.call(_line_server, address)
        try:
            async with anyio.create_task_group() as tg:
                async with Bus(mqtt_url) as bus, Recorder(bus, f"{topic_root}/#") as recorder:
                    await tg.start(mapper.run)
                    await recorder.wait_for(temperature("21.5"), timeout=20)
                    await anyio.to_thread.run_sync(p.call, _set_temperature, server, 22.25)
                    await recorder.wait_for(temperature("22.25"), timeout=20)
                mapper.stop()
        finally:
            p.call(server.stop)
