"""Driving a simulated input: a pattern played into a mock pin, in real time.

Used by the ``gpio`` simulator and, when no simulator in the process drives a pin, by the
driver itself (see :meth:`edgedev_gpio.boards.Board.claim_pattern`). The timing comes from
:mod:`edgedev_gpio.patterns`, which is pure; this module only sleeps and drives. Simulated
MCP3008 channels follow :func:`edgedev.simulate.signals.signal` (:func:`analog_signal`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import anyio

from edgedev.drivers import PropertySpec
from edgedev.simulate.signals import signal
from edgedev_gpio.config import SimulateConfig
from edgedev_gpio.patterns import chatter, level_at, next_change


def drive_level(pin: Any, active: bool, active_high: bool) -> None:
    """Drive mock ``pin`` to the electrical level that logical ``active`` has.

    Does nothing when the pin is not an input (a misconfigured device claimed it as an
    output: driving it would raise inside gpiozero).
    """
    if pin.function != "input":
        return
    if active == active_high:
        pin.drive_high()
    else:
        pin.drive_low()


async def drive_pattern(
    pin: Any,
    config: SimulateConfig,
    active_high: bool,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Play ``config``'s pattern into ``pin`` until cancelled, chatter after each transition.

    Args:
        pin: a :class:`~gpiozero.pins.mock.MockPin` used as an input.
        config: the pattern.
        active_high: whether active is the high level (the visitor's ``activeHigh``).
        clock: the time source, seconds; the pattern starts at its current value.
    """
    start = clock()
    t = 0.0
    level = level_at(config, t)
    drive_level(pin, level, active_high)
    spacing = config.bounce_spacing / 1000
    while True:
        at = next_change(config, t)
        await anyio.sleep(max(0.0, at - (clock() - start)))
        t = at
        level = not level
        drive_level(pin, level, active_high)
        for bounce in chatter(config, level):
            await anyio.sleep(spacing)
            drive_level(pin, bounce, active_high)


def analog_signal(
    prop: PropertySpec, key: str, clock: Callable[[], float] = time.monotonic
) -> Callable[[], float]:
    """The simulated value of an MCP3008 channel over time, 0..1, starting now.

    Follows :func:`~edgedev.simulate.signals.signal` between the property's ``minimum`` and
    ``maximum`` clipped to 0..1 (the whole range when unset).

    Args:
        prop: the ADC property.
        key: what tells devices apart (the device id), so that their phases differ.
        clock: the time source, seconds.
    """
    low = max(0.0, prop.minimum or 0.0)
    high = min(1.0, 1.0 if prop.maximum is None else prop.maximum)
    scaled = replace(prop, minimum=low, maximum=high)
    start = clock()

    def value() -> float:
        return min(1.0, max(0.0, float(signal(scaled, clock() - start, key=key))))

    return value
