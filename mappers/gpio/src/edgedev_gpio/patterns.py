"""Input patterns for simulated pins, as pure functions of the time (seconds since start).

``toggle``: inactive for ``period``, active for ``period``, and so on (a square wave whose
half-period is ``period``). ``pulse``: a pulse train, active during the last ``width`` of
every ``period`` (so the first pulse comes ``period - width`` after the start).
"""

from __future__ import annotations

import math

from edgedev_gpio.config import Pattern, SimulateConfig


def level_at(config: SimulateConfig, t: float) -> bool:
    """The logical level (``True`` = active) the pattern has at time ``t`` >= 0."""
    period = config.period / 1000
    if config.pattern is Pattern.TOGGLE:
        return math.floor(t / period) % 2 == 1
    phase = t - math.floor(t / period) * period  # as next_change() counts periods (not %)
    return phase >= period - config.width / 1000


def next_change(config: SimulateConfig, t: float) -> float:
    """The time of the pattern's first transition strictly after ``t`` >= 0."""
    period = config.period / 1000
    if config.pattern is Pattern.TOGGLE:
        return (math.floor(t / period) + 1) * period
    start = math.floor(t / period) * period
    for edge in (start + period - config.width / 1000, start + period):
        if edge > t:
            return edge
    return start + 2 * period - config.width / 1000  # pragma: no cover - float rounding


def chatter(config: SimulateConfig, level: bool) -> list[bool]:
    """The levels to drive right after a transition to ``level``.

    ``bounce`` brief returns to the previous level, ending at ``level``.
    """
    return [not level, level] * config.bounce
