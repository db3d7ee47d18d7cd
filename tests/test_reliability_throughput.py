"""Reports through the SQLite outbox to a real broker: all arrive, in order; rate measured."""

from __future__ import annotations

import json
import time
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

from edgedev import Bus
from edgedev.bus import MemoryOutbox, Outbox, SqliteOutbox
from edgedev.testing import Recorder
from edgedev.wire import twin_report

pytestmark = pytest.mark.broker

MESSAGES = 5000
VALUES = 50  # one message per device per cycle, 50 properties each


@pytest.mark.parametrize("paced", [False, True], ids=["burst", "1000-per-s"])
@pytest.mark.parametrize("kind", ["sqlite", "memory"])
async def test_fifty_value_reports_through_the_outbox(
    tmp_path: Path, mqtt_url: str, kind: str, paced: bool
):
    """5000 reports of 50 values: as fast as possible, or paced at 1000 a second."""
    outbox: Outbox = SqliteOutbox(tmp_path) if kind == "sqlite" else MemoryOutbox()
    topic = f"tp-{kind}-{tmp_path.name}"
    entries = [(f"p{i}", "123.4", "float", 1_700_000_000_000) for i in range(VALUES)]
    async with Bus(mqtt_url, outbox=outbox) as bus, Bus(mqtt_url) as sub:
        with anyio.fail_after(10):
            await bus.wait_connected()
            await sub.wait_connected()
        async with Recorder(sub, f"{topic}/#") as recorder:
            payloads = [twin_report(entries, event_id=str(i)) for i in range(MESSAGES)]
            start = time.perf_counter()
            publish_time = 0.0
            for i, payload in enumerate(payloads):
                t = time.perf_counter()
                bus.publish(f"{topic}/d{i % 100}/twin/update", payload)
                publish_time += time.perf_counter() - t
                if i % 100 == 99:  # a mapper's loop yields between cycles
                    ahead = start + (i + 1) / 1000 - time.perf_counter()
                    await anyio.sleep(ahead if paced and ahead > 0 else 0)
            last = f'{{"event_id":"{MESSAGES - 1}"'.encode()
            await recorder.wait_for(lambda m: m.payload.startswith(last), timeout=60)
            elapsed = time.perf_counter() - start
            with anyio.fail_after(10):
                await bus.flush()
    ids = [int(json.loads(m.payload)["event_id"]) for m in recorder.messages]
    assert ids == list(range(MESSAGES))
    if isinstance(outbox, SqliteOutbox):
        again = SqliteOutbox(tmp_path)
        try:
            assert again.restored == 0, "acknowledged reports leave the disk"
        finally:
            again.close()
    print(
        f"figures: {kind} outbox {'paced' if paced else 'burst'} {MESSAGES / elapsed:.0f} msgs/s "
        f"({MESSAGES * VALUES / elapsed:.0f} values/s) end to end, "
        f"publish() {publish_time / MESSAGES * 1e6:.1f} us/msg, "
        f"written to disk {getattr(outbox, 'persisted', 0)}"
    )
