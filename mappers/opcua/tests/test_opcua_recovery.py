"""A server restart: devices go offline, come back online, and report values again.

In subscribe mode the subscriptions are made again on the new server, so that pushed values
keep arriving without any polling.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import anyio
import pytest
from opcua_helpers import Served, device, load, model, portal, root, state_of, url, visit

from edgedev import Bus, Mapper
from edgedev.mqtt import KubeEdgeMqtt
from edgedev.testing import Recorder
from edgedev_opcua import OpcuaSimulator

pytestmark = pytest.mark.broker


def value_of(name: str, value: str) -> Any:
    def predicate(message: Any) -> bool:
        if not message.topic.endswith(f"/{name}/twin/update"):
            return False
        entry = json.loads(message.payload)["twin"].get("level", {})
        return bool(entry.get("actual", {}).get("value") == value)

    return predicate


async def test_server_restart_gives_offline_then_online_with_values_in_both_modes(
    tmp_path: Path, mqtt_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    address = url()
    props = [{"name": "level", "type": "INT", "accessMode": "ReadOnly"}]
    devices = load(
        tmp_path,
        [
            model("tank", props),
            device(
                "polled", "tank", address, [visit("level", "ns=2;i=7", cycle=100)], timeout=1000
            ),
            device(
                "pushed",
                "tank",
                address,
                [visit("level", "ns=2;s=Pushed.level", cycle=100)],
                timeout=1000,
                mode="subscribe",
            ),
        ],
    )
    names = ("polled", "pushed")

    def serve(value: int, p: Any) -> Served:
        server = Served(OpcuaSimulator(devices), p)
        for name in names:
            server.sim.freeze(f"default/{name}")
        server.start()
        for name in names:
            server.call(server.sim.set, f"default/{name}", "level", value)
        return server

    topic_root = root()
    mapper = Mapper(devices, transports=[KubeEdgeMqtt(mqtt_url, topic_root=topic_root)])
    with portal() as p:
        first = await anyio.to_thread.run_sync(serve, 11, p)
        try:
            async with anyio.create_task_group() as tg:
                async with Bus(mqtt_url) as bus, Recorder(bus, f"{topic_root}/#") as recorder:
                    await tg.start(mapper.run)
                    for name in names:
                        await recorder.wait_for(value_of(name, "11"), timeout=15)
                        await recorder.wait_for(state_of(name, "online"))
                    await anyio.to_thread.run_sync(first.stop)
                    for name in names:
                        await recorder.wait_for(state_of(name, "offline"), timeout=15)
                    mark = len(recorder.messages)
                    second = await anyio.to_thread.run_sync(serve, 22, p)
                    try:
                        for name in names:
                            await recorder.wait_for(
                                state_of(name, "online"), after=mark, timeout=30
                            )
                            await recorder.wait_for(value_of(name, "22"), after=mark, timeout=15)
                        # the pushed device's new subscription delivers later changes too
                        mark = len(recorder.messages)
                        await anyio.to_thread.run_sync(
                            second.call, second.sim.set, "default/pushed", "level", 33
                        )
                        await recorder.wait_for(value_of("pushed", "33"), after=mark, timeout=10)
                        runners = dict(mapper.runners)
                    finally:
                        await anyio.to_thread.run_sync(second.stop)
                mapper.stop()
        finally:
            first.stop()
    assert {name: runners[f"default/{name}"].reconnects for name in names} == {
        "polled": 1,
        "pushed": 1,
    }
    # the loss is reported once per device, as offline: no tracebacks from asyncua's client
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR and "client" in r.name]
    assert not errors, [r.getMessage() for r in errors]
