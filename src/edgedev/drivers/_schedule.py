"""Periodic deadlines that do not drift. No I/O, no clock: the caller passes the time.

Jobs with the same period share one deadline, so a device with fifty properties on a 1 s
cycle costs one comparison per wake-up, not fifty. Deadlines are ``start + k * period``: a late
wake-up does not push later ones back, and ticks missed entirely are skipped and counted.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class Schedule(Generic[K]):
    """Deadlines of periodic jobs keyed by ``K``, all anchored at ``start``.

    Args:
        periods: each job's period in seconds (> 0).
        start: the time of every job's first deadline.
    """

    def __init__(self, periods: Mapping[K, float], start: float) -> None:
        groups: dict[float, list[K]] = {}
        for key, period in periods.items():
            if not period > 0:
                raise ValueError(f"period of {key!r} must be > 0, not {period}")
            groups.setdefault(period, []).append(key)
        self._start = start
        self._groups = [(period, tuple(keys)) for period, keys in groups.items()]
        self._deadlines = [start] * len(self._groups)
        self.missed = 0
        """Ticks skipped because a wake-up came more than a whole period late."""
        self.missed_jobs = 0
        """Of those, the jobs skipped: each skipped tick counts once per job it holds."""

    def __bool__(self) -> bool:
        return bool(self._groups)

    def next_deadline(self) -> float:
        """The earliest deadline (``inf`` when there are no jobs)."""
        return min(self._deadlines, default=math.inf)

    def pop_due(self, now: float) -> list[K]:
        """The jobs due at ``now``; their deadlines move to their next tick after ``now``."""
        due: list[K] = []
        for i, deadline in enumerate(self._deadlines):
            if deadline > now:
                continue
            period, keys = self._groups[i]
            due.extend(keys)
            ticks = math.floor((now - self._start) / period) + 1
            following = self._start + ticks * period
            skipped = max(0, round((following - deadline) / period) - 1)
            self.missed += skipped
            self.missed_jobs += skipped * len(keys)
            self._deadlines[i] = following
        return due
