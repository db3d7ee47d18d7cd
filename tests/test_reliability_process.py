"""``edgedev run`` as a process: SIGKILL during an outage, SIGTERM, health endpoint."""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
import time
from pathlib import Path

import anyio
import pytest

from edgedev import Backoff, Bus
from edgedev.bus import SqliteOutbox
from edgedev.testing import BrokerHandle, Recorder, free_port
from edgedev_modbus import ModbusSimulator
from reliability_helpers import (
    Gate,
    first_occurrences,
    fleet_docs,
    is_report,
    load_docs,
    readings,
    start_mapper,
    stop_process,
    topic_root,
    write_docs,
)

pytestmark = pytest.mark.broker

NAMES = ["k0", "k1", "k2"]


async def http_get(port: int, path: str) -> tuple[int, str]:
    """Status and body of ``GET path`` on the local health port."""
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        await stream.send(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        data = b""
        try:
            while True:
                data += await stream.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            pass
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body.decode()


async def wait_http(port: int, path: str, status: int, timeout: float = 20) -> str:
    """Poll ``path`` until it answers ``status`` (the process is starting or changing)."""
    with anyio.fail_after(timeout):
        while True:
            try:
                code, body = await http_get(port, path)
                if code == status:
                    return body
            except OSError:
                pass
            await anyio.sleep(0.1)


async def test_sigkill_during_an_outage_keeps_the_queue(tmp_path: Path, fresh_broker: BrokerHandle):
    """Readings queued on disk by a mapper killed during the outage arrive after a restart."""
    docs = fleet_docs(NAMES, cycle_ms=100)
    devices = load_docs(tmp_path, docs)
    file = write_docs(tmp_path, docs)
    root = topic_root()
    data = tmp_path / "data"
    sim = ModbusSimulator(devices)
    gate = Gate(fresh_broker.port)
    procs: list[subprocess.Popen[bytes]] = []
    args = ["--topic-root", root, "--data-dir", str(data), "--name", "killed"]
    try:
        async with anyio.create_task_group() as tg:
            await tg.start(sim.run)
            await tg.start(gate.run)
            subscriber = Bus(fresh_broker.url, backoff=Backoff(0.05, 0.2))
            async with subscriber, Recorder(subscriber, f"{root}/#") as recorder:
                procs.append(start_mapper([file], "--broker", gate.url, *args))
                for name in NAMES:
                    await recorder.wait_for(
                        lambda m, name=name: m.topic.endswith(f"/{name}/twin/update"), timeout=30
                    )
                gate.close()
                fresh_broker.stop()
                outage_ms = time.time() * 1000
                reads = len(sim.requests)
                await sim.wait_requests(reads + 3 * 20, timeout=20)  # 2 s of readings
                killed_ms = time.time() * 1000
                procs[0].send_signal(signal.SIGKILL)
                procs[0].wait(10)
                assert SqliteOutbox(data).close() is None  # the queue opens cleanly
                fresh_broker.start()
                with anyio.fail_after(20):
                    await subscriber.wait_connected()
                gate.open()
                procs.append(start_mapper([file], "--broker", gate.url, *args))
                restarted_ms = time.time() * 1000

                def complete() -> bool:
                    got = readings(recorder.messages)
                    return all(
                        any(ts > restarted_ms for _, ts in got.get(name, [])) for name in NAMES
                    )

                with anyio.fail_after(30):
                    while not complete():
                        await recorder.wait_for(is_report, after=len(recorder.messages), timeout=30)
                tg.cancel_scope.cancel()
    finally:
        for proc in procs:
            stop_process(proc)

    got = readings(recorder.messages)
    recovered = 0
    window = 200  # ms: the documented SIGKILL window (50 ms) with room for a loaded machine
    for name in NAMES:
        unique, _ = first_occurrences(got[name])
        stamps = [ts for _, ts in unique]
        assert stamps == sorted(stamps), f"{name}: in order across the restart"
        queued = [ts for ts in stamps if outage_ms <= ts <= killed_ms - window]
        assert len(queued) >= 10, f"{name}: readings from the outage arrived ({len(queued)})"
        assert queued[0] - outage_ms <= 300, f"{name}: none lost at the start of the outage"
        assert killed_ms - window - queued[-1] <= 300, f"{name}: none lost before the kill"
        gaps = [b - a for a, b in itertools.pairwise(queued)]
        assert max(gaps) <= 300, f"{name}: no reading lost during the outage ({max(gaps)} ms)"
        recovered += len(queued)
    print(f"figures: sigkill recovered={recovered} readings queued before the kill")


async def test_sigterm_flushes_publishes_offline_and_exits(
    tmp_path: Path, fresh_broker: BrokerHandle
):
    """SIGTERM: the devices and the mapper go offline, the queue is flushed, exit 0 quickly."""
    docs = fleet_docs(NAMES, cycle_ms=100)
    devices = load_docs(tmp_path, docs)
    file = write_docs(tmp_path, docs)
    root = topic_root()
    data = tmp_path / "data"
    health = free_port()
    sim = ModbusSimulator(devices)
    async with anyio.create_task_group() as tg:
        await tg.start(sim.run)
        async with Bus(fresh_broker.url) as bus, Recorder(bus, f"{root}/#") as recorder:
            proc = start_mapper(
                [file],
                "--broker",
                fresh_broker.url,
                "--topic-root",
                root,
                "--data-dir",
                str(data),
                "--health-port",
                str(health),
                "--node",
                "n1",
            )
            try:
                assert "ok" in await wait_http(health, "/healthz", 200)
                assert "connected" in await wait_http(health, "/readyz", 200)
                for name in NAMES:
                    await recorder.wait_for(
                        lambda m, name=name: m.topic.endswith(f"/{name}/twin/update"), timeout=30
                    )
                metrics = await wait_http(health, "/metrics", 200)
                assert "edgedev_broker_connected 1" in metrics
                assert 'edgedev_device_up{device="default/k0"} 1' in metrics
                assert "# TYPE edgedev_device_reads_total counter" in metrics
                seen = len(recorder.messages)
                started = time.monotonic()
                proc.send_signal(signal.SIGTERM)
                await anyio.to_thread.run_sync(proc.wait, 30)
                took = time.monotonic() - started
                assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
                for name in NAMES:
                    await recorder.wait_for(
                        lambda m, name=name: (
                            m.topic.endswith(f"/{name}/state/update")
                            and json.loads(m.payload)["state"] == "offline"
                        ),
                        after=seen,
                        timeout=10,
                    )
                mapper_state = await recorder.wait_for(
                    lambda m: "/node/n1/mapper/" in m.topic and m.topic.endswith("/state"),
                    after=seen,
                    timeout=10,
                )
                assert json.loads(mapper_state.payload)["state"] == "offline"
            finally:
                stop_process(proc)
        tg.cancel_scope.cancel()
    assert took < 10, f"stopped in {took:.1f}s"
    outbox = SqliteOutbox(data)
    try:
        assert outbox.restored == 0, "the queue was flushed before exiting"
    finally:
        outbox.close()
    print(f"figures: sigterm_exit={took:.2f}s")


async def test_sigterm_during_an_outage_keeps_the_queue_and_exits(
    tmp_path: Path, fresh_broker: BrokerHandle
):
    """With no broker, SIGTERM still exits within the grace period and keeps the queue."""
    docs = fleet_docs(NAMES, cycle_ms=100)
    devices = load_docs(tmp_path, docs)
    file = write_docs(tmp_path, docs)
    data = tmp_path / "data"
    health = free_port()
    sim = ModbusSimulator(devices)
    fresh_broker.stop()
    async with anyio.create_task_group() as tg:
        await tg.start(sim.run)
        proc = start_mapper(
            [file],
            "--broker",
            fresh_broker.url,
            "--data-dir",
            str(data),
            "--health-port",
            str(health),
            "--queue-limit",
            "20",
        )
        try:
            await sim.wait_requests(3 * 30, timeout=30)
            # the queue is at its limit: not ready (data is being dropped), still alive
            body = await wait_http(health, "/readyz", 503)
            assert "queue full" in body
            await wait_http(health, "/healthz", 200)
            metrics = await wait_http(health, "/metrics", 200)
            assert "edgedev_broker_connected 0" in metrics
            assert "edgedev_queue_limit 20" in metrics
            dropped = [line for line in metrics.splitlines() if line.startswith("edgedev_queue_d")]
            assert int(dropped[0].split()[-1]) > 0
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            await anyio.to_thread.run_sync(proc.wait, 30)
            took = time.monotonic() - started
            assert proc.returncode == 0
        finally:
            stop_process(proc)
        tg.cancel_scope.cancel()
    assert took < 10, f"stopped in {took:.1f}s"
    outbox = SqliteOutbox(data, limit=20)
    try:
        assert outbox.restored == 20, "the full queue waits on disk for the next start"
    finally:
        outbox.close()
