"""The twin store on disk, and what the agent answers when the disk refuses a write."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from edgedev.agent import DeviceRow, PropertyRow, StoreError, TwinStore
from edgedev.bus._topics import Channel, Topics
from edgedev.twin import PropertyType, TwinProperty, TwinValue, WriteFailure
from edgedev.wire import desired_update, twin_get
from twin_helpers import agent_running, observer, on, payload, root, thermostat


def test_rows_survive_closing_the_file_and_it_uses_wal(tmp_path: Path):
    db = tmp_path / "deep" / "twins.db"
    prop = TwinProperty(
        PropertyType.FLOAT,
        desired=TwinValue("21.5", 10),
        reported=TwinValue("20.0", 11),
        version=7,
        failure=WriteFailure("21.5", "device offline", 12, retry=True),
    )
    with TwinStore(db) as store:
        store.save(
            [DeviceRow("ns/a", "online", 5, "edge-1", "m", 3)],
            [PropertyRow("ns/a", "setpoint", prop, declared="21.5")],
        )
        store.save([], [PropertyRow("ns/a", "setpoint", prop, declared="21.5")])  # replace
        assert store.commits == 2
    with TwinStore(db) as store:
        devices, props = store.load()
    assert devices == [DeviceRow("ns/a", "online", 5, "edge-1", "m", 3)]
    assert props == [PropertyRow("ns/a", "setpoint", prop, declared="21.5")]
    mode = sqlite3.connect(db).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_a_file_that_is_not_a_twin_store_is_refused(tmp_path: Path):
    path = tmp_path / "other.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match=str(path)):
        TwinStore(path)


@pytest.mark.needs("edgedev_modbus")
@pytest.mark.broker
async def test_an_update_the_disk_refuses_is_answered_500_and_not_applied(
    tmp_path: Path, mqtt_url: str
):
    devices, _ = thermostat(tmp_path)
    topic_root = root()
    db = tmp_path / "twins.db"
    topic = Topics(topic_root).device("plant/thermo", Channel.TWIN_UPDATE)
    get_topic = Topics(topic_root).device("plant/thermo", Channel.TWIN_GET)
    async with (
        observer(mqtt_url, topic_root) as (bus, recorder),
        agent_running(mqtt_url, topic_root, db, devices) as agent,
    ):
        locker = sqlite3.connect(db, isolation_level=None)
        locker.execute("BEGIN EXCLUSIVE")  # another process holds the database
        try:
            bus.publish(topic, desired_update({"level": "5"}, event_id="locked"))
            result = await recorder.wait_for(
                lambda m: on("twin/update/result")(m) and payload(m)["event_id"] == "locked",
                timeout=30,
            )
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        assert payload(result)["code"] == 500 and "store" in payload(result)["reason"]
        assert agent.store_failures == 1

        bus.publish(get_topic, twin_get(event_id="after"))
        got = await recorder.wait_for(
            lambda m: on("twin/get/result")(m) and payload(m)["event_id"] == "after", timeout=20
        )
        assert "expected" not in payload(got)["twin"]["level"]  # the refused update left nothing

        start = len(recorder.messages)  # the sender tries again, with the same event id
        bus.publish(topic, desired_update({"level": "6"}, event_id="locked"))
        accepted = await recorder.wait_for(
            lambda m: on("twin/update/result")(m) and payload(m)["event_id"] == "locked",
            timeout=20,
            after=start,
        )
        assert payload(accepted)["twin"]["level"]["expected"]["value"] == "6"
        delta = await recorder.wait_for(on("twin/update/delta"), timeout=20)
        assert payload(delta)["delta"] == {"level": "6"}


async def test_a_full_twin_store_takes_no_new_twin_but_keeps_updating_the_others(
    tmp_path: Path, mqtt_url: str
):
    """--db-max-mb: at the bound, new properties get 500 "the twin store is full" and new
    devices are refused (counted); the properties already there keep their updates."""
    from collections.abc import Callable

    from edgedev.agent import AgentLimits
    from edgedev.bus._outbox import Message
    from edgedev.wire import MapperState, dumps, twin_report
    from sink_servers import until

    topic_root = root()
    topics = Topics(topic_root)
    limits = AgentLimits(max_store_bytes=64 * 1024)
    value = "x" * 400

    def result(event_id: str) -> Callable[[Message], bool]:
        answer = on("twin/update/result", "ns/big")
        return lambda m: answer(m) and payload(m)["event_id"] == event_id

    def report(device: str, names: list[str], event_id: str) -> tuple[str, bytes]:
        entries = [(n, value, "string", 1000) for n in names]
        return topics.device(device, Channel.TWIN_UPDATE), twin_report(entries, event_id=event_id)

    async with (
        observer(mqtt_url, topic_root) as (bus, recorder),
        agent_running(mqtt_url, topic_root, tmp_path / "twins.db", limits=limits) as agent,
    ):
        state = MapperState(mapper="m", state="online", devices=["ns/big"], started=1)
        bus.publish(topics.mapper("edge-1", "m"), dumps(state.model_dump()))
        n = 0
        while not agent.core.store_full:  # 40 kB a report: the store fills in a few
            topic, body = report("ns/big", [f"p{n}-{i}" for i in range(100)], f"e{n}")
            bus.publish(topic, body)
            await recorder.wait_for(result(f"e{n}"), timeout=20)
            n += 1
            assert n < 20, "the store never filled"
        topic, body = report("ns/big", ["brand-new"], "new")
        bus.publish(topic, body)
        refused = await recorder.wait_for(result("new"), timeout=20)
        topic, body = report("ns/big", ["p0-0", "p0-1"], "again")
        bus.publish(topic, body)
        again = await recorder.wait_for(result("again"), timeout=20)
        state = MapperState(mapper="m", state="online", devices=["ns/big", "ns/more"], started=1)
        bus.publish(topics.mapper("edge-1", "m"), dumps(state.model_dump()))
        await until(lambda: agent.core.refused["store_full"] >= 2, timeout=20)
        assert "ns/more" not in agent.core.records
        assert agent.core.store_bytes >= limits.max_store_bytes
    assert payload(refused)["code"] == 500
    assert (
        "the twin store is full (0.0625 MiB, --db-max-mb): no new property"
        in (payload(refused)["reason"])
    )
    assert "code" not in payload(again), "a known property still takes updates"
