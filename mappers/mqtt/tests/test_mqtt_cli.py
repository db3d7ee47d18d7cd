"""examples/mqtt.yaml on the command line: `validate`, then `simulate` and `run` as processes."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from edgedev import Bus
from edgedev.cli import main
from edgedev.testing import Recorder, edgedev_process, free_port, unique_root

pytestmark = pytest.mark.broker

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "mqtt.yaml"


def test_the_example_is_valid(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "-f", str(EXAMPLE)]) == 0
    assert "ok: 1 device, 4 properties" in capsys.readouterr().out


async def test_simulate_and_run_map_the_example(tmp_path: Path, mqtt_url: str) -> None:
    port = mqtt_url.rsplit(":", 1)[1]
    path = tmp_path / "mqtt.yaml"
    path.write_text(EXAMPLE.read_text(encoding="utf-8").replace("port: 1883", f"port: {port}"))
    root, rest = unique_root(), free_port()
    run = ["run", "-f", str(path), "--broker", mqtt_url, "--topic-root", root]
    async with Bus(mqtt_url) as bus, Recorder(bus, f"{root}/#") as recorder:
        with (
            edgedev_process("simulate", "-f", str(path), output=False),
            edgedev_process(*run, "--rest-port", str(rest), output=False),
        ):
            update = f"{root}/device/default/room-1/twin/update"
            report = await recorder.wait_for(
                lambda m: m.topic == update and b"humidity" in m.payload, timeout=30
            )
            twin = json.loads(report.payload)["twin"]
            assert {"temperature", "humidity", "setpoint"} <= twin.keys()  # one document
            # a method call through the REST API: published, taken by the simulator, reported
            url = f"http://127.0.0.1:{rest}/api/v1/devicemethod/default/room-1/Comfort/setpoint"
            async with httpx.AsyncClient() as http:
                answer = await http.put(url, json={"value": 23.5})
            assert answer.status_code == 200, answer.text
            await recorder.wait_for(
                lambda m: m.topic == update and b'"23.5"' in m.payload, timeout=10
            )
