"""The MQTT bus against a real broker: ordering, outages, restored subscriptions."""

from __future__ import annotations

import anyio
import pytest

from edgedev import Bus
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
