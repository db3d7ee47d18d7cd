"""The twin agent: the edge-side DeviceTwin service that ``edgedev agent`` runs.

It keeps every device's twin (desired and reported values, versions) in SQLite, answers
KubeEdge's twin and membership topics, and publishes a delta to the mapper whenever a desired
value differs from the reported one. :class:`AgentCore` holds the rules without I/O;
:class:`Agent` connects them to a :class:`~edgedev.bus.Bus` and a :class:`TwinStore`.
"""

from __future__ import annotations

from edgedev.agent._agent import Agent
from edgedev.agent._client import BrokerUnreachable, ask, desired_request
from edgedev.agent._core import AgentCore, Reply, model_of
from edgedev.agent._input import AgentLimits
from edgedev.agent._records import DeviceRecord, DeviceRow, PropertyRow
from edgedev.agent._store import MEMORY, StoreError, TwinStore

__all__ = (
    "MEMORY",
    "Agent",
    "AgentCore",
    "AgentLimits",
    "BrokerUnreachable",
    "DeviceRecord",
    "DeviceRow",
    "PropertyRow",
    "Reply",
    "StoreError",
    "TwinStore",
    "ask",
    "desired_request",
    "model_of",
)
