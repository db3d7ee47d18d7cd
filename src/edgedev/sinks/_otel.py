"""``pushMethod.otel``: readings as OpenTelemetry gauges over OTLP/HTTP (protobuf).

As upstream: a gauge per property, named after it, under a resource whose ``device.id`` is
``namespace/name`` (with the SDK's default resource attributes); ``endpointURL`` is the full
URL (``http://collector:4318/v1/metrics``). edgedev sends each reading as a data point with
the time it was read, every device of a batch in one export request, built with the
OpenTelemetry SDK's data model and its OTLP encoder. Only numbers and booleans (as 0/1) are
exported, as upstream's float gauge does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Unpack

from edgedev.config._crd import OtelPush, PushMethod
from edgedev.sinks._base import Row
from edgedev.sinks._delivery import DeliveryOptions
from edgedev.sinks._http import HttpClientSink
from edgedev.twin import Quality

SCOPE = "edgedev.sinks.otel"
"""The instrumentation scope of the exported metrics."""


def encode(rows: Sequence[Row], resources: dict[str, Any] | None = None) -> bytes:
    """An OTLP ``ExportMetricsServiceRequest`` (protobuf bytes) of the numeric ``rows``."""
    from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
    from opentelemetry.sdk.metrics.export import (
        Gauge,
        Metric,
        MetricsData,
        NumberDataPoint,
        ResourceMetrics,
        ScopeMetrics,
    )
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

    resources = {} if resources is None else resources
    devices: dict[str, dict[str, tuple[Row, list[Any]]]] = {}
    for row in rows:
        value = row.reading.value
        if isinstance(value, (str, bytes)):
            continue
        number: int | float = int(value) if isinstance(value, bool) else value
        ns = row.reading.timestamp * 1_000_000
        quality = row.reading.quality
        point = NumberDataPoint(
            attributes=None if quality is Quality.GOOD else {"quality": quality.value},
            start_time_unix_nano=ns,
            time_unix_nano=ns,
            value=number,
        )
        per_device = devices.setdefault(row.device.id, {})
        per_device.setdefault(row.prop.name, (row, []))[1].append(point)
    scope = InstrumentationScope(SCOPE)
    out = []
    for device_id, metrics in devices.items():
        resource = resources.get(device_id)
        if resource is None:
            resource = resources[device_id] = Resource.create({"device.id": device_id})
        out.append(
            ResourceMetrics(
                resource=resource,
                scope_metrics=[
                    ScopeMetrics(
                        scope=scope,
                        metrics=[
                            Metric(
                                name=name,
                                description=first.prop.description or None,
                                unit=first.prop.unit or None,
                                data=Gauge(data_points=points),
                            )
                            for name, (first, points) in metrics.items()
                        ],
                        schema_url="",
                    )
                ],
                schema_url="",
            )
        )
    return bytes(encode_metrics(MetricsData(resource_metrics=out)).SerializeToString())


class OtelSink(HttpClientSink[OtelPush, tuple[str]]):
    """Readings exported to one OTLP/HTTP endpoint, one request per batch.

    Args:
        target: ``(endpointURL,)``.
        delivery: queue and retry settings.
    """

    kind = "otel"

    def __init__(self, target: tuple[str], **delivery: Unpack[DeliveryOptions]) -> None:
        super().__init__(target, **delivery)
        self._resources: dict[str, Any] = {}

    @classmethod
    def config_of(cls, push: PushMethod) -> OtelPush | None:
        """``pushMethod.otel``."""
        return push.otel

    @classmethod
    def target_of(cls, config: OtelPush) -> tuple[str]:
        """The endpoint URL."""
        return (config.endpoint_url,)

    async def send(self, rows: Sequence[Row]) -> int | None:
        """One export request."""
        body = encode(rows, self._resources)
        await self.post(self.target[0], body, {"content-type": "application/x-protobuf"})
        return None
