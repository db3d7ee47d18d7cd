"""Metric families as the Prometheus exposition names them: plain data, no I/O.

Made where the counters live (the bus, the transports, the runtime) and rendered by
:mod:`edgedev.health`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Metric:
    """One metric family: a name, its help and type, and its samples.

    Attributes:
        name: the metric name, e.g. ``edgedev_device_reads_total``.
        help: one line saying what it counts.
        type: ``counter`` or ``gauge``.
        samples: ``(labels, value)`` pairs; ``{}`` for a metric without labels.
    """

    name: str
    help: str
    type: str
    samples: list[tuple[Mapping[str, str], float]] = field(default_factory=list)

    def add(self, value: float, **labels: str) -> Metric:
        """Add a sample; returns ``self`` for chaining."""
        self.samples.append((labels, value))
        return self
