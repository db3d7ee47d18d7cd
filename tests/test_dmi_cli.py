"""``edgedev run --dmi`` as a process against a fake EdgeCore: the acceptance path of issue 12."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import yaml
from anyio.abc import ByteReceiveStream
from anyio.streams.text import TextReceiveStream

from dmi_helpers import modbus_device, modbus_model, socket_dir
from edgedev import Bus
from edgedev.bus import Message
from edgedev.cli import main
from edgedev.dmi import pb
from edgedev.testing import (
    Recorder,
    free_port,
    load_documents,
    topic_endswith,
    unique_root,
    write_documents,
)
from edgedev.testing.dmi import FakeEdgeCore, edgecore_device
from edgedev_modbus import ModbusSimulator
from edgedev_modbus.codec import Table

pytestmark = pytest.mark.slow
WRITES = frozenset({5, 6, 15, 16})


def with_method(document: dict[str, Any]) -> dict[str, Any]:
    document["spec"]["methods"] = [{"name": "Tune", "propertyNames": ["setpoint"]}]
    return document


async def readyz(port: int) -> int | None:
    """The status code of GET /readyz, or None when nothing answers yet."""
    try:
        async with await anyio.connect_tcp("127.0.0.1", port) as stream:
            await stream.send(b"GET /readyz HTTP/1.0\r\n\r\n")
            data = b""
            try:
                while True:
                    data += await stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                pass
    except OSError:
        return None
    return int(data.split()[1]) if data else None


async def wait_ready(port: int, expected: int) -> None:
    with anyio.fail_after(30):
        while await readyz(port) != expected:  # noqa: ASYNC110 (another process, over HTTP)
            await anyio.sleep(0.1)


async def test_run_dmi_registers_runs_writes_once_and_reports_offline_on_sigterm(
    tmp_path: Path, mqtt_url: str
):
    port = free_port()
    docs = [modbus_model(), with_method(modbus_device("cli-1", port))]
    sim = ModbusSimulator(load_documents(tmp_path, docs))
    health, rest = free_port(), free_port()
    with socket_dir() as sockets:
        core = FakeEdgeCore(f"{sockets}/dmi.sock", devices=docs[1:], models=docs[:1])
        env = {
            **os.environ,
            "EDGEDEV_DMI": "1",
            "EDGEDEV_PROTOCOLS": "modbus",
            "EDGEDEV_DMI_SOCKET": core.socket,
            "EDGEDEV_MAPPER_SOCKET": f"{sockets}/edgedev-{{protocol}}.sock",
            "EDGEDEV_REST_PORT": str(rest),
        }
        command = [sys.executable, "-m", "edgedev", "run", "--broker", mqtt_url]
        command += ["--topic-root", f"dmi-cli-{port}", "--health-port", str(health)]
        async with anyio.create_task_group() as tg:
            await tg.start(sim.run)
            async with await anyio.open_process(command, env=env) as process:
                try:
                    # EdgeCore is not there yet: not ready
                    await wait_ready(health, 503)
                    async with core:
                        await core.wait_for(lambda: bool(core.registrations), timeout=30)
                        await wait_ready(health, 200)
                        address = core.registrations[0].mapper.address.decode()
                        assert address == f"{sockets}/edgedev-modbus.sock"
                        await core.wait_for(lambda: "setpoint" in core.reported("default/cli-1"))

                        wanted = modbus_device("cli-1", port, setpoint="12.5")
                        wanted = edgecore_device(with_method(wanted))
                        async with core.mapper() as client:
                            await client.UpdateDevice(pb.UpdateDeviceRequest(device=wanted))
                        await core.wait_for(
                            lambda: core.reported("default/cli-1").get("setpoint") == "12.5"
                        )
                        assert sim.words("default/cli-1", Table.HOLDING, 0, 1) == [125]
                        written = [r for r in sim.requests if r.function in WRITES]
                        assert len(written) == 1

                        # the REST API serves the devices EdgeCore sent, methods included
                        url = f"http://127.0.0.1:{rest}/api/v1/devicemethod/default/cli-1"
                        async with httpx.AsyncClient() as http:
                            answer = await http.get(f"{url}/Tune/setpoint/13.5")
                        assert answer.status_code == 200, answer.text
                        assert sim.words("default/cli-1", Table.HOLDING, 0, 1) == [135]
                        written = [r for r in sim.requests if r.function in WRITES]
                        assert len(written) == 2

                        process.send_signal(signal.SIGTERM)
                        with anyio.fail_after(20):
                            code = await process.wait()
                        assert code == 0
                        assert core.state_of("default/cli-1") == "offline"
                finally:
                    if process.returncode is None:
                        process.kill()
            tg.cancel_scope.cancel()


def test_run_without_files_or_dmi_is_an_error(capsys: pytest.CaptureFixture[str]):
    assert main(["run"]) == 2
    assert "--dmi" in capsys.readouterr().err
    assert main(["run", "--dmi"]) == 2
    assert "--protocol" in capsys.readouterr().err


def state_update(device: str, state: str) -> Callable[[Message], bool]:
    def check(message: Message) -> bool:
        return (
            message.topic.endswith(f"/device/{device}/state/update")
            and json.loads(message.payload)["state"] == state
        )

    return check


async def test_sighup_reloads_the_files_and_leaves_the_devices_edgecore_gave_alone(
    tmp_path: Path, mqtt_url: str
):
    model = modbus_model()
    edgecores = modbus_device("dmi-1", free_port())
    first, second = (modbus_device(n, free_port(), cycle=100) for n in ("file-1", "file-2"))
    sim = ModbusSimulator(load_documents(tmp_path, [model, edgecores, first, second]))
    path = write_documents(tmp_path, [model, first])
    root = unique_root("dmi-hup")
    with socket_dir() as sockets:
        core = FakeEdgeCore(f"{sockets}/dmi.sock", devices=[edgecores], models=[model])
        command = [sys.executable, "-m", "edgedev", "run", "-f", str(path), "--dmi"]
        command += ["--protocol", "modbus", "--dmi-socket", core.socket]
        command += ["--mapper-socket", f"{sockets}/edgedev-{{protocol}}.sock"]
        command += ["--broker", mqtt_url, "--topic-root", root]
        reloads: list[str] = []
        reloaded = anyio.Event()

        async def read_log(stream: ByteReceiveStream) -> None:
            async for line in TextReceiveStream(stream):
                if "reloaded" in line:
                    reloads.append(line)
                    reloaded.set()

        async with (
            anyio.create_task_group() as tg,
            core,
            Bus(mqtt_url) as bus,
            Recorder(bus, f"{root}/#") as recorder,
        ):
            await tg.start(sim.run)
            async with (
                await anyio.open_process(command, stderr=subprocess.PIPE) as process,
                anyio.create_task_group() as reading,
            ):
                assert process.stderr is not None
                reading.start_soon(read_log, process.stderr)
                try:
                    await core.wait_for(lambda: "setpoint" in core.reported("default/dmi-1"), 30)
                    await recorder.wait_for(
                        topic_endswith("/default/file-1/twin/update"), timeout=30
                    )
                    # file-1 goes, file-2 comes, and the file names EdgeCore's device too (at a
                    # port where nothing listens): EdgeCore's stays as EdgeCore gave it
                    taken = modbus_device("dmi-1", free_port())
                    path.write_text(yaml.safe_dump_all([model, second, taken], sort_keys=False))
                    mark = len(recorder.messages)
                    process.send_signal(signal.SIGHUP)
                    with anyio.fail_after(30):
                        await reloaded.wait()
                    assert "1 added, 0 updated, 1 removed" in reloads[0], reloads
                    await recorder.wait_for(
                        topic_endswith("/default/file-2/twin/update"), after=mark, timeout=30
                    )
                    await recorder.wait_for(
                        state_update("default/file-1", "offline"), after=mark, timeout=30
                    )
                    # EdgeCore's device was never stopped
                    assert core.state_of("default/dmi-1") == "online"
                    assert all(s.state == "online" for s in core.states if s.deviceName == "dmi-1")
                    offline = state_update("default/dmi-1", "offline")
                    assert not any(offline(m) for m in recorder.messages)
                finally:
                    reading.cancel_scope.cancel()
                    if process.returncode is None:
                        process.kill()
            tg.cancel_scope.cancel()
