"""Whether an endpoint's connections carry the requests its devices need: figures, a warning.

Devices behind one endpoint (a Modbus TCP gateway, a serial line) share its connections, each
of which carries one request at a time. When the devices need more requests per second than
the connections carry (at the latency the endpoint answers with), they fall behind their
cycles. :class:`Capacity` keeps the figures that say so: what the devices need (each tells it
when it connects), what the connections carried in the last window and how long a request
took; it logs a warning with them, at most once a minute while it lasts, and gives them to
``/metrics``. No I/O: the transport tells it each request's latency.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable

from edgedev._metrics import Metric

log = logging.getLogger("edgedev.endpoints")

WINDOW = 10.0
"""Seconds of requests each figure is taken over."""
LOG_INTERVAL = 60.0
"""Seconds at least between two warnings about one endpoint."""
MARGIN = 0.95
"""Carried below this share of the need (and the connections at their limit): behind."""


class Capacity:
    """Requests needed against requests carried, for one endpoint.

    Args:
        where: the endpoint, for messages and the metrics' ``endpoint`` label.
        max_connections: the connections it may use (``maxConnections``).
        advice: what to do about it, for the warning.
        clock: monotonic seconds (for tests).

    Attributes:
        needed: requests per second the devices that connected need (their cycles).
        carried: requests per second answered over the last window.
        latency: seconds a request took, on average, over the last window (sent to answered).
        connections: connections open at the end of the last window.
        behind: whether, over the last window in which no device joined, the connections
            (all that the endpoint takes) carried less than the devices need.
    """

    def __init__(
        self,
        where: str,
        max_connections: int,
        *,
        advice: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.where = where
        self.max_connections = max_connections
        self.advice = advice
        self._clock = clock
        self._needs: dict[Hashable, float] = {}
        self._start = clock()
        self._done = 0
        self._busy = 0.0
        self._settled = True  # no device joined during the window
        self._warned_at: float | None = None
        self.needed = 0.0
        self.carried = 0.0
        self.latency = 0.0
        self.connections = 0
        self.behind = False

    def need(self, device: Hashable, per_second: float) -> None:
        """``device`` needs ``per_second`` requests (it connected; again: replaced).

        A window in which the need changed (devices starting, their first reads all at
        once) is not judged.
        """
        if self._needs.get(device) != per_second:
            self._needs[device] = per_second
            self.needed = sum(self._needs.values())
            self._settled = False

    def answered(self, seconds: float, connections: int) -> None:
        """One request was answered after ``seconds``; ``connections`` are open now."""
        self._done += 1
        self._busy += seconds
        now = self._clock()
        elapsed = now - self._start
        if elapsed < WINDOW:
            return
        self.carried = self._done / elapsed
        self.latency = self._busy / self._done
        self.connections = connections
        settled, self._settled = self._settled, True
        self._start, self._done, self._busy = now, 0, 0.0
        if not settled:
            return
        # what the open connections carry at that latency; the endpoint may refuse more
        most = connections / self.latency if self.latency > 0 else float("inf")
        self.behind = self.carried < self.needed * MARGIN and most < self.needed * MARGIN
        if self.behind and (self._warned_at is None or now - self._warned_at >= LOG_INTERVAL):
            self._warned_at = now
            self._warn()

    def _warn(self) -> None:
        devices = len(self._needs)
        limit = (
            f"maxConnections {self.max_connections}"
            if self.connections >= self.max_connections
            else f"it accepted {self.connections} of maxConnections {self.max_connections}"
        )
        log.warning(
            "%s cannot keep up: %d devices need %.0f requests/s; %d connection(s) (%s) "
            "carried %.0f/s at %.1f ms per request. The devices fall behind their "
            "cycles%s",
            self.where,
            devices,
            self.needed,
            self.connections,
            limit,
            self.carried,
            self.latency * 1000,
            f": {self.advice}" if self.advice else "",
        )

    def metrics(self) -> list[Metric]:
        """The figures, with the label ``endpoint``."""
        where = {"endpoint": self.where}
        return [
            Metric(
                "edgedev_endpoint_requests_needed",
                "requests per second the devices behind the endpoint need (their cycles)",
                "gauge",
            ).add(self.needed, **where),
            Metric(
                "edgedev_endpoint_requests",
                "requests per second the endpoint answered (last 10 s window)",
                "gauge",
            ).add(self.carried, **where),
            Metric(
                "edgedev_endpoint_request_seconds",
                "seconds a request took, sent to answered (last 10 s window)",
                "gauge",
            ).add(self.latency, **where),
            Metric("edgedev_endpoint_connections", "connections open to the endpoint", "gauge").add(
                self.connections, **where
            ),
            Metric(
                "edgedev_endpoint_behind",
                "1 while the endpoint's connections carry less than its devices need",
                "gauge",
            ).add(1 if self.behind else 0, **where),
        ]
