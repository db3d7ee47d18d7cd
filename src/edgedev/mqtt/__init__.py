"""KubeEdge's device topics over MQTT: the mapper's twin transport for EdgeCore and edgedev's agent.

:class:`KubeEdgeMqtt` is a :class:`~edgedev.mapper.TwinTransport`: give it to the
:class:`~edgedev.Mapper` (``transports=[KubeEdgeMqtt(broker)]``). The MQTT client itself is
:class:`edgedev.bus.Bus`; the payloads are in :mod:`edgedev.wire`; the topics and payloads are
documented in ``docs/reference/topics.md``.
"""

from __future__ import annotations

from edgedev.mqtt._desired import pending_values
from edgedev.mqtt._transport import KubeEdgeMqtt

__all__ = ("KubeEdgeMqtt", "pending_values")
