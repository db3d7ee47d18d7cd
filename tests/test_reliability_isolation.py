"""Fault isolation: a device that never answers costs the others nothing."""

from __future__ import annotations

import itertools
import json
import statistics
from pathlib import Path
from typing import Any

import anyio
import pytest

from edgedev import Bus, Mapper
from edgedev.mqtt import KubeEdgeMqtt
from edgedev.testing import Recorder, free_port
from edgedev_modbus import ModbusSimulator
from reliability_helpers import (
    BlackHole,
    Gate,
    fleet_docs,
    load_docs,
    readings,
    topic_root,
)

pytestmark = pytest.mark.broker

HEALTHY = ["h0", "h1", "h2", "h3"]
CYCLE_MS = 200
DEAD_TIMEOUT_MS = 500


def intervals(stamps: list[int]) -> list[int]:
    return [b - a for a, b in itertools.pairwise(stamps)]


async def test_a_black_holed_device_does_not_stretch_the_others_cycle(
    tmp_path: Path, mqtt_url: str
):
    """A TCP server that accepts and never answers; the healthy devices keep their cycle."""
    hole = BlackHole()
    healthy = load_docs(tmp_path, fleet_docs(HEALTHY, cycle_ms=CYCLE_MS, timeout=1000))
    async with anyio.create_task_group() as tg:
        await tg.start(hole.run)
        docs = fleet_docs(["dead"], cycle_ms=CYCLE_MS, ports={"dead": hole.port}, timeout=1000)
        dead = load_docs(tmp_path, docs)
        sim = ModbusSimulator(healthy)
        await tg.start(sim.run)
        root = topic_root()
        mapper = Mapper([*healthy, *dead], transports=[KubeEdgeMqtt(mqtt_url, topic_root=root)])
        async with Bus(mqtt_url) as bus, Recorder(bus, f"{root}/#") as recorder:
            await tg.start(mapper.run)
            offline = await recorder.wait_for(
                lambda m: (
                    m.topic.endswith("/dead/state/update")
                    and json.loads(m.payload)["state"] == "offline"
                ),
                timeout=20,
            )
            assert offline
            start = len(recorder.messages)
            # 25 cycles of the healthy devices while the dead one keeps timing out
            await recorder.wait_count(
                lambda m: m.topic.endswith("/h0/twin/update"),
                25 + sum(1 for m in recorder.messages if m.topic.endswith("/h0/twin/update")),
                timeout=30,
            )
            dead_runner = mapper.runners["default/dead"]
            dead_state = dead_runner.state
            tg.cancel_scope.cancel()
    assert hole.accepted >= 2, "the dead device was retried"
    assert dead_runner.errors >= 2 and dead_state == "offline"
    got = readings(recorder.messages[start:])
    assert "dead" not in got
    worst = 0.0
    for name in HEALTHY:
        gaps = intervals([ts for _, ts in got[name]])
        assert len(gaps) >= 20
        deviations = [abs(g - CYCLE_MS) / CYCLE_MS for g in gaps]
        worst = max(worst, *deviations)
        within = sum(d <= 0.10 for d in deviations) / len(deviations)
        assert within >= 0.9, f"{name}: intervals {gaps}"
        assert abs(statistics.mean(gaps) - CYCLE_MS) <= 0.10 * CYCLE_MS
        assert max(gaps) < 2 * CYCLE_MS, f"{name}: no cycle was stalled ({gaps})"
    print(f"figures: blackhole worst_interval_deviation={worst:.1%}")


def rtu_docs(line: str, slaves: list[int], timeout: int) -> list[dict[str, Any]]:
    docs = fleet_docs([f"rtu{s}" for s in slaves], cycle_ms=CYCLE_MS, timeout=timeout)
    for doc in docs[1:]:
        config = doc["spec"]["protocol"]["configData"]
        del config["ip"], config["port"]
        slave = int(doc["metadata"]["name"][3:])
        config.update(serialPort=line, baudRate=115200, slaveID=slave)
    return docs


async def test_a_dead_slave_on_a_shared_serial_line_does_not_block_it(
    tmp_path: Path, mqtt_url: str
):
    """RTU over one line: slave 3 never answers; slaves 1 and 2 keep reporting and online.

    Waiting for the line counts towards a device's own deadline, so the healthy devices'
    timeout (1 s) is longer than the dead one's (0.5 s) plus a request of their own.
    """
    sim_port = free_port()
    sim = ModbusSimulator(
        load_docs(tmp_path, rtu_docs(f"socket://127.0.0.1:{sim_port}", [1, 2], 1000))
    )
    # the mapper's line goes through a relay that swallows every frame for slave 3
    bus_line = Gate(sim_port, drop=lambda frame: frame[:1] == b"\x03")
    async with anyio.create_task_group() as tg:
        await tg.start(sim.run)
        await tg.start(bus_line.run)
        line = f"socket://127.0.0.1:{bus_line.port}"
        alive = load_docs(tmp_path, rtu_docs(line, [1, 2], timeout=1000))
        dead = load_docs(tmp_path, rtu_docs(line, [3], timeout=DEAD_TIMEOUT_MS))
        root = topic_root()
        mapper = Mapper([*alive, *dead], transports=[KubeEdgeMqtt(mqtt_url, topic_root=root)])
        async with Bus(mqtt_url) as bus, Recorder(bus, f"{root}/#") as recorder:
            await tg.start(mapper.run)
            await recorder.wait_for(
                lambda m: (
                    m.topic.endswith("/rtu3/state/update")
                    and json.loads(m.payload)["state"] == "offline"
                ),
                timeout=20,
            )
            start = len(recorder.messages)
            await recorder.wait_count(
                lambda m: (
                    m.topic.endswith("/rtu1/twin/update") and recorder.messages.index(m) >= start
                ),
                15,
                timeout=30,
            )
            runners = dict(mapper.runners)
            states = {i: r.state for i, r in runners.items()}
            tg.cancel_scope.cancel()
    assert runners["default/rtu3"].errors >= 1 and states["default/rtu3"] == "offline"
    for name in ("rtu1", "rtu2"):
        assert states[f"default/{name}"] == "online"
        assert runners[f"default/{name}"].errors == 0, f"{name} never went offline"
    got = readings(recorder.messages[start:])
    worst = 0
    for name in ("rtu1", "rtu2"):
        gaps = intervals([ts for _, ts in got[name]])
        assert len(gaps) >= 10
        worst = max(worst, max(gaps))
        assert max(gaps) < CYCLE_MS + DEAD_TIMEOUT_MS + 250, f"{name}: one timeout at most {gaps}"
    print(f"figures: serial_line longest_interval={worst}ms dead_timeout={DEAD_TIMEOUT_MS}ms")


async def test_stopping_lets_a_read_in_flight_finish_and_report(tmp_path: Path, mqtt_url: str):
    """mapper.stop() during a slow read: the reading is reported, then the device is offline."""
    sim_port = free_port()
    sim = ModbusSimulator(load_docs(tmp_path, fleet_docs(["slow"], 1000, ports={"slow": sim_port})))
    slow_link = Gate(sim_port, delay=0.5)
    async with anyio.create_task_group() as tg:
        await tg.start(sim.run)
        await tg.start(slow_link.run)
        devices = load_docs(tmp_path, fleet_docs(["slow"], 1000, ports={"slow": slow_link.port}))
        root = topic_root()
        mapper = Mapper(devices, transports=[KubeEdgeMqtt(mqtt_url, topic_root=root)])
        async with Bus(mqtt_url) as bus, Recorder(bus, f"{root}/#") as recorder:
            await tg.start(mapper.run)
            await recorder.wait_for(lambda m: m.topic.endswith("/slow/twin/update"), timeout=20)
            reads = len(sim.requests)
            await sim.wait_requests(reads + 1, timeout=10)  # the next read is on its way back
            stopped = len(recorder.messages)
            mapper.stop()
            await recorder.wait_for(
                lambda m: (
                    m.topic.endswith("/slow/state/update")
                    and json.loads(m.payload)["state"] == "offline"
                ),
                after=stopped,
                timeout=10,
            )
        tg.cancel_scope.cancel()
    after = [m.topic.rsplit("/", 2)[-2:] for m in recorder.messages[stopped:]]
    assert ["twin", "update"] in after, "the read in flight was reported"
    assert after.index(["twin", "update"]) < after.index(["state", "update"])
