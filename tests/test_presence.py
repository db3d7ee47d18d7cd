"""Which state holds for a device, whatever order the mappers' messages arrive in (pure)."""

from __future__ import annotations

import itertools

import pytest

from edgedev.bus import MapperTopic, Topics, topic_level_problem
from edgedev.cli import main
from edgedev.twin import DeviceState, Presence

ONLINE, OFFLINE = DeviceState.ONLINE, DeviceState.OFFLINE


def test_a_dead_mapper_s_will_wins_over_its_retained_states_in_any_order():
    """Its last state said online at 50; its will (built at 10) says offline."""
    messages = [
        ("mapper", "m", ONLINE, 10, ["ns/a"], 10),
        ("device", "ns/a", ONLINE, 50, "m", 10),
        ("mapper", "m", OFFLINE, 10, ["ns/a"], 40),
    ]
    for order in itertools.permutations(messages):
        presence = Presence()
        for kind, *args in order:
            if kind == "mapper":
                name, state, started, devices, stamp = args
                presence.mapper(name, state, started, devices, stamp)
            else:
                device, state, stamp, mapper, started = args
                presence.device(device, state, stamp, mapper=mapper, started=started)
        seen = presence.state("ns/a")
        assert seen is not None and seen.state == OFFLINE, order
        assert seen.reason == "mapper m is not running"


def test_an_older_state_is_never_taken_back_but_a_new_instance_s_is():
    presence = Presence()
    presence.device("ns/a", OFFLINE, 100, mapper="m", started=10, reason="timed out")
    assert not presence.device("ns/a", ONLINE, 90, mapper="m", started=10)  # older, retained
    assert presence.state("ns/a").state == OFFLINE  # type: ignore[union-attr]
    # the mapper restarted on a host whose clock is behind: its instance is newer
    assert presence.device("ns/a", ONLINE, 80, mapper="m", started=20)
    assert presence.state("ns/a").state == ONLINE  # type: ignore[union-attr]


def test_a_restarted_mapper_s_devices_are_offline_until_it_reports_them():
    presence = Presence()
    presence.mapper("m", ONLINE, 10, ["ns/a"], 10)
    presence.device("ns/a", ONLINE, 20, mapper="m", started=10)
    presence.mapper("m", ONLINE, 30, ["ns/a"], 30)  # a new instance, nothing reported yet
    assert presence.state("ns/a").state == OFFLINE  # type: ignore[union-attr]
    presence.device("ns/a", ONLINE, 31, mapper="m", started=30)
    assert presence.state("ns/a").state == ONLINE  # type: ignore[union-attr]
    assert not presence.mapper("m", OFFLINE, 10, ["ns/a"], 10)  # the old instance's will


def test_state_update_alone_is_attributed_to_the_mapper_that_lists_the_device():
    """KubeEdge's state/update names no mapper: the announcement listing the device does."""
    presence = Presence()
    presence.device("ns/a", ONLINE, 20)
    presence.mapper("m", ONLINE, 10, ["ns/a", "ns/b"], 10)
    presence.mapper("m", OFFLINE, 10, ["ns/a", "ns/b"], 30)
    assert presence.state("ns/a").state == OFFLINE  # type: ignore[union-attr]
    assert presence.state("ns/b").state == OFFLINE  # type: ignore[union-attr]
    assert presence.devices_of("m") == ["ns/a", "ns/b"]


def test_forgotten_devices_and_limits():
    presence = Presence(max_devices=2, max_mappers=1)
    assert presence.device("ns/a", ONLINE, 1) and presence.device("ns/b", ONLINE, 1)
    assert not presence.device("ns/c", ONLINE, 1)  # made-up ids cannot crowd out
    assert presence.device("ns/c", ONLINE, 1, known=True)  # ... a device the caller holds
    assert presence.forget("ns/a") and presence.state("ns/a") is None
    assert presence.mapper("m", ONLINE, 1, [], 1)
    assert not presence.mapper("n", ONLINE, 1, [], 1)


def test_mapper_topics_parse_and_names_must_be_topic_levels():
    topics = Topics("r")
    topic = topics.mapper("edge-1", "edgedev-modbus-edge-1")
    assert topic == "r/node/edge-1/mapper/edgedev-modbus-edge-1/state"
    assert topics.parse(topic) == MapperTopic("edge-1", "edgedev-modbus-edge-1")
    assert topics.parse("r/node/edge-1/mapper/get") is not None  # still the request
    assert topics.mapper_filter() == "r/node/+/mapper/+/state"
    assert topic_level_problem("ok-name.1") is None
    for bad in ("", "a/b", "a+", "#", "a\0b", "x" * 257):
        assert topic_level_problem(bad) is not None, bad


@pytest.mark.parametrize("name", ["a/b", "m+"])
def test_run_refuses_a_name_that_cannot_be_a_topic_level(name: str, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["run", "-f", "x.yaml", "--name", name])
    assert exit_.value.code == 2
    assert "no topic level may" in capsys.readouterr().err
