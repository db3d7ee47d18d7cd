"""Push sinks: readings delivered where KubeEdge's ``pushMethod`` and ``dbMethod`` say.

Each is a :class:`~edgedev.mapper.ReportSink` for one target (a broker, an HTTP endpoint, a
database), shared by every property that names it; :class:`SinkFactory` makes them as devices
come (a :class:`~edgedev.Mapper`'s ``sinks_for``) and retires them as they go.
Values wait in a bounded queue per target and leave in batches, retried with backoff
(:class:`Delivery`). See ``docs/sinks.md`` for the YAML and the data layouts.
"""

from __future__ import annotations

from edgedev.sinks._base import PushSink, Row, secret
from edgedev.sinks._delivery import (
    LINGER,
    QUEUE_LIMIT,
    Delivery,
    DeliveryStats,
    NotReady,
    PartlyDelivered,
    Refused,
    SinkError,
)
from edgedev.sinks._factory import SINK_TYPES, SinkFactory, SinkOptions
from edgedev.sinks._http import HttpLayout, HttpSink
from edgedev.sinks._influxdb2 import Influxdb2Sink, InfluxFields
from edgedev.sinks._mqtt import MqttSink
from edgedev.sinks._mysql import MysqlLayout, MysqlSink
from edgedev.sinks._otel import OtelSink
from edgedev.sinks._redis import RedisSink
from edgedev.sinks._tdengine import TdengineSink

__all__ = (
    "LINGER",
    "QUEUE_LIMIT",
    "SINK_TYPES",
    "Delivery",
    "DeliveryStats",
    "HttpLayout",
    "HttpSink",
    "InfluxFields",
    "Influxdb2Sink",
    "MqttSink",
    "MysqlLayout",
    "MysqlSink",
    "NotReady",
    "OtelSink",
    "PartlyDelivered",
    "PushSink",
    "RedisSink",
    "Refused",
    "Row",
    "SinkError",
    "SinkFactory",
    "SinkOptions",
    "TdengineSink",
    "secret",
)
