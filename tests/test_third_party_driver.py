"""A driver written outside edgedev (examples/edgedev-example-driver) works with no change to it.

`edgedev simulate` and `edgedev run` run as processes, exactly as a user starts them, and the
twin updates travel through the real broker.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from edgedev import Bus, drivers, simulators
from edgedev.bus import Message, Topics
from edgedev.testing import Recorder, edgedev_process, free_port, topic_endswith, wait_for_port

pytestmark = [pytest.mark.broker, pytest.mark.needs("edgedev_linetcp")]

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "edgedev-example-driver"
DEVICE = "demo/greenhouse-1"


def device_file(tmp_path: Path, port: int) -> Path:
    """The example's device.yaml, on a free port."""
    text = (EXAMPLE / "device.yaml").read_text(encoding="utf-8")
    path = tmp_path / "greenhouse.yaml"
    path.write_text(text.replace("port: 5300", f"port: {port}"), encoding="utf-8")
    return path


def reported(prop: str, check: Callable[[str], bool]) -> Callable[[Message], bool]:
    """A predicate: a twin/update whose ``prop`` has an actual value passing ``check``."""

    def predicate(message: Message) -> bool:
        if not message.topic.endswith("/twin/update"):
            return False
        twin = json.loads(message.payload).get("twin", {})
        entry = twin.get(prop) or {}
        value = entry.get("actual", {}).get("value")
        return value is not None and check(value)

    return predicate


def test_third_party_driver_is_found_through_its_entry_points() -> None:
    (point,) = [p for p in entry_points(group="edgedev.drivers") if p.name == "linetcp"]
    assert point.dist is not None and point.dist.name == "edgedev-example-driver"
    assert drivers.get("linetcp").__module__ == "edgedev_linetcp.driver"
    assert simulators.get("linetcp").__module__ == "edgedev_linetcp.simulator"


def test_third_party_driver_validates_with_the_cli(tmp_path: Path) -> None:
    good = subprocess.run(
        [sys.executable, "-m", "edgedev", "validate", "-f", str(EXAMPLE / "device.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert good.returncode == 0, good.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        (EXAMPLE / "device.yaml").read_text(encoding="utf-8").replace("key: vent", "key: 'v e'"),
        encoding="utf-8",
    )
    refused = subprocess.run(
        [sys.executable, "-m", "edgedev", "validate", "-f", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode == 1
    assert "greenhouse-1" in refused.stderr and "key" in refused.stderr


async def test_third_party_driver_reports_and_writes_through_a_real_broker(
    tmp_path: Path, mqtt_url: str
) -> None:
    port = free_port()
    path = device_file(tmp_path, port)
    topics = Topics(f"thirdparty-{uuid.uuid4().hex[:8]}")
    with edgedev_process("simulate", "-f", str(path), output=False):
        wait_for_port("127.0.0.1", port, timeout=30)
        async with Bus(mqtt_url) as bus, Recorder(bus, f"{topics.root}/device/#") as recorder:
            run = ("run", "-f", str(path), "--broker", mqtt_url, "--topic-root", topics.root)
            with edgedev_process(*run, output=False):
                first = await recorder.wait_for(
                    reported("temperature", lambda v: 15 <= float(v) <= 30), timeout=30
                )
                assert first.topic == f"{topics.root}/device/{DEVICE}/twin/update"
                twin = json.loads(first.payload)["twin"]
                assert twin["temperature"]["metadata"]["type"] == "float"
                await recorder.wait_for(topic_endswith("/state/update"), timeout=30)

                # A desired value from the cloud: the mapper writes it and reports it back.
                delta = {"event_id": "e1", "timestamp": 0, "twin": {}, "delta": {"vent": "55"}}
                bus.publish(f"{topics.root}/device/{DEVICE}/twin/update/delta", json.dumps(delta))
                await recorder.wait_for(reported("vent", lambda v: v == "55"), timeout=30)
