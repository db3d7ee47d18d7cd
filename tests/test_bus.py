"""The MQTT bus against a real broker: ordering, outages, restored subscriptions."""

from __future__ import annotations

import logging
import uuid

import anyio
import pytest

from edgedev import Bus
from edgedev.bus import Message
from edgedev.testing import BrokerHandle, Recorder
from reliability_helpers import Gate

pytestmark = pytest.mark.broker


async def test_publish_and_subscribe_in_order(mqtt_url: str):
    async with Bus(mqtt_url) as publisher, Bus(mqtt_url) as subscriber:
        await subscriber.wait_connected()
        async with Recorder(subscriber, "order/+/x") as recorder:
            for i in range(500):
                publisher.publish("order/a/x", str(i))
            with anyio.fail_after(10):
                await publisher.flush()
            await recorder.wait_count(lambda m: True, 500)
    assert [int(m.payload) for m in recorder.messages] == list(range(500))


async def test_messages_published_during_an_outage_arrive_after_it(fresh_broker: BrokerHandle):
    # The publisher reaches the broker through a gate, so that after the outage the test lets
    # it in only once the subscriber has its subscription back.
    gate = Gate(fresh_broker.port)
    async with anyio.create_task_group() as tg:
        await tg.start(gate.run)
        async with Bus(gate.url) as publisher, Bus(fresh_broker.url) as subscriber:
            with anyio.fail_after(5):
                await publisher.wait_connected()
                await subscriber.wait_connected()
            async with Recorder(subscriber, "outage/#") as recorder:
                publisher.publish("outage/t", b"before")
                await recorder.wait_for(lambda m: m.payload == b"before")
                resubscribed = anyio.Event()
                subscriber.on_connect(resubscribed.set)
                gate.close()
                fresh_broker.stop()
                with anyio.fail_after(10):  # both notice the outage
                    await publisher.wait_disconnected()
                    await subscriber.wait_disconnected()
                assert not (publisher.connected or subscriber.connected)
                for i in range(50):  # published while no broker is there
                    publisher.publish("outage/t", str(i))
                assert len(publisher.outbox) >= 50
                fresh_broker.start()
                with anyio.fail_after(20):  # its subscription is restored by itself
                    await resubscribed.wait()
                gate.open()
                await recorder.wait_count(lambda m: m.payload != b"before", 50, timeout=20)
                with anyio.fail_after(10):  # the broker's acknowledgements may trail delivery
                    await publisher.flush()
        tg.cancel_scope.cancel()
    during = [int(m.payload) for m in recorder.messages if m.payload != b"before"]
    assert sorted(set(during)) == list(range(50))
    firsts = [during.index(i) for i in range(50)]
    assert firsts == sorted(firsts), "first deliveries are in publishing order"
    assert publisher.reconnects >= 1 and len(publisher.outbox) == 0


async def test_a_flood_a_subscriber_cannot_keep_up_with_is_counted_and_logged_once(
    mqtt_url: str, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.WARNING, "edgedev.bus")
    topic = f"flood/{uuid.uuid4().hex}"
    async with (
        Bus(mqtt_url) as slow,
        Bus(mqtt_url) as sender,
        slow.subscribe(topic, buffer=10) as messages,
        slow.subscribe(f"{topic}-marker") as marker,
    ):
        with anyio.fail_after(15):  # connected: both subscriptions confirmed before the flood
            await slow.wait_connected()
        for i in range(100):
            sender.publish(topic, str(i).encode())
        sender.publish(f"{topic}-marker", b"")  # one sender, one order: it comes after the 100
        with anyio.fail_after(15):
            await marker.receive()
        assert slow.dropped_in == 90  # the 10 the buffer holds, and 90 dropped
        kept = [messages.receive_nowait().payload for _ in range(10)]
        assert kept == [str(i).encode() for i in range(10)]
        sender.publish(topic, b"after")
        with anyio.fail_after(15):
            assert (await messages.receive()).payload == b"after"
    lines = [r.getMessage() for r in caplog.records if "subscriber of" in r.getMessage()]
    assert len(lines) == 2, lines  # when it starts, and how many when it ends
    assert "dropped 90 messages" in lines[1]


async def test_a_will_asked_anew_at_each_connection_and_a_clean_reconnect(mqtt_url: str):
    """The will may change from one connection to the next (Sparkplug's NDEATH and bdSeq);
    reconnect() ends the connection cleanly (no will) and connects anew at once."""
    gate = Gate(int(mqtt_url.rsplit(":", 1)[1]))
    topic = f"will/{uuid.uuid4().hex}"
    asked: list[int] = []

    def will() -> Message:
        asked.append(len(asked))
        return Message(topic, str(len(asked) - 1).encode(), qos=1)

    connections = 0

    def connected() -> None:
        nonlocal connections
        connections += 1

    async with anyio.create_task_group() as tg:
        await tg.start(gate.run)
        async with (
            Bus(mqtt_url) as watcher,
            Recorder(watcher, topic) as recorder,
            Bus(gate.url, will=will) as bus,
        ):
            bus.on_connect(connected)
            with anyio.fail_after(10):
                await bus.wait_connected()
            await bus.reconnect()  # DISCONNECT: the broker drops will 0
            with anyio.fail_after(10):
                await bus.wait_connected()
            assert (asked, connections, bus.last_error) == ([0, 1], 2, None)
            gate.close()  # the connection breaks without DISCONNECT: will 1 goes out
            message = await recorder.wait_for(lambda m: True, timeout=10)
            assert message.payload == b"1"
            gate.open()
        tg.cancel_scope.cancel()
    assert [m.payload for m in recorder.messages] == [b"1"]
