"""Device faults named and shown: exception answers, slow devices, and why a device is offline.

Real mosquitto, the real mapper and the Modbus simulator (or a bare TCP server that misbehaves).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import anyio
import pytest
from modbus_helpers import device, fleet, load, model, root, visit

from edgedev import Bus, Mapper
from edgedev.health import render
from edgedev.health._mapper import mapper_metrics
from edgedev.mqtt import KubeEdgeMqtt
from edgedev.testing import Recorder, free_port

pytestmark = pytest.mark.broker

WAIT = 20
DEV = "default/pump"


def pump(tmp_path: Path, port: int, *, timeout: int = 3000, cycle: int = 200) -> list[Any]:
    """Two properties in two blocks (200 registers apart): two requests per read."""
    return load(
        tmp_path,
        [
            model("pump", [{"name": "speed", "type": "INT"}, {"name": "temp", "type": "INT"}]),
            device(
                "pump",
                "pump",
                port,
                [
                    visit("speed", cycle, register="HoldingRegister", offset=0, limit=1),
                    visit("temp", cycle, register="HoldingRegister", offset=200, limit=1),
                ],
                timeout=timeout,
            ),
        ],
    )


def state_is(state: str) -> Any:
    return lambda m: (
        m.topic.endswith(f"{DEV}/state/update") and json.loads(m.payload)["state"] == state
    )


def report_of_both(m: Any) -> bool:
    if not m.topic.endswith(f"{DEV}/twin/update"):
        return False
    return {"speed", "temp"} <= set(json.loads(m.payload)["twin"])


async def test_a_device_answering_exception_4_is_unhealthy_logged_once_and_counted(
    tmp_path: Path, mqtt_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    devices = pump(tmp_path, free_port())
    caplog.set_level(logging.INFO)
    async with fleet(devices, mqtt_url, root()) as (sim, mapper, recorder):
        await recorder.wait_for(state_is("online"), timeout=WAIT)
        # the failure starts between two cycles: right after a cycle's last read (temp's, at
        # 200), a cycle (200 ms) before the next, so that no read of a cycle is answered
        while not sim.requests or sim.requests[-1].address != 200:
            await sim.wait_requests(len(sim.requests) + 1, timeout=WAIT)
        sim.fail(DEV, 4)
        start = len(recorder.messages)
        unhealthy = await recorder.wait_for(state_is("unhealthy"), timeout=WAIT, after=start)
        at = recorder.messages.index(unhealthy)  # one publisher: what came before, came first
        seen = len(sim.requests)
        await sim.wait_requests(seen + 10, timeout=WAIT)  # five more reads, all refused
        runner = mapper.runners[DEV]
        assert runner.state == "unhealthy" and runner.faults >= 5
        assert "exception code 4 (server device failure)" in (runner.reason or "")
        metrics = render(mapper_metrics(mapper))
        assert f'edgedev_device_up{{device="{DEV}"}} 0' in metrics
        assert f'edgedev_device_unhealthy{{device="{DEV}"}} 1' in metrics
        assert f'edgedev_device_faults_total{{device="{DEV}"}} {runner.faults}' in metrics
        reports = [m for m in recorder.messages[at:] if m.topic.endswith("/twin/update")]
        sim.fail(DEV, None)
        await recorder.wait_for(state_is("online"), timeout=WAIT, after=start)
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lines) == 1 and "unhealthy" in lines[0], lines  # once, with the code
    assert "exception code 4" in lines[0]
    assert not [line for line in lines if "offline" in line], lines
    assert reports == []  # nothing stale from a device that answers with exceptions only


async def test_a_slow_device_with_two_blocks_reports_every_cycle(
    tmp_path: Path, mqtt_url: str
) -> None:
    """Each reply takes 0.6 s, the timeout is 1 s: a read of two blocks takes 1.2 s."""
    devices = pump(tmp_path, free_port(), timeout=1000, cycle=500)
    async with fleet(devices, mqtt_url, root()) as (sim, mapper, recorder):
        await recorder.wait_for(state_is("online"), timeout=WAIT)
        sim.slow(DEV, 0.6)
        start = len(recorder.messages)
        await recorder.wait_count(
            lambda m: report_of_both(m) and recorder.messages.index(m) >= start, 4, timeout=WAIT
        )
        assert not [m for m in recorder.messages[start:] if state_is("offline")(m)]
        assert mapper.runners[DEV].errors == 0


async def _serve(handler: Any, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
    async with await anyio.create_tcp_listener(local_host="127.0.0.1") as listener:
        task_status.started(listener.extra(anyio.abc.SocketAttribute.local_port))
        await listener.serve(handler)


async def _silent(stream: Any) -> None:
    async with stream:
        await anyio.sleep_forever()  # takes the connection, never answers


@pytest.mark.parametrize(
    ("server", "expected"),
    [
        (None, "connection refused"),
        (_silent, "timeout, no answer within 300 ms"),
    ],
)
async def test_every_offline_line_says_why(
    tmp_path: Path,
    mqtt_url: str,
    caplog: pytest.LogCaptureFixture,
    server: Any,
    expected: str,
) -> None:
    caplog.set_level(logging.WARNING, "edgedev.mapper")
    async with anyio.create_task_group() as tg:
        port = free_port() if server is None else await tg.start(_serve, server)
        devices = pump(tmp_path, port, timeout=300)
        topic_root = root()
        mapper = Mapper(
            devices,
            transports=[KubeEdgeMqtt(mqtt_url, topic_root=topic_root)],
            name=f"m-{topic_root}",
        )
        async with Bus(mqtt_url) as bus, Recorder(bus, f"{topic_root}/#") as recorder:
            await tg.start(mapper.run)
            await recorder.wait_for(state_is("offline"), timeout=WAIT)
            mapper.stop()
        tg.cancel_scope.cancel()
    lines = [r.getMessage() for r in caplog.records if "offline:" in r.getMessage()]
    assert lines and all(line.split("offline: ", 1)[1].strip() for line in lines), lines
    assert expected in lines[0], lines
