"""Sparkplug B (Eclipse Sparkplug 3.0): the mapper's devices for SCADA hosts.

:class:`Sparkplug` is the mapper's twin transport
(``Mapper(devices, transports=[Sparkplug("plant/line1", broker)])``). Beneath it: topics and
device ids (:class:`EdgeNode`, :func:`sparkplug_device_id`), payloads generated from Eclipse
Tahu's ``sparkplug_b.proto`` (``pb``), and one session's messages (:class:`EdgeSession`).
Needs the ``sparkplug`` extra (``pip install edgedev[sparkplug]``: protobuf). See
``docs/sparkplug.md``.
"""

from __future__ import annotations

from edgedev.sparkplug._decoder import Decoder, Event
from edgedev.sparkplug._payloads import (
    DataType,
    MetricInfo,
    datatype_of,
    decode,
    metric_value,
    property_type_of,
    rebirth_request,
)
from edgedev.sparkplug._pb import sparkplug_b_pb2 as pb
from edgedev.sparkplug._session import Aliases, EdgeSession, NodeMetric, Outgoing
from edgedev.sparkplug._topics import (
    NAMESPACE,
    EdgeNode,
    MessageType,
    Topic,
    check_id,
    kubeedge_device_id,
    sparkplug_device_id,
    state_topic,
)
from edgedev.sparkplug._transport import Sparkplug

__all__ = (
    "NAMESPACE",
    "Aliases",
    "DataType",
    "Decoder",
    "EdgeNode",
    "EdgeSession",
    "Event",
    "MessageType",
    "MetricInfo",
    "NodeMetric",
    "Outgoing",
    "Sparkplug",
    "Topic",
    "check_id",
    "datatype_of",
    "decode",
    "kubeedge_device_id",
    "metric_value",
    "pb",
    "property_type_of",
    "rebirth_request",
    "sparkplug_device_id",
    "state_topic",
)
