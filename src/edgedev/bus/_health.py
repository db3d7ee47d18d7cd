"""What a :class:`~edgedev.bus.Bus` says to ``/readyz`` and ``/metrics``: pure, from memory."""

from __future__ import annotations

from edgedev._metrics import Metric
from edgedev.bus._client import Bus
from edgedev.bus._sqlite_outbox import SqliteOutbox


def bus_metrics(bus: Bus | None, **labels: str) -> list[Metric]:
    """Broker connection and outbox metrics of ``bus`` (none before it exists).

    ``labels`` go on every sample: a transport with a connection of its own beside another's
    tells them apart (``transport="sparkplug"``).
    """
    if bus is None:
        return []
    outbox = bus.outbox
    metrics = [
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
        Metric("edgedev_queue_bytes", "bytes of the messages waiting", "gauge").add(outbox.bytes),
        Metric("edgedev_queue_max_bytes", "most bytes the queue keeps (0: no bound)", "gauge").add(
            outbox.max_bytes
        ),
        Metric(
            "edgedev_queue_dropped_total",
            "messages dropped at the queue's limit or byte bound (the oldest readings first)",
            "counter",
        ).add(outbox.dropped),
        Metric(
            "edgedev_publish_refused_total",
            "messages no broker takes (a wildcard or NUL in the topic, over the packet size), "
            "dropped when published",
            "counter",
        ).add(bus.refused),
        Metric(
            "edgedev_publish_poisoned_total",
            "messages dropped after the broker closed the connection each time they were sent",
            "counter",
        ).add(bus.poisoned),
        Metric(
            "edgedev_queue_expired_total",
            "messages dropped because they waited longer than the queue's ttl",
            "counter",
        ).add(outbox.expired),
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
    if labels:
        for metric in metrics:
            metric.samples[:] = [({**old, **labels}, value) for old, value in metric.samples]
    return metrics


def bus_ready(bus: Bus | None) -> tuple[bool, str]:
    """Ready while the broker connection is up; the reason says why not (and the queue).

    Not ready during an outage, a refusal (bad password, server unavailable) or a TLS failure:
    reports wait in the queue, but none reaches the twin. The reason carries the cause.
    """
    if bus is None:
        return False, "starting"
    if bus.connected:
        return True, "broker connected"
    outbox = bus.outbox
    queued, limit = len(outbox), outbox.limit
    mb = (
        f", {outbox.bytes / 2**20:.1f} of {outbox.max_bytes / 2**20:g} MiB"
        if outbox.max_bytes
        else ""
    )
    cause = bus.last_error or "connecting"
    if not outbox.full:
        return False, f"broker unreachable: {cause}; queueing ({queued}/{limit}{mb})"
    return False, (
        f"broker unreachable: {cause}; queue full ({queued}/{limit}{mb}): dropping the oldest "
        "readings"
    )
