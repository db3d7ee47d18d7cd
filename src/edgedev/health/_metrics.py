"""Prometheus text exposition (format 0.0.4): pure rendering, no I/O."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The ``Content-Type`` of :func:`render`'s output."""


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


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


def render(metrics: Iterable[Metric]) -> str:
    """The metrics in Prometheus' text format, version 0.0.4."""
    lines: list[str] = []
    for metric in metrics:
        lines.append(f"# HELP {metric.name} {_escape_help(metric.help)}")
        lines.append(f"# TYPE {metric.name} {metric.type}")
        for labels, value in metric.samples:
            if labels:
                text = ",".join(f'{k}="{_escape_label(v)}"' for k, v in labels.items())
                lines.append(f"{metric.name}{{{text}}} {_number(value)}")
            else:
                lines.append(f"{metric.name} {_number(value)}")
    return "\n".join(lines) + "\n"
