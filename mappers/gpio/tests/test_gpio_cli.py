"""The command line on examples/gpio.yaml: `validate`, `run` (a mapper alone), `simulate`."""

from __future__ import annotations

import selectors
import subprocess
import sys
import time
from pathlib import Path

import pytest
from gpio_helpers import delta, recorder_ready, reports, unique

from edgedev import Bus
from edgedev.testing import Recorder, edgedev_process

pytestmark = pytest.mark.broker

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "gpio.yaml"
TIMEOUT = 30.0


def test_the_example_validates():
    done = subprocess.run(
        [sys.executable, "-m", "edgedev", "validate", "-f", str(EXAMPLE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_validate_names_file_device_and_field_of_a_gpio_mistake(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(EXAMPLE.read_text().replace("pin: 4", "pin: 17"))
    done = subprocess.run(
        [sys.executable, "-m", "edgedev", "validate", "-f", str(bad)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    out = done.stdout + done.stderr
    assert "bad.yaml" in out
    assert "demo/pi-panel-1" in out
    assert "spec.properties[1].visitors.configData.pin" in out


async def test_a_mapper_started_alone_reports_the_simulated_button_and_takes_writes(
    mqtt_url: str,
):
    root = unique("t")
    async with Bus(mqtt_url) as bus, Recorder(bus, f"{root}/#") as recorder:
        await recorder_ready(bus)
        with edgedev_process("run", "-f", str(EXAMPLE), "--broker", mqtt_url, "--topic-root", root):
            await recorder.wait_for(reports("button", "true"), timeout=TIMEOUT)
            await recorder.wait_for(reports("motion", "true"), timeout=TIMEOUT)
            before = len(recorder.messages)
            bus.publish(
                f"{root}/device/demo/pi-panel-1/twin/update/delta",
                delta({"relay": "true", "led": "0.75"}, {"relay": "boolean", "led": "float"}),
            )
            await recorder.wait_for(reports("relay", "true"), after=before, timeout=TIMEOUT)
            await recorder.wait_for(reports("led", "0.75"), after=before, timeout=TIMEOUT)


def read_until(proc: subprocess.Popen[str], text: str, timeout: float) -> str:
    """Lines of ``proc``'s output up to the first containing ``text`` (fails after timeout)."""
    assert proc.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if not selector.select(deadline - time.monotonic()):
                break
            line = proc.stdout.readline()
            if not line:
                break
            seen.append(line)
            if text in line:
                return "".join(seen)
    raise AssertionError(f"no {text!r} in the output: {''.join(seen)}")


def test_simulate_accepts_the_example():
    with edgedev_process("simulate", "-f", str(EXAMPLE)) as proc:
        out = read_until(proc, "simulating 1 device:", TIMEOUT)
        assert "Traceback" not in out
        assert proc.poll() is None


def test_demo_shows_the_gpio_button_and_relay():
    done = subprocess.run(
        [sys.executable, "-m", "edgedev", "demo", "--seconds", "8"],
        capture_output=True,
        text=True,
        check=False,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    final = done.stdout.rsplit("DEVICE", 1)[-1]  # the last table printed
    panel = final.split("demo/gpio-panel", 1)[1].split("\ndemo/", 1)[0]
    assert " online " in panel
    for name in ("button", "relay", "lamp", "light"):
        assert f" {name} " in panel
