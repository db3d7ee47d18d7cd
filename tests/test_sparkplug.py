"""Sparkplug B end to end: a mapper as edge node, pysparkplug as the primary host application.

The host is an independent implementation (pysparkplug 0.6.1, from PyPI, in a process and a
venv of its own: ``sparkplug_helpers.Host``): it decodes every message, resolving aliases from
the births it saw, and sends STATE, NCMD and DCMD. What pysparkplug does not decode (metric
property sets, 6.4.8) is read from the same messages with a plain MQTT client and the
protobuf code generated from Tahu's proto. Section numbers are the Eclipse Sparkplug 3.0.0
specification's. The devices are Modbus, served by edgedev's simulator, which counts the
writes it receives.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

from edgedev import Bus, DeviceSpec, Mapper
from edgedev.bus import Topics
from edgedev.health import mapper_metrics, mapper_ready, render
from edgedev.mapper import Reading, StateChanges
from edgedev.mqtt import KubeEdgeMqtt
from edgedev.sparkplug import DataType, EdgeNode, Sparkplug, decode
from edgedev.sparkplug._payloads import metric_info
from edgedev.testing import (
    Recorder,
    device,
    device_model,
    device_property,
    free_port,
    load_documents,
    unique_root,
    write_documents,
)
from edgedev.twin import DeviceState
from sparkplug_helpers import Host, host_python, metrics, seqs_continue

pytestmark = pytest.mark.needs("edgedev_modbus")

WAIT = 20.0
WRITES = (5, 6, 15, 16)  # Modbus write function codes


def _documents(port: int, names: Sequence[str] = ("boiler",)) -> list[dict[str, Any]]:
    model = device_model(
        "boiler-model",
        "modbus",
        [
            {"name": "temperature", "type": "FLOAT", "accessMode": "ReadOnly", "unit": "degC"},
            {
                "name": "setpoint",
                "type": "FLOAT",
                "accessMode": "ReadWrite",
                "unit": "degC",
                "minimum": "10",
                "maximum": "30",
            },
            {"name": "pumps", "type": "INT", "accessMode": "ReadOnly"},
            {"name": "running", "type": "BOOLEAN", "accessMode": "ReadWrite"},
        ],
    )
    docs: list[dict[str, Any]] = [model]
    for slave, name in enumerate(names, start=1):
        props = [
            device_property(
                "temperature",
                "modbus",
                100,
                {"register": "InputRegister", "offset": 0, "dataType": "int16", "scale": 0.1},
            ),
            device_property(
                "setpoint",
                "modbus",
                100,
                {"register": "HoldingRegister", "offset": 0, "dataType": "int16", "scale": 0.1},
            ),
            device_property("pumps", "modbus", 100, {"register": "InputRegister", "offset": 1}),
            device_property("running", "modbus", 100, {"register": "CoilRegister", "offset": 0}),
        ]
        for p in props:
            p["reportCycle"] = 100
        docs.append(
            device(
                name,
                "boiler-model",
                "modbus",
                {"ip": "127.0.0.1", "port": port, "slaveID": slave},
                props,
            )
        )
    return docs


def _edge() -> EdgeNode:
    return EdgeNode(unique_root("plant"), "line1")


def _writes(sim: Any) -> list[Any]:
    return [r for r in sim.requests if r.function in WRITES]


class Reports(StateChanges):
    """A sink of the mapper's: wait until a device state or a twin report says something."""

    def __init__(self) -> None:
        super().__init__()
        self.reports: list[Reading] = []

    def twin(self, device: DeviceSpec, readings: Sequence[Reading]) -> None:
        self.reports.extend(readings)
        self.state(device, DeviceState.ONLINE, None)  # wakes the waiters

    async def until(self, condition: Callable[[], bool]) -> None:
        with anyio.fail_after(WAIT):
            await self.wait_until(condition)


@asynccontextmanager
async def _running(
    devices: list[DeviceSpec], sparkplug: Sparkplug, url: str
) -> AsyncIterator[tuple[Any, Mapper, Reports]]:
    """A simulator and a mapper with KubeEdge's topics beside Sparkplug; stopped at the end."""
    from edgedev_modbus import ModbusSimulator

    sim = ModbusSimulator(devices)
    reports = Reports()
    transports = [KubeEdgeMqtt(url, topic_root=unique_root()), sparkplug]
    mapper = Mapper(devices, transports=transports, name=unique_root("mapper"), sinks=[reports])
    async with anyio.create_task_group() as tg:
        await tg.start(sim.run)
        async with anyio.create_task_group() as running:
            await running.start(mapper.run)
            try:
                yield sim, mapper, reports
            finally:
                mapper.stop()  # its task ends once the transports have flushed
        tg.cancel_scope.cancel()


async def test_a_primary_host_sees_births_data_rebirths_commands_and_history(
    tmp_path: Path, mqtt_url: str
):
    host_python()
    edge = _edge()
    devices = load_documents(tmp_path, _documents(free_port()))
    sparkplug = Sparkplug(edge, mqtt_url, host="scada", data_dir=tmp_path / "data")
    with Host(mqtt_url, edge, "scada", online=False) as host:
        await host.start()
        async with (
            Bus(mqtt_url) as bus,
            Recorder(bus, f"spBv1.0/{edge.group}/#") as wire,
            _running(devices, sparkplug, mqtt_url) as (sim, _, reports),
        ):
            sim.freeze("default/boiler")
            sim.set("default/boiler", "temperature", 21.5)
            sim.set("default/boiler", "pumps", -2)
            await reports.until(
                lambda: any(r.name == "temperature" and r.value == 21.5 for r in reports.reports)
            )
            # 5.4: with a primary host, no birth until its STATE says online
            assert sparkplug.bus is not None
            with anyio.fail_after(WAIT):
                await sparkplug.bus.wait_connected()
            assert sparkplug.sent["NBIRTH"] == 0 and not sparkplug.live
            assert sparkplug.ready() == (False, f"Sparkplug {edge}: waiting for primary host scada")
            host.send(do="state", online=True)

            nbirth = await host.expect(host.of("NBIRTH"), what="NBIRTH")
            node = metrics(nbirth)
            assert nbirth["seq"] == 0  # 4.2.1.1.2
            assert node["bdSeq"]["value"] == 0 and node["bdSeq"]["datatype"] == DataType.Int64
            assert node["Node Control/Rebirth"]["value"] is False  # 5.17
            assert node["Node Control/Rebirth"]["alias"] is None
            assert node["Mapper/Devices"]["value"] == 1

            dbirth = await host.expect(host.of("DBIRTH", "boiler"), what="DBIRTH")
            born = metrics(dbirth)
            assert {"temperature", "setpoint", "pumps", "running"} <= born.keys()
            assert born["temperature"]["datatype"] == DataType.Float
            assert born["temperature"]["value"] == 21.5
            assert born["pumps"]["datatype"] == DataType.Int64 and born["pumps"]["value"] == -2
            assert born["running"]["datatype"] == DataType.Boolean
            assert born["Properties/Device"]["value"] == "default/boiler"
            aliases = [m["alias"] for m in dbirth["metrics"]]
            assert None not in aliases and len(set(aliases)) == len(aliases)  # 6.4.6
            # the property sets (6.4.8), read off the wire: unit, range, whether writable
            raw = await wire.wait_for(lambda m: "/DBIRTH/" in m.topic, timeout=WAIT)
            infos = {m.name: metric_info(m) for m in decode(raw.payload).metrics}
            assert (infos["setpoint"].unit, infos["setpoint"].low, infos["setpoint"].high) == (
                "degC",
                10.0,
                30.0,
            )
            assert infos["setpoint"].read_only is False and infos["temperature"].read_only

            # readings made while the host was away follow the births, as historical (5.4)
            history = await host.expect(
                lambda line: (
                    host.of("DDATA", "boiler")(line)
                    and any(m["historical"] for m in line["metrics"])
                ),
                what="historical DDATA",
            )
            assert {m["name"] for m in history["metrics"]} <= born.keys()

            # DDATA of a changed value, by alias only (6.4.6)
            sim.set("default/boiler", "temperature", 22.5)
            ddata = await host.expect(
                lambda line: (
                    host.of("DDATA", "boiler")(line)
                    and metrics(line).get("temperature", {}).get("value") == 22.5
                    and not metrics(line)["temperature"]["historical"]
                ),
                what="DDATA temperature=22.5",
            )
            assert metrics(ddata)["temperature"]["alias"] == born["temperature"]["alias"]
            on_wire = [decode(m.payload) for m in wire.messages if "/DDATA/" in m.topic]
            assert on_wire and all(
                not m.HasField("name") and m.HasField("alias") for p in on_wire for m in p.metrics
            )

            # a rebirth: NBIRTH of the same bdSeq, every DBIRTH again (5.17)
            host.send(do="rebirth")
            again = await host.expect(host.of("NBIRTH"), what="NBIRTH after the rebirth")
            assert again["seq"] == 0 and metrics(again)["bdSeq"]["value"] == 0
            await host.expect(host.of("DBIRTH", "boiler"), what="DBIRTH after the rebirth")

            # a DCMD by alias: written to the register (counted at the simulator), then DDATA
            # of the value the device holds (5.17)
            before = len(_writes(sim))
            alias = born["setpoint"]["alias"]
            host.send(do="dcmd", device="boiler", alias=alias, datatype=DataType.Float, value=23.5)
            answer = await host.expect(
                lambda line: (
                    host.of("DDATA", "boiler")(line)
                    and metrics(line).get("setpoint", {}).get("value") == 23.5
                ),
                what="DDATA setpoint=23.5",
            )
            assert metrics(answer)["setpoint"]["alias"] == alias
            assert len(_writes(sim)) == before + 1
            assert sim.get("default/boiler", "setpoint") == 23.5

            # out of range: refused, nothing written, the held value sent back
            host.send(do="dcmd", device="boiler", alias=alias, datatype=DataType.Float, value=99.0)
            held = await host.expect(
                lambda line: (
                    host.of("DDATA", "boiler")(line)
                    and metrics(line).get("setpoint", {}).get("value") == 23.5
                ),
                what="DDATA of the held setpoint",
            )
            assert held["seq"] is not None
            assert len(_writes(sim)) == before + 1
            assert sparkplug.commands["accepted"] == 3  # the rebirth and two setpoints

            # the host goes offline: NDEATH of this bdSeq, a new session (5.5); births wait
            host.send(do="state", online=False)
            death = await host.expect(host.of("NDEATH"), what="NDEATH")
            assert metrics(death)["bdSeq"]["value"] == 0
            assert not sparkplug.live
            sim.set("default/boiler", "temperature", 24.5)  # read while nobody listens
            await reports.until(
                lambda: any(r.name == "temperature" and r.value == 24.5 for r in reports.reports)
            )
            assert not sparkplug.live and len(sparkplug.history) > 0
            host.send(do="state", online=True)
            reborn = await host.expect(host.of("NBIRTH"), what="NBIRTH of the new session")
            assert metrics(reborn)["bdSeq"]["value"] == 1
            await host.expect(
                lambda line: (
                    host.of("DDATA", "boiler")(line)
                    and any(
                        m["name"] == "temperature" and m["value"] == 24.5 and m["historical"]
                        for m in line["metrics"]
                    )
                ),
                what="temperature=24.5 as historical",
            )
        # a clean stop: DDEATH, then NDEATH before the DISCONNECT (5.5)
        await host.expect(host.of("DDEATH", "boiler"), what="DDEATH at the stop")
        goodbye = await host.expect(host.of("NDEATH"), what="NDEATH at the stop")
        assert metrics(goodbye)["bdSeq"]["value"] == 1
    seqs_continue(host.lines, edge)


async def test_devices_added_and_removed_at_run_time_are_born_and_die(
    tmp_path: Path, mqtt_url: str
):
    host_python()
    edge = _edge()
    port = free_port()
    first, second = load_documents(tmp_path, _documents(port, names=("boiler", "boiler-2")))
    sparkplug = Sparkplug(edge, mqtt_url)
    with Host(mqtt_url, edge, "scada") as host:
        await host.start()
        from edgedev_modbus import ModbusSimulator

        sim = ModbusSimulator([first, second])
        mapper = Mapper([first], transports=[sparkplug], name=unique_root("mapper"))
        async with anyio.create_task_group() as tg:
            await tg.start(sim.run)
            await tg.start(mapper.run)
            await host.expect(host.of("DBIRTH", "boiler"), what="DBIRTH boiler")
            exposed = render(mapper_metrics(mapper))
            assert "edgedev_sparkplug_online 1" in exposed
            assert 'edgedev_broker_connected{transport="sparkplug"} 1' in exposed
            assert 'edgedev_sparkplug_messages_total{type="DBIRTH"} 1' in exposed
            assert mapper_ready(mapper) == (True, f"Sparkplug {edge}: online (bdSeq 0)")
            await mapper.add_device(second)
            await host.expect(host.of("DBIRTH", "boiler-2"), what="DBIRTH of the added device")
            count = await host.expect(host.of("NDATA"), what="NDATA of the device count")
            assert metrics(count)["Mapper/Devices"]["value"] == 2
            await mapper.remove_device(second.id)
            await host.expect(host.of("DDEATH", "boiler-2"), what="DDEATH of the removed device")
            count = await host.expect(host.of("NDATA"), what="NDATA of the device count")
            assert metrics(count)["Mapper/Devices"]["value"] == 1
            # a device that stops answering (its gateway says the target fails) dies (5.7),
            # and is born again when it answers
            sim.fail(first.id, 11)
            await host.expect(host.of("DDEATH", "boiler"), what="DDEATH of the failing device")
            sim.fail(first.id, None)
            await host.expect(host.of("DBIRTH", "boiler"), what="DBIRTH of the device back")
            mapper.stop()
            tg.cancel_scope.cancel()
    seqs_continue(host.lines, edge)


async def test_the_demo_s_devices_are_sparkplug_devices_a_pysparkplug_host_commands(
    tmp_path: Path,
):
    """Issue 28's "done when": ``edgedev demo --sparkplug demo/edge1`` as docs/sparkplug.md
    runs it, on the demo's own broker; pysparkplug, joining as a host does, sees each of the
    demo's devices born with live metrics, and its DCMD of the thermostat's ``heating`` reaches
    the simulated device (read back from it: in the DDATA and in the KubeEdge twin report)."""
    host_python()
    edge = EdgeNode("demo", "edge1")
    output, errors = tmp_path / "demo.out", tmp_path / "demo.err"
    command = [sys.executable, "-m", "edgedev", "demo", "--sparkplug", str(edge)]
    with output.open("wb") as out, errors.open("wb") as err:
        demo = await anyio.open_process(
            [*command, "--seconds", "120"],
            stdout=out,
            stderr=err,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    try:
        with anyio.fail_after(WAIT):
            while not (found := re.search(r"^demo broker: (\S+)", output.read_text(), re.M)):
                assert demo.returncode is None, errors.read_text()
                await anyio.sleep(0.05)
        url = found[1]
        thermostat = "demo:thermostat-1"  # demo/thermostat-1 (Device ids)
        with Host(url, edge, "scada") as host:
            await host.start()
            async with Bus(url) as bus, Recorder(bus, "$hw/events/device/#") as kubeedge:
                # joining a running edge node, the host asks for its births (5.17)
                host.send(do="rebirth")
                nbirth = await host.expect(host.of("NBIRTH"), what="NBIRTH")
                assert metrics(nbirth)["Mapper/Devices"]["value"] == 5
                born: dict[str, dict[str, Any]] = {}
                while len(born) < 5:
                    dbirth = await host.expect(host.of("DBIRTH"), what="the demo's DBIRTHs")
                    born[dbirth["device"]] = metrics(dbirth)
                assert born.keys() == {
                    "demo:filler-1",
                    "demo:gpio-panel",
                    "demo:meter-1",
                    "demo:thermometer-ble-1",
                    thermostat,
                }
                assert born["demo:meter-1"]["Properties/Device"]["value"] == "demo/meter-1"
                heating = born[thermostat]["heating"]
                assert heating["datatype"] == DataType.Boolean and heating["value"] is False
                # live: the meter's energy changes in its DDATA, named by the birth's alias
                energy = born["demo:meter-1"]["energy"]
                seen = set()
                while len(seen) < 3:
                    ddata = await host.expect(host.of("DDATA", "demo:meter-1"), what="DDATA")
                    if "energy" in (data := metrics(ddata)):
                        assert data["energy"]["alias"] == energy["alias"]
                        seen.add(data["energy"]["value"])
                await host.expect(host.of("DDATA", thermostat), what="DDATA of the thermostat")

                # the host's DCMD: written to the simulated thermostat, read back from it
                host.send(
                    do="dcmd",
                    device=thermostat,
                    alias=heating["alias"],
                    datatype=DataType.Boolean,
                    value=True,
                )
                answer = await host.expect(
                    lambda line: (
                        host.of("DDATA", thermostat)(line)
                        and metrics(line).get("heating", {}).get("value") is True
                    ),
                    what="DDATA heating=true",
                )
                assert metrics(answer)["heating"]["alias"] == heating["alias"]

                def heating_reported(message: Any) -> bool:
                    if not message.topic.endswith("/demo/thermostat-1/twin/update"):
                        return False
                    twin = json.loads(message.payload)["twin"]
                    return bool(twin.get("heating", {}).get("actual", {}).get("value") == "true")

                await kubeedge.wait_for(heating_reported, timeout=WAIT)
            # stopped (Ctrl-C): NDEATH before the demo disconnects (5.5)
            demo.send_signal(signal.SIGINT)
            with anyio.fail_after(WAIT):
                assert await demo.wait() == 0, errors.read_text()
            await host.expect(host.of("NDEATH"), what="NDEATH at the stop")
        seqs_continue(host.lines[host.lines.index(nbirth) :], edge)
    finally:
        if demo.returncode is None:
            demo.kill()
        with anyio.fail_after(WAIT):
            await demo.wait()


def _run(files: Sequence[Path], url: str, edge: EdgeNode, data: Path) -> subprocess.Popen[str]:
    """``edgedev run --sparkplug``, its output appended to ``edgedev.log`` beside ``data``."""
    command = [
        sys.executable,
        "-m",
        "edgedev",
        "run",
        *(a for f in files for a in ("-f", str(f))),
        "--broker",
        url,
        "--topic-root",
        unique_root(),
        "--sparkplug",
        str(edge),
        "--data-dir",
        str(data),
        "--name",
        unique_root("mapper"),
    ]
    with (data.parent / "edgedev.log").open("a") as log:
        return subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )


async def test_bdseq_goes_on_across_sigkill_broker_restarts_and_process_restarts(
    tmp_path: Path, fresh_broker: Any
):
    host_python()
    from edgedev_modbus import ModbusSimulator

    edge = _edge()
    url = fresh_broker.url
    docs = _documents(free_port())
    devices = load_documents(tmp_path, docs)
    files = [write_documents(tmp_path, docs)]
    data = tmp_path / "data"
    sim = ModbusSimulator(devices)
    async with anyio.create_task_group() as tg:
        await tg.start(sim.run)
        with Host(url, edge, "scada") as host:
            await host.start()
            proc = _run(files, url, edge, data)
            try:
                birth = await host.expect(host.of("NBIRTH"), what="NBIRTH", timeout=30)
                assert metrics(birth)["bdSeq"]["value"] == 0
                await host.expect(host.of("DBIRTH", "boiler"), what="DBIRTH")
                # SIGKILL: the broker publishes the will, the NDEATH of the birth's bdSeq (5.4)
                proc.send_signal(signal.SIGKILL)
                proc.wait(10)
                death = await host.expect(host.of("NDEATH"), what="NDEATH from the will")
                assert metrics(death)["bdSeq"]["value"] == 0
                # restarted: the next bdSeq, kept in --data-dir
                proc = _run(files, url, edge, data)
                birth = await host.expect(host.of("NBIRTH"), what="NBIRTH", timeout=30)
                assert metrics(birth)["bdSeq"]["value"] == 1
                await host.expect(host.of("DBIRTH", "boiler"), what="DBIRTH")
            finally:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
                    proc.wait(15)
            await host.expect(host.of("NDEATH"), what="NDEATH at SIGTERM")
            proc = _run(files, url, edge, data)
            try:
                birth = await host.expect(host.of("NBIRTH"), what="NBIRTH", timeout=30)
                assert metrics(birth)["bdSeq"]["value"] == 2
                # the broker restarts: a new MQTT session, the next bdSeq, births again. The
                # host may come back after them (its subscriptions went with the broker): once
                # its own STATE comes back, it asks for a rebirth, as a host that joins does
                await anyio.to_thread.run_sync(fresh_broker.stop)
                await anyio.to_thread.run_sync(fresh_broker.start)
                host.forget()
                await host.expect(
                    lambda line: line.get("type") == "STATE" and line["online"], what="host back"
                )
                host.send(do="rebirth")
                birth = await host.expect(
                    lambda line: host.of("NBIRTH")(line) and metrics(line)["bdSeq"]["value"] == 3,
                    what="NBIRTH after the broker restart",
                    timeout=60,
                )
                await host.expect(host.of("DBIRTH", "boiler"), what="DBIRTH after the restart")
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(15)
        tg.cancel_scope.cancel()


async def test_run_with_kubeedge_topics_dmi_and_sparkplug_at_once(tmp_path: Path, mqtt_url: str):
    """One ``edgedev run``: a device from EdgeCore (DMI) on KubeEdge's topics and Sparkplug."""
    host_python()
    from dmi_helpers import modbus_device, modbus_model, socket_dir
    from edgedev.testing.dmi import FakeEdgeCore
    from edgedev_modbus import ModbusSimulator

    edge = _edge()
    port = free_port()
    docs = [modbus_model(), modbus_device("dmi-1", port)]
    sim = ModbusSimulator(load_documents(tmp_path, docs))
    root = unique_root()
    with socket_dir() as sockets, Host(mqtt_url, edge, "scada") as host:
        await host.start()
        core = FakeEdgeCore(f"{sockets}/dmi.sock", devices=docs[1:], models=docs[:1])
        env = {
            **os.environ,
            "EDGEDEV_DMI": "1",
            "EDGEDEV_PROTOCOLS": "modbus",
            "EDGEDEV_DMI_SOCKET": core.socket,
            "EDGEDEV_MAPPER_SOCKET": f"{sockets}/edgedev-{{protocol}}.sock",
            "EDGEDEV_SPARKPLUG": str(edge),
            "EDGEDEV_SPARKPLUG_HOST": "scada",
        }
        command = [sys.executable, "-m", "edgedev", "run", "--broker", mqtt_url]
        command += ["--topic-root", root, "--data-dir", str(tmp_path / "data")]
        async with (
            anyio.create_task_group() as tg,
            Bus(mqtt_url) as bus,
            Recorder(bus, f"{root}/#") as kubeedge,
        ):
            await tg.start(sim.run)
            async with core, await anyio.open_process(command, env=env) as process:
                try:
                    await core.wait_for(lambda: "setpoint" in core.reported("default/dmi-1"))
                    await kubeedge.wait_for(
                        lambda m: m.topic.endswith("/dmi-1/twin/update"), timeout=WAIT
                    )
                    born = await host.expect(host.of("DBIRTH", "dmi-1"), what="DBIRTH", timeout=30)
                    assert "setpoint" in metrics(born)
                finally:
                    process.send_signal(signal.SIGTERM)
                    with anyio.fail_after(15):
                        await process.wait()
            tg.cancel_scope.cancel()
        await host.expect(host.of("NDEATH"), what="NDEATH at SIGTERM")


async def test_watch_names_what_it_sees_and_asks_a_running_edge_node_for_its_births(
    tmp_path: Path, mqtt_url: str
):
    edge = _edge()
    devices = load_documents(tmp_path, _documents(free_port()))
    sparkplug = Sparkplug(edge, mqtt_url)
    async with (
        Bus(mqtt_url) as bus,
        Recorder(bus, f"spBv1.0/{edge.group}/#") as wire,
        _running(devices, sparkplug, mqtt_url),
    ):
        await wire.wait_for(lambda m: "/DBIRTH/" in m.topic, timeout=WAIT)
        # joined mid-session, while the sensors change: the watch cannot name the aliases of
        # the data, and asks for a rebirth (5.17)
        command = [sys.executable, "-m", "edgedev", "watch", "--broker", mqtt_url]
        command += ["--sparkplug", str(edge), "--count", "100"]
        async with await anyio.open_process(command) as watch:
            output = b""
            try:
                with anyio.fail_after(WAIT):
                    assert watch.stdout is not None
                    async for chunk in watch.stdout:
                        output += chunk
                        if b"/boiler  born: " in output:
                            break
                watch.send_signal(signal.SIGINT)
                with anyio.fail_after(WAIT):
                    await watch.wait()
            finally:
                if watch.returncode is None:
                    watch.kill()
        text = output.decode()
        assert watch.returncode == 0, text
        assert f"{edge}  rebirth asked (NCMD)" in text
        assert f"{edge}  born: bdSeq=0  Node Control/Rebirth=false" in text
        assert f"{edge}/boiler  born: temperature=" in text
    assert sparkplug.births == 2


def test_the_view_feed_shows_an_edge_nodes_devices_as_its_births_and_data_say():
    from pydantic import BaseModel

    from edgedev.cli._sparkplug import SparkplugFeed

    class Visitor(BaseModel):
        pass

    from edgedev.config import PropertySpec
    from edgedev.sparkplug import Aliases, EdgeSession
    from edgedev.twin import PropertyType
    from edgedev.view import TwinView

    edge = EdgeNode("plant", "line1")
    visitor = Visitor()
    spec = DeviceSpec(
        "site-a",
        "pump",
        "pump-model",
        "modbus",
        visitor,
        (PropertySpec("flow", PropertyType.DOUBLE, visitor, unit="m3/h", minimum=0, maximum=9),),
    )
    session = EdgeSession(edge, 0, Aliases())
    view = TwinView(Topics("$hw/events"))
    feed = SparkplugFeed(edge)
    asked: list[str] = []

    def take(out: Any) -> bool:
        return feed.apply(view, out.topic, out.payload, 100.0, lambda t, p: asked.append(t))

    take(session.node_birth([], 1))
    assert take(session.device_birth(spec, {"flow": Reading("flow", 2.5, "2.5", 1)}, 1))
    device = view.devices["site-a/pump"]
    flow = device.properties["flow"]
    assert (device.state, device.protocol, flow.reported, flow.unit, flow.maximum) == (
        "online",
        "modbus",
        "2.5",
        "m3/h",
        9.0,
    )
    assert flow.writable is True and "Properties/Device" not in device.properties
    take(session.device_data(spec, [Reading("flow", 3.0, "3.0", 2)], 2))
    assert flow.reported == "3.0"
    take(session.node_death(3))
    assert device.state == "offline" and asked == []
    # a view that joins mid-session asks for the births it lacks
    late = SparkplugFeed(edge)
    out = session.device_data(spec, [Reading("flow", 4.0, "4.0", 4)], 4)
    assert out is None  # the NDEATH ended the session's births
    session.node_birth([], 5)
    session.device_birth(spec, {}, 5)
    data = session.device_data(spec, [Reading("flow", 4.0, "4.0", 6)], 6)
    assert data is not None
    assert not late.apply(view, data.topic, data.payload, 7.0, lambda t, p: asked.append(t))
    assert asked == ["spBv1.0/plant/NCMD/line1"]
