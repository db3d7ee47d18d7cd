"""Health and metrics of a running :class:`~edgedev.Mapper`: its devices, transports and sinks."""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgedev._metrics import Metric
from edgedev.health._metrics import merged
from edgedev.health._server import Health
from edgedev.sinks._base import PushSink
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


def values_dropped(mapper: Mapper, transports: list[Metric]) -> Metric:
    """``edgedev_values_dropped_total{reason}``: every value dropped anywhere, by reason.

    The mapper's :attr:`~edgedev.Mapper.drops` (runners and drivers), the push sinks, and
    the samples of that family the transports give (their queues, their twin filters),
    summed by reason; the transports' family is taken out of ``transports``.
    """
    totals = dict.fromkeys(DROP_REASONS, 0.0) | {
        k: float(v) for k, v in mapper.drops.totals.items()
    }
    for sink in mapper.sinks:
        if isinstance(sink, PushSink):
            totals["sink_queue"] += sink.stats.dropped - sink.stats.refused
            totals["sink_refused"] += sink.stats.refused
    for family in [m for m in transports if m.name == VALUES_DROPPED]:
        transports.remove(family)
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
    """Per-device counters of ``mapper``, its transports' metrics and its push sinks'."""
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
    transports = merged(
        [*(m for t in mapper.transports for m in t.metrics()), *mapper.endpoints.metrics()]
    )
    dropped = values_dropped(mapper, transports)  # takes the transports' samples of it
    return [
        *transports,
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
        *sink_metrics(mapper),
    ]


def sink_metrics(mapper: Mapper) -> list[Metric]:
    """Per push sink target (pushMethod/dbMethod): queued, delivered, dropped, failures, up."""
    sinks = [s for s in mapper.sinks if isinstance(s, PushSink)]
    if not sinks:
        return []
    up = Metric("edgedev_sink_up", "1 while the sink's last delivery succeeded", "gauge")
    queued = Metric("edgedev_sink_queued", "values waiting for the sink's target", "gauge")
    delivered = Metric("edgedev_sink_delivered_total", "values the target accepted", "counter")
    dropped = Metric(
        "edgedev_sink_dropped_total",
        "values dropped: the oldest at the sink's queue limit, or refused by the target",
        "counter",
    )
    refused = Metric(
        "edgedev_sink_refused_total", "of the dropped, values the target refused", "counter"
    )
    failures = Metric("edgedev_sink_failures_total", "deliveries that failed", "counter")
    requests = Metric("edgedev_sink_requests_total", "deliveries that succeeded", "counter")
    for sink in sinks:
        labels = {"sink": sink.kind, "target": sink.label}
        stats = sink.stats
        up.add(1 if stats.up else 0, **labels)
        queued.add(len(sink.delivery), **labels)
        delivered.add(stats.delivered, **labels)
        dropped.add(stats.dropped, **labels)
        refused.add(stats.refused, **labels)
        failures.add(stats.failures, **labels)
        requests.add(stats.requests, **labels)
    return [up, queued, delivered, dropped, refused, failures, requests]


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
