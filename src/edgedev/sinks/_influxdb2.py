"""``pushMethod.dbMethod.influxdb2``: line protocol over InfluxDB 2's ``/api/v2/write``.

Each reading is one point: the property's ``measurement``, its ``tag`` set, one field named
``fieldKey``, and the reading's time in ms. Upstream writes the value as a string field (the
KubeEdge wire text), so does edgedev by default, so that a bucket written by upstream's mapper
takes edgedev's points without a field type conflict; ``typed`` writes numbers and booleans as
such.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Unpack
from urllib.parse import urlencode

from edgedev.config._crd import Influxdb2, PushMethod
from edgedev.config._targets import redact
from edgedev.sinks._base import Row, secret
from edgedev.sinks._delivery import DeliveryOptions
from edgedev.sinks._http import HttpClientSink
from edgedev.twin import Quality

TOKEN_ENV = ("EDGEDEV_INFLUXDB_TOKEN", "TOKEN")
"""Where the API token comes from (``NAME`` or ``NAME_FILE``), first found wins."""


class InfluxFields(enum.StrEnum):
    """How values are written as InfluxDB fields."""

    STRING = "string"
    TYPED = "typed"


def _escape(text: str, chars: str) -> str:
    text = text.replace("\\", "\\\\")
    for char in chars:
        text = text.replace(char, f"\\{char}")
    return text


def field_value(row: Row, fields: InfluxFields) -> str:
    """The field's value in line protocol."""
    value = row.reading.value
    if fields is InfluxFields.TYPED and not isinstance(value, (str, bytes)):
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int):
            return f"{value}i"
        return repr(float(value))
    return '"' + row.reading.text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def line(row: Row, config: Influxdb2, fields: InfluxFields = InfluxFields.STRING) -> str:
    """One point: ``measurement,tag=v fieldKey=value timestamp_ms``."""
    data = config.influxdb2_data_config
    tag = data.tag
    if row.reading.quality is not Quality.GOOD:  # an Uncertain value says so
        tag = {**tag, "quality": row.reading.quality.value}
    tags = "".join(f",{_escape(k, ',= ')}={_escape(v, ',= ')}" for k, v in sorted(tag.items()))
    key = _escape(data.field_key, ",= ")
    return (
        f"{_escape(data.measurement, ', ')}{tags} {key}={field_value(row, fields)} "
        f"{row.reading.timestamp}"
    )


class Influxdb2Sink(HttpClientSink[Influxdb2, tuple[str, str, str]]):
    """Readings written to one InfluxDB 2 bucket, one ``/api/v2/write`` per batch.

    Args:
        target: ``(url, org, bucket)``.
        fields: :class:`InfluxFields`.
        delivery: queue and retry settings.
    """

    kind = "dbMethod.influxdb2"

    def __init__(
        self,
        target: tuple[str, str, str],
        *,
        fields: InfluxFields = InfluxFields.STRING,
        **delivery: Unpack[DeliveryOptions],
    ) -> None:
        super().__init__(target, **delivery)
        self.fields = InfluxFields(fields)
        url, org, bucket = target
        query = urlencode({"org": org, "bucket": bucket, "precision": "ms"})
        self._url = f"{str(url).rstrip('/')}/api/v2/write?{query}"
        self._headers = {"content-type": "text/plain; charset=utf-8"}
        token = secret(*TOKEN_ENV)
        if token:
            self._headers["authorization"] = f"Token {token}"

    @property
    def label(self) -> str:
        """``url org/bucket``."""
        url, org, bucket = self.target
        return f"{redact(str(url))} {org}/{bucket}"

    @classmethod
    def config_of(cls, push: PushMethod) -> Influxdb2 | None:
        """``dbMethod.influxdb2``."""
        db = push.db_method
        return db.influxdb2 if db is not None else None

    @classmethod
    def target_of(cls, config: Influxdb2) -> tuple[str, str, str]:
        """The server, the organisation and the bucket."""
        client = config.influxdb2_client_config
        return (client.url, client.org, client.bucket)

    async def send(self, rows: Sequence[Row]) -> int | None:
        """One write of every point of the batch."""
        body = "\n".join(line(r, _config(r), self.fields) for r in rows).encode()
        await self.post(self._url, body, self._headers)
        return None


def _config(row: Row) -> Influxdb2:
    push = row.prop.push_method
    assert push is not None and push.db_method is not None and push.db_method.influxdb2
    return push.db_method.influxdb2
