"""Debouncing of one digital input, as a pure state machine: levels and times in, reports out.

The driver feeds it every edge the pin factory saw (with the time it was seen) and asks it
for a deadline to wake up at; no clock, no I/O, so the same logic runs on every pin factory
(gpiozero's own ``bounce_time`` differs between factories and is not implemented by its
``MockFactory``).

Leading-edge debounce with a settle check::

    state        event                         action
    ----------   ---------------------------   -------------------------------------------
    idle         edge to a new level           report it now, quiet until t + window
    idle         edge to the reported level    nothing (a glitch shorter than one edge)
    quiet        any edge                      remember the level, report nothing (bounce)
    quiet        window over, level differs    report the level, quiet again (it settled)
    quiet        window over, level same       back to idle

A press is therefore reported at the first edge, without waiting for the contact to settle,
and a release that happened inside the window is not lost: it is reported when the window
ends.
"""

from __future__ import annotations


class Debouncer:
    """Debounces one input.

    Args:
        window: seconds after a reported edge during which further edges are bounce;
            0 reports every change.
        level: the level the input has now, taken as already reported.
    """

    __slots__ = ("_level", "_quiet_until", "_stable", "bounced", "window")

    def __init__(self, window: float, level: bool) -> None:
        if window < 0:
            raise ValueError(f"window must be >= 0, not {window}")
        self.window = window
        self._stable = level
        self._level = level
        self._quiet_until = float("-inf")
        self.bounced = 0
        """Edges suppressed as bounce so far."""

    @property
    def value(self) -> bool:
        """The debounced level: the last one reported."""
        return self._stable

    @property
    def deadline(self) -> float | None:
        """When :meth:`settle` may report something, or ``None`` when nothing is pending."""
        return self._quiet_until if self._level != self._stable else None

    def edge(self, t: float, level: bool) -> bool | None:
        """The input was seen at ``level`` at time ``t``.

        Returns:
            The level to report now, or ``None`` when nothing is to be reported.
        """
        self._level = level
        if t < self._quiet_until:
            self.bounced += 1
            return None
        if level == self._stable:
            return None
        return self._report(t, level)

    def settle(self, t: float) -> bool | None:
        """Check, at time ``t``, whether the input settled at a level not yet reported.

        Returns:
            The level to report now, or ``None``.
        """
        if t < self._quiet_until or self._level == self._stable:
            return None
        return self._report(t, self._level)

    def _report(self, t: float, level: bool) -> bool:
        self._stable = level
        self._quiet_until = t + self.window if self.window > 0 else float("-inf")
        return level
