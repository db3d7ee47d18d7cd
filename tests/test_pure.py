"""Pure code, tested directly: values, topics, schedules, change filters, the delta."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgedev.bus import BrokerURL, Channel, DeviceTopic, NodeChannel, NodeTopic, Topics
from edgedev.config import PropertySpec
from edgedev.drivers import Capacity, Drops, Schedule, VisitorConfig
from edgedev.mapper import ChangeFilter
from edgedev.twin import (
    PropertyType,
    TwinProperty,
    TwinValue,
    compute_delta,
    format_value,
    parse_value,
    text_equal,
)


@pytest.mark.parametrize(
    ("value", "type_", "text"),
    [
        (23.5, PropertyType.FLOAT, "23.5"),
        (0.1 + 0.2, PropertyType.DOUBLE, "0.30000000000000004"),
        (True, PropertyType.BOOLEAN, "true"),
        (-7, PropertyType.INT, "-7"),
        (30.0, PropertyType.INT, "30"),
        ("abc", PropertyType.STRING, "abc"),
        (b"\x00\x01", PropertyType.BYTES, "0001"),  # hex: inside EdgeCore's charset
        (1e16, PropertyType.DOUBLE, "10000000000000000.0"),  # no exponent: EdgeCore refuses +
        (1e-7, PropertyType.FLOAT, "0.0000001"),
    ],
)
def test_format_value(value: object, type_: PropertyType, text: str):
    assert format_value(value, type_) == text  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "type_", "value"),
    [
        ("30", PropertyType.INT, 30),
        ("30.0", PropertyType.INT, 30),
        (" 2.5 ", PropertyType.FLOAT, 2.5),
        ("ON", PropertyType.BOOLEAN, True),
        ("0", PropertyType.BOOLEAN, False),
        ("0001", PropertyType.BYTES, b"\x00\x01"),
        ("AAE=", PropertyType.BYTES, b"\x00\x01"),  # base64, the older form, still read
    ],
)
def test_parse_value(text: str, type_: PropertyType, value: object):
    assert parse_value(text, type_) == value


@pytest.mark.parametrize(
    ("text", "type_"),
    [
        ("30.5", PropertyType.INT),
        ("warm", PropertyType.INT),
        ("x", PropertyType.DOUBLE),
        ("maybe", PropertyType.BOOLEAN),
        ("***", PropertyType.BYTES),
    ],
)
def test_parse_value_refuses_with_a_reason(text: str, type_: PropertyType):
    with pytest.raises(ValueError, match=repr(text).replace("*", r"\*")):
        parse_value(text, type_)


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_floats_round_trip_through_their_wire_form(value: float):
    assert parse_value(format_value(value, PropertyType.DOUBLE), PropertyType.DOUBLE) == value


def test_text_equal_compares_values_not_spelling():
    assert text_equal("30", "30.0", PropertyType.FLOAT)
    assert text_equal("true", "1", PropertyType.BOOLEAN)
    assert not text_equal("30", "31", PropertyType.INT)


def test_topics_build_and_parse():
    topics = Topics()
    topic = topics.device("plant/pump-1", Channel.TWIN_DELTA)
    assert topic == "$hw/events/device/plant/pump-1/twin/update/delta"
    assert topics.parse(topic) == DeviceTopic("plant", "pump-1", Channel.TWIN_DELTA)
    assert topics.device("pump-1", Channel.STATE_UPDATE).endswith("/default/pump-1/state/update")
    assert topics.parse("$hw/events/node/edge-1/membership/get") == NodeTopic(
        "edge-1", NodeChannel.MEMBERSHIP_GET
    )
    assert topics.device_filter(Channel.TWIN_UPDATE) == "$hw/events/device/+/+/twin/update"
    assert topics.parse("$hw/events/device/a/b/unknown") is None
    assert topics.parse("other/device/a/b/twin/update") is None
    custom = Topics("edgedev/v1")
    assert custom.parse(custom.device("a/b", Channel.TWIN_GET)) == DeviceTopic(
        "a", "b", Channel.TWIN_GET
    )
    with pytest.raises(ValueError):
        Topics("bad/#")
    with pytest.raises(ValueError):
        topics.device("a/b/c", Channel.TWIN_GET)


@given(st.text(max_size=80))
def test_topic_parsing_never_raises(topic: str):
    Topics().parse(topic)


def test_broker_url():
    assert BrokerURL.parse("mqtt://10.0.0.5:1884") == BrokerURL("10.0.0.5", 1884)
    assert BrokerURL.parse("localhost").port == 1883
    secure = BrokerURL.parse("mqtts://user:p%40ss@broker")
    assert (secure.tls, secure.port, secure.username, secure.password) == (
        True,
        8883,
        "user",
        "p@ss",
    )
    with pytest.raises(ValueError):
        BrokerURL.parse("http://x")


def test_schedule_groups_periods_and_does_not_drift():
    schedule = Schedule({"a": 1.0, "b": 1.0, "c": 0.5}, start=100.0)
    assert sorted(schedule.pop_due(100.0)) == ["a", "b", "c"]
    assert schedule.next_deadline() == 100.5
    assert schedule.pop_due(100.49) == []
    assert schedule.pop_due(100.51) == ["c"]
    # a late wake-up does not shift later deadlines
    assert sorted(schedule.pop_due(101.2)) == ["a", "b", "c"]
    assert schedule.next_deadline() == 101.5
    # ticks missed entirely are skipped and counted
    assert sorted(schedule.pop_due(105.1)) == ["a", "b", "c"]
    assert schedule.missed == 3 + 7  # 103..105 of the 1 s group, 102..105 of the 0.5 s one
    assert schedule.missed_jobs == 3 * 2 + 7  # the values not read: two jobs in the 1 s group
    assert schedule.next_deadline() == 105.5
    assert Schedule({}, 0).next_deadline() == math.inf


def test_drops_are_counted_by_reason_and_logged_at_most_once_a_minute(
    caplog: pytest.LogCaptureFixture,
):
    now = [0.0]
    drops = Drops(clock=lambda: now[0])
    drops.add("push_queue", 1, "device a: runner behind")  # the first: logged at once
    for t in range(1, 60):
        now[0] = float(t)
        drops.add("push_queue", 2, "device a: runner behind")  # within the minute: counted
    drops.add("server_queue", 3)  # another reason has its own minute
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "1 values dropped (push_queue): device a: runner behind; 1 in all",
        "3 values dropped (server_queue); 3 in all",
    ]
    now[0] = 60.0
    drops.add("push_queue", 1, "device b: runner behind")
    assert caplog.records[-1].getMessage() == (
        "119 values dropped (push_queue) in the last 60 s: device b: runner behind; 120 in all"
    )
    drops.add("push_queue", 0)  # nothing dropped: nothing counted
    assert drops.totals == {"push_queue": 120, "server_queue": 3}
    now[0] = 70.0
    drops.add("push_queue", 5)
    drops.flush_log()  # a mapper stopping says what it had not said yet
    assert caplog.records[-1].getMessage() == (
        "5 values dropped (push_queue) in the last 10 s; 125 in all"
    )
    assert len(caplog.records) == 4


def test_capacity_says_when_the_connections_carry_less_than_the_devices_need(
    caplog: pytest.LogCaptureFixture,
):
    now = [0.0]
    capacity = Capacity("gw:502", 2, advice="add connections", clock=lambda: now[0])
    for d in range(300):
        capacity.need(f"d{d}", 1.0)  # 300 requests/s
    capacity.need("d0", 1.0)  # a device connecting again replaces its need
    for _ in range(2002):  # 20 s of 100 requests/s at 20 ms on 2 connections: 100/s at most
        now[0] += 0.01  # (the first 10 s, devices joining, are not judged)
        capacity.answered(0.020, connections=2)
    assert capacity.needed == 300 and capacity.behind
    assert round(capacity.carried) == 100 and round(capacity.latency, 3) == 0.020
    assert [r.getMessage() for r in caplog.records] == [
        "gw:502 cannot keep up: 300 devices need 300 requests/s; 2 connection(s) "
        "(maxConnections 2) carried 100/s at 20.0 ms per request. The devices fall behind "
        "their cycles: add connections"
    ]
    for _ in range(3000):  # 30 s more of it: the next warning waits for the minute
        now[0] += 0.01
        capacity.answered(0.020, connections=2)
    assert len(caplog.records) == 1
    behind = {m.name: m.samples[0] for m in capacity.metrics()}["edgedev_endpoint_behind"]
    assert behind == ({"endpoint": "gw:502"}, 1)
    fast = Capacity("gw:503", 2, clock=lambda: now[0])
    fast.need("d", 300.0)
    for _ in range(6020):  # 300/s at 2 ms: carried as needed
        now[0] += 1 / 300
        fast.answered(0.002, connections=1)
    assert not fast.behind and round(fast.carried) == 300 and len(caplog.records) == 1


def prop(
    name: str, type_: PropertyType = PropertyType.FLOAT, deadband: float = 0.0
) -> PropertySpec:
    return PropertySpec(
        name=name, type=type_, visitor=VisitorConfig(), deadband=deadband, report_on_change=True
    )


def test_change_filter_deadband():
    changes = ChangeFilter()
    temp = prop("t", deadband=0.5)
    assert changes.changed(temp, 20.0)
    changes.reported(temp, 20.0)
    assert not changes.changed(temp, 20.4)
    assert changes.changed(temp, 20.6)
    flag = prop("f", PropertyType.BOOLEAN)
    changes.reported(flag, True)
    assert not changes.changed(flag, True) and changes.changed(flag, False)


def test_delta_holds_desired_values_not_yet_reported():
    props = {
        "a": TwinProperty(
            PropertyType.INT, desired=TwinValue("30", 1), reported=TwinValue("30.0", 2)
        ),
        "b": TwinProperty(
            PropertyType.INT, desired=TwinValue("31", 1), reported=TwinValue("30", 2)
        ),
        "c": TwinProperty(PropertyType.INT, desired=TwinValue("5", 1)),
        "d": TwinProperty(PropertyType.INT, reported=TwinValue("5", 1)),
    }
    assert compute_delta(props) == {"b": "31", "c": "5"}
    updated = props["b"].with_reported("31", 3)
    assert not updated.pending and updated.version == 1
