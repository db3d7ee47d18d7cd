"""Input patterns for simulated pins, as pure functions of the time (seconds since start).

``toggle``: inactive for ``period``, active for ``period``, and so on (a square wave whose
half-period is ``period``). ``pulse``: a pulse train, active during the last ``width`` of
every ``period`` (so the first pulse comes ``period - width`` after the start).
"""

from __future__ import annotations

import math

from edgedev_gpio.config import Pattern, SimulateConfig


def _cycle(period: float, t: float) -> int:
    """The number of the period that holds ``t``: ``k * period <= t < (k + 1) * period``.

    Every edge is computed from this number the same way (``k * period``), so that the level
    and the next change agree to the last bit, however ``t / period`` rounds.
    """
    k = math.floor(t / period)
    if k * period > t:  # t / period rounded up to the next whole number
        k -= 1
    elif (k + 1) * period <= t:  # rounded down
        k += 1
    return k


def _pulse_rise(config: SimulateConfig, k: int) -> float:
    """When the PULSE pattern's pulse of period ``k`` starts (it ends with the period)."""
    period = config.period / 1000
    return k * period + (period - config.width / 1000)


def level_at(config: SimulateConfig, t: float) -> bool:
    """The logical level (``True`` = active) the pattern has at time ``t`` >= 0."""
    k = _cycle(config.period / 1000, t)
    if config.pattern is Pattern.TOGGLE:
        return k % 2 == 1
    return t >= _pulse_rise(config, k)


def next_change(config: SimulateConfig, t: float) -> float:
    """The time of the pattern's first transition strictly after ``t`` >= 0."""
    period = config.period / 1000
    k = _cycle(period, t)
    if config.pattern is Pattern.TOGGLE:
        return (k + 1) * period
    rise = _pulse_rise(config, k)
    return rise if rise > t else (k + 1) * period


def chatter(config: SimulateConfig, level: bool) -> list[bool]:
    """The levels to drive right after a transition to ``level``.

    ``bounce`` brief returns to the previous level, ending at ``level``.
    """
    return [not level, level] * config.bounce
