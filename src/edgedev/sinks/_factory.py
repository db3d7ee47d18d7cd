"""Build the push sinks that loaded devices name: one sink, and one client, per target."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from edgedev.config._spec import DeviceSpec
from edgedev.sinks._base import AnyPushSink
from edgedev.sinks._delivery import LINGER, QUEUE_LIMIT, DeliveryOptions
from edgedev.sinks._http import HttpLayout, HttpSink
from edgedev.sinks._influxdb2 import Influxdb2Sink, InfluxFields
from edgedev.sinks._mqtt import MqttSink
from edgedev.sinks._mysql import MysqlLayout, MysqlSink
from edgedev.sinks._otel import OtelSink
from edgedev.sinks._redis import RedisSink
from edgedev.sinks._tdengine import TdengineSink

SINK_TYPES: tuple[type[AnyPushSink], ...] = (
    MqttSink,
    HttpSink,
    OtelSink,
    Influxdb2Sink,
    RedisSink,
    TdengineSink,
    MysqlSink,
)
"""Every push sink, in the order of the CRD's ``pushMethod`` keys."""


@dataclass(frozen=True, slots=True)
class SinkOptions:
    """Mapper-wide settings of the push sinks (the CRD has no place for them).

    Attributes:
        http_layout: the HTTP body (``form``: upstream's; ``json``: one array per batch).
        mysql_layout: ``table-per-property`` (upstream's) or ``single-table``.
        influx_fields: ``string`` (upstream's) or ``typed`` field values.
        queue_limit: values each target keeps while it is unreachable.
        linger: seconds a sink gathers values before a round trip.
    """

    http_layout: HttpLayout = HttpLayout.FORM
    mysql_layout: MysqlLayout = MysqlLayout.TABLE_PER_PROPERTY
    influx_fields: InfluxFields = InfluxFields.STRING
    queue_limit: int = QUEUE_LIMIT
    linger: float = LINGER


class SinkFactory:
    """Makes the push sinks that devices name, each target once, as devices come.

    Give it to the :class:`~edgedev.Mapper` as ``sinks_for``: the mapper asks it for each
    device it starts (from files at start, a reload on SIGHUP, or EdgeCore over DMI) and
    runs the sinks of targets no earlier device named.

    Args:
        options: the mapper-wide settings of the sinks.
    """

    def __init__(self, options: SinkOptions | None = None) -> None:
        self.options = options or SinkOptions()
        self._targets: set[tuple[type[AnyPushSink], Any]] = set()  # each kind its own type

    def __call__(self, device: DeviceSpec) -> list[AnyPushSink]:
        """The sinks of the targets ``device`` names that no earlier device named."""
        sinks: list[AnyPushSink] = []
        for prop in device.properties:
            if prop.push_method is None:
                continue
            for kind in SINK_TYPES:
                config = kind.config_of(prop.push_method)
                if config is None:
                    continue
                target = (kind, kind.target_of(config))
                if target not in self._targets:
                    self._targets.add(target)
                    sinks.append(self._make(kind, target[1]))
        return sinks

    def _make(self, kind: type[AnyPushSink], target: Any) -> AnyPushSink:
        options = self.options
        delivery: DeliveryOptions = {"limit": options.queue_limit, "linger": options.linger}
        if kind is HttpSink:
            return HttpSink(target, layout=options.http_layout, **delivery)
        if kind is MysqlSink:
            return MysqlSink(target, layout=options.mysql_layout, **delivery)
        if kind is Influxdb2Sink:
            return Influxdb2Sink(target, fields=options.influx_fields, **delivery)
        return kind(target, **delivery)


def build_sinks(
    devices: Iterable[DeviceSpec], options: SinkOptions | None = None
) -> list[AnyPushSink]:
    """The sinks the devices' properties name, one per distinct target, in first-seen order.

    Raises:
        ImportError: a sink's extra is not installed (the loader reports this first).
    """
    factory = SinkFactory(options)
    return [sink for device in devices for sink in factory(device)]
