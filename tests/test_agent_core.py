"""The agent's rules without a broker or a disk: messages in, replies and rows out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from edgedev.agent import AgentCore, Reply
from edgedev.bus._outbox import Message
from edgedev.bus._topics import Channel, NodeChannel, Topics
from edgedev.wire import MapperState, desired_update, dumps, state_update, twin_report
from twin_helpers import DEVICE, thermostat

pytestmark = pytest.mark.needs("edgedev_modbus")  # twin_helpers.thermostat is a Modbus device

T = Topics("r")


def send(core: AgentCore, channel: Channel, body: bytes, now: int = 1000) -> list[Reply]:
    return core.handle(Message(T.device(DEVICE, channel), body), now)


def by_channel(replies: list[Reply]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for reply in replies:
        channel = reply.message.topic.split(f"/{DEVICE}/", 1)[-1]
        found.setdefault(channel, []).append(json.loads(reply.message.payload))
    return found


def core_with_file(tmp_path: Path, desired: str | None = "21.5") -> tuple[AgentCore, list[Reply]]:
    devices, _ = thermostat(tmp_path, desired=desired)
    core = AgentCore(T, "edge-1")
    return core, core.adopt(devices, now=500)


def test_desired_value_from_the_file_becomes_a_delta(tmp_path: Path):
    core, replies = core_with_file(tmp_path)
    out = by_channel(replies)
    assert out["twin/update/delta"][0]["delta"] == {"setpoint": "21.5"}
    entry = out["twin/update/delta"][0]["twin"]["setpoint"]
    assert entry["expected"] == {"value": "21.5", "metadata": {"timestamp": 500}}
    assert out["twin/update/document"][0]["twin"]["setpoint"]["current"]["version"] == 1
    added = [r for r in replies if r.message.topic == "r/node/edge-1/membership/updated"]
    body = json.loads(added[0].message.payload)
    assert [d["id"] for d in body["added_devices"]] == [DEVICE] and body["removed_devices"] == []
    devices, props = core.take_dirty()
    assert [d.id for d in devices] == [DEVICE] and devices[0].node == "edge-1"
    assert {p.name for p in props} == {"setpoint", "temp", "level"}


def test_update_result_document_and_delta_follow_an_app_and_a_mapper(tmp_path: Path):
    core, _ = core_with_file(tmp_path, desired=None)
    out = by_channel(
        send(core, Channel.TWIN_UPDATE, desired_update({"setpoint": "24"}, event_id="x"))
    )
    result = out["twin/update/result"][0]
    assert result["event_id"] == "x" and "code" not in result
    assert result["twin"]["setpoint"]["expected"]["value"] == "24"
    assert result["twin"]["setpoint"]["version"] == 1
    assert out["twin/update/delta"][0]["delta"] == {"setpoint": "24"}
    doc = out["twin/update/document"][0]["twin"]["setpoint"]
    assert "expected" not in doc["last"] and doc["current"]["expected"]["value"] == "24"

    # the mapper reports the written value: the delta empties (sent once, empty)
    report = twin_report([("setpoint", "24.0", "float", 1100)], event_id="r1")
    out = by_channel(send(core, Channel.TWIN_UPDATE, report, now=1200))
    assert out["twin/update/delta"][0]["delta"] == {}
    assert out["twin/update/result"][0]["twin"]["setpoint"]["actual"] == {
        "value": "24.0",
        "metadata": {"timestamp": 1100},
    }
    again = twin_report([("setpoint", "24.0", "float", 1300)])
    out = by_channel(send(core, Channel.TWIN_UPDATE, again, now=1300))
    assert set(out) == {"twin/update/result"}  # nothing changed but a timestamp


def test_every_refusal_has_its_code_and_reason(tmp_path: Path):
    core, _ = core_with_file(tmp_path)
    cases = [
        (desired_update({"temp": "3"}), 400, "ReadOnly"),
        (desired_update({"setpoint": "99"}), 400, "maximum"),
        (desired_update({"ghost": "1"}), 404, "ghost"),
        (desired_update({"setpoint": "20"}, version=0), 409, "older"),
        (b"{not json", 400, "malformed"),
        (dumps({"event_id": "m", "twin": {"setpoint": {"version": "x"}}}), 400, "malformed"),
    ]
    for body, code, words in cases:
        out = by_channel(send(core, Channel.TWIN_UPDATE, body))
        assert set(out) == {"twin/update/result"}, body
        result = out["twin/update/result"][0]
        assert result["code"] == code and words in result["reason"], (body, result)
    unknown = core.handle(
        Message(T.device("x/y", Channel.TWIN_UPDATE), desired_update({"a": "1"})), 1
    )
    assert json.loads(unknown[0].message.payload)["code"] == 404


def test_an_accepted_update_has_a_500_answer_ready_if_storing_fails(tmp_path: Path):
    core, _ = core_with_file(tmp_path)
    replies = send(core, Channel.TWIN_UPDATE, desired_update({"setpoint": "22"}, event_id="e"))
    result = next(r for r in replies if r.message.topic.endswith("/twin/update/result"))
    assert result.on_failure is not None
    failed = json.loads(result.on_failure.payload)
    assert failed["code"] == 500 and failed["event_id"] == "e"
    assert all(r.on_failure is None for r in replies if r is not result)  # no delta, no document


def test_a_resent_update_is_applied_once(tmp_path: Path):
    core, _ = core_with_file(tmp_path)
    body = desired_update({"setpoint": "22"}, event_id="dup")
    send(core, Channel.TWIN_UPDATE, body)
    out = by_channel(send(core, Channel.TWIN_UPDATE, body))
    assert set(out) == {"twin/update/result"}
    assert core.records[DEVICE].twin.properties["setpoint"].version == 2


def test_twin_get_answers_the_whole_twin_or_404(tmp_path: Path):
    core, _ = core_with_file(tmp_path)
    out = by_channel(send(core, Channel.TWIN_GET, dumps({"event_id": "g1", "timestamp": 1})))
    result = out["twin/get/result"][0]
    assert result["event_id"] == "g1" and set(result["twin"]) == {"level", "setpoint", "temp"}
    missing = core.handle(Message(T.device("a/b", Channel.TWIN_GET), b'{"event_id":"g2"}'), 1)
    assert json.loads(missing[0].message.payload) | {"timestamp": 0} == {
        "event_id": "g2",
        "timestamp": 0,
        "code": 404,
        "reason": "device a/b is unknown",
    }


def test_membership_lists_the_node_devices_with_state(tmp_path: Path):
    core, _ = core_with_file(tmp_path)
    send(core, Channel.STATE_UPDATE, state_update("online"), now=1_795_000_000_000)
    replies = core.handle(
        Message(T.node("edge-1", NodeChannel.MEMBERSHIP_GET), b'{"event_id":"m"}'), 5
    )
    assert replies[0].message.topic == "r/node/edge-1/membership/get/result"
    body = json.loads(replies[0].message.payload)
    assert body["event_id"] == "m"
    assert body["devices"] == [
        {
            "id": DEVICE,
            "name": "thermo",
            "description": "",
            "state": "online",
            "last_online": "2026-11-18 11:06:40",
        }
    ]
    other = core.handle(Message(T.node("edge-2", NodeChannel.MEMBERSHIP_GET), b"{}"), 5)
    assert json.loads(other[0].message.payload)["devices"] == []


def test_a_mapper_that_comes_online_gets_the_pending_delta_again(tmp_path: Path):
    core, _ = core_with_file(tmp_path)
    send(core, Channel.STATE_UPDATE, state_update("offline"))
    out = by_channel(send(core, Channel.STATE_UPDATE, state_update("online")))
    assert out["twin/update/delta"][0]["delta"] == {"setpoint": "21.5"}
    assert send(core, Channel.STATE_UPDATE, state_update("online")) == []  # already online


def test_a_dead_mapper_s_will_marks_its_devices_offline_unless_replaced(tmp_path: Path):
    core, _ = core_with_file(tmp_path)

    def state(mapper: str, word: str, started: int) -> Message:
        body = MapperState(mapper=mapper, state=word, devices=[DEVICE], started=started)
        return Message(T.mapper("edge-1", mapper), dumps(body.model_dump()))

    core.handle(state("m", "online", 10), 1)
    send(core, Channel.STATE_UPDATE, state_update("online"))
    core.handle(state("m", "online", 20), 2)  # the mapper restarted
    assert core.handle(state("m", "offline", 10), 3) == []  # the old instance's will
    assert core.records[DEVICE].state == "online"
    replies = core.handle(state("m", "offline", 20), 4)
    assert core.records[DEVICE].state == "offline"
    assert json.loads(replies[0].message.payload)["state"] == "offline"


def test_restart_keeps_twins_and_does_not_reapply_an_unchanged_file(tmp_path: Path):
    devices, _ = thermostat(tmp_path, desired="21.5")
    core = AgentCore(T, "edge-1")
    core.adopt(devices, now=1)
    send(core, Channel.TWIN_UPDATE, desired_update({"setpoint": "25"}))  # an app changes it
    rows = core.take_dirty()

    restarted = AgentCore(T, "edge-1")
    restarted.load(*rows)
    replies = restarted.adopt(devices, now=2)
    prop = restarted.records[DEVICE].twin.properties["setpoint"]
    assert prop.desired is not None and prop.desired.value == "25" and prop.version == 2
    assert by_channel(replies)["twin/update/delta"][0]["delta"] == {"setpoint": "25"}

    changed, _ = thermostat(tmp_path, desired="19")  # the file now says otherwise
    changed_replies = restarted.adopt(changed, now=3)
    assert by_channel(changed_replies)["twin/update/delta"][0]["delta"] == {"setpoint": "19"}


def test_the_agent_package_exports_resolve():
    import edgedev.agent

    assert isinstance(edgedev.agent.__all__, tuple)
    for name in edgedev.agent.__all__:
        assert getattr(edgedev.agent, name) is not None, name


def test_twin_get_is_answered_even_when_its_batch_fails_to_store(tmp_path: Path):
    from edgedev.agent import Agent

    core, _ = core_with_file(tmp_path)
    replies = send(core, Channel.TWIN_UPDATE, desired_update({"setpoint": "22"}, event_id="u"))
    replies += send(core, Channel.TWIN_GET, dumps({"event_id": "g", "timestamp": 1}))

    class Published:
        def __init__(self) -> None:
            self.topics: list[str] = []

        def publish(self, topic: str, payload: bytes, qos: int, retain: bool) -> None:
            self.topics.append(topic)

    bus = Published()
    Agent._publish(bus, replies, stored=False)  # type: ignore[arg-type]
    assert [t.rsplit("/", 2)[-2:] for t in bus.topics] == [["update", "result"], ["get", "result"]]
    assert json.loads(replies[0].on_failure.payload)["code"] == 500  # type: ignore[union-attr]


def test_a_state_that_is_no_word_is_refused_and_go_s_states_are_kept(tmp_path: Path):
    core, _ = core_with_file(tmp_path)
    for state in ("x" * 1000, "on line", ""):
        send(core, Channel.STATE_UPDATE, dumps({"state": state}))
    assert core.refused["malformed"] == 3
    assert core.records[DEVICE].state == "unknown"
    for state in ("OK", "disconnected", "unhealthy"):  # KubeEdge's Go mapper framework's words
        send(core, Channel.STATE_UPDATE, state_update(state))
        assert core.records[DEVICE].state == state


def test_mappers_announce_devices_of_this_node_only_and_up_to_the_limit(tmp_path: Path):
    from edgedev.agent import AgentLimits

    devices, _ = thermostat(tmp_path)
    core = AgentCore(T, "edge-1", AgentLimits(max_devices=3))
    core.adopt(devices, now=500)

    def will(node: str, ids: list[str]) -> None:
        body = MapperState(mapper="m", state="online", devices=ids, started=1).model_dump()
        core.handle(Message(T.mapper(node, "m"), dumps(body)), 1000)

    will("other-node", ["ns/a", "ns/b"])
    assert set(core.records) == {DEVICE}
    will("edge-1", [f"ns/d{i}" for i in range(5)])
    assert set(core.records) == {DEVICE, "ns/d0", "ns/d1"}
    assert core.refused["devices"] == 3 and core.refused["unknown_device"] == 2


def test_one_mapper_state_cannot_fill_the_store_with_junk(tmp_path: Path):
    """Issue 32: on main one 135 KB ``mapper/state`` listing 10,000 ids stored 9,997 junk
    devices. Now a mapper makes at most ``new_ids_per_minute`` devices known a minute, and
    a longer list than ``max_state_ids`` is refused whole; the refusals are counted."""
    from edgedev.agent import AgentLimits

    limits = AgentLimits()
    core = AgentCore(T, "edge-1", limits)

    def state(mapper: str, ids: list[str], now: int) -> None:
        body = MapperState(mapper=mapper, state="online", devices=ids, started=1).model_dump()
        core.handle(Message(T.mapper("edge-1", mapper), dumps(body)), now)

    state("m", [f"ns/junk{i}" for i in range(10_000)], now=1_000)
    assert len(core.records) == limits.new_ids_per_minute
    assert core.refused["new_ids"] == 10_000 - limits.new_ids_per_minute
    # a minute later the same mapper makes as many more known, not more
    state("m", [f"ns/more{i}" for i in range(5_000)], now=61_000)
    assert len(core.records) == 2 * limits.new_ids_per_minute
    # inventing mapper names buys little: past 256 names they share one allowance
    for n in range(300):
        state(f"m{n}", [f"ns/n{n}-{i}" for i in range(10)], now=61_000)
    assert len(core.records) <= 2 * limits.new_ids_per_minute + 256 * 10 + limits.new_ids_per_minute
    # devices the agent knows are never refused for the rate
    state("m", [f"ns/junk{i}" for i in range(1000)], now=61_000)
    assert core.refused["new_ids"] > 0
    before = len(core.records)
    state("m", [f"ns/x{i}" for i in range(limits.max_state_ids + 1)], now=200_000)
    assert core.refused["state_ids"] == 1 and len(core.records) == before
