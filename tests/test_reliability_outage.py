"""Store and forward: readings taken while the broker is away arrive after it, in order."""

from __future__ import annotations

import json
import time
from pathlib import Path

import anyio
import pytest

from edgedev import Backoff, Bus, Mapper
from edgedev.mqtt import KubeEdgeMqtt
from edgedev.testing import BrokerHandle, Recorder
from edgedev_modbus import ModbusSimulator
from reliability_helpers import (
    Gate,
    RecordingOutbox,
    first_occurrences,
    fleet_docs,
    is_report,
    load_docs,
    readings,
    topic_root,
)

pytestmark = pytest.mark.broker

NAMES = [f"d{i}" for i in range(5)]


async def test_ten_second_outage_loses_no_reading(tmp_path: Path, fresh_broker: BrokerHandle):
    """5 devices report every 100 ms; the broker is stopped for 10 s and started again."""
    devices = load_docs(tmp_path, fleet_docs(NAMES, cycle_ms=100))
    root = topic_root()
    outbox = RecordingOutbox(tmp_path / "data")
    sim = ModbusSimulator(devices)
    gate = Gate(fresh_broker.port)
    async with anyio.create_task_group() as tg:
        await tg.start(sim.run)
        await tg.start(gate.run)
        # the subscriber reconnects fast; the mapper reaches the broker through the gate, so
        # that the test can let the subscriber in first after the outage
        subscriber = Bus(fresh_broker.url, backoff=Backoff(0.05, 0.2))
        async with subscriber, Recorder(subscriber, f"{root}/#") as recorder:
            mqtt = KubeEdgeMqtt(gate.url, topic_root=root, outbox=outbox)
            mapper = Mapper(devices, transports=[mqtt])
            await tg.start(mapper.run)
            for name in NAMES:
                await recorder.wait_for(
                    lambda m, name=name: m.topic.endswith(f"/{name}/twin/update"), timeout=20
                )
            gate.close()
            assert mqtt.bus is not None
            with anyio.fail_after(20):
                await mqtt.bus.wait_disconnected()
            # what the broker acknowledged is the mapper's no longer: let it reach the
            # subscriber before the broker stops (a stopped broker forgets what it holds)
            acked = {json.loads(m.payload)["event_id"] for m in outbox.acked_log if is_report(m)}
            with anyio.fail_after(20):
                while not acked <= {
                    json.loads(m.payload)["event_id"] for m in recorder.messages if is_report(m)
                }:
                    await recorder.wait_for(is_report, after=len(recorder.messages), timeout=20)
            fresh_broker.stop()
            stopped_at = len(outbox.put_log)
            t0 = time.monotonic()
            with anyio.fail_after(20):
                while time.monotonic() - t0 < 10:  # readings go on for 10 s of outage
                    await anyio.sleep(0.5)
                    assert mqtt.bus is not None and not mqtt.bus.connected
            queued = len(outbox)
            fresh_broker.start()
            with anyio.fail_after(20):
                await subscriber.wait_connected()
            gate.open()
            back = time.monotonic()
            put = [m for m in outbox.put_log if is_report(m)]
            wanted = {json.loads(m.payload)["event_id"] for m in put}
            # the mapper's next attempt comes after its backoff (up to 11 s), then the backlog
            with anyio.fail_after(60):
                while not wanted <= {
                    json.loads(m.payload)["event_id"] for m in recorder.messages if is_report(m)
                }:
                    await recorder.wait_for(is_report, after=len(recorder.messages), timeout=30)
            drained = time.monotonic() - back
            with anyio.fail_after(10):
                await mqtt.bus.flush()
            tg.cancel_scope.cancel()

    during = [m for m in outbox.put_log[stopped_at:] if is_report(m)]
    assert queued >= 5 * 70, f"about 10 readings a second per device were queued ({queued})"
    assert len(during) >= 5 * 70
    got = readings(recorder.messages)
    duplicates = 0
    for name in NAMES:
        sent = [
            json.loads(m.payload)["event_id"]
            for m in put
            if m.topic.endswith(f"/{name}/twin/update")
        ]
        unique, repeats = first_occurrences(got[name])
        duplicates += repeats
        arrived = [event_id for event_id, _ in unique]
        assert arrived[: len(sent)] == sent, f"{name}: every reading, once each, in order"
        stamps = [ts for _, ts in unique]
        assert stamps == sorted(stamps)
    # resent messages keep their event id: a duplicate is recognisable as one
    assert duplicates <= 5 * 512
    print(f"figures: queued={queued} delivered_after={drained:.2f}s duplicates={duplicates}")
    assert outbox.dropped == 0
