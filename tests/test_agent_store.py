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
