"""``pushMethod.dbMethod.TDEngine``: SQL over TDengine's REST interface (``/rest/sql/<db>``).

Upstream's layout: a super table per device with the columns ``ts timestamp, deviceid
binary(64), propertyname binary(64), data binary(64), type binary(64)`` and the tag
``localtion binary(64)`` (upstream's spelling), holding the property name; a sub-table per
property. Names differ from upstream's where upstream's are not valid TDengine names: the super
table is ``<namespace>_<device>`` and the sub-table ``<namespace>_<device>_<property>``, with
every character outside ``[A-Za-z0-9_]`` written as ``_`` (upstream names the super table
``namespace/device`` and the sub-table by the property alone, which collides between devices).
One ``INSERT`` statement per batch writes every sub-table.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Sequence
from typing import Unpack

from edgedev.config._crd import PushMethod, TdengineClientConfig
from edgedev.config._targets import redact
from edgedev.sinks._base import Row, secret
from edgedev.sinks._delivery import DeliveryOptions, Refused, SinkError
from edgedev.sinks._http import HttpClientSink
from edgedev.wire import type_name

USERNAME_ENV = ("EDGEDEV_TDENGINE_USERNAME", "USERNAME")
PASSWORD_ENV = ("EDGEDEV_TDENGINE_PASSWORD", "PASSWORD")
"""Where the user and password come from (``NAME`` or ``NAME_FILE``); TDengine's defaults
(``root``/``taosdata``) when unset."""

_ILLEGAL = re.compile(r"[^A-Za-z0-9_]")


def legal(name: str) -> str:
    """``name`` with every character TDengine refuses in a table name written as ``_``."""
    return _ILLEGAL.sub("_", name)


def super_table(row: Row) -> str:
    """The device's super table."""
    return legal(f"{row.device.namespace}_{row.device.name}")


def sub_table(row: Row) -> str:
    """The property's sub-table."""
    return legal(f"{row.device.namespace}_{row.device.name}_{row.prop.name}")


def literal(text: str) -> str:
    """A TDengine string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def create_super(stable: str) -> str:
    """``CREATE STABLE IF NOT EXISTS`` with upstream's columns and tag."""
    return (
        f"CREATE STABLE IF NOT EXISTS {stable} (ts timestamp, deviceid binary(64), "
        "propertyname binary(64), data binary(64), type binary(64)) TAGS (localtion binary(64))"
    )


def insert(rows: Sequence[Row]) -> str:
    """One ``INSERT`` of every row, grouped by sub-table."""
    tables: dict[str, tuple[Row, list[str]]] = {}
    for row in rows:
        r = row.reading
        values = (
            f"({r.timestamp}, {literal(row.device.id)}, {literal(row.prop.name)}, "
            f"{literal(r.text)}, {literal(type_name(row.prop.type))})"
        )
        tables.setdefault(sub_table(row), (row, []))[1].append(values)
    parts = [
        f"{table} USING {super_table(first)} TAGS ({literal(first.prop.name)}) VALUES "
        + " ".join(values)
        for table, (first, values) in tables.items()
    ]
    return "INSERT INTO " + " ".join(parts)


class TdengineSink(HttpClientSink[TdengineClientConfig, tuple[str, str]]):
    """Readings into TDengine over REST (httpx), one ``INSERT`` per batch.

    Args:
        target: ``(addr, dbName)``.
        delivery: queue and retry settings.
    """

    kind = "dbMethod.TDEngine"

    def __init__(self, target: tuple[str, str], **delivery: Unpack[DeliveryOptions]) -> None:
        super().__init__(target, **delivery)
        addr, db_name = target
        base = addr if "://" in str(addr) else f"http://{addr}"
        self._url = f"{str(base).rstrip('/')}/rest/sql/{db_name}"
        user = secret(*USERNAME_ENV) or "root"
        password = secret(*PASSWORD_ENV) or "taosdata"
        auth = base64.b64encode(f"{user}:{password}".encode()).decode()
        self._headers = {"authorization": f"Basic {auth}", "content-type": "text/plain"}
        self._created: set[str] = set()

    @property
    def label(self) -> str:
        """``addr/dbName``."""
        return f"{redact(str(self.target[0]))}/{self.target[1]}"

    @classmethod
    def config_of(cls, push: PushMethod) -> TdengineClientConfig | None:
        """``dbMethod.TDEngine.TDEngineClientConfig``."""
        db = push.db_method
        return db.tdengine.client_config if db is not None and db.tdengine is not None else None

    @classmethod
    def target_of(cls, config: TdengineClientConfig) -> tuple[str, str]:
        """The server and the database."""
        return (config.addr, config.db_name)

    async def _sql(self, sql: str) -> None:
        body = await self.post(self._url, sql.encode(), self._headers)
        try:
            answer = json.loads(body)
            if not isinstance(answer, dict):
                raise ValueError
        except ValueError:
            text = body[:200].decode("utf-8", "replace")
            raise SinkError(f"not a TDengine answer: {text}") from None
        if answer.get("code", 0) != 0:  # SQL refused: the statement, i.e. the data
            raise Refused(f"TDengine error {answer.get('code')}: {answer.get('desc', '')}")

    async def send(self, rows: Sequence[Row]) -> int | None:
        """Create the super tables not seen yet, then one ``INSERT``."""
        trips = 1
        for stable in dict.fromkeys(super_table(r) for r in rows):
            if stable not in self._created:
                await self._sql(create_super(stable))
                self._created.add(stable)
                trips += 1
        await self._sql(insert(rows))
        return trips
