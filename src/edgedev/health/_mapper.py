"""Health and metrics of a running :class:`~edgedev.Mapper`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgedev.bus._sqlite_outbox import SqliteOutbox
from edgedev.health._metrics import Metric
from edgedev.health._server import Health
from edgedev.sinks._base import PushSink
from edgedev.twin._state import DeviceState

if TYPE_CHECKING:
    from edgedev.bus._client import Bus
    from edgedev.mapper._mapper import Mapper


def bus_metrics(bus: Bus | None) -> list[Metric]:
    """Broker connection and outbox metrics of ``bus`` (none before it exists)."""
    if bus is None:
        return []
    outbox = bus.outbox
    return [
        Metric("edgedev_broker_connected", "1 while the broker connection is up", "gauge").add(
            1 if bus.connected else 0
        ),
        Metric(
            "edgedev_broker_reconnects_total", "broker connections re-established", "counter"
        ).add(bus.reconnects),
        Metric(
            "edgedev_broker_connect_failures_total",
            "connection attempts that failed (refused, TLS, DNS, timeout)",
            "counter",
        ).add(bus.connect_failures),
        Metric("edgedev_queue_messages", "messages waiting for the broker", "gauge").add(
            len(outbox)
        ),
        Metric("edgedev_queue_limit", "most messages the queue keeps", "gauge").add(outbox.limit),
        Metric(
            "edgedev_queue_dropped_total", "oldest messages dropped at the queue limit", "counter"
        ).add(outbox.dropped),
        Metric(
            "edgedev_received_dropped_total",
            "received messages dropped because their subscriber was too far behind",
            "counter",
        ).add(bus.dropped_in),
        *(
            [
                Metric(
                    "edgedev_queue_undeleted_total",
                    "acknowledged messages a full disk kept (never sent again)",
                    "counter",
                ).add(outbox.undeleted)
            ]
            if isinstance(outbox, SqliteOutbox)
            else []
        ),
    ]


def bus_ready(bus: Bus | None) -> tuple[bool, str]:
    """Ready while the broker connection is up; the reason says why not (and the queue).

    Not ready during an outage, a refusal (bad password, server unavailable) or a TLS failure:
    reports wait in the queue, but none reaches the twin. The reason carries the cause.
    """
    if bus is None:
        return False, "starting"
    if bus.connected:
        return True, "broker connected"
    queued, limit = len(bus.outbox), bus.outbox.limit
    cause = bus.last_error or "connecting"
    if queued < limit:
        return False, f"broker unreachable: {cause}; queueing ({queued}/{limit})"
    return False, (
        f"broker unreachable: {cause}; queue full ({queued}/{limit}): dropping the oldest"
    )


def mapper_metrics(mapper: Mapper) -> list[Metric]:
    """Bus metrics plus per-device counters of ``mapper``."""
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
    refused = Metric(
        "edgedev_twin_values_refused_total",
        "values left out of twin reports because EdgeCore would refuse them",
        "counter",
    )
    for device_id, runner in sorted(mapper.runners.items()):
        up.add(1 if runner.state == DeviceState.ONLINE else 0, device=device_id)
        unhealthy.add(1 if runner.state == DeviceState.UNHEALTHY else 0, device=device_id)
        faults.add(runner.faults, device=device_id)
        reads.add(runner.reads, device=device_id)
        errors.add(runner.errors, device=device_id)
        reconnects.add(runner.reconnects, device=device_id)
        writes.add(runner.writes, device=device_id)
        refused.add(runner.refused, device=device_id)
    return [
        *bus_metrics(mapper.bus),
        up,
        unhealthy,
        reads,
        errors,
        faults,
        reconnects,
        writes,
        refused,
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


def mapper_health(mapper: Mapper) -> Health:
    """``/healthz``: the event loop answers; ``/readyz``: :func:`bus_ready`; ``/metrics``."""
    return Health(
        live=lambda: (True, "ok"),
        ready=lambda: bus_ready(mapper.bus),
        metrics=lambda: mapper_metrics(mapper),
    )
