"""The embedded broker that `edgedev demo` and brokerless test runs rely on."""

from __future__ import annotations

import anyio
import pytest

from edgedev import Bus
from edgedev.broker import EmbeddedBroker
from edgedev.broker._codec import Connect, Parser, Publish, Subscribe, Will, encode
from edgedev.broker._sessions import topic_matches
from edgedev.testing import Recorder


@pytest.mark.parametrize(
    ("topic_filter", "topic", "expected"),
    [
        ("$hw/events/device/+/twin/update", "$hw/events/device/ns.a/twin/update", True),
        ("$hw/events/device/+/twin/update", "$hw/events/device/a/twin/update/delta", False),
        ("$hw/events/#", "$hw/events/node/n/membership/get", True),
        ("a/#", "a", True),
        ("+/x", "$SYS/x", False),  # wildcards at the start never match $-topics
        ("#", "$hw/events/x", False),
        ("a/+/c", "a//c", True),
    ],
)
def test_topic_filters_match_as_mqtt_says(topic_filter: str, topic: str, expected: bool):
    assert topic_matches(topic_filter, topic) is expected


def test_parser_reassembles_packets_fed_byte_by_byte():
    packets = [
        Connect("m1", will=Will("$hw/events/node/n/mapper/state", b'{"state":"offline"}', 1)),
        Publish("$hw/events/device/a/twin/update", b"x" * 300, qos=1, packet_id=7),
        Subscribe(9, (("a/#", 1), ("$hw/events/+", 0))),
    ]
    parser = Parser()
    received = []
    for byte in b"".join(encode(p) for p in packets):
        received += parser.feed(bytes([byte]))
    assert received == packets
    assert parser.buffered == 0


async def test_dollar_topics_flow_in_order_and_retained_messages_reach_late_subscribers():
    async with (
        EmbeddedBroker(port=0) as broker,
        Bus(broker.url) as publisher,
        Bus(broker.url) as subscriber,
    ):
        await subscriber.wait_connected()
        async with Recorder(subscriber, "$hw/events/device/+/twin/update") as recorder:
            for i in range(300):
                publisher.publish("$hw/events/device/d/twin/update", str(i))
            with anyio.fail_after(10):
                await publisher.flush()
            await recorder.wait_count(lambda m: True, 300)
        assert [int(m.payload) for m in recorder.messages] == list(range(300))

        publisher.publish("$hw/events/device/d/state", b"online", retain=True)
        with anyio.fail_after(10):
            await publisher.flush()
        async with Recorder(subscriber, "$hw/events/device/+/state") as late:
            message = await late.wait_for(lambda m: True)
        assert message.payload == b"online"


async def test_a_client_that_vanishes_has_its_last_will_published():
    async with EmbeddedBroker(port=0) as broker, Bus(broker.url) as watcher:
        await watcher.wait_connected()
        async with Recorder(watcher, "$hw/events/node/+/mapper/state") as recorder:
            will = Will("$hw/events/node/n1/mapper/state", b'{"state":"offline"}', qos=1)
            stream = await anyio.connect_tcp("127.0.0.1", broker.port)
            await stream.send(encode(Connect("doomed-mapper", will=will)))
            parser = Parser()
            with anyio.fail_after(5):
                while not parser.feed(await stream.receive()):
                    pass  # wait for CONNACK
            await stream.aclose()  # no DISCONNECT: the broker must publish the will
            message = await recorder.wait_for(lambda m: True)
    assert message.payload == b'{"state":"offline"}'
