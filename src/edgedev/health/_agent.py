"""Health and metrics of a running twin agent (:class:`edgedev.agent.Agent`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgedev._metrics import Metric
from edgedev.bus import bus_metrics, bus_ready
from edgedev.health._server import Health

if TYPE_CHECKING:
    from edgedev.agent import Agent


def agent_metrics(agent: Agent) -> list[Metric]:
    """Bus metrics plus the agent's message, refusal and store counters."""
    refused = Metric(
        "edgedev_agent_refused_total", "messages or device ids refused, by reason", "counter"
    )
    for reason, count in sorted(agent.core.refused.items()):
        refused.add(count, reason=reason)
    return [
        *bus_metrics(agent.bus),
        Metric("edgedev_agent_messages_total", "messages handled", "counter").add(agent.handled),
        Metric("edgedev_agent_commits_total", "transactions committed", "counter").add(
            agent.commits
        ),
        Metric("edgedev_agent_store_failures_total", "transactions that failed", "counter").add(
            agent.store_failures
        ),
        refused,
        Metric(
            "edgedev_agent_skipped_rows_total", "stored rows that could not be loaded", "counter"
        ).add(agent.core.skipped_rows),
        Metric("edgedev_agent_store_bytes", "bytes the twins take on disk", "gauge").add(
            agent.core.store_bytes
        ),
        Metric(
            "edgedev_agent_store_max_bytes", "most bytes the twins may take (0: no bound)", "gauge"
        ).add(agent.core.limits.max_store_bytes),
    ]


def agent_health(agent: Agent) -> Health:
    """``/healthz``: the event loop answers; ``/readyz``: :func:`bus_ready`; ``/metrics``."""
    return Health(
        live=lambda: (True, "ok"),
        ready=lambda: bus_ready(agent.bus),
        metrics=lambda: agent_metrics(agent),
    )
