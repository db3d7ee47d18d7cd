"""Every value dropped on the way is counted in ``edgedev_values_dropped_total{reason}``.

A driver that pushes faster than its runner takes values, a device whose reads come more than
a cycle late, an outbox at its limit with no broker: each drop shows in /metrics under its
reason and in the log.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio
import pytest

from edgedev import Driver, Mapper, PropertySpec, ProtocolConfig, VisitorConfig, WriteRefused
from edgedev._plugins import Registry
from edgedev.bus import MemoryOutbox
from edgedev.drivers import AnyDriver, Report
from edgedev.health import mapper_metrics, render
from edgedev.mapper import PUSH_QUEUE_LIMIT
from edgedev.mqtt import KubeEdgeMqtt
from edgedev.testing import (
    device,
    device_model,
    device_property,
    free_port,
    unique_root,
    write_documents,
)
from edgedev.twin import DeviceState, Value
from sink_servers import until

EXTRA = 100  # values pushed beyond the runner's queue


class Config(ProtocolConfig):
    slow_read: float = 0.0  # seconds the second read takes


class Visitor(VisitorConfig):
    pushed: bool = False


class Burst(Driver[Config, Visitor]):
    """Pushes PUSH_QUEUE_LIMIT + EXTRA values in one go (no yield), polls the others."""

    protocol_config = Config
    visitor_config = Visitor
    reads = 0

    def pushes(self, prop: PropertySpec[Visitor]) -> bool:
        return prop.visitor.pushed

    async def connect(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def read(self, properties: Sequence[PropertySpec[Visitor]]) -> Mapping[str, Value]:
        self.reads += 1
        if self.reads == 2:
            await anyio.sleep(self.config.slow_read)
        return {p.name: self.reads for p in properties}

    async def write(self, prop: PropertySpec[Visitor], value: Value) -> None:
        raise WriteRefused("read-only")

    async def watch(self, properties: Sequence[PropertySpec[Visitor]], report: Report) -> None:
        for i in range(PUSH_QUEUE_LIMIT + EXTRA):
            report(properties[0].name, i)
        await anyio.sleep_forever()


def drivers() -> Registry[AnyDriver]:
    registry: Registry[AnyDriver] = Registry("edgedev.test-no-entry-points", Driver)
    registry.register("burst", Burst)
    return registry


def load(
    tmp_path: Path, *, pushed: bool, slow_read: float = 0.0, polled: int = 1, cycle: int = 100
) -> Any:
    from edgedev import load_devices

    props = [{"name": "p", "type": "INT"}] + [
        {"name": f"q{i}", "type": "INT"} for i in range(polled)
    ]
    model = device_model("burst", "burst", props)
    visits = [device_property("p", "burst", cycle, {"pushed": pushed})]
    visits += [device_property(f"q{i}", "burst", cycle, {}) for i in range(polled)]
    doc = device("b0", "burst", "burst", {"slow_read": slow_read}, visits)
    return load_devices([write_documents(tmp_path, [model, doc])], drivers=drivers())


def dropped(mapper: Mapper, reason: str) -> int:
    text = render(mapper_metrics(mapper))
    found = re.search(rf'edgedev_values_dropped_total{{reason="{reason}"}} (\d+)', text)
    assert found, text
    return int(found.group(1))


async def test_pushed_values_beyond_the_runners_queue_are_counted(
    tmp_path: Path, mqtt_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    devices = load(tmp_path, pushed=True, cycle=5000)  # no read late while the burst is taken
    mapper = Mapper(devices, transports=[KubeEdgeMqtt(mqtt_url)], drivers=drivers())
    async with anyio.create_task_group() as tg:
        await tg.start(mapper.run)
        await until(lambda: mapper.drops.totals["push_queue"] >= EXTRA, timeout=10)
        await anyio.sleep(0.3)  # no more than that
        assert dropped(mapper, "push_queue") == EXTRA
        assert dropped(mapper, "outbox_full") == 0
        mapper.stop()
    lines = [r.getMessage() for r in caplog.records if r.name == "edgedev.drops"]
    assert lines[0] == "1 values dropped (push_queue): device default/b0: runner behind; 1 in all"
    # the rest of the burst came within the minute: said once more when the mapper stopped
    assert len(lines) == 2
    assert re.fullmatch(
        rf"{EXTRA - 1} values dropped \(push_queue\) in the last \d+ s: device default/b0: "
        rf"runner behind; {EXTRA} in all",
        lines[1],
    )


async def test_reads_a_whole_cycle_late_are_counted_as_missed(
    tmp_path: Path, mqtt_url: str
) -> None:
    # 3 properties read every second; the second read takes 3.5 s
    devices = load(tmp_path, pushed=False, slow_read=3.5, polled=2, cycle=1000)
    mapper = Mapper(devices, transports=[KubeEdgeMqtt(mqtt_url)], drivers=drivers())
    async with anyio.create_task_group() as tg:
        await tg.start(mapper.run)
        await until(lambda: mapper.runners["default/b0"].reads >= 3, timeout=15)
        # the read of tick 0 ended at 3.5 s: tick 1 is read at once, late; ticks 2 and 3 are
        # skipped (3 values each), tick 4 comes on time
        assert dropped(mapper, "missed_cycle") == 2 * 3
        mapper.stop()


async def test_an_outbox_at_its_limit_counts_the_readings_it_drops(tmp_path: Path) -> None:
    devices = load(tmp_path, pushed=False, polled=4)  # 5 values per twin report
    outbox = MemoryOutbox(limit=3)
    nobody = f"mqtt://127.0.0.1:{free_port()}"
    transport = KubeEdgeMqtt(nobody, outbox=outbox, topic_root=unique_root())
    mapper = Mapper(devices, transports=[transport], drivers=drivers())
    logging.getLogger("edgedev.bus").setLevel(logging.ERROR)
    async with anyio.create_task_group() as tg:
        await tg.start(mapper.run)
        await until(lambda: mapper.runners["default/b0"].state is DeviceState.ONLINE, timeout=10)
        await until(lambda: outbox.dropped >= 6, timeout=10)
        mapper.stop()
        tg.cancel_scope.cancel()
    # the mapper's own state messages carry no readings; each twin report carries 5
    assert outbox.dropped_values % 5 == 0 and outbox.dropped_values > 0
    assert dropped(mapper, "outbox_full") == outbox.dropped_values
