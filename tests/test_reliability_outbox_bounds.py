"""The outbox's bounds: bytes, age, readings dropped before states, memory kept to a window.

A broker away for days must neither fill the data volume (thingsboard-gateway filled 45 GB
after a 4-day outage) nor the memory; what is dropped is counted and logged, the oldest
readings first, and a device's state changes and failed writes only when no reading is left.
"""

from __future__ import annotations

import contextlib
import signal
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgedev.bus import MemoryOutbox, Message, Outbox, SqliteOutbox
from edgedev.bus._outbox import ENTRY_OVERHEAD
from edgedev.testing import free_port
from reliability_helpers import small_tmpfs

READING = 4000  # payload bytes of one twin report (about 45 values)


def reading(i: int, size: int = READING) -> Message:
    return Message("t/twin/update", str(i).encode().ljust(size, b" "), values=45)


def state(i: int) -> Message:
    return Message("t/state/update", str(i).encode())


def number(message: Message) -> int:
    return int(message.payload.strip())


def drain(outbox: Outbox) -> list[tuple[str, int]]:
    out = []
    while (item := outbox.take()) is not None:
        seq, message = item
        out.append(("s" if message.topic.endswith("state/update") else "r", number(message)))
        outbox.ack(seq)
    return out


@pytest.fixture(params=["memory", "sqlite"])
def make(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[object]:
    made: list[Outbox] = []

    def factory(**bounds: object) -> Outbox:
        if request.param == "memory":
            outbox: Outbox = MemoryOutbox(**bounds)  # type: ignore[arg-type]
        else:
            outbox = SqliteOutbox(tmp_path / f"q{len(made)}", window=8, **bounds)  # type: ignore[arg-type]
        made.append(outbox)
        return outbox

    yield factory
    for outbox in made:
        outbox.close()


def test_the_oldest_readings_go_first_and_states_stay(
    make: object, caplog: pytest.LogCaptureFixture
):
    outbox = make(max_bytes=2**20)  # type: ignore[operator]
    for i in range(600):  # 2.4 MB of readings
        outbox.put(reading(i))
        if i % 10 == 0:
            outbox.put(state(i))
    assert 0 < outbox.bytes <= 2**20
    dropped, bytes_ = outbox.dropped, outbox.bytes
    kept = drain(outbox)
    states = [n for kind, n in kept if kind == "s"]
    readings = [n for kind, n in kept if kind == "r"]
    assert states == list(range(0, 600, 10)), "no state dropped while readings were there"
    assert readings == list(range(600 - len(readings), 600)), "the newest readings kept"
    assert dropped == 600 - len(readings)
    size = len("t/twin/update") + READING + ENTRY_OVERHEAD
    assert bytes_ > 2**20 * 0.5 - size, "the room was used"
    assert outbox.dropped_values == 45 * dropped
    assert [r.getMessage() for r in caplog.records if "outbox full" in r.getMessage()][:1] == [
        "outbox full (at most 100000 messages, 1 MiB): 1 messages (45 readings) dropped, "
        "the oldest readings first; 1 in all"
    ]  # the rest within the minute: counted, said at most once a minute


def test_states_go_when_no_reading_is_left(make: object):
    outbox = make(limit=5)  # type: ignore[operator]
    for i in range(3):
        outbox.put(reading(i))
    for i in range(6):
        outbox.put(state(i))
    assert drain(outbox) == [("s", 1), ("s", 2), ("s", 3), ("s", 4), ("s", 5)]
    assert outbox.dropped == 4 and outbox.dropped_values == 3 * 45


def test_messages_older_than_the_ttl_are_dropped_and_counted(tmp_path: Path):
    now = [1000.0]
    for outbox in (
        MemoryOutbox(ttl=60, clock=lambda: now[0]),
        SqliteOutbox(tmp_path, ttl=60, window=4, clock=lambda: now[0]),
    ):
        try:
            for i in range(10):
                outbox.put(reading(i))
            outbox.put(state(10))
            now[0] += 30
            for i in range(11, 15):
                outbox.put(reading(i))
            now[0] += 40  # the first eleven are 70 s old
            assert drain(outbox) == [("r", i) for i in range(11, 15)]
            assert (outbox.expired, outbox.expired_values) == (11, 10 * 45)
        finally:
            outbox.close()


def test_a_long_outage_waits_on_disk_with_a_window_in_memory(tmp_path: Path):
    outbox = SqliteOutbox(tmp_path, window=50, flush_interval=0.01)
    order = []
    try:
        for i in range(2000):
            outbox.put(reading(i, 100))
            order.append(("r", i))
            if i % 100 == 0:
                outbox.put(state(i))
                order.append(("s", i))
        assert len(outbox) == 2020
        assert len(outbox._readings) <= 50  # the rest is on disk
        assert outbox.sync()
        first = [outbox.take() for _ in range(30)]
        outbox.requeue()  # the connection dropped with 30 in flight
        assert drain(outbox) == order
        assert all(first)
    finally:
        outbox.close()


def test_a_spilled_queue_comes_back_after_a_restart_in_order(tmp_path: Path):
    outbox = SqliteOutbox(tmp_path, window=10, flush_interval=0.01)
    for i in range(300):
        outbox.put(reading(i, 50) if i % 7 else state(i))
    for _ in range(5):
        taken = outbox.take()
        assert taken is not None
        outbox.ack(taken[0])
    outbox.close()
    again = SqliteOutbox(tmp_path, window=10)
    try:
        assert again.restored == 295 and len(again) == 295
        assert [n for _kind, n in drain(again)] == list(range(5, 300))
    finally:
        again.close()


def test_a_queue_of_an_earlier_edgedev_is_read(tmp_path: Path):
    """Version 1's table had no readings or age: its twin reports count as readings."""
    path = tmp_path / "outbox.sqlite3"
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute(
            "CREATE TABLE outbox (seq INTEGER PRIMARY KEY, topic TEXT NOT NULL, "
            "payload BLOB NOT NULL, qos INTEGER NOT NULL, retain INTEGER NOT NULL)"
        )
        db.executemany(
            "INSERT INTO outbox VALUES (?, ?, ?, 1, 0)",
            [
                (i, "t/twin/update" if i % 2 else "t/state/update", str(i).encode())
                for i in range(1, 9)
            ],
        )
        db.commit()
    outbox = SqliteOutbox(tmp_path, limit=6)
    try:
        assert outbox.dropped == 2 and outbox.dropped_values == 2  # readings 1 and 3
        assert [n for _k, n in drain(outbox)] == [2, 4, 5, 6, 7, 8]
    finally:
        outbox.close()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    with small_tmpfs(tmp_path / "disk", "16m") as mount:
        yield mount


def used(disk: Path) -> int:
    total = 0
    for f in disk.rglob("*"):
        with contextlib.suppress(FileNotFoundError):  # a file SQLite just removed
            total += f.stat().st_size
    return total


def test_the_disk_stays_under_the_cap_through_an_outage(small_disk: Path):
    """4 MiB of readings a round, 10 rounds, under a 2 MiB cap on a 16 MiB disk."""
    cap = 2 * 2**20
    outbox = SqliteOutbox(small_disk / "queue", max_bytes=cap, flush_interval=0.01)
    try:
        peak = 0
        for round_ in range(10):
            for i in range(1000):
                outbox.put(reading(round_ * 1000 + i))
            assert outbox.sync()
            peak = max(peak, used(small_disk))
        assert outbox.bytes <= cap
        kept = drain(outbox)
    finally:
        outbox.close()
    print(f"figures: peak {peak / 2**20:.2f} MiB on disk for a {cap / 2**20:.0f} MiB cap")
    assert peak <= cap, "the database, its WAL and the files beside it"
    assert [n for _k, n in kept] == list(range(10_000 - len(kept), 10_000))


DEVICES = 10
PROPERTIES = 40


def plant(tmp_path: Path) -> Path:
    """10 Modbus devices of 40 holding registers each, read every 50 ms: ~3 kB reports."""
    from edgedev.testing import device, device_model, device_property, write_documents

    props = [{"name": f"r{i}", "type": "INT", "accessMode": "ReadOnly"} for i in range(PROPERTIES)]
    docs = [device_model("plc", "modbus", props)]
    for d in range(DEVICES):
        visits = [
            device_property(
                f"r{i}", "modbus", 50, {"register": "HoldingRegister", "offset": i, "limit": 1}
            )
            for i in range(PROPERTIES)
        ]
        docs.append(
            device(f"plc{d}", "plc", "modbus", {"ip": "127.0.0.1", "port": free_port()}, visits)
        )
    return write_documents(tmp_path, docs)


async def get(port: int, path: str) -> tuple[int, str]:
    import httpx

    async with httpx.AsyncClient() as client:
        answer = await client.get(f"http://127.0.0.1:{port}{path}", timeout=5)
    return answer.status_code, answer.text


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"no {name} in /metrics")


@pytest.mark.broker
@pytest.mark.needs("edgedev_modbus")
async def test_edgedev_run_through_an_outage_keeps_its_disk_under_outbox_max_mb(
    tmp_path: Path, fresh_broker: object
) -> None:
    """`--outbox-max-mb 0.5`, broker away: the data directory stays under 0.5 MiB while the
    readings are dropped oldest first (counted, /readyz says so), and every state change is
    kept for the next start."""
    import sys

    import anyio

    from edgedev import load_devices
    from edgedev_modbus import ModbusSimulator
    from sink_servers import until

    file = plant(tmp_path)
    data = tmp_path / "data"
    health = free_port()
    cap = 2**19
    fresh_broker.stop()  # type: ignore[attr-defined]
    log = (tmp_path / "mapper.log").open("w")
    argv = [sys.executable, "-m", "edgedev", "run", "-f", str(file), "--data-dir", str(data)]
    argv += ["--broker", fresh_broker.url, "--health-port", str(health)]  # type: ignore[attr-defined]
    argv += ["--outbox-max-mb", "0.5", "--node", "n1"]
    sizes: list[int] = []
    async with anyio.create_task_group() as tg:
        await tg.start(ModbusSimulator(load_devices([file])).run)
        proc = await anyio.open_process(argv, stdout=log, stderr=subprocess.STDOUT)
        try:

            async def dropping() -> bool:
                import httpx

                try:
                    status, text = await get(health, "/metrics")
                except httpx.TransportError:  # not listening yet
                    return False
                sizes.append(used(data))
                return status == 200 and metric(text, "edgedev_queue_dropped_total") > 100

            await until(dropping, timeout=60)
            for _ in range(20):  # a few seconds more of it
                await anyio.sleep(0.1)
                sizes.append(used(data))
            status, ready = await get(health, "/readyz")
            _, text = await get(health, "/metrics")
            proc.send_signal(signal.SIGTERM)
            with anyio.fail_after(30):
                await proc.wait()
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            log.close()
        tg.cancel_scope.cancel()
    assert status == 503 and "queue full" in ready, ready
    assert metric(text, "edgedev_queue_bytes") <= cap
    dropped = float(text.split('edgedev_values_dropped_total{reason="outbox_full"} ')[1].split()[0])
    assert dropped >= 100 * PROPERTIES
    print(f"figures: data directory peak {max(sizes) / 1024:.0f} KiB, cap {cap / 1024:.0f} KiB")
    assert max(sizes) <= cap
    outbox = SqliteOutbox(data, max_bytes=cap)
    try:
        kept = []
        while (item := outbox.take()) is not None:
            kept.append(item[1].topic)
    finally:
        outbox.close()
    states = [t for t in kept if t.endswith("/state/update")]
    assert len(states) == 2 * DEVICES, "online, then offline at SIGTERM, of each device"
