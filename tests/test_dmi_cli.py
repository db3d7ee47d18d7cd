"""``edgedev run --dmi`` as a process against a fake EdgeCore: the acceptance path of issue 12."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import anyio
import pytest

from dmi_helpers import modbus_device, modbus_model, socket_dir
from edgedev.cli import main
from edgedev.dmi import pb
from edgedev.testing import free_port, load_documents
from edgedev.testing.dmi import FakeEdgeCore, edgecore_device
from edgedev_modbus import ModbusSimulator
from edgedev_modbus.codec import Table

pytestmark = pytest.mark.slow
WRITES = frozenset({5, 6, 15, 16})


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
    docs = [modbus_model(), modbus_device("cli-1", port)]
    sim = ModbusSimulator(load_documents(tmp_path, docs))
    health = free_port()
    with socket_dir() as sockets:
        core = FakeEdgeCore(f"{sockets}/dmi.sock", devices=docs[1:], models=docs[:1])
        env = {
            **os.environ,
            "EDGEDEV_DMI": "1",
            "EDGEDEV_PROTOCOLS": "modbus",
            "EDGEDEV_DMI_SOCKET": core.socket,
            "EDGEDEV_MAPPER_SOCKET": f"{sockets}/edgedev-{{protocol}}.sock",
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

                        wanted = edgecore_device(modbus_device("cli-1", port, setpoint="12.5"))
                        async with core.mapper() as client:
                            await client.UpdateDevice(pb.UpdateDeviceRequest(device=wanted))
                        await core.wait_for(
                            lambda: core.reported("default/cli-1").get("setpoint") == "12.5"
                        )
                        assert sim.words("default/cli-1", Table.HOLDING, 0, 1) == [125]
                        written = [r for r in sim.requests if r.function in WRITES]
                        assert len(written) == 1

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
