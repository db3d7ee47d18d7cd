"""Devices behind one Modbus endpoint share its connection (counted at the server)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
from anyio.from_thread import start_blocking_portal
from modbus_helpers import TcpProxy, device, load, model, reports, root, visit

from edgedev import Bus, DeviceSpec, Mapper
from edgedev.drivers import Endpoints
from edgedev.mqtt import KubeEdgeMqtt
from edgedev.testing import Recorder, free_port, topic_endswith
from edgedev_modbus import ModbusDriver, ModbusSimulator

PROPS = [{"name": "v", "type": "INT", "accessMode": "ReadOnly"}]


def slaves(
    tmp_path: Path, ports: Sequence[int], per_port: int, cycle: int = 500, **config: Any
) -> list[DeviceSpec]:
    """``per_port`` devices (slave ids 1...) on each of ``ports``."""
    docs: list[dict[str, Any]] = [model("m", PROPS)]
    for port in ports:
        for slave in range(1, per_port + 1):
            visits = [visit("v", cycle=cycle, register="HoldingRegister", offset=0)]
            docs.append(device(f"d{port}-{slave}", "m", port, visits, slaveID=slave, **config))
    return load(tmp_path, docs)


async def wait_reports(recorder: Recorder, devices: Sequence[DeviceSpec], count: int) -> None:
    """Until every device has reported ``count`` times."""
    while any(len(reports(recorder, d.id)) < count for d in devices):
        await recorder.wait_for(lambda m: True, after=len(recorder.messages), timeout=10)


async def test_200_slave_ids_on_2_servers_use_2_connections(tmp_path: Path, mqtt_url: str):
    """The servers run in a thread (event loop) of their own, as a gateway would."""
    devices = slaves(tmp_path, [free_port(), free_port()], 100, cycle=1000)
    sim = ModbusSimulator(devices)
    topic_root = root()
    mapper = Mapper(devices, transports=[KubeEdgeMqtt(mqtt_url, topic_root=topic_root)])
    with start_blocking_portal() as portal:
        future, _ = portal.start_task(sim.run)
        try:
            async with (
                anyio.create_task_group() as tg,
                Bus(mqtt_url) as bus,
                Recorder(bus, f"{topic_root}/#") as recorder,
            ):
                await tg.start(mapper.run)
                with anyio.fail_after(60):
                    await wait_reports(recorder, devices, 3)  # past the start-up burst
                before = {d.id: len(reports(recorder, d.id)) for d in devices}
                with anyio.fail_after(30):
                    for d in devices:  # six cycles of 1 s for every device
                        await recorder.wait_count(
                            topic_endswith(f"/{d.id}/twin/update"), before[d.id] + 6, timeout=30
                        )
                counted = {d.id: len(reports(recorder, d.id)) - before[d.id] for d in devices}
                held = sim.connections, sim.accepted, len(mapper.endpoints)
                errors = sum(r.errors for r in mapper.runners.values())
                mapper.stop()
        finally:
            future.cancel()
    assert held == (2, 2, 2)
    # the slowest device's six cycles took as long as the others' six (give or take one)
    assert min(counted.values()) >= 6 and max(counted.values()) <= 8, (counted, errors)


async def test_a_gateway_taking_4_connections_serves_50_devices(tmp_path: Path, mqtt_url: str):
    server_port = free_port()
    served = slaves(tmp_path, [server_port], 50)
    proxy = TcpProxy(server_port, limit=4)
    sim = ModbusSimulator(served)
    async with anyio.create_task_group() as tg:
        await tg.start(sim.run)
        await tg.start(proxy.run)
        # the default, a device's maxConnections (beyond what the gateway takes), the mapper's
        for config, mapper_wide, held in (
            ({}, None, 1),
            ({"maxConnections": 8}, None, 4),
            ({}, 2, 2),
        ):
            devices = slaves(tmp_path, [proxy.port], 50, **config)
            topic_root = root()
            mapper = Mapper(
                devices,
                transports=[KubeEdgeMqtt(mqtt_url, topic_root=topic_root)],
                max_connections=mapper_wide,
            )
            async with (
                Bus(mqtt_url) as bus,
                Recorder(bus, f"{topic_root}/#") as recorder,
                anyio.create_task_group() as inner,
            ):
                await inner.start(mapper.run)
                with anyio.fail_after(30):
                    await wait_reports(recorder, devices, 3)
                assert proxy.open == held
                # a connection the gateway refused is no device's fault: none went offline
                assert sum(r.errors for r in mapper.runners.values()) == 0
                mapper.stop()
        tg.cancel_scope.cancel()
    assert proxy.peak == 4


async def test_a_slave_that_never_answers_costs_only_its_own_timeouts(
    tmp_path: Path, mqtt_url: str
):
    cycle = 200
    devices = slaves(tmp_path, [free_port()], 50, cycle=cycle, timeout=1000)
    dead = devices[0].id
    sim = ModbusSimulator(devices, silent=[dead])
    topic_root = root()
    mapper = Mapper(devices, transports=[KubeEdgeMqtt(mqtt_url, topic_root=topic_root)])
    async with anyio.create_task_group() as tg:
        await tg.start(sim.run)
        async with Bus(mqtt_url) as bus, Recorder(bus, f"{topic_root}/#") as recorder:
            await tg.start(mapper.run)
            with anyio.fail_after(30):
                await wait_reports(recorder, devices[1:], 2)
            window = 5.0
            before = {d.id: len(reports(recorder, d.id)) for d in devices[1:]}
            await anyio.sleep(window)
            assert mapper.runners[dead].state == "offline"
            assert mapper.runners[dead].errors >= 3  # tried again and again meanwhile
            errors = [mapper.runners[d.id].errors for d in devices[1:]]
            mapper.stop()
        tg.cancel_scope.cancel()
    expected = window * 1000 / cycle
    counts = sorted(len(reports(recorder, d.id)) - before[d.id] for d in devices[1:])
    # each attempt at the dead slave holds the line for one timeout (1 s, at 0.5, 1, 2 s of
    # backoff); the others lose at most those seconds of their 200 ms cycle, never go offline
    assert counts[0] >= 0.5 * expected, counts
    assert errors == [0] * len(errors)
    assert sim.accepted == 1


async def test_rtu_line_is_closed_after_its_last_device_leaves(tmp_path: Path):
    """Two devices on one serial line: one port open while either is connected, none after."""
    line = f"socket://127.0.0.1:{free_port()}"
    docs: list[dict[str, Any]] = [model("rtu", PROPS)]
    for slave in (1, 2):
        doc = device(f"rtu-{slave}", "rtu", 0, [visit("v", register="InputRegister", offset=0)])
        config = doc["spec"]["protocol"]["configData"]
        del config["ip"], config["port"]
        config.update(serialPort=line, slaveID=slave)
        docs.append(doc)
    devices = load(tmp_path, docs)
    sim = ModbusSimulator(devices)
    async with anyio.create_task_group() as tg, Endpoints() as endpoints:
        await tg.start(sim.run)
        one, two = (ModbusDriver(d, endpoints) for d in devices)
        for _ in range(2):  # both connect, reconnect, and close
            await one.connect()
            await two.connect()
            assert one.link is two.link and len(endpoints) == 1
            link = one.link
            assert (await one.read(devices[0].properties)).keys() == {"v"}
            assert (await two.read(devices[1].properties)).keys() == {"v"}
            assert sim.connections == 1  # one port open, at the line's far end too
            await one.close()
            assert link.connections == 1
            await two.close()
            assert link.connections == 0 and len(endpoints) == 0
            await sim.wait_connections(0)  # the far end sees the port closed
        tg.cancel_scope.cancel()
