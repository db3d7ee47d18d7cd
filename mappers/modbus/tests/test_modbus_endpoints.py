"""Devices behind one Modbus endpoint share its connection (counted at the server)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
from anyio.from_thread import start_blocking_portal
from modbus_helpers import TcpProxy, device, load, model, reports, root, visit

from edgedev import Bus, DeviceSpec, Mapper
from edgedev.drivers import Endpoints
from edgedev.drivers._capacity import WINDOW
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


def endpoint_figures(mapper: Mapper) -> dict[str, float]:
    """The ``edgedev_endpoint_*`` gauges of the mapper's one endpoint, by name."""
    return {m.name: m.samples[0][1] for m in mapper.endpoints.metrics()}


async def run_behind_a_slow_gateway(
    tmp_path: Path, mqtt_url: str, max_connections: int
) -> tuple[dict[str, float], int]:
    """200 devices (1 s cycle, one request each) behind a gateway answering in 10 ms.

    Run for two windows of figures; returns the figures and the connections the gateway held.
    """
    server_port = free_port()
    served = slaves(tmp_path, [server_port], 200, cycle=1000)
    gateway = TcpProxy(server_port, limit=16, delay=0.010)
    devices = slaves(tmp_path, [gateway.port], 200, cycle=1000, maxConnections=max_connections)
    mapper = Mapper(devices, transports=[KubeEdgeMqtt(mqtt_url, topic_root=root())])
    with start_blocking_portal() as portal:  # the server in a thread, as a gateway would be
        future, _ = portal.start_task(ModbusSimulator(served).run)
        try:
            async with anyio.create_task_group() as tg:
                await tg.start(gateway.run)
                await tg.start(mapper.run)
                await anyio.sleep(3 * WINDOW + 2)  # the first window (start-up) is not judged
                figures = endpoint_figures(mapper)
                held = gateway.peak
                mapper.stop()
                tg.cancel_scope.cancel()
        finally:
            future.cancel()
    return figures, held


async def test_a_gateway_too_slow_for_its_devices_says_so_with_figures(
    tmp_path: Path, mqtt_url: str, caplog: Any
) -> None:
    """One connection at 10 ms a request carries under 100 requests/s; 200 devices on a 1 s
    cycle need 200: a warning with the figures, and the gauges."""
    figures, held = await run_behind_a_slow_gateway(tmp_path, mqtt_url, 1)
    warnings = [r.getMessage() for r in caplog.records if "cannot keep up" in r.getMessage()]
    print(f"figures: {figures}")
    assert held == 1
    assert figures["edgedev_endpoint_requests_needed"] == 200
    assert figures["edgedev_endpoint_behind"] == 1
    assert figures["edgedev_endpoint_requests"] < 100
    assert figures["edgedev_endpoint_request_seconds"] >= 0.010
    assert len(warnings) == 1, warnings  # once a minute at most
    assert re.fullmatch(
        r"127\.0\.0\.1:\d+ cannot keep up: 200 devices need 200 requests/s; 1 connection\(s\) "
        r"\(maxConnections 1\) carried \d+/s at \d+\.\d ms per request\. The devices fall "
        r"behind their cycles: raise maxConnections if the endpoint takes more connections, "
        r"or lengthen collectCycle",
        warnings[0],
    )


async def test_enough_connections_to_a_slow_gateway_keep_its_devices_on_their_cycle(
    tmp_path: Path, mqtt_url: str, caplog: Any
) -> None:
    """The same gateway with maxConnections 16: requests in flight side by side, no warning.

    200 requests/s at 10 ms take 2 connections; 16 leave room for a loaded machine (a full
    test run here made each request take 45 ms: 9 connections).
    """
    figures, held = await run_behind_a_slow_gateway(tmp_path, mqtt_url, 16)
    print(f"figures: {figures}")
    assert not [r for r in caplog.records if "cannot keep up" in r.getMessage()]
    assert 2 <= held <= 16
    assert figures["edgedev_endpoint_behind"] == 0
    assert figures["edgedev_endpoint_requests"] >= 190
