"""Values dropped on their way to the twin: counted by reason, logged at most once a minute.

A bounded queue that is full, a server that says its queue overflowed, a read that came a
whole cycle late: wherever a value is lost, the code that loses it says so here. The counts
are the ``edgedev_values_dropped_total{reason=...}`` samples of a mapper's ``/metrics``; the
log gets one warning per reason when the first value goes, then at most one a minute with the
count since the last line, so that a flood of drops is seen without flooding the log.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable

log = logging.getLogger("edgedev.drops")

LOG_INTERVAL = 60.0
"""Seconds at least between two log lines about the same reason."""


class Drops:
    """Counts of dropped values by reason, for one mapper (or one device run alone).

    Args:
        clock: monotonic seconds (for tests).
        log_interval: seconds at least between two log lines about one reason.

    Attributes:
        totals: values dropped so far, by reason.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        log_interval: float = LOG_INTERVAL,
    ) -> None:
        self.totals: Counter[str] = Counter()
        self._clock = clock
        self._interval = log_interval
        self._logged_at: dict[str, float] = {}
        self._unlogged: Counter[str] = Counter()
        self._detail: dict[str, str] = {}

    def add(self, reason: str, count: int = 1, detail: str = "") -> None:
        """Count ``count`` values dropped for ``reason``; log if a minute has passed.

        Args:
            reason: a short label (``server_queue``, ``push_queue``...), the metric's label.
            count: values dropped.
            detail: where and why, in words, for the log line (the latest one is logged).
        """
        if count <= 0:
            return
        self.totals[reason] += count
        self._unlogged[reason] += count
        if detail:
            self._detail[reason] = detail
        now = self._clock()
        last = self._logged_at.get(reason)
        if last is None or now - last >= self._interval:
            self._log(reason, now)

    def flush_log(self) -> None:
        """Log what was dropped since the last line of each reason (a mapper stopping)."""
        now = self._clock()
        for reason in list(self._unlogged):
            self._log(reason, now)

    def _log(self, reason: str, now: float) -> None:
        count = self._unlogged.pop(reason, 0)
        if not count:
            return
        since = self._logged_at.get(reason)
        self._logged_at[reason] = now
        detail = self._detail.pop(reason, "")
        window = "" if since is None else f" in the last {now - since:.0f} s"
        log.warning(
            "%d values dropped (%s)%s%s; %d in all",
            count,
            reason,
            window,
            f": {detail}" if detail else "",
            self.totals[reason],
        )
