"""edgedev.wire: each builder gives the bytes of the model it mirrors, and parses back to it."""

from __future__ import annotations

import dataclasses
import json

from edgedev.twin import PropertyType, TwinProperty, WriteFailure
from edgedev.wire import (
    EDGECORE_TYPES,
    CurrentState,
    MapperState,
    MembershipResult,
    MsgTwin,
    StateUpdate,
    TwinDelta,
    TwinDocument,
    TwinResult,
    TwinUpdate,
    current_state,
    dumps,
    mapper_state,
    membership_result,
    membership_updated,
    parse_type,
    property_entry,
    state_update,
    to_change,
    twin_delta,
    twin_document,
    twin_report,
    twin_result,
    type_name,
    write_error_report,
)


def model_bytes(model: TwinUpdate | StateUpdate | MapperState | TwinResult) -> bytes:
    return dumps(model.model_dump(exclude_none=True))


def test_twin_report_is_the_bytes_of_its_model():
    built = twin_report(
        [("temp", "21.5", "float", 7), ("név", 'a"b', "string", 8), ("temp", "22", "float", 9)],
        timestamp=5,
        event_id="e1",
    )
    model = TwinUpdate.model_validate_json(built)
    assert built == model_bytes(model)
    assert model.twin["temp"] is not None and model.twin["temp"].actual is not None
    assert model.twin["temp"].actual.value == "22"  # a repeated name keeps its last value
    assert list(model.twin) == ["temp", "név"]  # ... and its first place


def test_state_and_mapper_state_are_the_bytes_of_their_models():
    state = state_update("online", timestamp=3)
    assert state == model_bytes(StateUpdate.model_validate_json(state))
    will = mapper_state("m", "offline", ["ns/a", "ns/b"], started=4, timestamp=5)
    parsed = MapperState.model_validate_json(will)
    assert will == model_bytes(parsed)
    assert (parsed.mapper, parsed.state, parsed.devices, parsed.started) == (
        "m",
        "offline",
        ["ns/a", "ns/b"],
        4,
    )


def test_current_state_is_the_bytes_of_its_model_and_a_state_update():
    for reason in (None, "timed out"):
        body = current_state("offline", mapper="m", started=4, timestamp=5, reason=reason)
        parsed = CurrentState.model_validate_json(body)
        assert body == model_bytes(parsed)
        assert (parsed.state, parsed.mapper, parsed.started, parsed.reason) == (
            "offline",
            "m",
            4,
            reason,
        )
        assert StateUpdate.model_validate_json(body).state == "offline"  # a state/update too


def test_twin_result_carries_the_twin_or_the_refusal():
    entries = {"sp": property_entry(TwinProperty(PropertyType.FLOAT).with_desired("3", 1))}
    ok = TwinResult.model_validate_json(twin_result("e", 2, entries))
    assert ok.code is None and ok.twin["sp"] is not None and ok.twin["sp"].expected is not None
    assert ok.twin["sp"].expected.value == "3"
    refused = TwinResult.model_validate_json(twin_result("e", 2, code=404, reason="unknown"))
    assert (refused.event_id, refused.code, refused.reason, refused.twin) == (
        "e",
        404,
        "unknown",
        {},
    )


def test_delta_document_and_membership_parse_back():
    prop = TwinProperty(PropertyType.INT).with_desired("4", 1)
    delta = TwinDelta.model_validate_json(
        twin_delta({"n": property_entry(prop)}, {"n": "4"}, timestamp=6)
    )
    assert delta.delta == {"n": "4"} and delta.timestamp == 6
    doc = TwinDocument.model_validate_json(
        twin_document({"n": {"last": None, "current": property_entry(prop)}}, timestamp=6)
    )
    assert doc.twin["n"].last is None and doc.twin["n"].current is not None
    member = {"id": "ns/a", "name": "a", "description": "", "state": "online", "last_online": ""}
    result = MembershipResult.model_validate_json(membership_result("e", [member], timestamp=1))
    assert result.devices[0].id == "ns/a"
    updated = json.loads(membership_updated([member], timestamp=1))
    assert updated["added_devices"] == [member] and updated["removed_devices"] == []


def test_a_property_entry_round_trips_through_msgtwin():
    failure = WriteFailure("9", "device offline", 5, True)
    prop = TwinProperty(PropertyType.INT).with_desired("9", 1).with_reported("3", 2)
    entry = property_entry(dataclasses.replace(prop, failure=failure))
    change = to_change("n", MsgTwin.model_validate(entry))
    assert (change.desired, change.reported, change.type) == ("9", "3", PropertyType.INT)
    assert change.failure == failure
    error = json.loads(write_error_report([("n", "int", WriteFailure("9", "r", 0))]))
    assert error["twin"]["n"]["error"]["reason"] == "r"


def test_a_write_error_report_is_the_bytes_of_its_model_and_of_the_mapper_s_message():
    offline = WriteFailure("12", "device ns/d is offline: timeout", 7, True)
    refused = WriteFailure("99", "above the maximum 30", 8, False)
    built = write_error_report(
        [("level", "int", offline), ("setpoint", "float", refused)], timestamp=9, event_id="e1"
    )
    assert built == model_bytes(TwinUpdate.model_validate_json(built))
    # the message the mapper built by hand before the builder, byte for byte
    by_hand = {
        "event_id": "e1",
        "timestamp": 9,
        "twin": {
            name: {
                "metadata": {"type": type_},
                "error": {
                    "value": f.value,
                    "reason": f.reason,
                    "timestamp": f.timestamp,
                    "retry": f.retry,
                },
            }
            for name, type_, f in [("level", "int", offline), ("setpoint", "float", refused)]
        },
    }
    assert built == dumps(by_hand)
    twin = TwinUpdate.model_validate_json(built).twin
    assert to_change("setpoint", twin["setpoint"]).failure == refused


def test_type_names_are_edgecore_s_and_come_back():
    for type_ in (PropertyType.INT, PropertyType.FLOAT, PropertyType.BOOLEAN, PropertyType.STRING):
        assert parse_type(type_name(type_)) is type_
    assert {t: type_name(t) for t in PropertyType} == {
        PropertyType.INT: "int",
        PropertyType.FLOAT: "float",
        PropertyType.DOUBLE: "float",  # EdgeCore knows no double
        PropertyType.BOOLEAN: "boolean",
        PropertyType.STRING: "string",
        PropertyType.BYTES: "string",  # as hex text
        PropertyType.STREAM: "string",
    }
    assert {type_name(t) for t in PropertyType} <= EDGECORE_TYPES
    assert parse_type(" Integer ") is PropertyType.INT and parse_type("blob") is None
