"""Health and metrics of a running :class:`~edgedev.Mapper`: its devices, transports and sinks."""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgedev._metrics import Metric
from edgedev.health._metrics import merged
from edgedev.health._server import Health
from edgedev.twin._state import DeviceState

if TYPE_CHECKING:
    from edgedev.mapper._mapper import Mapper


VALUES_DROPPED = "edgedev_values_dropped_total"

DROP_REASONS = {
    "server_queue": "a device's server discarded values (OPC-UA: Overflow bit)",
    "push_queue": "pushed values beyond a device runner's queue",
    "missed_cycle": "reads skipped: a device's reads came more than a cycle late",
    "outbox_full": "readings in messages dropped at the outbox's limit or byte bound",
    "outbox_expired": "readings in messages that waited longer than the outbox's ttl",
    "sink_queue": "values dropped at a push sink's queue limit",
    "sink_refused": "values a push sink's target refused",
    "twin_refused": "values left out of twin reports because EdgeCore would refuse them",
    "bad_quality": "values a device gave as Bad (OPC-UA status, Modbus exception): no value",
}
"""The reasons of ``edgedev_values_dropped_total`` that are always present (0 or more)."""


def values_dropped(mapper: Mapper, families: list[Metric]) -> Metric:
    """``edgedev_values_dropped_total{reason}``: every value dropped anywhere, by reason.

    The mapper's :attr:`~edgedev.Mapper.drops` (runners and drivers) and the samples of that
    family the transports and sinks give (their queues, their twin filters), summed by
    reason; that family is taken out of ``families``.
    """
    totals = dict.fromkeys(DROP_REASONS, 0.0) | {
        k: float(v) for k, v in mapper.drops.totals.items()
    }
    for family in [m for m in families if m.name == VALUES_DROPPED]:
        families.remove(family)
        for labels, value in family.samples:
            reason = labels.get("reason", "other")
            totals[reason] = totals.get(reason, 0.0) + value
    metric = Metric(
        VALUES_DROPPED,
        "device values dropped on their way, by reason (each logged once a minute at most)",
        "counter",
    )
    for reason, count in sorted(totals.items()):
        metric.add(count, reason=reason)
    return metric


def mapper_metrics(mapper: Mapper) -> list[Metric]:
    """Per-device counters of ``mapper``, and the metrics of its transports and sinks."""
    up = Metric("edgedev_device_up", "1 while the device is online", "gauge")
    reads = Metric("edgedev_device_reads_total", "read requests made to the device", "counter")
    errors = Metric(
        "edgedev_device_errors_total", "failures that took the device offline", "counter"
    )
    reconnects = Metric(
        "edgedev_device_reconnects_total", "times the device came back online", "counter"
    )
    writes = Metric("edgedev_device_writes_total", "writes the device accepted", "counter")
    faults = Metric(
        "edgedev_device_faults_total",
        "reads the device answered with protocol exceptions only (state unhealthy)",
        "counter",
    )
    unhealthy = Metric(
        "edgedev_device_unhealthy", "1 while the device answers with exceptions only", "gauge"
    )
    bad = Metric(
        "edgedev_device_bad_values_total",
        "values the device gave as Bad (no value: the property's state says why)",
        "counter",
    )
    bad_now = Metric(
        "edgedev_device_bad_properties", "properties whose last value was Bad", "gauge"
    )
    for device_id, runner in sorted(mapper.runners.items()):
        up.add(1 if runner.state == DeviceState.ONLINE else 0, device=device_id)
        unhealthy.add(1 if runner.state == DeviceState.UNHEALTHY else 0, device=device_id)
        faults.add(runner.faults, device=device_id)
        reads.add(runner.reads, device=device_id)
        errors.add(runner.errors, device=device_id)
        reconnects.add(runner.reconnects, device=device_id)
        writes.add(runner.writes, device=device_id)
        bad.add(runner.bad_values, device=device_id)
        bad_now.add(len(runner.bad), device=device_id)
    sinks = [*mapper.transports, *(s for s in mapper.sinks if s not in mapper.transports)]
    families = merged([*(m for s in sinks for m in s.metrics()), *mapper.endpoints.metrics()])
    dropped = values_dropped(mapper, families)  # takes the sinks' samples of it
    return [
        *families,
        up,
        unhealthy,
        reads,
        errors,
        faults,
        reconnects,
        writes,
        bad,
        bad_now,
        dropped,
    ]


def mapper_ready(mapper: Mapper) -> tuple[bool, str]:
    """Ready when every transport is (:meth:`~edgedev.mapper.TwinTransport.ready`); their reasons.

    The reasons of the transports that are not ready, or else of all of them.
    """
    answers = [t.ready() for t in mapper.transports]
    waiting = [reason for ok, reason in answers if not ok]
    if waiting:
        return False, "; ".join(waiting)
    return True, "; ".join(reason for _, reason in answers) or "running, with no transport"


def mapper_health(mapper: Mapper) -> Health:
    """``/healthz``: the event loop answers; ``/readyz``: :func:`mapper_ready`; ``/metrics``."""
    return Health(
        live=lambda: (True, "ok"),
        ready=lambda: mapper_ready(mapper),
        metrics=lambda: mapper_metrics(mapper),
    )
