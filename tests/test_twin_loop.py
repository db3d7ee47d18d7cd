"""The desired-state loop end to end: CLI -> agent -> mapper -> Modbus server -> report.

Real mosquitto (the session's, or a fresh one), real pymodbus servers (ModbusSimulator), the
real ``edgedev`` command line in a subprocess.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from edgedev.bus._topics import Channel, NodeChannel, Topics
from edgedev.testing import Mosquitto, Recorder
from edgedev.wire import desired_update, request, twin_get
from edgedev_modbus import ModbusSimulator
from edgedev_modbus.codec import Table
from twin_helpers import (
    DEVICE,
    agent_running,
    mapper_running,
    observer,
    on,
    payload,
    reported,
    root,
    thermostat,
)

pytestmark = pytest.mark.broker

WAIT = 20  # generous: two cores shared with other test sessions


async def cli(*args: str) -> tuple[int, str]:
    """Run ``edgedev ARGS`` in a subprocess; its exit code and its output (stdout + stderr)."""
    done = await anyio.run_process(
        [sys.executable, "-m", "edgedev", *args], check=False, stderr=-2
    )  # -2: stderr to stdout
    return done.returncode, done.stdout.decode()


async def serve(sim: ModbusSimulator, tg: Any) -> None:
    await tg.start(sim.run)


async def ask(bus: Any, recorder: Recorder, channel: Channel, body: bytes, topic_root: str) -> Any:
    """Publish ``body`` on ``channel`` of the device; the answer with the same event id."""
    import json

    event_id = json.loads(body)["event_id"]
    answer = Channel.TWIN_GET_RESULT if channel is Channel.TWIN_GET else Channel.TWIN_RESULT
    start = len(recorder.messages)
    bus.publish(Topics(topic_root).device(DEVICE, channel), body)
    message = await recorder.wait_for(
        lambda m: on(answer.value)(m) and payload(m).get("event_id") == event_id,
        timeout=WAIT,
        after=start,
    )
    return payload(message)


async def test_twin_set_writes_the_holding_register_and_read_only_is_refused(
    tmp_path: Path, mqtt_url: str
):
    devices, _ = thermostat(tmp_path)
    topic_root = root()
    sim = ModbusSimulator(devices)
    async with anyio.create_task_group() as tg:
        await serve(sim, tg)
        async with (
            observer(mqtt_url, topic_root) as (_bus, recorder),
            agent_running(mqtt_url, topic_root, tmp_path / "twins.db", devices),
            mapper_running(mqtt_url, topic_root, devices),
        ):
            await recorder.wait_for(reported("setpoint"), timeout=WAIT)
            common = ["--broker", mqtt_url, "--topic-root", topic_root]
            code, out = await cli("twin", "set", DEVICE, "setpoint=24.5", *common)
            assert code == 0, out
            assert "setpoint" in out and "24.5" in out

            delta = await recorder.wait_for(
                lambda m: (
                    on("twin/update/delta")(m) and payload(m)["delta"] == {"setpoint": "24.5"}
                ),
                timeout=WAIT,
            )
            after = recorder.messages.index(delta)
            report = await recorder.wait_for(reported("setpoint", 24.5), timeout=WAIT, after=after)
            reports = [
                m
                for m in recorder.messages[after : recorder.messages.index(report) + 1]
                if on("twin/update")(m) and "setpoint" in payload(m)["twin"]
            ]
            assert len(reports) <= 2, "reported within two cycles of the delta"
            assert sim.words(DEVICE, Table.HOLDING, 0, 1) == [245]
            cleared = await recorder.wait_for(
                lambda m: on("twin/update/delta")(m) and payload(m)["delta"] == {},
                timeout=WAIT,
                after=after,
            )
            assert cleared

            code, out = await cli("twin", "get", DEVICE, *common)
            assert code == 0 and "pending" not in out, out

            code, out = await cli("twin", "set", DEVICE, "temp=3", *common)
            assert code == 1 and "400" in out and "ReadOnly" in out, out
        tg.cancel_scope.cancel()


async def test_stale_version_is_refused_with_409_and_null_removes_desired(
    tmp_path: Path, mqtt_url: str
):
    devices, _ = thermostat(tmp_path)
    topic_root = root()
    async with (
        observer(mqtt_url, topic_root) as (bus, recorder),
        agent_running(mqtt_url, topic_root, tmp_path / "twins.db", devices),
    ):
        first = await ask(
            bus, recorder, Channel.TWIN_UPDATE, desired_update({"level": "40"}), topic_root
        )
        version = first["twin"]["level"]["version"]
        second = await ask(
            bus,
            recorder,
            Channel.TWIN_UPDATE,
            desired_update({"level": "41"}, version=version),
            topic_root,
        )
        assert second["twin"]["level"]["version"] == version + 1
        common = ["--broker", mqtt_url, "--topic-root", topic_root]
        code, out = await cli("twin", "set", DEVICE, "level=42", f"--version={version}", *common)
        assert code == 1 and "409" in out, out

        code, out = await cli("twin", "set", DEVICE, "level=null", *common)
        assert code == 0, out
        got = await ask(bus, recorder, Channel.TWIN_GET, twin_get(), topic_root)
        assert "expected" not in got["twin"]["level"]
        assert got["twin"]["level"]["version"] == version + 2
        deltas = [payload(m)["delta"] for m in recorder.messages if on("twin/update/delta")(m)]
        assert deltas[-1] == {}  # the mapper is told that nothing is pending any more


async def test_agent_restarted_mid_run_keeps_every_twin(tmp_path: Path, mqtt_url: str):
    devices, _ = thermostat(tmp_path)
    topic_root = root()
    db = tmp_path / "twins.db"
    sim = ModbusSimulator(devices)
    async with anyio.create_task_group() as tg:
        await serve(sim, tg)
        async with (
            observer(mqtt_url, topic_root) as (bus, recorder),
            mapper_running(mqtt_url, topic_root, devices),
        ):
            async with agent_running(mqtt_url, topic_root, db, devices):
                await ask(
                    bus, recorder, Channel.TWIN_UPDATE, desired_update({"level": "7"}), topic_root
                )
                await recorder.wait_for(reported("level", 7), timeout=WAIT)
                await recorder.wait_for(
                    lambda m: (
                        on("twin/update/result")(m)
                        and (payload(m).get("twin", {}).get("level", {}).get("actual") or {}).get(
                            "value"
                        )
                        == "7"
                    ),
                    timeout=WAIT,
                )
                before = await ask(bus, recorder, Channel.TWIN_GET, twin_get(), topic_root)
            # the agent is down; the mapper keeps running
            async with agent_running(mqtt_url, topic_root, db, devices):
                after = await ask(bus, recorder, Channel.TWIN_GET, twin_get(), topic_root)
                level_before, level_after = before["twin"]["level"], after["twin"]["level"]
                assert level_after["expected"] == level_before["expected"]
                assert level_after["actual"]["value"] == "7"
                assert level_after["version"] >= level_before["version"]
                assert set(after["twin"]) == {"level", "setpoint", "temp"}
                # and it still drives the device
                await ask(
                    bus, recorder, Channel.TWIN_UPDATE, desired_update({"level": "9"}), topic_root
                )
                await recorder.wait_for(reported("level", 9), timeout=WAIT)
                assert sim.words(DEVICE, Table.HOLDING, 3, 1) == [9]
        tg.cancel_scope.cancel()


async def test_restarted_mapper_converges_through_twin_get(tmp_path: Path, mqtt_url: str):
    devices, _ = thermostat(tmp_path)
    topic_root = root()
    sim = ModbusSimulator(devices)
    async with anyio.create_task_group() as tg:
        await serve(sim, tg)
        async with (
            observer(mqtt_url, topic_root) as (bus, recorder),
            agent_running(mqtt_url, topic_root, tmp_path / "twins.db", devices),
        ):
            async with mapper_running(mqtt_url, topic_root, devices, name="m-a"):
                await recorder.wait_for(reported("level"), timeout=WAIT)
            # set while no mapper runs: the delta reaches nobody
            await ask(
                bus, recorder, Channel.TWIN_UPDATE, desired_update({"level": "55"}), topic_root
            )
            assert sim.words(DEVICE, Table.HOLDING, 3, 1) == [0]
            start = len(recorder.messages)
            async with mapper_running(mqtt_url, topic_root, devices, name="m-b"):
                get = await recorder.wait_for(on("twin/get"), timeout=WAIT, after=start)
                answer = await recorder.wait_for(
                    lambda m: (
                        on("twin/get/result")(m)
                        and payload(m)["event_id"] == payload(get)["event_id"]
                    ),
                    timeout=WAIT,
                    after=start,
                )
                assert payload(answer)["twin"]["level"]["expected"]["value"] == "55"
                await recorder.wait_for(reported("level", 55), timeout=WAIT, after=start)
                assert sim.words(DEVICE, Table.HOLDING, 3, 1) == [55]
        tg.cancel_scope.cancel()


async def test_failed_writes_are_reported_and_retried_until_the_device_takes_them(
    tmp_path: Path, mqtt_url: str
):
    devices, _ = thermostat(tmp_path)
    topic_root = root()
    async with (
        observer(mqtt_url, topic_root) as (bus, recorder),
        agent_running(mqtt_url, topic_root, tmp_path / "twins.db"),  # no files: no model checks
        mapper_running(mqtt_url, topic_root, devices) as mapper,
    ):
        # the device is not served yet: the write waits, reported as failed with a reason
        await recorder.wait_for(
            lambda m: on("state/update")(m) and payload(m)["state"] == "offline", timeout=WAIT
        )
        await ask(bus, recorder, Channel.TWIN_UPDATE, desired_update({"level": "12"}), topic_root)
        failure = await recorder.wait_for(
            lambda m: on("twin/update")(m) and "error" in payload(m)["twin"].get("level", {}),
            timeout=WAIT,
        )
        error = payload(failure)["twin"]["level"]["error"]
        assert error["value"] == "12" and "offline" in error["reason"] and error["retry"]

        # out of range on the device side (the agent has no model to check it against)
        result = await ask(
            bus, recorder, Channel.TWIN_UPDATE, desired_update({"setpoint": "99"}), topic_root
        )
        assert "code" not in result
        refused = await recorder.wait_for(
            lambda m: on("twin/update")(m) and "error" in payload(m)["twin"].get("setpoint", {}),
            timeout=WAIT,
        )
        assert "maximum" in payload(refused)["twin"]["setpoint"]["error"]["reason"]
        assert payload(refused)["twin"]["setpoint"]["error"]["retry"] is False

        # the device comes: the pending value is written without a new command
        sim = ModbusSimulator(devices)
        async with anyio.create_task_group() as tg:
            await serve(sim, tg)
            await recorder.wait_for(reported("level", 12), timeout=WAIT)
            assert sim.words(DEVICE, Table.HOLDING, 3, 1) == [12]
            got = await ask(bus, recorder, Channel.TWIN_GET, twin_get(), topic_root)
            assert got["twin"]["setpoint"]["expected"]["value"] == "99"  # still pending
            assert "maximum" in got["twin"]["setpoint"]["error"]["reason"]
            assert "error" not in got["twin"]["level"]
            assert mapper.writer(DEVICE).pending == {"setpoint": "99"}
            tg.cancel_scope.cancel()


async def test_the_same_mapper_works_under_hw_events_on_mosquitto(tmp_path: Path):
    # mosquitto, the broker beside EdgeCore, whichever broker the session's other tests use
    if not Mosquitto.available():
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    with Mosquitto() as broker:
        await _mapper_under_hw_events(tmp_path, broker.url)


async def _mapper_under_hw_events(tmp_path: Path, url: str) -> None:
    devices, _ = thermostat(tmp_path)
    topic_root = "$hw/events"
    sim = ModbusSimulator(devices)
    async with anyio.create_task_group() as tg:
        await serve(sim, tg)
        async with (
            observer(url, topic_root) as (_bus, recorder),
            agent_running(url, topic_root, tmp_path / "twins.db", devices),
            mapper_running(url, topic_root, devices),
        ):
            await recorder.wait_for(reported("level"), timeout=WAIT)
            code, out = await cli("twin", "set", DEVICE, "level=77", "--broker", url)
            assert code == 0, out
            message = await recorder.wait_for(reported("level", 77), timeout=WAIT)
            assert message.topic == "$hw/events/device/plant/thermo/twin/update"
            assert sim.words(DEVICE, Table.HOLDING, 3, 1) == [77]
            code, out = await cli(
                "watch", DEVICE, "--broker", url, "--count", "2", "--seconds", str(WAIT)
            )
            first, second = out.splitlines()
            assert code == 0 and f"{DEVICE} online since " in first, out  # retained, at once
            assert f"{DEVICE} " in second and "level=77" in second, out
        tg.cancel_scope.cancel()


async def test_agent_started_after_the_mapper_learns_its_devices(tmp_path: Path, mqtt_url: str):
    """An agent with no files, started after the mapper, serves the mapper's devices.

    The mapper's announcement is retained (the agent also asks on ``node/{node}/mapper/get``
    when it connects), and a desired value set then reaches the device.
    """
    devices, _ = thermostat(tmp_path)
    topic_root = root()
    sim = ModbusSimulator(devices)
    async with anyio.create_task_group() as tg:
        await serve(sim, tg)
        async with (
            observer(mqtt_url, topic_root) as (bus, recorder),
            mapper_running(mqtt_url, topic_root, devices),
        ):
            await recorder.wait_for(reported("level"), timeout=WAIT)  # long after its announcement
            async with agent_running(mqtt_url, topic_root, tmp_path / "twins.db"):
                # the device is known: the mapper's reports now make twin documents
                await recorder.wait_for(on("twin/update/document"), timeout=WAIT)
                answer = await ask(
                    bus, recorder, Channel.TWIN_UPDATE, desired_update({"level": "12"}), topic_root
                )
                assert answer.get("code") is None, answer
                await recorder.wait_for(reported("level", 12), timeout=WAIT)
                assert sim.words(DEVICE, Table.HOLDING, 3, 1) == [12]
        tg.cancel_scope.cancel()


async def test_mapper_answers_a_burst_of_mapper_gets_at_most_once_a_second(
    tmp_path: Path, mqtt_url: str
):
    """50 requests in a burst cost two announcements (one now, one after the pause), not 50."""
    devices, _ = thermostat(tmp_path)
    topic_root = root()
    topics = Topics(topic_root)
    state = topics.mapper("edge-1", "m1")

    def announcement(m: Any) -> bool:
        return m.topic == state and payload(m)["state"] == "online"

    async with (
        observer(mqtt_url, topic_root) as (bus, recorder),
        mapper_running(mqtt_url, topic_root, devices),
    ):
        await recorder.wait_for(announcement, timeout=WAIT)  # at its connection
        for _ in range(50):
            bus.publish(topics.node("edge-1", NodeChannel.MAPPER_GET), request())
        await recorder.wait_count(announcement, 3, timeout=WAIT)
        bus.publish(topics.node("edge-1", NodeChannel.MAPPER_GET), request())
        await recorder.wait_count(announcement, 4, timeout=WAIT)
        assert len([m for m in recorder.messages if announcement(m)]) == 4
