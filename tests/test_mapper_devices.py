"""Devices added, changed and removed while a mapper runs; ``edgedev run -f`` on SIGHUP."""

from __future__ import annotations

import dataclasses
import json
import re
import signal
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml

from edgedev import Bus, DeviceSpec, Mapper
from edgedev.bus import Message
from edgedev.mapper import sync_devices
from edgedev.mqtt import KubeEdgeMqtt
from edgedev.testing import Recorder, edgedev_process, write_documents
from edgedev_modbus import ModbusSimulator
from reliability_helpers import fleet_docs, load_docs, topic_root

pytestmark = pytest.mark.broker

WAIT = 20


def report_of(name: str) -> Any:
    return lambda m: m.topic.endswith(f"/device/default/{name}/twin/update")


def state_of(name: str, state: str) -> Any:
    def check(m: Message) -> bool:
        return (
            m.topic.endswith(f"/device/default/{name}/state/update")
            and json.loads(m.payload)["state"] == state
        )

    return check


def mapper_lists(*names: str) -> Any:
    def check(m: Message) -> bool:
        if not re.search(r"/node/[^/]+/mapper/[^/]+/state$", m.topic) or not m.payload:
            return False
        body = json.loads(m.payload)
        return body["state"] == "online" and body["devices"] == [f"default/{n}" for n in names]

    return check


def ports(devices: list[DeviceSpec]) -> dict[str, int]:
    return {d.name: d.config.model_dump()["port"] for d in devices}


async def test_devices_are_added_updated_and_removed_while_the_others_run(
    tmp_path: Path, mqtt_url: str
):
    devices = load_docs(tmp_path, fleet_docs(["a", "b", "c"], cycle_ms=100))
    a, b, c = devices
    root = topic_root()
    mapper = Mapper([a, b], transports=[KubeEdgeMqtt(mqtt_url, topic_root=root)])
    async with anyio.create_task_group() as tg:
        await tg.start(ModbusSimulator(devices).run)
        async with Bus(mqtt_url) as bus, Recorder(bus, f"{root}/#") as recorder:
            await tg.start(mapper.run)
            await recorder.wait_for(report_of("b"), timeout=WAIT)
            runner_b = mapper.runners["default/b"]

            assert await mapper.add_device(c)
            await recorder.wait_for(report_of("c"), timeout=WAIT)
            await recorder.wait_for(mapper_lists("a", "b", "c"), timeout=WAIT)

            old_a = mapper.runners["default/a"]
            docs = fleet_docs(["a"], cycle_ms=150, ports=ports(devices))
            new_a = load_docs(tmp_path, docs)[0]
            mark = len(recorder.messages)
            await mapper.update_device(new_a)
            assert mapper.runners["default/a"] is not old_a
            assert mapper.runners["default/a"].spec is new_a
            await recorder.wait_for(report_of("a"), after=mark, timeout=WAIT)

            await mapper.remove_device("default/b")
            offline = await recorder.wait_for(state_of("b", "offline"), timeout=WAIT)
            await recorder.wait_for(mapper_lists("a", "c"), timeout=WAIT)
            assert "default/b" not in mapper.runners and mapper.writer("default/b") is None
            gone = recorder.messages.index(offline)
            await recorder.wait_count(
                report_of("a"),
                5 + len([m for m in recorder.messages if report_of("a")(m)]),
                timeout=WAIT,
            )
            tg.cancel_scope.cancel()
    assert runner_b.state == "offline" and runner_b.errors == 0, "b only stopped, never failed"
    assert not [m for m in recorder.messages[gone:] if report_of("b")(m)], "b stays stopped"
    assert [d.id for d in mapper.devices] == ["default/a", "default/c"]


async def test_a_device_served_already_is_refused(tmp_path: Path, mqtt_url: str):
    a = load_docs(tmp_path, fleet_docs(["a"]))[0]
    mapper = Mapper([a], transports=[KubeEdgeMqtt(mqtt_url, topic_root=topic_root())])
    with pytest.raises(ValueError, match="served already"):
        await mapper.add_device(a)
    with pytest.raises(KeyError):
        await mapper.remove_device("default/zz")


async def test_run_reloads_its_files_on_sighup(tmp_path: Path, mqtt_url: str):
    everyone = fleet_docs(["a", "b", "c"], cycle_ms=100)
    model, doc_a, doc_b, doc_c = everyone
    path = write_documents(tmp_path, [model, doc_a, doc_b])
    devices = load_docs(tmp_path, everyone)
    root = topic_root()
    async with anyio.create_task_group() as tg:
        await tg.start(ModbusSimulator(devices).run)
        async with Bus(mqtt_url) as bus, Recorder(bus, f"{root}/#") as recorder:
            run = ["run", "-f", str(path), "--broker", mqtt_url, "--topic-root", root]
            with edgedev_process(*run, output=False) as proc:
                await recorder.wait_for(report_of("a"), timeout=WAIT)
                await recorder.wait_for(report_of("b"), timeout=WAIT)
                mark = len(recorder.messages)
                # b removed, c added, a unchanged (it keeps its cycle, no restart)
                path.write_text(yaml.safe_dump_all([model, doc_a, doc_c], sort_keys=False))
                proc.send_signal(signal.SIGHUP)
                await recorder.wait_for(report_of("c"), after=mark, timeout=WAIT)
                await recorder.wait_for(state_of("b", "offline"), after=mark, timeout=WAIT)
                await recorder.wait_for(report_of("a"), after=len(recorder.messages), timeout=WAIT)
                assert proc.poll() is None, "the mapper still runs"
            tg.cancel_scope.cancel()


async def test_a_reload_restarts_only_the_devices_that_changed(tmp_path: Path):
    a, b, c = load_docs(tmp_path, fleet_docs(["a", "b", "c"]))
    mapper = Mapper(
        [a, b], transports=[KubeEdgeMqtt("mqtt://127.0.0.1:1", topic_root=topic_root())]
    )
    same_a = load_docs(tmp_path, fleet_docs(["a"], ports=ports([a])))[0]
    assert same_a == dataclasses.replace(a, source=same_a.source)  # only the file differs
    changes = await sync_devices(mapper, [dataclasses.replace(same_a, source=a.source), c])
    assert (changes.added, changes.updated, changes.removed) == (["default/c"], [], ["default/b"])
    changed_a = load_docs(tmp_path, fleet_docs(["a"], cycle_ms=500, ports=ports([a])))[0]
    changes = await sync_devices(mapper, [changed_a, c])
    assert (changes.added, changes.updated, changes.removed) == ([], ["default/a"], [])
    assert mapper.devices == [changed_a, c]


async def test_a_reload_leaves_alone_the_devices_another_source_gave(tmp_path: Path):
    a, b, c = load_docs(tmp_path, fleet_docs(["a", "b", "c"]))
    mapper = Mapper(
        [a, b], transports=[KubeEdgeMqtt("mqtt://127.0.0.1:1", topic_root=topic_root())]
    )
    # b came from elsewhere (EdgeCore): the files name it too, changed, and leave out a
    other_b = load_docs(tmp_path, fleet_docs(["b"], cycle_ms=500, ports=ports([b])))[0]
    changes = await sync_devices(mapper, [other_b, c], lambda spec: spec.id != b.id)
    assert (changes.added, changes.updated, changes.removed) == (["default/c"], [], ["default/a"])
    assert changes.kept == ["default/b"]
    assert mapper.devices == [b, c]
