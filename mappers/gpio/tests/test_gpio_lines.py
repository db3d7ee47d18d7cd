"""Pins on gpiozero's MockFactory: active levels, pulls, outputs and PWM, edge callbacks."""

from __future__ import annotations

from typing import Any

import pytest
from gpio_helpers import unique
from hypothesis import assume, example, given
from hypothesis import strategies as st

from edgedev import DeviceError, WriteRefused
from edgedev_gpio import GpioVisitor, SimulateConfig, boards
from edgedev_gpio.lines import DigitalInput, open_line
from edgedev_gpio.patterns import level_at, next_change


def visitor(**data: Any) -> GpioVisitor:
    return GpioVisitor.model_validate(data)


@pytest.mark.parametrize(
    ("config", "pressed_level"),
    [
        ({"pull": "up"}, "low"),  # button to ground: active low by default
        ({"pull": "up", "activeHigh": True}, "high"),
        ({"pull": "down"}, "high"),
        ({"pull": "down", "activeHigh": False}, "low"),
        ({"pull": "none", "activeHigh": False}, "low"),
        ({}, "high"),
    ],
)
def test_an_input_reads_active_at_the_level_its_settings_say(
    config: dict[str, Any], pressed_level: str
):
    with boards.mock(unique("lines")) as board:
        line = open_line(board, visitor(pin=17, **config))
        assert isinstance(line, DigitalInput)
        seen: list[bool] = []
        line.on_change(seen.append)
        pin = board.factory.pin(17)
        active, inactive = (
            (pin.drive_low, pin.drive_high)
            if pressed_level == "low"
            else (pin.drive_high, pin.drive_low)
        )
        inactive()
        assert line.read() is False
        active()
        assert line.read() is True
        inactive()
        assert seen[-2:] == [True, False]
        line.close()


def test_outputs_and_pwm_drive_their_pins_and_read_back():
    with boards.mock(unique("lines")) as board:
        relay = open_line(board, visitor(pin=27, direction="out", activeHigh=False))
        lamp = open_line(board, visitor(pin=18, direction="pwm", pwmFrequency=250), 0.2)
        assert board.factory.pin(27).state == 1  # off, active low
        assert board.factory.pin(18).state == pytest.approx(0.2)
        relay.write(True)
        lamp.write(0.75)
        assert board.factory.pin(27).state == 0
        assert (relay.read(), lamp.read()) == (True, 0.75)
        assert board.factory.pin(18).frequency == 250
        with pytest.raises(WriteRefused):
            lamp.write(1.5)
        with pytest.raises(WriteRefused):
            relay.write(0.5)
        relay.close()
        lamp.close()


def test_a_pin_claimed_twice_is_a_device_error():
    with boards.mock(unique("lines")) as board:
        first = open_line(board, visitor(pin=5, direction="out"))
        with pytest.raises(DeviceError, match="GPIO5"):
            open_line(board, visitor(pin=5))
        first.close()
        open_line(board, visitor(pin=5)).close()  # free again


def test_an_input_refuses_writes():
    with boards.mock(unique("lines")) as board:
        line = open_line(board, visitor(pin=6))
        with pytest.raises(WriteRefused, match="input"):
            line.write(True)
        line.close()


@given(
    pattern=st.sampled_from(["toggle", "pulse"]),
    period=st.integers(2, 5000),
    t=st.floats(0, 100, allow_nan=False),
)
@example(pattern="pulse", period=3, t=5.0)  # found by hypothesis: the edge and the level
@example(pattern="toggle", period=557, t=484.59)  # disagreed by one rounding of t / period
def test_the_level_holds_until_the_next_change_and_flips_there(pattern: str, period: int, t: float):
    config = SimulateConfig(pattern=pattern, period=period, width=max(1, period // 3))
    at = next_change(config, t)
    assert at > t
    before = t + (at - t) / 2
    assume(before < at)  # t one float step short of the change: no time lies between
    assert level_at(config, before) == level_at(config, t)
    after = at + 1e-7
    assert level_at(config, after) != level_at(config, t)
