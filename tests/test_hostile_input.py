"""Hostile and faulty input, refused at the edge: each case of issue 16 against the real parts.

Real mosquitto, the real agent (SQLite on disk), the real mapper and the Modbus simulator.
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
import sqlite3
import stat
import struct
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

import anyio
import pytest

from edgedev import Bus, ConfigError, load_devices
from edgedev.agent import Agent, AgentLimits, TwinStore
from edgedev.agent._records import DeviceRow, PropertyRow
from edgedev.bus import Message
from edgedev.bus._topics import Channel, NodeChannel, Topics
from edgedev.cli import main
from edgedev.testing import (
    Recorder,
    device,
    device_model,
    device_property,
    free_port,
    unique_root,
    write_documents,
)
from edgedev.twin import PropertyType, TwinProperty, TwinValue
from edgedev.wire import desired_update, new_event_id, twin_get
from edgedev_modbus import ModbusSimulator
from edgedev_modbus.codec import Table
from twin_helpers import agent_running, mapper_running, observer

pytestmark = pytest.mark.broker

VALVE = "default/valve"
NODE = "edge-1"
WAIT = 20  # generous: two cores shared with other test sessions


def valve_docs(port: int) -> list[dict[str, Any]]:
    """A valve: ``opening`` FLOAT 0..100 in a float32 holding register, ``flow`` read-only."""
    return [
        device_model(
            "valve",
            "modbus",
            [
                {"name": "opening", "type": "FLOAT", "minimum": "0", "maximum": "100"},
                {"name": "flow", "type": "FLOAT", "accessMode": "ReadOnly"},
            ],
        ),
        device(
            "valve",
            "valve",
            "modbus",
            {"ip": "127.0.0.1", "port": port},
            [
                device_property(
                    "opening",
                    "modbus",
                    200,
                    {"register": "HoldingRegister", "offset": 0, "limit": 2, "dataType": "float32"},
                ),
                device_property(
                    "flow",
                    "modbus",
                    200,
                    {"register": "InputRegister", "offset": 0, "limit": 2, "dataType": "float32"},
                ),
            ],
        ),
    ]


def valve(tmp_path: Path) -> list[Any]:
    return load_devices([write_documents(tmp_path, valve_docs(free_port()))])


def body(message: Any) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(message.payload)
    return parsed


def on(channel: str, device_id: str = VALVE) -> Any:
    return lambda m: m.topic.endswith(f"/device/{device_id}/{channel}")


async def ask(
    bus: Bus, recorder: Recorder, topic: str, payload: bytes, answer_suffix: str
) -> dict[str, Any]:
    """Publish ``payload`` on ``topic``; the answer on the topic ending ``answer_suffix``."""
    event_id = json.loads(payload)["event_id"]
    start = len(recorder.messages)
    bus.publish(topic, payload)
    found = await recorder.wait_for(
        lambda m: m.topic.endswith(answer_suffix) and body(m).get("event_id") == event_id,
        timeout=WAIT,
        after=start,
    )
    return body(found)


def row_counts(db: Path) -> tuple[int, int]:
    with sqlite3.connect(db) as conn:
        devices = conn.execute("SELECT count(*) FROM devices").fetchone()[0]
        props = conn.execute("SELECT count(*) FROM properties").fetchone()[0]
    return devices, props


def opening_on_device(sim: ModbusSimulator) -> float:
    words = sim.words(VALVE, Table.HOLDING, 0, 2)
    value: float = struct.unpack(">f", struct.pack(">HH", *words))[0]
    return value


async def test_nan_and_infinities_never_reach_the_device(tmp_path: Path, mqtt_url: str) -> None:
    devices = valve(tmp_path)
    topic_root = unique_root("hostile")
    topics = Topics(topic_root)
    sim = ModbusSimulator(devices)
    async with anyio.create_task_group() as tg:
        await tg.start(sim.run)
        async with (
            observer(mqtt_url, topic_root) as (bus, recorder),
            agent_running(mqtt_url, topic_root, tmp_path / "twins.db", devices),
            mapper_running(mqtt_url, topic_root, devices),
        ):
            await recorder.wait_for(on("twin/update"), timeout=WAIT)
            before = opening_on_device(sim)
            # through the agent: each refused with 400 and the property named
            for text in ("nan", "NaN", "inf", "-inf", "1e400"):
                answer = await ask(
                    bus,
                    recorder,
                    topics.device(VALVE, Channel.TWIN_UPDATE),
                    desired_update({"opening": text}),
                    "/twin/update/result",
                )
                assert answer["code"] == 400, answer
                assert "opening" in answer["reason"] and "finite" in answer["reason"]
            # straight to the mapper, as a client that bypasses the agent would
            start = len(recorder.messages)
            delta = {"event_id": new_event_id(), "timestamp": 1, "twin": {}, "delta": {}}
            delta["delta"] = {"opening": "nan"}
            bus.publish(topics.device(VALVE, Channel.TWIN_DELTA), json.dumps(delta).encode())
            refused = await recorder.wait_for(
                lambda m: on("twin/update")(m) and "error" in body(m)["twin"].get("opening", {}),
                timeout=WAIT,
                after=start,
            )
            reason = body(refused)["twin"]["opening"]["error"]["reason"]
            assert "opening" in reason and "finite" in reason
            # a good value still goes through: the device was never disturbed
            bus.publish(
                topics.device(VALVE, Channel.TWIN_UPDATE), desired_update({"opening": "42.5"})
            )
            await recorder.wait_for(
                lambda m: (
                    on("twin/update")(m)
                    and body(m)["twin"].get("opening", {}).get("actual", {}).get("value") == "42.5"
                ),
                timeout=WAIT,
            )
            assert not math.isnan(before)
            assert opening_on_device(sim) == 42.5
        tg.cancel_scope.cancel()


async def test_a_bare_device_id_in_a_mapper_will_leaves_membership_intact(
    tmp_path: Path, mqtt_url: str
) -> None:
    devices = valve(tmp_path)
    topic_root = unique_root("hostile")
    topics = Topics(topic_root)
    db = tmp_path / "twins.db"
    poison = {
        "event_id": new_event_id(),
        "timestamp": 1,
        "mapper": "evil",
        "state": "online",
        "devices": ["bare", "$SYS/x", "../..", "a/" + "n" * 60_000, "plant/ok"],
        "started": 1,
    }
    for _ in range(2):  # and again after a restart, from what was stored
        async with (
            observer(mqtt_url, topic_root) as (bus, recorder),
            agent_running(mqtt_url, topic_root, db, devices) as agent,
        ):
            bus.publish(topics.mapper(NODE, "evil"), json.dumps(poison).encode())
            answer = await ask(
                bus,
                recorder,
                topics.node(NODE, NodeChannel.MEMBERSHIP_GET),
                json.dumps({"event_id": new_event_id()}).encode(),
                "/membership/get/result",
            )
            assert sorted(d["id"] for d in answer["devices"]) == [VALVE, "plant/ok"]
            assert agent.core.refused["device_id"] == 4
    assert row_counts(db)[0] == 2


async def test_unknown_devices_properties_and_bad_ids_leave_the_store_unchanged(
    tmp_path: Path, mqtt_url: str
) -> None:
    devices = valve(tmp_path)
    topic_root = unique_root("hostile")
    topics = Topics(topic_root)
    db = tmp_path / "twins.db"
    async with (
        Bus(mqtt_url) as bus,
        # the valve's answers only: the 40,000 refusals for unknown devices go elsewhere
        Recorder(bus, topics.all_devices(VALVE)) as recorder,
        agent_running(mqtt_url, topic_root, db, devices) as agent,
    ):
        rows = row_counts(db)
        report = {"event_id": "", "timestamp": 1, "twin": {}}

        def reported(names: range | list[str]) -> bytes:
            twin = {f"p{n}": {"actual": {"value": "1"}, "metadata": {"type": "int"}} for n in names}
            return json.dumps({**report, "event_id": new_event_id(), "twin": twin}).encode()

        # 20,000 unknown properties of a device that has a model: too big, then each refused
        update = topics.device(VALVE, Channel.TWIN_UPDATE)
        big = await ask(bus, recorder, update, reported(range(20_000)), "/twin/update/result")
        assert big["code"] == 400 and "payload" in big["reason"]
        some = await ask(bus, recorder, update, reported(range(500)), "/twin/update/result")
        assert some["code"] == 404 and "no property" in some["reason"]
        # 20,000 reports for unknown devices, and ids that are no Kubernetes names
        bad = ["../..", "$SYS/x", "UPPER/case", "ns/" + "n" * 60_000]
        for device_id in bad:
            bus.publish(f"{topic_root}/device/{device_id}/twin/update", reported(["x"]))
        ids = [f"ns/dev-{n}" for n in range(20_000)]
        for batch in range(0, len(ids), 1000):  # in steps the agent's queue (10,000) holds
            for device_id in ids[batch : batch + 1000]:
                bus.publish(topics.device(device_id, Channel.TWIN_UPDATE), reported(["x"]))
                bus.publish(topics.device(device_id, Channel.STATE_UPDATE), b'{"state":"online"}')
            # the agent handles one client's messages in order: this answer comes after them
            last = await ask(
                bus,
                recorder,
                topics.device(VALVE, Channel.TWIN_GET),
                twin_get(event_id=new_event_id()),
                "/twin/get/result",
            )
            assert set(last["twin"]) == {"opening", "flow"}
        assert agent.core.refused["unknown_device"] == 2 * len(ids)
        assert agent.core.refused["device_id"] == len(bad)
        assert set(agent.core.records) == {VALVE}
        assert row_counts(db) == rows


async def test_deep_json_is_answered_400_without_a_traceback(
    tmp_path: Path, mqtt_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    devices = valve(tmp_path)
    topic_root = unique_root("hostile")
    topics = Topics(topic_root)
    async with (
        observer(mqtt_url, topic_root) as (bus, recorder),
        agent_running(mqtt_url, topic_root, tmp_path / "twins.db", devices) as agent,
    ):
        event_id = new_event_id()
        deep = (
            b'{"event_id": "'
            + event_id.encode()
            + b'", "twin": '
            + b"[" * 100_000
            + b"]" * 100_000
            + b"}"
        )
        for channel in (Channel.TWIN_UPDATE, Channel.TWIN_GET):
            start = len(recorder.messages)
            bus.publish(topics.device(VALVE, channel), deep)
            answer = await recorder.wait_for(
                lambda m: m.topic.endswith("/result") and body(m).get("code") == 400,
                timeout=WAIT,
                after=start,
            )
            assert "nested" in body(answer)["reason"]
        assert agent.core.refused["depth"] == 2
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


async def test_stored_rows_that_cannot_be_loaded_are_reported_and_skipped(
    tmp_path: Path, mqtt_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    devices = valve(tmp_path)
    db = tmp_path / "twins.db"
    with TwinStore(db) as store:  # what older versions stored, and a hand-edited row
        store.save(
            [DeviceRow("bare"), DeviceRow("plant/ok")],
            [PropertyRow("bare", "p", TwinProperty(PropertyType.INT, reported=TwinValue("1", 1)))],
        )
    with sqlite3.connect(db) as conn:
        conn.execute(
            "INSERT INTO devices VALUES ('plant/typo', 'online', 'yesterday', NULL, NULL, 0)"
        )
    topic_root = unique_root("hostile")
    topics = Topics(topic_root)
    caplog.set_level(logging.WARNING, "edgedev.agent")
    async with (
        observer(mqtt_url, topic_root) as (bus, recorder),
        agent_running(mqtt_url, topic_root, db, devices) as agent,
    ):
        answer = await ask(
            bus,
            recorder,
            topics.node(NODE, NodeChannel.MEMBERSHIP_GET),
            json.dumps({"event_id": new_event_id()}).encode(),
            "/membership/get/result",
        )
        assert sorted(d["id"] for d in answer["devices"]) == [VALVE, "plant/ok"]
        assert agent.core.skipped_rows == 2
    skipped = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert len(skipped) == 3 and any("plant/typo" in s for s in skipped)


def test_agent_limits_are_checked() -> None:
    with pytest.raises(ValueError, match="max_depth"):
        AgentLimits(max_depth=0)
    agent = Agent(limits=AgentLimits(max_payload=10))
    assert agent.core.limits.max_payload == 10


async def delta_then_good(
    tmp_path: Path, mqtt_url: str, delta: dict[str, str], opening: str
) -> list[Message]:
    """The valve's mapper gets ``delta``, then a good one setting ``opening``.

    Returns the ``twin/update`` messages from the first delta until ``opening`` is reported
    (in the desired value's text).
    """
    devices = valve(tmp_path)
    topic_root = unique_root("hostile")
    topic = Topics(topic_root).device(VALVE, Channel.TWIN_DELTA)
    sim = ModbusSimulator(devices)
    async with anyio.create_task_group() as tg:
        await tg.start(sim.run)
        async with (
            observer(mqtt_url, topic_root) as (bus, recorder),
            mapper_running(mqtt_url, topic_root, devices),
        ):
            await recorder.wait_for(on("twin/update"), timeout=WAIT)
            start = len(recorder.messages)
            for wanted in (delta, {"opening": opening}):
                message = {"event_id": new_event_id(), "timestamp": 1, "twin": {}, "delta": wanted}
                bus.publish(topic, json.dumps(message).encode())
            await recorder.wait_for(
                lambda m: (
                    on("twin/update")(m)
                    and body(m)["twin"].get("opening", {}).get("actual", {}).get("value") == opening
                ),
                timeout=WAIT,
                after=start,
            )
            tg.cancel_scope.cancel()
    return [m for m in recorder.messages[start:] if on("twin/update")(m)]


async def test_a_delta_of_unknown_properties_costs_one_warning_and_no_message(
    tmp_path: Path, mqtt_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "edgedev.mapper")
    junk = {f"p{n}": "1" for n in range(20_000)}
    answers = await delta_then_good(tmp_path, mqtt_url, junk, "7")
    assert not any(set(body(m)["twin"]) - {"opening", "flow"} for m in answers)
    ignored = [r for r in caplog.records if "ignored a delta" in r.getMessage()]
    assert len(ignored) == 1 and "20000 properties" in ignored[0].getMessage()


async def test_a_delta_of_refused_values_is_answered_with_one_message(
    tmp_path: Path, mqtt_url: str
) -> None:
    bad = {"opening": "nan", "flow": "3"}  # not finite; ReadOnly
    answers = await delta_then_good(tmp_path, mqtt_url, bad, "8")
    errors = [
        body(m)["twin"] for m in answers if any("error" in e for e in body(m)["twin"].values())
    ]
    assert len(errors) == 1, errors
    assert set(errors[0]) == {"opening", "flow"}
    assert "finite" in errors[0]["opening"]["error"]["reason"]
    assert "ReadOnly" in errors[0]["flow"]["error"]["reason"]


BOMB = """\
apiVersion: devices.kubeedge.io/v1beta1
kind: DeviceModel
metadata: {name: bomb}
spec:
  protocol: modbus
  a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]
  a1: &a1 [*a0, *a0, *a0, *a0, *a0, *a0, *a0, *a0, *a0]
  a2: &a2 [*a1, *a1, *a1, *a1, *a1, *a1, *a1, *a1, *a1]
  a3: &a3 [*a2, *a2, *a2, *a2, *a2, *a2, *a2, *a2, *a2]
  a4: &a4 [*a3, *a3, *a3, *a3, *a3, *a3, *a3, *a3, *a3]
  a5: &a5 [*a4, *a4, *a4, *a4, *a4, *a4, *a4, *a4, *a4]
  a6: &a6 [*a5, *a5, *a5, *a5, *a5, *a5, *a5, *a5, *a5]
  a7: &a7 [*a6, *a6, *a6, *a6, *a6, *a6, *a6, *a6, *a6]
  a8: &a8 [*a7, *a7, *a7, *a7, *a7, *a7, *a7, *a7, *a7]
  properties: *a8
"""


def test_the_billion_laughs_fails_fast_naming_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMB)
    tracemalloc.start()
    cpu = time.process_time()
    try:
        with pytest.raises(ConfigError) as caught:
            load_devices([path])
        spent = time.process_time() - cpu
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert spent < 1.0 and peak < 100 * 2**20, (spent, peak)
    message = str(caught.value)
    assert str(path) in message and "line 11" in message and "nodes" in message


def test_an_oversized_file_is_refused_before_parsing(tmp_path: Path) -> None:
    from edgedev.config._yaml import YAMLLimitError, load_all

    with pytest.raises(YAMLLimitError, match="over the limit of 100"):
        list(load_all("a: 1\n" * 30, max_text=100))


def _problems(tmp_path: Path, docs: list[dict[str, Any]]) -> tuple[str, set[str]]:
    path = write_documents(tmp_path, docs)
    with pytest.raises(ConfigError) as caught:
        load_devices([path])
    assert all(p.file == str(path) for p in caught.value.problems)
    return str(caught.value), {p.field or "" for p in caught.value.problems}


def test_validate_refuses_non_finite_and_out_of_range_values(tmp_path: Path) -> None:
    docs = valve_docs(free_port())
    model, dev = docs
    model["spec"]["properties"] += [
        {"name": "lo", "type": "INT", "minimum": "10", "maximum": "5"},
        {"name": "nanbound", "type": "FLOAT", "minimum": float("nan")},
        {"name": "word", "type": "INT"},
    ]
    props = dev["spec"]["properties"]
    props[0]["desired"] = {"value": "150"}  # opening: above its maximum 100
    props[1]["visitors"]["configData"]["scale"] = float("nan")
    regs = {"register": "HoldingRegister", "limit": 1, "dataType": "int16"}
    props += [
        device_property("lo", "modbus", 200, {**regs, "offset": 10}),
        device_property("nanbound", "modbus", 200, {**regs, "offset": 11}),
        {
            **device_property("word", "modbus", 200, {**regs, "offset": 13}),
            "desired": {"value": "40000"},
        },
    ]
    text, fields = _problems(tmp_path, docs)
    assert "spec.properties[1].visitors.configData.scale" in fields, text
    assert "scale must be a finite non-zero number" in text
    assert "minimum 10 is greater than maximum 5" in text
    assert "'nan' is not a finite number" in text
    assert "spec.properties[0].desired.value" in fields and "150 is above the maximum 100" in text
    # the desired-value rule: the driver says an int16 holds no 40000
    assert "spec.properties[4].desired.value" in fields, text
    assert "desired value: 40000 cannot be written" in text and "does not fit int16" in text
    assert text.count("(Device default/valve)") == 5, text


@pytest.mark.parametrize("ip", ["999.1.1.1", "10.0.0", "not an address", "host_name", ""])
def test_validate_refuses_a_malformed_ip(tmp_path: Path, ip: str) -> None:
    docs = valve_docs(free_port())
    docs[1]["spec"]["protocol"]["configData"]["ip"] = ip
    text, fields = _problems(tmp_path, docs)
    assert fields == {"spec.protocol.configData.ip"} and "(Device default/valve)" in text, text


async def test_validate_command_exits_1_naming_the_field(tmp_path: Path) -> None:
    docs = valve_docs(free_port())
    docs[1]["spec"]["properties"][0]["desired"] = {"value": "nan"}
    path = write_documents(tmp_path, docs)
    done = await anyio.run_process(
        [sys.executable, "-m", "edgedev", "validate", "-f", str(path)], check=False, stderr=-2
    )
    out = done.stdout.decode()
    assert done.returncode == 1, out
    assert "desired.value" in out and "finite" in out and VALVE in out


# the mapper socket (issue 32) -------------------------------------------------------------


def _run_dmi(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    args = ["run", "--dmi", "--protocol", "modbus", "--mapper-socket", str(path)]
    code = main([*args, "--dmi-socket", str(path.parent / "edgecore.sock")])
    return code, capsys.readouterr().err


def test_a_live_mapper_socket_is_left_alone_and_the_second_mapper_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """On main the second mapper unlinked the first one's socket and both polled devices."""
    path = tmp_path / "mapper.sock"
    with socket.socket(socket.AF_UNIX) as first:
        first.bind(str(path))
        first.listen()
        code, err = _run_dmi(path, capsys)
        assert code == 1
        assert err.strip().splitlines() == [
            f"error: mapper socket {path} is already in use: another mapper serves it (stop "
            "it, or choose another --mapper-socket)"
        ]
        assert path.is_socket()  # still the first one's


@pytest.mark.parametrize("kind", ["file", "folder", "dangling symlink"])
def test_a_mapper_socket_path_that_is_not_a_socket_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    """On main a file or a dangling symlink there ended in a 65-line traceback."""
    path = tmp_path / "mapper.sock"
    if kind == "file":
        path.write_text("mine")
    elif kind == "folder":
        path.mkdir()
    else:
        path.symlink_to(tmp_path / "nowhere")
    code, err = _run_dmi(path, capsys)
    assert code == 1
    (line,) = err.strip().splitlines()
    assert line.startswith(f"error: mapper socket {path} is ") and "Traceback" not in err
    assert os.path.lexists(path)  # nothing removed that the mapper did not make


def test_a_stale_socket_is_replaced_with_mode_0660_in_folders_0750_at_umask_000(
    tmp_path: Path,
) -> None:
    """On main, at umask 000, the socket and its folders were world-writable."""
    stale = tmp_path / "run" / "mapper.sock"
    stale.parent.mkdir()
    with socket.socket(socket.AF_UNIX) as old:  # a killed run's socket: nobody accepts on it
        old.bind(str(stale))
    fresh = tmp_path / "fresh" / "deeper" / "mapper.sock"
    for target in (stale, fresh):
        args = [sys.executable, "-m", "edgedev", "run", "--dmi", "--protocol", "modbus"]
        args += ["--mapper-socket", str(target), "--dmi-socket", str(tmp_path / "ec.sock")]
        args += ["--broker", "mqtt://127.0.0.1:1"]
        proc = subprocess.Popen(
            args,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=lambda: os.umask(0),
        )
        try:
            deadline = time.monotonic() + 30
            while not _served(target):  # another process: poll its socket
                assert time.monotonic() < deadline, f"{target} never served with mode 0660"
                assert proc.poll() is None, "the mapper exited"
                time.sleep(0.05)
        finally:
            proc.terminate()
            proc.wait(15)
    for folder in (fresh.parent, fresh.parent.parent):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o750


def _served(path: Path) -> bool:
    """Whether a process accepts on the socket at ``path`` and its mode is 0660."""
    try:
        if stat.S_IMODE(path.stat().st_mode) != 0o660:
            return False
    except FileNotFoundError:
        return False
    with socket.socket(socket.AF_UNIX) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True
