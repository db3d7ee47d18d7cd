"""The base of every push sink: picks its properties' readings and hands them to a Delivery."""

from __future__ import annotations

import abc
import os
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar, Unpack

from pydantic import BaseModel

from edgedev._metrics import Metric
from edgedev.config._crd import PushMethod
from edgedev.config._spec import DeviceSpec, PropertySpec
from edgedev.config._targets import redact
from edgedev.mapper._sinks import Reading, ReportSink
from edgedev.sinks._delivery import Delivery, DeliveryOptions, DeliveryStats

ConfigT = TypeVar("ConfigT", bound=BaseModel)
"""A sink's part of ``pushMethod`` (``MqttPush``, ``RedisClientConfig`` ...)."""
TargetT = TypeVar("TargetT", bound=tuple[Hashable, ...])
"""What identifies a sink's target (``(addr, db)`` for Redis)."""


@dataclass(frozen=True, slots=True)
class Row:
    """One reading on its way to a target, with what the encoders need.

    Attributes:
        device: the device it was read from.
        prop: its property (type, and ``push_method`` for per-property settings).
        reading: the value, its wire text and its timestamp (ms).
    """

    device: DeviceSpec
    prop: PropertySpec
    reading: Reading


class PushSink(ReportSink, Generic[ConfigT, TargetT]):
    """A report sink for one target: the readings of the properties whose pushMethod names it.

    One instance serves one target (one broker, server or database), shared by every property
    that names it. Subclasses say which config a property gives (:meth:`config_of`), what
    identifies a target (:meth:`target_of`), and send a batch (:meth:`send`); they name the
    types of both (``class RedisSink(PushSink[RedisClientConfig, tuple[str, int]])``).

    Args:
        target: the target's identity, as :meth:`target_of` gives it.
        delivery: queue and retry settings (keyword arguments of
            :class:`~edgedev.sinks.Delivery`).
    """

    kind: ClassVar[str]
    """The pushMethod key, as the YAML spells it (``mqtt``, ``dbMethod.redis`` ...)."""

    deadline_per_request: ClassVar[bool] = False
    """Whether :meth:`send` puts each request under the timeout itself (so that a batch of
    many requests is not cut off as a whole); otherwise the whole batch is."""

    def __init__(self, target: TargetT, **delivery: Unpack[DeliveryOptions]) -> None:
        self.target = target
        self.delivery: Delivery[Row] = Delivery(
            f"{self.kind} {self.label}",
            self.send,
            batch_deadline=not self.deadline_per_request,
            **delivery,
        )
        self._wanted: dict[str, tuple[DeviceSpec, dict[str, PropertySpec]]] = {}

    @property
    def label(self) -> str:
        """The target in words, for logs and metrics, redacted (never a secret)."""
        return redact(str(self.target[0]))

    @property
    def stats(self) -> DeliveryStats:
        """The target's counters."""
        return self.delivery.stats

    def metrics(self) -> list[Metric]:
        """This target's queue, deliveries and drops (labels ``sink``, ``target``).

        The values it dropped also count in ``edgedev_values_dropped_total``: those refused
        by the target (``sink_refused``) and the others, the oldest at the queue's limit
        (``sink_queue``).
        """
        labels = {"sink": self.kind, "target": self.label}
        stats = self.stats

        def family(name: str, help_: str, type_: str, value: float) -> Metric:
            return Metric(name, help_, type_).add(value, **labels)

        dropped = Metric(
            "edgedev_values_dropped_total", "device values dropped on their way", "counter"
        )
        dropped.add(stats.dropped - stats.refused, reason="sink_queue")
        dropped.add(stats.refused, reason="sink_refused")
        return [
            family(
                "edgedev_sink_up",
                "1 while the sink's last delivery succeeded",
                "gauge",
                1 if stats.up else 0,
            ),
            family(
                "edgedev_sink_queued",
                "values waiting for the sink's target",
                "gauge",
                len(self.delivery),
            ),
            family(
                "edgedev_sink_delivered_total",
                "values the target accepted",
                "counter",
                stats.delivered,
            ),
            family(
                "edgedev_sink_dropped_total",
                "values dropped: the oldest at the sink's queue limit, or refused by the target",
                "counter",
                stats.dropped,
            ),
            family(
                "edgedev_sink_refused_total",
                "of the dropped, values the target refused",
                "counter",
                stats.refused,
            ),
            family(
                "edgedev_sink_failures_total", "deliveries that failed", "counter", stats.failures
            ),
            family(
                "edgedev_sink_requests_total",
                "deliveries that succeeded",
                "counter",
                stats.requests,
            ),
            dropped,
        ]

    @classmethod
    @abc.abstractmethod
    def config_of(cls, push: PushMethod) -> ConfigT | None:
        """This kind's part of a property's ``pushMethod``, or None when it names none."""

    @classmethod
    @abc.abstractmethod
    def target_of(cls, config: ConfigT) -> TargetT:
        """What identifies one target (and one client): properties with equal targets share."""

    @abc.abstractmethod
    async def send(self, rows: Sequence[Row]) -> int | None:
        """Deliver ``rows`` in one round trip, or as few as the target allows.

        Returns the round trips made when more than one (None: one); raises on failure.
        """

    def serves(self, prop: PropertySpec) -> bool:
        """Whether ``prop``'s pushMethod names this sink's target."""
        if prop.push_method is None:
            return False
        config = self.config_of(prop.push_method)
        return config is not None and self.target_of(config) == self.target

    def readings(self, device: DeviceSpec, readings: Sequence[Reading]) -> None:
        """Queue the readings of the properties that name this target (never blocks)."""
        wanted = self._wanted.get(device.id)
        if wanted is None or wanted[0] is not device:
            wanted = (device, {p.name: p for p in device.properties if self.serves(p)})
            self._wanted[device.id] = wanted
        props = wanted[1]
        if props:
            self.delivery.put(Row(device, props[r.name], r) for r in readings if r.name in props)

    def removed(self, device: DeviceSpec) -> None:
        """Forget which of ``device``'s properties name this target (it left the mapper)."""
        self._wanted.pop(device.id, None)

    async def run(self) -> None:
        """Deliver until cancelled."""
        await self.delivery.run()

    async def flush(self) -> None:
        """Deliver what is queued (the Mapper gives this a deadline)."""
        await self.delivery.flush()


AnyPushSink = PushSink[Any, Any]
"""A push sink of any kind (see :data:`edgedev.drivers.AnyDriver`): what the factory builds."""


def secret(*names: str) -> str | None:
    """A credential from the environment: the first of ``names`` that is set.

    ``NAME`` holds the value itself; ``NAME_FILE`` the path of a file holding it (a mounted
    Kubernetes Secret), read with its trailing newline removed. Credentials are never logged.
    """
    for name in names:
        value = os.environ.get(name)
        if value is not None:
            return value
        path = os.environ.get(f"{name}_FILE")
        if path:
            return Path(path).read_text().rstrip("\r\n")
    return None


def wall_time(timestamp_ms: int) -> str:
    """``YYYY-MM-DD HH:MM:SS`` in UTC, the form upstream's sinks write (seconds)."""
    return datetime.fromtimestamp(timestamp_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
