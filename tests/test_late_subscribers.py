"""Clients started after the mapper learn every device's state from the broker.

Real mosquitto, a real pymodbus server for the device that answers (the other one has nothing
listening), in-process mappers and agents, ``edgedev watch`` and ``edgedev run`` as child
processes. The mapper keeps each device's state retained on ``state/current`` and its own
announcement retained on ``node/{node}/mapper/{name}/state`` (its last will there too);
KubeEdge's EdgeCore subscribes neither, which the last test checks with its own filters.
"""

from __future__ import annotations

import copy
import json
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from edgedev import Bus, DeviceSpec, Mapper, load_devices
from edgedev.bus._outbox import Message
from edgedev.bus._topics import Channel, NodeChannel, Topics
from edgedev.mqtt import KubeEdgeMqtt
from edgedev.testing import Recorder, edgedev_process, free_port
from edgedev.view import TwinView
from edgedev.view._web import ViewServer
from edgedev.wire import new_event_id, request
from edgedev_modbus import ModbusSimulator
from twin_helpers import DEVICE, agent_running, observer, root, thermostat_docs, write_yaml

pytestmark = pytest.mark.broker

WAIT = 20
DEAD = "plant/dead"  # nothing listens at its port: offline, with the reason


def fleet_docs() -> list[Any]:
    """The thermostat (served by the simulator) and a device of the same model nobody serves."""
    docs = thermostat_docs(free_port())
    dead = copy.deepcopy(docs[1])
    dead["metadata"]["name"] = "dead"
    dead["spec"]["protocol"]["configData"]["port"] = free_port()
    return [*docs, dead]


def fleet(tmp_path: Path) -> tuple[DeviceSpec, DeviceSpec]:
    thermo, dead = load_devices([write_yaml(tmp_path, fleet_docs())])
    return thermo, dead


def state_is(device: str, state: str) -> Any:
    def check(m: Message) -> bool:
        return m.topic.endswith(f"/device/{device}/state/update") and (
            json.loads(m.payload)["state"] == state
        )

    return check


async def view_states(http: httpx.AsyncClient) -> AsyncIterator[dict[str, str]]:
    """Each device's state in every event the web view's stream sends (snapshot, updates)."""
    states: dict[str, str] = {}
    async with http.stream("GET", "/api/events") as response:
        data = ""
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                data = line[6:]
            elif not line and data:
                states |= {d["id"]: d["state"] for d in json.loads(data)["devices"]}
                data = ""
                yield states


@asynccontextmanager
async def running(
    url: str, topic_root: str, devices: Sequence[DeviceSpec], name: str
) -> AsyncIterator[Mapper]:
    mapper = Mapper(
        devices, transports=[KubeEdgeMqtt(url, topic_root=topic_root)], node="edge-1", name=name
    )
    async with anyio.create_task_group() as tg:
        await tg.start(mapper.run)
        yield mapper
        tg.cancel_scope.cancel()


async def retained(url: str, topic_root: str) -> list[Message]:
    """Every retained message under ``topic_root`` that a client subscribing now is given.

    A marker published after the subscription comes back after them (the broker queues the
    retained messages when it handles the SUBSCRIBE), so that none is missed.
    """
    marker = f"{topic_root}/test/marker/{new_event_id()}"
    async with Bus(url) as bus, Recorder(bus, f"{topic_root}/#") as recorder:
        bus.publish(marker, b"end")
        await recorder.wait_for(lambda m: m.topic == marker, timeout=WAIT)
        return [m for m in recorder.messages if m.retain]


async def settled(recorder: Recorder, *devices: tuple[str, str]) -> None:
    for device, state in devices:
        await recorder.wait_for(state_is(device, state), timeout=WAIT)


async def test_agent_watch_and_view_started_after_the_mapper_show_every_state(
    tmp_path: Path, mqtt_url: str
):
    thermo, dead = fleet(tmp_path)
    topic_root = root()
    async with anyio.create_task_group() as tg:
        await tg.start(ModbusSimulator([thermo]).run)
        async with (
            observer(mqtt_url, topic_root) as (bus, recorder),
            running(mqtt_url, topic_root, [thermo, dead], "m1"),
        ):
            await settled(recorder, (DEVICE, "online"), (DEAD, "offline"))

            # the agent, with no files: the retained announcement and states, any order
            async with agent_running(mqtt_url, topic_root, tmp_path / "twins.db") as agent:
                start = len(recorder.messages)
                topic = Topics(topic_root).node("edge-1", NodeChannel.MEMBERSHIP_GET)
                bus.publish(topic, request(event_id="late"))
                answer = await recorder.wait_for(
                    lambda m: m.topic.endswith("/membership/get/result"), after=start, timeout=WAIT
                )
                states = {d["id"]: d["state"] for d in json.loads(answer.payload)["devices"]}
                assert states == {DEVICE: "online", DEAD: "offline"}
                assert agent.core.records[DEAD].mapper == "m1"

            # edgedev watch: a line per device at once, as its mapper left it
            args = ["watch", "--broker", mqtt_url, "--topic-root", topic_root]
            done = await anyio.run_process(
                [sys.executable, "-m", "edgedev", *args, "--count", "3", "--seconds", str(WAIT)],
                check=False,
            )
            lines = done.stdout.decode().splitlines()
            assert done.returncode == 0
            assert any("mapper m1 online (2 devices)" in line for line in lines), lines
            assert any(f"{DEVICE} online since " in line for line in lines), lines
            (dead_line,) = [line for line in lines if f" {DEAD} " in line]
            assert "offline since" in dead_line and "connection refused" in dead_line

            # the web view: every device's state in its first events
            server = ViewServer(mqtt_url, topic_root, port=0)
            async with anyio.create_task_group() as view_tg:
                await view_tg.start(server.run)
                async with httpx.AsyncClient(base_url=server.url) as http:
                    with anyio.fail_after(WAIT):
                        async for states in view_states(http):
                            if states == {DEVICE: "online", DEAD: "offline"}:
                                break
                    detail = (await http.get(f"/api/devices/{DEAD}")).json()
                    assert "connection refused" in detail["reason"]
                view_tg.cancel_scope.cancel()
        tg.cancel_scope.cancel()


async def test_a_removed_device_s_retained_state_is_cleared(tmp_path: Path, mqtt_url: str):
    thermo, dead = fleet(tmp_path)
    topic_root = root()
    topics = Topics(topic_root)
    async with anyio.create_task_group() as tg:
        await tg.start(ModbusSimulator([thermo]).run)
        async with (
            observer(mqtt_url, topic_root) as (_bus, recorder),
            running(mqtt_url, topic_root, [thermo, dead], "m1") as mapper,
        ):
            await settled(recorder, (DEVICE, "online"), (DEAD, "offline"))
            before = {m.topic for m in await retained(mqtt_url, topic_root)}
            assert topics.device(DEAD, Channel.STATE_CURRENT) in before

            await mapper.remove_device(DEAD)
            cleared = topics.device(DEAD, Channel.STATE_CURRENT)
            await recorder.wait_for(lambda m: m.topic == cleared and m.payload == b"", timeout=WAIT)
            announced = topics.mapper("edge-1", "m1")
            await recorder.wait_for(
                lambda m: m.topic == announced and json.loads(m.payload)["devices"] == [DEVICE],
                timeout=WAIT,
            )
            late = {m.topic: m.payload for m in await retained(mqtt_url, topic_root)}
            assert cleared not in late
            assert (
                json.loads(late[topics.device(DEVICE, Channel.STATE_CURRENT)])["state"] == "online"
            )
            assert json.loads(late[announced])["devices"] == [DEVICE]

            view = TwinView(topics)  # a view started now never hears of the removed device
            for topic, payload in late.items():
                view.apply(topic, payload)
            assert set(view.devices) == {DEVICE}
        tg.cancel_scope.cancel()


async def test_two_mappers_of_one_node_keep_their_own_announcement(tmp_path: Path, mqtt_url: str):
    thermo, dead = fleet(tmp_path)
    topic_root = root()
    topics = Topics(topic_root)
    async with anyio.create_task_group() as tg:
        await tg.start(ModbusSimulator([thermo]).run)
        async with (
            observer(mqtt_url, topic_root) as (_bus, recorder),
            running(mqtt_url, topic_root, [thermo], "m1"),
        ):
            async with running(mqtt_url, topic_root, [dead], "m2"):
                await settled(recorder, (DEVICE, "online"), (DEAD, "offline"))
                late = {
                    m.topic: json.loads(m.payload) for m in await retained(mqtt_url, topic_root)
                }
                assert late[topics.mapper("edge-1", "m1")]["devices"] == [DEVICE]
                assert late[topics.mapper("edge-1", "m2")]["devices"] == [DEAD]
                assert late[topics.device(DEVICE, Channel.STATE_CURRENT)]["mapper"] == "m1"
                assert late[topics.device(DEAD, Channel.STATE_CURRENT)]["mapper"] == "m2"
            # m2 stopped: its announcement says so, m1's is untouched
            m2 = topics.mapper("edge-1", "m2")
            await recorder.wait_for(
                lambda m: m.topic == m2 and json.loads(m.payload)["state"] == "offline",
                timeout=WAIT,
            )
            late = {m.topic: json.loads(m.payload) for m in await retained(mqtt_url, topic_root)}
            assert late[topics.mapper("edge-1", "m1")]["state"] == "online"
            assert late[m2] == {**late[m2], "state": "offline", "devices": [DEAD]}
        tg.cancel_scope.cancel()


async def test_a_killed_mapper_s_devices_show_offline_to_clients_started_later(
    tmp_path: Path, mqtt_url: str
):
    """SIGKILL: no goodbye; its retained will says offline, whatever its devices' last state."""
    docs = fleet_docs()[:2]
    path = write_yaml(tmp_path, docs)
    (thermo,) = load_devices([path])
    topic_root = root()
    topics = Topics(topic_root)
    args = ["run", "-f", str(path), "--broker", mqtt_url, "--topic-root", topic_root]
    async with anyio.create_task_group() as tg:
        await tg.start(ModbusSimulator([thermo]).run)
        async with observer(mqtt_url, topic_root) as (_bus, recorder):
            with edgedev_process(*args, "--node", "edge-1", output=False) as proc:
                await settled(recorder, (DEVICE, "online"))
                proc.send_signal(signal.SIGKILL)
                await anyio.to_thread.run_sync(proc.wait, WAIT)
            name = "edgedev-modbus-edge-1"  # the default name: the same at every start
            will = topics.mapper("edge-1", name)
            await recorder.wait_for(
                lambda m: m.topic == will and json.loads(m.payload)["state"] == "offline",
                timeout=WAIT,
            )
            late = await retained(mqtt_url, topic_root)
            current = {m.topic: json.loads(m.payload) for m in late}
            assert current[topics.device(DEVICE, Channel.STATE_CURRENT)]["state"] == "online"
            for order in (late, late[::-1]):  # the broker's order, and the other one
                view = TwinView(topics)
                for m in order:
                    view.apply(m.topic, m.payload)
                assert view.devices[DEVICE].state == "offline"
                assert view.devices[DEVICE].reason == f"mapper {name} is not running"
        tg.cancel_scope.cancel()


# edge/pkg/eventbus/mqtt/client.go:44-51 (SubTopics): what EdgeCore's EventBus subscribes to
# under $hw/events, and hands to DeviceTwin (handler.go, process.go classifyMsg) or to the
# cloud ("upload"). Its two others, "SYS/dis/upload_records" and "+/user/#", lie outside
# every topic edgedev publishes (and would hear the other tests on this broker).
EDGECORE_FILTERS = (
    "{root}/upload/#",
    "{root}/device/+/+/state/update",
    "{root}/device/+/+/twin/+",
    "{root}/node/+/membership/get",
)


async def test_edgecore_never_gets_a_retained_state_or_an_empty_payload(
    tmp_path: Path, mqtt_url: str
):
    """EdgeCore's dtmanager/device.go dealDeviceStateUpdate takes every state/update as new.

    A retained state delivered again at its (re)subscription would set the device's state
    and ``last_online`` to now in its database and the cloud (junk), and an empty payload
    fails ``json.Unmarshal`` (``Unmarshal device info failed``, logged as an error). So
    nothing EdgeCore subscribes to is retained, and the clearing goes elsewhere.
    """
    thermo, dead = fleet(tmp_path)
    topic_root = root()
    filters = [f.format(root=topic_root) for f in EDGECORE_FILTERS]
    async with anyio.create_task_group() as tg:
        await tg.start(ModbusSimulator([thermo]).run)
        async with (
            observer(mqtt_url, topic_root) as (_bus, recorder),
            Bus(mqtt_url) as edgecore,
            Recorder(edgecore, *filters) as seen_live,
            running(mqtt_url, topic_root, [thermo, dead], "m1") as mapper,
        ):
            await settled(recorder, (DEVICE, "online"), (DEAD, "offline"))
            await mapper.remove_device(DEAD)
            cleared = Topics(topic_root).device(DEAD, Channel.STATE_CURRENT)
            await recorder.wait_for(lambda m: m.topic == cleared and m.payload == b"", timeout=WAIT)
            # EdgeCore (re)connects now: it subscribes its filters again
            marker = f"{topic_root}/upload/marker"
            async with Bus(mqtt_url) as again, Recorder(again, *filters) as seen_again:
                again.publish(marker, b"{}")
                await seen_again.wait_for(lambda m: m.topic == marker, timeout=WAIT)
                got = [(m.topic, m.payload[:80]) for m in seen_again.messages]
                assert got == [(marker, b"{}")], got  # nothing retained
            states = [m for m in seen_live.messages if m.topic.endswith("/state/update")]
            assert states, "EdgeCore heard the live states"
            odd = [
                (m.topic, m.payload[:80]) for m in seen_live.messages if m.retain or not m.payload
            ]
            assert not odd, odd
            assert all(json.loads(m.payload)["state"] for m in states)  # UnmarshalDeviceUpdate
        tg.cancel_scope.cancel()
