"""The GPIO mapper on gpiozero's MockFactory against a real broker: edges, debounce, writes."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml
from gpio_helpers import (
    delta,
    device,
    load,
    model,
    prop,
    reports,
    running,
    twin_values,
    unique,
    visit,
    write_error,
)

from edgedev import DeviceSpec
from edgedev.testing import docs_example, free_port
from edgedev_gpio import GpioSimulator

pytestmark = pytest.mark.broker

TIMEOUT = 20.0
PAGE = Path(__file__).resolve().parents[3] / "docs" / "protocols" / "gpio.md"
TYPES = {"button": "boolean", "relay": "boolean", "lamp": "float", "door": "boolean"}


def panel(
    tmp_path: Path,
    mock_name: str,
    *,
    bounce: int = 0,
    button_cycle: int = 600_000,
    simulate: dict[str, Any] | None = None,
) -> DeviceSpec:
    """A button (GPIO17, pull-up), an active-low relay (GPIO27), a PWM lamp (GPIO18), and
    a door contact (GPIO22) that the model leaves ReadWrite."""
    button: dict[str, Any] = {"pin": 17, "direction": "in", "pull": "up", "bounceTime": bounce}
    if simulate is not None:
        button["simulate"] = simulate
    (spec,) = load(
        tmp_path,
        [
            model(
                "panel",
                [
                    prop("button", access="ReadOnly"),
                    prop("relay"),
                    prop("lamp", "FLOAT", minimum="0", maximum="1"),
                    prop("door"),
                ],
            ),
            device(
                "panel-1",
                "panel",
                [
                    visit("button", button_cycle, **button),
                    visit("relay", 600_000, pin=27, direction="out", activeHigh=False),
                    visit("lamp", 600_000, pin=18, direction="pwm", pwmFrequency=500),
                    visit("door", 600_000, pin=22, direction="in", pull="down"),
                ],
                pinFactory="mock",
                mockName=mock_name,
            ),
        ],
    )
    return spec


def button_values(recorder: Any, after: int = 0) -> list[str]:
    return [twin_values(m)["button"] for m in recorder.messages[after:] if reports("button")(m)]


async def test_an_input_edge_is_reported_at_once_in_one_message(tmp_path: Path, mqtt_url: str):
    name, root = unique("mock"), unique("t")
    spec = panel(tmp_path, name)  # collectCycle 600 s: no periodic report can explain it
    async with running([spec], mqtt_url, root, name) as (board, _, _, recorder):
        first = await recorder.wait_for(reports("button"), timeout=TIMEOUT)
        assert twin_values(first)["button"] == "false"  # pulled up, not pressed
        before = len(recorder.messages)
        # pressed: the button shorts the pin to ground. Driven from another thread, as
        # lgpio's and RPi.GPIO's callback threads call gpiozero on real pins.
        await anyio.to_thread.run_sync(board.factory.pin(17).drive_low)
        pressed = await recorder.wait_for(reports("button"), after=before, timeout=TIMEOUT)
        assert twin_values(pressed) == {"button": "true"}
        assert pressed.topic == f"{root}/device/default/panel-1/twin/update"
        before = len(recorder.messages)
        board.factory.pin(17).drive_high()
        released = await recorder.wait_for(reports("button"), after=before, timeout=TIMEOUT)
        assert twin_values(released) == {"button": "false"}


async def test_contact_bounce_within_bounce_time_gives_one_report(tmp_path: Path, mqtt_url: str):
    name, root = unique("mock"), unique("t")
    spec = panel(tmp_path, name, bounce=300)
    async with running([spec], mqtt_url, root, name) as (board, _, _, recorder):
        await recorder.wait_for(reports("button"), timeout=TIMEOUT)
        pin = board.factory.pin(17)
        before = len(recorder.messages)
        for _ in range(5):  # a press that chatters five times before it settles
            pin.drive_low()
            pin.drive_high()
        pin.drive_low()
        await recorder.wait_for(reports("button", "true"), after=before, timeout=TIMEOUT)
        pin.drive_high()  # the release, reported at once or when the bounce window ends
        await recorder.wait_for(reports("button", "false"), after=before, timeout=TIMEOUT)
        assert button_values(recorder, before) == ["true", "false"]


async def test_collect_cycle_still_reports_an_input_that_does_not_change(
    tmp_path: Path, mqtt_url: str
):
    name, root = unique("mock"), unique("t")
    spec = panel(tmp_path, name, button_cycle=300)
    async with running([spec], mqtt_url, root, name) as (_, _, _, recorder):
        found = await recorder.wait_count(reports("button", "false"), 3, timeout=TIMEOUT)
        # after the first report (shared with the outputs' first reads), the button's own
        assert all(twin_values(m) == {"button": "false"} for m in found[1:])


async def test_desired_values_from_a_delta_switch_the_relay_and_set_the_pwm_duty(
    tmp_path: Path, mqtt_url: str
):
    name, root = unique("mock"), unique("t")
    spec = panel(tmp_path, name)
    async with running([spec], mqtt_url, root, name) as (board, _, bus, recorder):
        first = await recorder.wait_for(reports("relay"), timeout=TIMEOUT)
        assert twin_values(first)["relay"] == "false"
        relay, lamp = board.factory.pin(27), board.factory.pin(18)
        assert relay.state == 1  # active low: off is high
        before = len(recorder.messages)
        bus.publish(
            f"{root}/device/default/panel-1/twin/update/delta",
            delta({"relay": "true", "lamp": "0.5"}, TYPES),
        )
        await recorder.wait_for(reports("relay", "true"), after=before, timeout=TIMEOUT)
        await recorder.wait_for(reports("lamp", "0.5"), after=before, timeout=TIMEOUT)
        assert relay.state == 0  # on: driven low
        assert lamp.state == 0.5
        assert lamp.frequency == 500


async def test_an_input_refuses_writes(tmp_path: Path, mqtt_url: str):
    name, root = unique("mock"), unique("t")
    spec = panel(tmp_path, name)
    async with running([spec], mqtt_url, root, name) as (board, mapper, bus, recorder):
        await recorder.wait_for(reports("button"), timeout=TIMEOUT)
        before = len(recorder.messages)
        bus.publish(
            f"{root}/device/default/panel-1/twin/update/delta",
            delta({"button": "true", "relay": "true"}, TYPES),
        )
        refused = await recorder.wait_for(
            lambda m: write_error(m, "button") is not None, after=before, timeout=TIMEOUT
        )
        error = write_error(refused, "button")
        assert error is not None
        assert "ReadOnly" in error["reason"]
        assert error["retry"] is False
        await recorder.wait_for(reports("relay", "true"), after=before, timeout=TIMEOUT)
        # declared ReadWrite in the model, but a pin set up as an input: the driver refuses
        result = await mapper.runners["default/panel-1"].desired.write("door", "true")
        assert not result.ok
        assert "is an input" in (result.reason or "")
        assert board.factory.pin(17).function == "input"
        assert board.factory.pin(22).function == "input"
        assert "true" not in button_values(recorder, before)


async def test_a_separately_started_mapper_drives_mock_patterns_itself(
    tmp_path: Path, mqtt_url: str, caplog: Any
):
    name, root = unique("mock"), unique("t")
    pattern = {"pattern": "pulse", "period": 800, "width": 300, "bounce": 3}
    spec = panel(tmp_path, name, bounce=200, simulate=pattern)  # generous: a busy CI box
    caplog.set_level(logging.INFO, logger="edgedev.gpio")
    async with running([spec], mqtt_url, root, name) as (_, _, _, recorder):
        found = await recorder.wait_count(reports("button"), 5, timeout=TIMEOUT)
    values = [twin_values(m)["button"] for m in found]
    assert values == ["false", "true", "false", "true", "false"]  # chatter debounced away
    assert any("driving the pulse pattern" in r.getMessage() for r in caplog.records)


async def test_the_demo_panel_presses_its_button_and_takes_a_relay_write(
    tmp_path: Path, mqtt_url: str, caplog: Any
):
    root = unique("t")
    path = tmp_path / "gpio-demo.yaml"
    path.write_text(GpioSimulator.demo_yaml(free_port))
    specs = load_devices_from(path)
    assert [s.id for s in specs] == ["demo/gpio-panel"]
    assert {p.name for p in specs[0].properties} == {"button", "relay", "lamp", "light"}
    caplog.set_level(logging.INFO, logger="edgedev.gpio")
    async with running(specs, mqtt_url, root, "demo", simulator=True) as (board, _, bus, rec):
        await rec.wait_for(reports("button", "true"), timeout=TIMEOUT)
        before = len(rec.messages)
        bus.publish(
            f"{root}/device/demo/gpio-panel/twin/update/delta",
            delta({"relay": "true"}, TYPES),
        )
        await rec.wait_for(reports("relay", "true"), after=before, timeout=TIMEOUT)
        assert board.factory.pin(27).state == 1
        light = await rec.wait_for(reports("light"), timeout=TIMEOUT)
        assert 0.1 <= float(twin_values(light)["light"]) <= 0.9
        presses = await rec.wait_count(reports("button", "true"), 2, timeout=TIMEOUT)
    assert len(presses) >= 2
    # the simulator drives the button; the mapper's driver only watches it
    assert not any("driving the" in r.getMessage() for r in caplog.records)


def load_devices_from(path: Path) -> list[DeviceSpec]:
    from edgedev import load_devices

    return load_devices([path])


async def test_a_mock_mcp3008_channel_follows_a_signal_without_a_simulator(
    tmp_path: Path, mqtt_url: str
):
    """The MCP3008 example of docs/protocols/gpio.md, as written, on the mock pin factory:
    the channel follows a signal between the property's minimum and maximum."""
    name, root = unique("mock"), unique("t")
    light = yaml.safe_load(docs_example(PAGE, "gpio-light"))
    (spec,) = load(
        tmp_path,
        [
            model("adc", [prop("light", "FLOAT", access="ReadOnly", minimum="0.2", maximum="0.6")]),
            device("panel", "adc", light, pinFactory="mock", mockName=name),
        ],
    )
    assert spec.property("light").collect_cycle == 0.5
    async with running([spec], mqtt_url, root, name) as (_, _, _, recorder):
        seen: set[float] = set()
        after = 0
        while len(seen) < 2:
            message = await recorder.wait_for(reports("light"), after=after, timeout=TIMEOUT)
            after = recorder.messages.index(message) + 1
            seen.add(float(twin_values(message)["light"]))
    assert all(0.2 <= v <= 0.6 for v in seen), seen
