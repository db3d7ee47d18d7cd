"""The packing line of docs/protocols/opcua.md, as written, against a plain asyncua server
and against ``edgedev simulate``."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
from opcua_helpers import plain, portal, url

from edgedev import DeviceSpec
from edgedev.drivers import Endpoints
from edgedev.loader import load_devices
from edgedev.testing import docs_example, edgedev_process, wait_for_port
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
