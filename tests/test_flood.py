"""Floods survived: idle connections at the descriptor limit, oversized and half-sent packets,
and a subscriber too slow to read what it is sent.

The descriptor limit is set to 1024 (the common default) in the child process only, through
``resource``; the test process keeps its own, higher limit to hold 1,100 connections.
"""

from __future__ import annotations

import contextlib
import os
import re
import resource
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest

from edgedev import Bus
from edgedev.broker import EmbeddedBroker
from edgedev.broker._codec import Connect, Subscribe, encode, encode_remaining_length
from edgedev.health import Health, HealthServer
from edgedev.testing import Recorder, free_port, unique_root
from edgedev_modbus import ModbusSimulator
from reliability_helpers import eventually, fleet_docs, load_docs, stop_process, write_docs
from test_reliability_process import http_get, wait_http

LIMIT = 1024
FLOOD = 1100
EMFILE = "cannot accept connections: Too many open files"
"""Logged once by a server that ran out of descriptors, however long it stays out."""


def _limit_descriptors() -> None:  # runs in the child, before exec
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (LIMIT, hard))


def _spawn(*args: str, log: Path | None = None) -> subprocess.Popen[bytes]:
    """A child with the descriptor limit at 1024; its stderr goes to ``log`` when given (a
    flood logs more than a pipe holds, and nobody reads the pipe until the end)."""
    with contextlib.ExitStack() as stack:
        err = stack.enter_context(log.open("wb")) if log is not None else subprocess.PIPE
        return subprocess.Popen(
            [sys.executable, *args],
            stdout=subprocess.PIPE,
            stderr=err,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            preexec_fn=_limit_descriptors,
        )


@pytest.fixture(autouse=True)
def room_for_the_flood() -> Iterator[None]:
    """The test process holds FLOOD connections: raise its own soft limit if needed."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < FLOOD + 200:
        pytest.skip(f"the hard descriptor limit ({hard}) is too low for {FLOOD} connections")
    if soft != resource.RLIM_INFINITY and soft < FLOOD + 200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (FLOOD + 200, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@contextlib.contextmanager
def idle_connections(port: int, count: int = FLOOD) -> Iterator[list[socket.socket]]:
    """``count`` TCP connections to ``port`` that send nothing; closed on exit."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                sock.connect(("127.0.0.1", port))
            socks.append(sock)
        yield socks
    finally:
        for sock in socks:
            sock.close()


def _descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="needs /proc")
async def test_mapper_keeps_its_cycle_through_a_health_port_flood(tmp_path: Path, mqtt_url: str):
    docs = fleet_docs(["f0"], cycle_ms=100)
    file = write_docs(tmp_path, docs)
    sim = ModbusSimulator(load_docs(tmp_path, docs))
    health = free_port()
    async with anyio.create_task_group() as tg:
        await tg.start(sim.run)
        proc = _spawn(
            "-m",
            "edgedev",
            "run",
            "-f",
            str(file),
            "--broker",
            mqtt_url,
            "--topic-root",
            unique_root("flood"),
            "--health-port",
            str(health),
            "--health-host",
            "127.0.0.1",
            log=tmp_path / "mapper.log",
        )
        try:
            assert "ok" in await wait_http(health, "/healthz", 200)
            with idle_connections(health):
                for _ in range(3):  # the devices are read at their cycle during the flood
                    await sim.wait_requests(len(sim.requests) + 10, timeout=10)
                assert proc.poll() is None
                assert _descriptors(proc.pid) < LIMIT - 100, "the cap keeps descriptors free"
            assert "ok" in await wait_http(health, "/healthz", 200, timeout=30)
            await sim.wait_requests(len(sim.requests) + 10, timeout=10)
            assert proc.poll() is None
        finally:
            stop_process(proc)
        tg.cancel_scope.cancel()


_SERVE_HEALTH = """
import anyio
from edgedev.health import Health, HealthServer

async def main():
    server = HealthServer(
        Health(live=lambda: (True, "ok"), ready=lambda: (True, "ok"), metrics=lambda: []),
        0, "127.0.0.1", max_connections=100_000, read_timeout=600,
    )
    async with anyio.create_task_group() as tg:
        await tg.start(server.run)
        print("port", server.port, flush=True)

anyio.run(main)
"""


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="needs /proc")
async def test_health_server_survives_running_out_of_descriptors(tmp_path: Path):
    """No cap to hide behind: accept hits EMFILE, backs off, and serves once fds are free."""
    log = tmp_path / "health.log"
    proc = _spawn("-c", _SERVE_HEALTH, log=log)
    try:
        assert proc.stdout is not None
        line = await anyio.to_thread.run_sync(proc.stdout.readline)
        port = int(line.split()[1])
        with idle_connections(port):
            await eventually(lambda: EMFILE in log.read_text())  # it ran out
            assert proc.poll() is None
        status, body = await _get_eventually(port, "/healthz")
        assert (status, body) == (200, "ok\n")
        assert proc.poll() is None
    finally:
        proc.kill()
        proc.communicate()
    assert log.read_text().count(EMFILE) == 1


async def _get_eventually(port: int, path: str, timeout: float = 60) -> tuple[int, str]:
    with anyio.fail_after(timeout):
        while True:
            with contextlib.suppress(OSError):
                return await http_get(port, path)
            await anyio.sleep(0.1)


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="needs /proc")
async def test_embedded_broker_survives_a_connection_flood(tmp_path: Path):
    log = tmp_path / "broker.log"
    proc = _spawn("-m", "edgedev.broker", "--port", "0", log=log)
    try:
        assert proc.stdout is not None
        line = (await anyio.to_thread.run_sync(proc.stdout.readline)).decode()
        url = re.search(r"mqtt://\S+", line)
        assert url is not None, line
        port = int(url.group(0).rsplit(":", 1)[1])
        with idle_connections(port):
            await eventually(lambda: EMFILE in log.read_text())  # it ran out
            assert proc.poll() is None
        root = unique_root("after-flood")
        async with Bus(url.group(0)) as bus:
            with anyio.fail_after(30):
                await bus.wait_connected()
            async with Recorder(bus, f"{root}/#") as recorder:
                bus.publish(f"{root}/x", "still here")
                await recorder.wait_for(lambda m: m.payload == b"still here", timeout=10)
        assert proc.poll() is None
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert log.read_text().count(EMFILE) == 1


def _raw_client(port: int, client_id: str) -> socket.socket:
    """A connected MQTT client on a plain blocking socket (call it from a worker thread)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(encode(Connect(client_id, keepalive=0)))
    assert sock.recv(4) == b"\x20\x02\x00\x00"
    return sock


def _publish_header(topic: bytes, size: int) -> bytes:
    """A QoS 0 PUBLISH header announcing ``size`` bytes of payload."""
    return b"\x30" + encode_remaining_length(2 + len(topic) + size) + len(topic).to_bytes(2, "big")


async def test_embedded_broker_refuses_an_oversized_packet_and_goes_on():
    async with EmbeddedBroker(max_packet_size=64 * 1024) as broker:
        sock = await anyio.to_thread.run_sync(_raw_client, broker.port, "big")
        try:
            sock.sendall(_publish_header(b"t", 1024 * 1024))
            sock.settimeout(10)
            assert await anyio.to_thread.run_sync(sock.recv, 10) == b"", "closed by the broker"
        finally:
            sock.close()
        assert "big" not in broker.client_ids
        assert broker.pending_bytes == 0
        await _still_routes(broker)


async def test_embedded_broker_bounds_announced_but_unsent_packets():
    """40 clients announce 15 MiB packets; each sends 1 MiB of it and stops."""
    budget = 8 * 1024 * 1024
    async with EmbeddedBroker(max_pending_bytes=budget) as broker:
        socks = [
            await anyio.to_thread.run_sync(_raw_client, broker.port, f"slow-{i}") for i in range(40)
        ]
        try:
            for sock in socks:
                sock.setblocking(False)
                with contextlib.suppress(BlockingIOError):
                    sock.sendall(_publish_header(b"t", 15 * 1024 * 1024) + b"x" * 1024 * 1024)
            await eventually(lambda: len(broker.client_ids) <= budget // (1024 * 1024) + 1)
            assert broker.pending_bytes <= budget
        finally:
            for sock in socks:
                sock.close()
        await eventually(lambda: broker.pending_bytes == 0)
        await _still_routes(broker)


async def test_a_slow_subscriber_loses_qos0_messages_not_its_connection():
    """As mosquitto does: a session's queue up to a limit, then drops (counted)."""
    async with EmbeddedBroker(max_queued_messages=100) as broker:
        lazy = await anyio.to_thread.run_sync(_raw_client, broker.port, "lazy")
        lazy.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        try:
            lazy.sendall(encode(Subscribe(1, (("flood/#", 0),))))
            assert await anyio.to_thread.run_sync(lazy.recv, 5) == b"\x90\x03\x00\x01\x00"
            async with Bus(broker.url) as publisher:
                for i in range(5000):
                    publisher.publish("flood/x", b"%d" % i + b"." * 1000, qos=0)
                with anyio.fail_after(30):
                    await publisher.flush()
                await eventually(lambda: broker.dropped > 0)
            assert "lazy" in broker.client_ids, "still connected"
            lazy.settimeout(10)
            assert await anyio.to_thread.run_sync(lazy.recv, 1024), "and still served"
        finally:
            lazy.close()
        await _still_routes(broker)


async def _still_routes(broker: EmbeddedBroker) -> None:
    root = unique_root("ok")
    async with Bus(broker.url) as bus:
        with anyio.fail_after(10):
            await bus.wait_connected()
        async with Recorder(bus, f"{root}/#") as recorder:
            bus.publish(f"{root}/x", "fine")
            await recorder.wait_for(lambda m: m.payload == b"fine", timeout=10)


def test_health_server_defaults():
    server = HealthServer(
        Health(live=lambda: (True, ""), ready=lambda: (True, ""), metrics=list), 0
    )
    assert (server.host, server.max_connections, server.read_timeout) == ("0.0.0.0", 64, 5.0)


async def test_small_unfinished_packets_count_against_the_pending_budget():
    """100 clients each leave a 30 KiB PUBLISH unfinished: below one read, so main let every
    one of them through and the broker held 3 MiB against a 1 MiB budget."""
    budget = 1024 * 1024
    async with EmbeddedBroker(max_pending_bytes=budget) as broker:
        socks = [
            await anyio.to_thread.run_sync(_raw_client, broker.port, f"part-{i}")
            for i in range(100)
        ]
        try:
            for sock in socks:
                sock.sendall(_publish_header(b"t", 64 * 1024) + b"x" * 30 * 1024)
            # Whoever would take the total over the budget is refused; the rest stay.
            await eventually(lambda: len(broker.client_ids) <= budget // (30 * 1024), 10)
            assert broker.pending_bytes <= budget
        finally:
            for sock in socks:
                sock.close()
        await eventually(lambda: broker.pending_bytes == 0)
        await _still_routes(broker)


async def test_health_probes_pass_while_slowloris_holds_more_than_every_slot():
    """On main 70 idle connections, reopened as they were closed, let 1 of 30 probes through."""
    health = Health(live=lambda: (True, "ok"), ready=lambda: (True, ""), metrics=list)
    server = HealthServer(health, 0, "127.0.0.1")
    stop = threading.Event()
    async with anyio.create_task_group() as tg:
        await tg.start(server.run)
        tg.start_soon(anyio.to_thread.run_sync, _slowloris, server.port, 70, stop)
        try:
            await eventually(lambda: server.stats.active >= server.max_connections, 10)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as http:
                for _ in range(30):
                    with anyio.fail_after(2):
                        assert (await http.get("/healthz")).status_code == 200
            assert server.stats.evicted >= 30
        finally:
            stop.set()
        tg.cancel_scope.cancel()


def _slowloris(port: int, count: int, stop: threading.Event) -> None:
    """Keep ``count`` connections that send half a request head, reopening closed ones."""
    socks: list[socket.socket] = []
    try:
        while not stop.is_set():
            for sock in [s for s in socks if _closed(s)]:
                socks.remove(sock)
                sock.close()
            while len(socks) < count:
                sock = socket.create_connection(("127.0.0.1", port), timeout=5)
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
                sock.setblocking(False)
                socks.append(sock)
            stop.wait(0.01)
    finally:
        for sock in socks:
            sock.close()


def _closed(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True
