"""Build the push sinks that loaded devices name: one sink, and one client, per target."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from edgedev.config._spec import DeviceSpec
from edgedev.mapper._sinks import SinkChange
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


_Target = tuple[type[AnyPushSink], Any]  # each kind its own type


class SinkFactory:
    """Makes the push sinks that devices name, one per target, for as long as one names it.

    Give it to the :class:`~edgedev.Mapper` as ``sinks_for`` (it is a
    :class:`~edgedev.mapper.SinkSource`): the mapper tells it of each device it starts (from
    files at start, a reload on SIGHUP, or EdgeCore over DMI) and each it stops, and runs the
    sinks of targets no earlier device named. A target that no device names any more has its
    sink retired: what it holds is delivered, then its client is closed.

    Args:
        options: the mapper-wide settings of the sinks.
    """

    def __init__(self, options: SinkOptions | None = None) -> None:
        self.options = options or SinkOptions()
        self._sinks: dict[_Target, AnyPushSink] = {}
        self._named: dict[str, dict[_Target, None]] = {}  # device id: its targets, in order
        self._users: Counter[_Target] = Counter()

    @property
    def sinks(self) -> list[AnyPushSink]:
        """The sinks of the targets some device names now, in the order they were made."""
        return list(self._sinks.values())

    def arrived(self, device: DeviceSpec) -> SinkChange:
        """``device`` is served now: the sinks to start and those to retire.

        Started: the targets it names that no other device did. Retired: those that only its
        earlier spec (a device with the same id) named.
        """
        before = self._named.pop(device.id, {})
        now = self._named[device.id] = _targets(device)
        started: list[AnyPushSink] = []
        for target in now.keys() - before.keys():
            self._users[target] += 1
        for target in now:  # in the order the device names them
            if target not in self._sinks:
                sink = self._sinks[target] = self._make(*target)
                started.append(sink)
        return SinkChange(started, self._release(before.keys() - now.keys()))

    def left(self, device_id: str) -> list[AnyPushSink]:
        """The sinks of the targets that only ``device_id`` named (it is served no longer)."""
        return self._release(self._named.pop(device_id, {}).keys())

    def _release(self, targets: Iterable[_Target]) -> list[AnyPushSink]:
        retired = []
        for target in targets:
            self._users[target] -= 1
            if self._users[target] <= 0:
                del self._users[target]
                retired.append(self._sinks.pop(target))
        return retired

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


def _targets(device: DeviceSpec) -> dict[_Target, None]:
    """The targets the properties of ``device`` name, in first-named order."""
    targets: dict[_Target, None] = {}
    for prop in device.properties:
        if prop.push_method is None:
            continue
        for kind in SINK_TYPES:
            config = kind.config_of(prop.push_method)
            if config is not None:
                targets[(kind, kind.target_of(config))] = None
    return targets
