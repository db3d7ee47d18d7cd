"""Twin semantics without I/O: versions, optimistic concurrency, null, delta, document."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgedev import WriteRefused
from edgedev.twin import (
    Change,
    Code,
    NoSuchProperty,
    PropertyModel,
    PropertyType,
    Twin,
    WriteFailure,
    check_value,
)
from edgedev.wire import MsgTwin, TwinUpdate, property_entry, to_change, twin_entries

MODEL = {
    "setpoint": PropertyModel(PropertyType.FLOAT, writable=True, minimum=10, maximum=30),
    "temp": PropertyModel(PropertyType.FLOAT, writable=False),
    "mode": PropertyModel(PropertyType.STRING),
}


def twin() -> Twin:
    t = Twin("plant/thermo")
    t.set_model(MODEL)
    return t


def test_every_accepted_change_increments_the_property_version():
    t = twin()
    assert t.properties["setpoint"].version == 0
    t.update([Change("setpoint", desired="21")], now=1)
    assert t.properties["setpoint"].version == 1
    t.update([Change("setpoint", reported="20")], now=2)
    assert t.properties["setpoint"].version == 2
    t.update([Change("setpoint", reported="21.0")], now=3)
    assert t.properties["setpoint"].version == 3
    assert t.properties["mode"].version == 0  # other properties keep theirs


def test_the_same_reported_value_again_only_moves_its_timestamp():
    t = twin()
    t.update([Change("temp", reported="20.5", reported_timestamp=10)], now=10)
    outcome = t.update([Change("temp", reported="20.50", reported_timestamp=20)], now=20)
    prop = t.properties["temp"]
    assert prop.version == 1 and prop.reported is not None and prop.reported.timestamp == 20
    assert outcome.accepted and outcome.document == {}  # nothing worth telling apps


def test_a_stale_version_is_refused_with_409_and_changes_nothing():
    t = twin()
    t.update([Change("setpoint", desired="21")], now=1)
    t.update([Change("setpoint", reported="21")], now=2)
    before = dict(t.properties)
    outcome = t.update(
        [Change("mode", desired="eco"), Change("setpoint", desired="25", version=1)], 3
    )
    assert outcome.refusal is not None and outcome.refusal.code is Code.CONFLICT
    assert "version 1" in outcome.refusal.reason
    assert t.properties == before  # all or nothing: "mode" was not applied either
    assert t.update([Change("setpoint", desired="25", version=2)], now=4).accepted


def test_null_removes_the_desired_value_and_the_delta():
    t = twin()
    t.update([Change("setpoint", desired="25")], now=1)
    assert t.delta() == {"setpoint": "25"}
    outcome = t.update([Change("setpoint", remove_desired=True)], now=2)
    assert outcome.accepted and outcome.desired_changed
    assert t.properties["setpoint"].desired is None and t.delta() == {}
    assert t.properties["setpoint"].version == 2


def test_refusals_read_only_out_of_range_bad_value_unknown_property():
    t = twin()
    cases = [
        (Change("temp", desired="20"), Code.BAD_REQUEST, "ReadOnly"),
        (Change("setpoint", desired="31"), Code.BAD_REQUEST, "maximum"),
        (Change("setpoint", desired="warm"), Code.BAD_REQUEST, "not a number"),
        (Change("nope", desired="1"), Code.NOT_FOUND, "no property"),
        (
            Change("setpoint", desired="20", remove_desired=True),
            Code.BAD_REQUEST,
            "set and removed",
        ),
    ]
    for change, code, words in cases:
        outcome = t.update([change], now=1)
        assert outcome.refusal is not None and outcome.refusal.code is code, change
        assert words in outcome.refusal.reason
    assert all(p.version == 0 for p in t.properties.values())


def test_one_value_check_is_pure_and_names_the_problem():
    assert check_value("30.0", PropertyType.INT, 0, 30) == 30
    for text, words in [
        ("31", "above the maximum 30"),
        ("-1", "below the minimum 0"),
        ("2.5", "not an integer"),
    ]:
        with pytest.raises(ValueError, match=words):
            check_value(text, PropertyType.INT, 0, 30)
    assert check_value("on", PropertyType.BOOLEAN, 0, 1) is True  # a range is for numbers


@pytest.mark.needs("edgedev_modbus")
def test_the_twin_and_the_mapper_refuse_a_write_with_the_same_words(tmp_path):
    from edgedev.mapper import check_device_write
    from twin_helpers import thermostat

    device = thermostat(tmp_path)[0][0]
    t = Twin(device.id)
    t.set_model(
        {p.name: PropertyModel(p.type, p.writable, p.minimum, p.maximum) for p in device.properties}
    )
    for name, text in [("setpoint", "99"), ("temp", "1"), ("ghost", "1"), ("setpoint", "x")]:
        refusal = t.update([Change(name, desired=text)], now=1).refusal
        with pytest.raises(WriteRefused) as refused:
            check_device_write(device, name, text)
        assert refusal is not None and refusal.reason == str(refused.value)
        assert (refusal.code is Code.NOT_FOUND) == isinstance(refused.value, NoSuchProperty)


def test_a_device_without_model_takes_any_property_typed_by_the_sender():
    t = Twin("plant/unknown")
    outcome = t.update([Change("speed", reported="12", type=PropertyType.INT)], now=5)
    assert outcome.accepted and t.properties["speed"].type is PropertyType.INT
    assert t.update([Change("speed", desired="13")], now=6).accepted
    assert t.delta() == {"speed": "13"}


def test_delta_compares_values_by_type_and_clears_when_reported():
    t = twin()
    t.update([Change("setpoint", desired="24")], now=1)
    t.update([Change("setpoint", reported="23.5")], now=2)
    assert t.delta() == {"setpoint": "24"}
    t.update([Change("setpoint", reported="24.0")], now=3)
    assert t.delta() == {}


def test_a_write_failure_is_kept_while_pending_and_cleared_by_the_reported_value():
    t = twin()
    t.update([Change("setpoint", desired="24")], now=1)
    failure = WriteFailure("24", "device offline", 2, retry=True)
    outcome = t.update([Change("setpoint", failure=failure)], now=2)
    assert t.properties["setpoint"].failure == failure
    assert "setpoint" in outcome.document  # apps learn of the failure
    stale = WriteFailure("22", "old value", 3)
    t.update([Change("setpoint", failure=stale)], now=3)
    assert t.properties["setpoint"].failure == failure  # a failure of another value is ignored
    t.update([Change("setpoint", reported="24")], now=4)
    assert t.properties["setpoint"].failure is None and t.delta() == {}


def test_document_holds_last_and_current_with_timestamps():
    t = twin()
    t.update([Change("setpoint", reported="20", reported_timestamp=100)], now=100)
    outcome = t.update([Change("setpoint", desired="22", desired_timestamp=200)], now=250)
    transition = outcome.document["setpoint"]
    assert transition.last is not None
    last, current = property_entry(transition.last), property_entry(transition.current)
    assert "expected" not in last and last["version"] == 1
    assert current["expected"] == {"value": "22", "metadata": {"timestamp": 200}}
    assert current["actual"] == {"value": "20", "metadata": {"timestamp": 100}}
    assert current["metadata"] == {"type": "float"} and current["version"] == 2


def test_wire_entries_become_changes():
    update = TwinUpdate.model_validate_json(
        b'{"event_id":"e","timestamp":5,"twin":{'
        b'"a":{"expected":{"value":"1","metadata":{"timestamp":3}},"version":4},'
        b'"b":{"expected":null},"c":{"expected":{"value":null}},"d":null,'
        b'"e":{"actual":{"value":2.5,"metadata":{"timestamp":9}},"metadata":{"type":"float"}},'
        b'"f":{"error":{"value":"7","reason":"busy","timestamp":8,"retry":false}}}}'
    )
    changes = {n: to_change(n, m) for n, m in update.twin.items()}
    assert changes["a"] == Change("a", desired="1", desired_timestamp=3, version=4)
    for name in "bcd":
        assert changes[name].remove_desired and changes[name].desired is None
    assert changes["e"] == Change(
        "e", reported="2.5", reported_timestamp=9, type=PropertyType.FLOAT
    )
    assert changes["f"].failure == WriteFailure("7", "busy", 8, retry=False)
    assert not to_change("g", MsgTwin()).touches_desired


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["desired", "reported", "remove"]),
            st.integers(min_value=10, max_value=30),
        ),
        max_size=30,
    )
)
def test_versions_only_grow_and_the_delta_always_matches_its_definition(steps):
    t = twin()
    last_version = 0
    for now, (kind, number) in enumerate(steps, start=1):
        if kind == "desired":
            change = Change("setpoint", desired=str(number))
        elif kind == "reported":
            change = Change("setpoint", reported=f"{number}.0")
        else:
            change = Change("setpoint", remove_desired=True)
        assert t.update([change], now).accepted
        prop = t.properties["setpoint"]
        assert prop.version >= last_version
        last_version = prop.version
        expected_delta = {}
        if prop.desired is not None and (
            prop.reported is None or float(prop.desired.value) != float(prop.reported.value)
        ):
            expected_delta = {"setpoint": prop.desired.value}
        assert t.delta() == expected_delta
        assert twin_entries(t.properties, ["setpoint"])["setpoint"]["version"] == prop.version


@pytest.mark.needs("edgedev_modbus")
def test_a_restarted_mapper_writes_what_the_whole_twin_says_is_pending(tmp_path):
    from edgedev.mqtt import pending_values
    from twin_helpers import thermostat

    devices, _ = thermostat(tmp_path)
    twin = TwinUpdate.model_validate(
        {
            "twin": {
                "setpoint": {"expected": {"value": "24"}, "actual": {"value": "24.0"}},
                "level": {"expected": {"value": "5"}, "actual": {"value": "4"}},
                "temp": {"actual": {"value": "20"}},
                "ghost": {"expected": {"value": "1"}},
                "gone": None,
            }
        }
    ).twin
    assert pending_values(devices[0], twin) == {"level": "5"}


def test_the_view_shows_desired_reported_and_pending():
    from edgedev.bus._topics import Channel, Topics
    from edgedev.view._state import TwinView
    from edgedev.wire import dumps, twin_report

    def document(desired: str | None) -> bytes:
        current = {"metadata": {"type": "float"}}
        if desired is not None:
            current["expected"] = {"value": desired}  # type: ignore[assignment]
        return dumps({"twin": {"sp": {"current": current}}})

    topics = Topics("r")
    view = TwinView(topics)
    dev = "plant/thermo"
    view.apply(topics.device(dev, Channel.TWIN_UPDATE), twin_report([("sp", "20", "float", 1)]))
    view.apply(topics.device(dev, Channel.TWIN_DOCUMENT), document("22"))
    assert view.devices[dev].properties["sp"].note() == "pending"
    view.apply(topics.device(dev, Channel.TWIN_UPDATE), twin_report([("sp", "22.0", "float", 2)]))
    prop = view.devices[dev].properties["sp"]
    assert (prop.desired, prop.reported, prop.note()) == ("22", "22.0", "")
    assert "22.0" in view.render()
    view.apply(topics.device(dev, Channel.TWIN_DOCUMENT), document(None))
    assert view.devices[dev].properties["sp"].desired is None


def test_requests_and_the_agent_s_refusals_declare_no_device_to_a_view_of_every_topic():
    """``edgedev watch --table`` and the demo's table follow every device topic: a client's
    ``twin/get`` or desired-only ``twin/update`` for a device nobody declared, and the agent's
    404 answers to them, add no row (on main a ``twin/get`` and a ``twin/update/result`` did)."""
    from edgedev.agent import AgentCore
    from edgedev.bus import Message
    from edgedev.bus._topics import Channel, Topics
    from edgedev.view._state import TwinView
    from edgedev.wire import desired_update, request, twin_report

    topics = Topics("r")
    agent = AgentCore(topics, "edge-1")
    view = TwinView(topics)
    ghost = "plant/ghost"
    for channel, payload in (
        (Channel.TWIN_GET, request()),
        (Channel.TWIN_UPDATE, desired_update({"x": "1"})),
    ):
        asked = Message(topics.device(ghost, channel), payload)
        (reply,) = agent.handle(asked, 1)
        assert json.loads(reply.message.payload)["code"] == 404
        for message in (asked, reply.message):
            view.apply(message.topic, message.payload)
    assert view.devices == {} and view.ignored["request"] == 4
    # a mapper's report declares the device
    view.apply(topics.device(ghost, Channel.TWIN_UPDATE), twin_report([("x", "1", "int", 1)]))
    assert list(view.devices) == [ghost]
