"""`edgedev discover gpio` on gpiozero's MockFactory: lines to a draft Device, which runs."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import jsonschema
import pytest
import yaml
from gpio_helpers import running, twin_values, unique
from gpiozero import LED

from edgedev.cli import main
from edgedev.loader import load_devices
from edgedev_gpio import boards
from edgedev_gpio.discover import Line, line_property

ROOT = Path(__file__).resolve().parents[3]
SCHEMA = json.loads((ROOT / "tests/data/kubeedge_v1beta1_devices.schema.json").read_text())


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (Line(4, "GPIO4", "i2c", used=True), "in use by i2c"),
        (Line(5, "GPIO5", output=True), "an output nobody holds"),
        (Line(60, "X"), "beyond the GPIO driver's pins"),
    ],
)
def test_lines_that_are_not_free_inputs_are_skipped(line: Line, reason: str) -> None:
    made = line_property(line)
    assert isinstance(made, str) and reason in made


def test_a_free_input_keeps_its_level_and_bias() -> None:
    made = line_property(Line(2, "GPIO2", pull="up", active_low=True, value=True))
    assert not isinstance(made, str)
    assert made.visitor == {"pin": 2, "direction": "in", "pull": "up", "activeHigh": False}
    assert made.description == "line 2 (GPIO2): input, high when discovered"
    assert line_property(Line(7)).name == "gpio7"  # type: ignore[union-attr]


@pytest.mark.broker
def test_a_mock_board_becomes_a_draft_that_runs(
    tmp_path: Path, mqtt_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "gpio.yaml"
    with boards.mock("discover") as board:
        factory = board.factory
        factory.pin(17).drive_high()
        factory.pin(22).drive_low()
        relay = LED(27, pin_factory=factory)  # held by a device: in use
        free_output = factory.pin(5)
        free_output.function = "output"
        args = ["discover", "gpio", "--pin-factory", "mock", "--mock-name", "discover"]
        assert main([*args, "-o", str(out)]) == 0
        summary = capsys.readouterr().err
        assert "line 27 (GPIO27): in use by LED" in summary
        assert "line 5 (GPIO5): an output nobody holds" in summary
        docs = [d for d in yaml.safe_load_all(out.read_text()) if d]
        for doc in docs:
            validator = jsonschema.Draft202012Validator(
                {**SCHEMA, "$ref": f"#/$defs/{doc['kind']}"}
            )
            assert [e.message for e in validator.iter_errors(doc)] == []
        assert main(["validate", "-f", str(out)]) == 0
        device = next(d for d in docs if d["kind"] == "Device")
        names = [p["name"] for p in device["spec"]["properties"]]
        assert "GPIO17" in names and "GPIO27" not in names and "GPIO5" not in names
        assert device["spec"]["protocol"]["configData"] == {
            "pinFactory": "mock",
            "mockName": "discover",
        }
        levels = {
            n: str(bool(factory.pin(int(n.removeprefix("GPIO"))).state)).lower() for n in names
        }
        assert levels["GPIO17"] == "true" and levels["GPIO22"] == "false"

        async def reported() -> dict[str, str]:
            specs = load_devices([out])
            root = unique("gpio-discover")
            async with running(specs, mqtt_url, root, "discover") as (_, _, _, recorder):
                values: dict[str, str] = {}

                def complete(message: object) -> bool:
                    values.update(twin_values(message))  # type: ignore[arg-type]
                    return set(names) <= set(values)

                await recorder.wait_for(
                    lambda m: m.topic.endswith("/twin/update") and complete(m), timeout=30
                )
                return values

        values = anyio.run(reported)
        relay.close()
    assert {n: values[n] for n in names} == levels
