"""``edgedev agent`` as a process: it serves the twins of its files and stops cleanly."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import anyio
import pytest

from edgedev.agent import TwinStore
from edgedev.bus._topics import Channel, Topics
from edgedev.wire import twin_get
from twin_helpers import DEVICE, observer, on, payload, root, thermostat

pytestmark = [pytest.mark.broker, pytest.mark.needs("edgedev_modbus")]


async def test_agent_command_serves_twins_from_its_files_into_the_db_from_env(
    tmp_path: Path, mqtt_url: str
):
    _, path = thermostat(tmp_path, desired="21.5")
    topic_root = root()
    db = tmp_path / "data" / "twins.db"
    env = {**os.environ, "EDGEDEV_DATA_DIR": str(tmp_path / "data")}
    env.pop("EDGEDEV_DB", None)
    command = [sys.executable, "-m", "edgedev", "agent", "-f", str(path)]
    command += ["--broker", mqtt_url, "--topic-root", topic_root, "--node", "edge-1"]
    async with (
        observer(mqtt_url, topic_root) as (bus, recorder),
        await anyio.open_process(command, env=env) as process,
    ):
        try:
            delta = await recorder.wait_for(on("twin/update/delta"), timeout=30)
            assert payload(delta)["delta"] == {"setpoint": "21.5"}
            bus.publish(Topics(topic_root).device(DEVICE, Channel.TWIN_GET), twin_get(event_id="g"))
            got = await recorder.wait_for(on("twin/get/result"), timeout=20)
            assert payload(got)["twin"]["setpoint"]["expected"]["value"] == "21.5"
        finally:
            process.send_signal(signal.SIGTERM)
            with anyio.fail_after(20):
                code = await process.wait()
    assert code == 0
    with TwinStore(db) as store:
        _, props = store.load()
    assert {(p.device, p.name) for p in props} >= {(DEVICE, "setpoint"), (DEVICE, "temp")}
