"""The sinks' shared delivery and their encodings, without servers."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

from edgedev._backoff import Backoff
from edgedev.config._spec import DeviceSpec
from edgedev.mapper import ReportSink
from edgedev.sinks import Delivery, PartlyDelivered, PushSink, Refused, SinkFactory
from edgedev.sinks._influxdb2 import _escape
from edgedev.sinks._mysql import quote
from edgedev.sinks._tdengine import legal, literal
from edgedev.testing import device, device_model, device_property, load_documents
from sink_servers import until


class Target:
    """A target that fails while ``down`` and records every batch it accepts."""

    def __init__(self) -> None:
        self.down = False
        self.batches: list[list[int]] = []
        self.sent = anyio.Event()

    async def send(self, batch: Sequence[int]) -> None:
        if self.down:
            raise ConnectionRefusedError("refused")
        self.batches.append(list(batch))
        self.sent.set()


async def test_a_full_queue_drops_the_oldest_and_counts_them():
    target = Target()
    delivery: Delivery[int] = Delivery("t", target.send, limit=5, linger=0)
    delivery.put(range(8))
    assert len(delivery) == 5 and delivery.stats.dropped == 3
    await delivery.flush()
    assert target.batches == [[3, 4, 5, 6, 7]]


async def test_values_put_during_a_linger_go_in_one_batch():
    target = Target()
    delivery: Delivery[int] = Delivery("t", target.send, linger=0.2)
    async with anyio.create_task_group() as tg:
        tg.start_soon(delivery.run)
        for i in range(10):
            delivery.put([i])
            await anyio.lowlevel.checkpoint()
        with anyio.fail_after(5):
            await target.sent.wait()
        tg.cancel_scope.cancel()
    assert target.batches == [list(range(10))]
    assert delivery.stats.requests == 1 and delivery.stats.delivered == 10


async def test_a_failed_batch_is_retried_in_order_and_logged_once(caplog: pytest.LogCaptureFixture):
    target = Target()
    target.down = True
    delivery: Delivery[int] = Delivery(
        "redis 127.0.0.1:1", target.send, linger=0, backoff=Backoff(0.01, 0.02)
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(delivery.run)
        delivery.put([1, 2])
        await until(lambda: delivery.stats.failures >= 5, timeout=5)
        delivery.put([3])
        target.down = False
        await until(lambda: delivery.stats.delivered >= 3, timeout=5)
        tg.cancel_scope.cancel()
    assert [v for b in target.batches for v in b] == [1, 2, 3]
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert errors == [
        "redis 127.0.0.1:1: ConnectionRefusedError: refused; retrying with backoff, "
        "keeping up to 100000 values"
    ]
    assert any("delivering again" in r.getMessage() for r in caplog.records)


async def test_a_partly_delivered_batch_retries_only_the_rest():
    calls: list[list[int]] = []

    async def send(batch: Sequence[int]) -> None:
        calls.append(list(batch))
        if len(calls) == 1:
            raise PartlyDelivered("HTTP 503", batch[2:])

    delivery: Delivery[int] = Delivery("t", send, linger=0)
    delivery.put(range(5))
    await delivery.flush()  # stops at the failure
    await delivery.flush()
    assert calls == [[0, 1, 2, 3, 4], [2, 3, 4]]
    assert delivery.stats.delivered == 5


def test_names_and_literals_are_escaped():
    assert _escape("a b,c=d", ",= ") == "a\\ b\\,c\\=d"
    assert quote("ns/dev`x/p") == "`ns/dev``x/p`"
    assert literal("it's") == "'it\\'s'"
    assert legal("plant/boiler-1") == "plant_boiler_1"


async def test_a_refused_batch_is_dropped_counted_and_logged_once(
    caplog: pytest.LogCaptureFixture,
):
    accepted: list[list[int]] = []

    async def send(batch: Sequence[int]) -> None:
        if 0 in batch:
            raise Refused("HTTP 400: bad value")
        accepted.append(list(batch))

    delivery: Delivery[int] = Delivery("http x", send, linger=0)
    delivery.put([0, 1])
    await delivery.flush()
    delivery.put([0, 2])
    await delivery.flush()
    delivery.put([3])
    await delivery.flush()
    assert accepted == [[3]]
    assert delivery.stats.dropped == delivery.stats.refused == 4
    assert delivery.stats.failures == 0
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert errors == ["http x: refused 2 values, dropped: HTTP 400: bad value"]


@pytest.mark.needs("redis")
def test_every_yaml_of_the_sinks_page_is_valid():
    """docs/sinks.md's examples, each checked as the loader checks a property's pushMethod."""
    import re
    from pathlib import Path

    import yaml

    from edgedev.config._crd import PushMethod
    from edgedev.config._push import push_problems
    from edgedev.twin import PropertyType

    page = (Path(__file__).resolve().parents[1] / "docs" / "sinks.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", page, re.S)
    pushes = []
    for block in blocks:
        doc = yaml.safe_load(block)
        if "pushMethod" in doc:
            pushes.append(doc["pushMethod"])
        elif doc.get("kind") == "Device":
            pushes += [p["pushMethod"] for p in doc["spec"]["properties"]]
    assert len(pushes) == 8
    for push in pushes:
        problems, _ = push_problems(PushMethod.model_validate(push), PropertyType.FLOAT)
        assert problems == [], push


def _pushing(directory: Path, name: str, *ports: int) -> DeviceSpec:
    """Device ``name`` whose property ``p<i>`` pushes over HTTP to ``ports[i]``."""
    model = device_model(
        "pusher", "modbus", [{"name": f"p{i}", "type": "INT"} for i in range(len(ports))]
    )
    visitor = {"register": "HoldingRegister", "limit": 1}
    props = [
        {
            **device_property(f"p{i}", "modbus", 1000, {**visitor, "offset": i}),
            "pushMethod": {"http": {"hostName": "http://127.0.0.1", "port": port}},
        }
        for i, port in enumerate(ports)
    ]
    doc = device(name, "pusher", "modbus", {"ip": "127.0.0.1", "port": 1502}, props)
    directory.mkdir()
    (spec,) = load_documents(directory, [model, doc])
    return spec


def _ports(sinks: Sequence[ReportSink]) -> list[int]:
    """The port of each HTTP sink's URL."""
    return [int(sink.target[0].rsplit(":", 1)[1]) for sink in sinks if isinstance(sink, PushSink)]


@pytest.mark.needs("edgedev_modbus")
def test_a_target_has_one_sink_while_some_device_names_it(tmp_path: Path):
    factory = SinkFactory()
    a, b = _pushing(tmp_path / "1", "a", 1, 2), _pushing(tmp_path / "2", "b", 2, 3)
    assert _ports(factory.arrived(a).started) == [1, 2]
    change = factory.arrived(b)
    assert _ports(change.started) == [3] and not change.retired  # b shares 2 with a
    assert _ports(factory.left(a.id)) == [1]  # 2 stays: b names it
    assert _ports(factory.sinks) == [2, 3]
    b_updated = _pushing(tmp_path / "3", "b", 3, 4)  # names 3 and 4 now, no longer 2
    change = factory.arrived(b_updated)
    assert _ports(change.started) == [4] and _ports(change.retired) == [2]
    assert _ports(factory.left(b.id)) == [3, 4] and factory.sinks == []
    assert factory.left(b.id) == []  # once gone, gone
    assert _ports(factory.arrived(a).started) == [1, 2]  # named again: new sinks
