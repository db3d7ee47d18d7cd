"""Health endpoint for Kubernetes probes and counters for Prometheus.

``HealthServer(health, port)``, or ``async with serving(health, port)``, serves
``GET /healthz`` (liveness), ``GET /readyz`` (readiness) and ``GET /metrics`` (Prometheus
text format 0.0.4) from the event loop.
"""

from __future__ import annotations

from edgedev._metrics import Metric
from edgedev.bus import bus_metrics, bus_ready
from edgedev.health._agent import agent_health, agent_metrics
from edgedev.health._mapper import mapper_health, mapper_metrics, mapper_ready
from edgedev.health._metrics import CONTENT_TYPE, merged, render
from edgedev.health._server import (
    DEFAULT_HOST,
    Health,
    HealthError,
    HealthServer,
    respond,
    serving,
)

__all__ = (
    "CONTENT_TYPE",
    "DEFAULT_HOST",
    "Health",
    "HealthError",
    "HealthServer",
    "Metric",
    "agent_health",
    "agent_metrics",
    "bus_metrics",
    "bus_ready",
    "mapper_health",
    "mapper_metrics",
    "mapper_ready",
    "merged",
    "render",
    "respond",
    "serving",
)
