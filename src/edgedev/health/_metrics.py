"""Prometheus text exposition (format 0.0.4): pure rendering, no I/O.

The metric families themselves (:class:`Metric`) are made where the counters live.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from edgedev._metrics import Metric

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The ``Content-Type`` of :func:`render`'s output."""


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


def merged(metrics: Iterable[Metric]) -> list[Metric]:
    """``metrics`` with the families of one name made one (the first's help and type).

    Several transports give the same family (``edgedev_twin_values_refused_total``, told
    apart by a label); the exposition format wants each name once.
    """
    families: dict[str, Metric] = {}
    for metric in metrics:
        first = families.get(metric.name)
        if first is None:
            families[metric.name] = Metric(metric.name, metric.help, metric.type, [*metric.samples])
        else:
            first.samples.extend(metric.samples)
    return list(families.values())


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
