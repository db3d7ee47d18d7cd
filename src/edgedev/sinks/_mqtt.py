"""``pushMethod.mqtt``: each reading published to ``address``/``topic`` with ``qos``/``retained``.

The payload is upstream's text, ``time is YYYY-MM-DD HH:MM:SS  <topic>: <value>`` (UTC). One
:class:`~edgedev.bus.Bus` per distinct ``address``, kept open (upstream connects once per
message); the batch of a cycle leaves in one write to the socket.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Unpack

import anyio

from edgedev.bus._client import Bus
from edgedev.config._crd import MqttPush, PushMethod
from edgedev.sinks._base import PushSink, Row, wall_time
from edgedev.sinks._delivery import DeliveryOptions, SinkError


def payload(topic: str, row: Row) -> bytes:
    """Upstream's message text for one reading."""
    return f"time is {wall_time(row.reading.timestamp)}  {topic}: {row.reading.text}".encode()


class MqttSink(PushSink[MqttPush, tuple[str]]):
    """Readings published on one broker through edgedev's own :class:`~edgedev.bus.Bus`.

    Args:
        target: ``(address,)``, ``mqtt://host:port`` (``tcp://`` as upstream writes it).
        delivery: queue and retry settings.
    """

    kind = "mqtt"

    def __init__(self, target: tuple[str], **delivery: Unpack[DeliveryOptions]) -> None:
        super().__init__(target, **delivery)
        self.bus = Bus(str(target[0]), client_id="")

    @classmethod
    def config_of(cls, push: PushMethod) -> MqttPush | None:
        """``pushMethod.mqtt``."""
        return push.mqtt

    @classmethod
    def target_of(cls, config: MqttPush) -> tuple[str]:
        """The broker address."""
        return (config.address,)

    async def run(self) -> None:
        """Keep the broker connection and deliver until cancelled."""
        async with self.bus, anyio.create_task_group() as tg:
            tg.start_soon(self.delivery.run)

    async def flush(self) -> None:
        """Nothing: the bus closed with :meth:`run` (what it had not sent is dropped)."""

    async def send(self, rows: Sequence[Row]) -> int | None:
        """Hand the batch to the bus while it is connected (the rows wait here otherwise)."""
        if not self.bus.connected:
            raise SinkError("broker unreachable")
        for row in rows:
            config = row.prop.push_method.mqtt if row.prop.push_method else None
            assert config is not None
            self.bus.publish(config.topic, payload(config.topic, row), config.qos, config.retained)
        return None
