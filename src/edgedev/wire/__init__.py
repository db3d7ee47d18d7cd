"""KubeEdge's MQTT wire format, and what EdgeCore accepts on it."""

from __future__ import annotations

from edgedev.wire._edgecore import (
    EDGECORE_TYPES,
    key_refusal,
    plain_float,
    refusal,
    twin_type,
    value_refusal,
)

__all__ = (
    "EDGECORE_TYPES",
    "key_refusal",
    "plain_float",
    "refusal",
    "twin_type",
    "value_refusal",
)
