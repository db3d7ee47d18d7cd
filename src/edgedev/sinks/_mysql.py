"""``pushMethod.dbMethod.mysql``: upstream's table per property, or one table for everything.

``table-per-property`` (the default, upstream's layout): a table named
``namespace/device/property`` with ``id INT AUTO_INCREMENT PRIMARY KEY, ts DATETIME NOT NULL,
field TEXT``; ``ts`` is the reading's time (UTC, seconds) and ``field`` the value as KubeEdge
writes it. ``single-table``: one table ``edgedev_readings`` with ``namespace``, ``device``,
``property``, ``ts DATETIME(3)``, ``value`` and ``type`` and an index on the first four, written
with one multi-row ``INSERT`` per batch. single-table delivers a batch in one round
trip and one transaction; table-per-property in one round trip per 200 tables (a
multi-statement query), within half the sink's timeout, tables created as first needed (the
values of the others wait in the queue).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Unpack

import anyio

from edgedev.config._crd import MysqlClientConfig, PushMethod
from edgedev.sinks._base import PushSink, Row, secret, wall_time
from edgedev.sinks._delivery import (
    DeliveryOptions,
    NotReady,
    PartlyDelivered,
    Refused,
    SinkError,
    describe,
)
from edgedev.wire import type_name

PASSWORD_ENV = ("EDGEDEV_MYSQL_PASSWORD", "PASSWORD")
"""Where the password comes from (``NAME`` or ``NAME_FILE``), first found wins."""

SINGLE_TABLE = "edgedev_readings"
"""The table of the ``single-table`` layout."""

MAX_NAME = 64
"""MySQL's longest table name."""


class MysqlLayout(enum.StrEnum):
    """How readings are laid out in MySQL."""

    TABLE_PER_PROPERTY = "table-per-property"
    SINGLE_TABLE = "single-table"


def table_name(row: Row) -> str:
    """Upstream's table of one property: ``namespace/device/property``."""
    return f"{row.device.namespace}/{row.device.name}/{row.prop.name}"


def quote(name: str) -> str:
    """A MySQL identifier in backquotes."""
    return "`" + name.replace("`", "``") + "`"


def create_table(table: str) -> str:
    """``CREATE TABLE IF NOT EXISTS`` of upstream's per-property table."""
    return (
        f"CREATE TABLE IF NOT EXISTS {quote(table)} "
        "(id INT AUTO_INCREMENT PRIMARY KEY, ts DATETIME NOT NULL, field TEXT)"
    )


CREATE_SINGLE = (
    f"CREATE TABLE IF NOT EXISTS {quote(SINGLE_TABLE)} ("
    "id BIGINT AUTO_INCREMENT PRIMARY KEY, namespace VARCHAR(253) NOT NULL, "
    "device VARCHAR(253) NOT NULL, property VARCHAR(128) NOT NULL, ts DATETIME(3) NOT NULL, "
    "value TEXT NOT NULL, type VARCHAR(16) NOT NULL, "
    "INDEX by_property (namespace, device, property, ts))"
)


CREATE_PER_ROUND_TRIP = 100
"""Tables created in one round trip (a multi-statement query)."""

INSERT_PER_ROUND_TRIP = 200
"""Tables written in one round trip (a multi-statement query, one transaction)."""


def per_property(rows: Sequence[Row]) -> dict[str, list[Row]]:
    """The rows of each table of the table-per-property layout."""
    tables: dict[str, list[Row]] = {}
    for row in rows:
        tables.setdefault(table_name(row), []).append(row)
    return tables


def inserts(tables: dict[str, list[Row]], literal: Any) -> str:
    """One multi-statement query: a multi-row ``INSERT`` per table.

    Values are quoted by ``literal``, the connection's own quoting.
    """
    return ";".join(
        f"INSERT INTO {quote(table)} (ts, field) VALUES "
        + ",".join(
            f"({literal(wall_time(r.reading.timestamp))},{literal(r.reading.text)})" for r in rows
        )
        for table, rows in tables.items()
    )


def single(rows: Sequence[Row]) -> list[tuple[str, str, str, str, str, str]]:
    """The rows of the single-table layout (``ts`` in ms)."""
    return [
        (
            r.device.namespace,
            r.device.name,
            r.prop.name,
            datetime.fromtimestamp(r.reading.timestamp / 1000, UTC).strftime(
                "%Y-%m-%d %H:%M:%S.%f"
            )[:-3],
            r.reading.text,
            type_name(r.prop.type),
        )
        for r in rows
    ]


class MysqlSink(PushSink[MysqlClientConfig, tuple[str, str, str]]):
    """Readings into MySQL or MariaDB over one connection (asyncmy), one transaction per batch.

    Args:
        target: ``(addr, database, userName)``.
        layout: :class:`MysqlLayout`.
        delivery: queue and retry settings.
    """

    kind = "dbMethod.mysql"

    def __init__(
        self,
        target: tuple[str, str, str],
        *,
        layout: MysqlLayout = MysqlLayout.TABLE_PER_PROPERTY,
        **delivery: Unpack[DeliveryOptions],
    ) -> None:
        super().__init__(target, **delivery)
        self.layout = MysqlLayout(layout)
        self._conn: Any = None
        self._created: set[str] = set()

    @property
    def label(self) -> str:
        """``user@addr/database``."""
        addr, database, user = self.target
        return f"{user}@{addr}/{database}"

    @classmethod
    def config_of(cls, push: PushMethod) -> MysqlClientConfig | None:
        """``dbMethod.mysql.mysqlClientConfig``."""
        db = push.db_method
        return db.mysql.mysql_client_config if db is not None and db.mysql is not None else None

    @classmethod
    def target_of(cls, config: MysqlClientConfig) -> tuple[str, str, str]:
        """The server, the database and the user."""
        return (config.addr, config.database, config.user_name)

    async def _connect(self) -> Any:
        import asyncmy  # the 'mysql' extra
        from asyncmy.constants import CLIENT
        from asyncmy.errors import OperationalError

        addr, database, user = self.target
        host, _, port = str(addr).rpartition(":")
        try:
            conn = await asyncmy.connect(
                host=host or "127.0.0.1",
                port=int(port or 3306),
                user=user,
                password=secret(*PASSWORD_ENV) or "",
                database=database,
                autocommit=False,
                connect_timeout=self.delivery.timeout,
                client_flag=CLIENT.MULTI_STATEMENTS,
            )
        except OperationalError as exc:
            code = exc.args[0] if exc.args else None
            if code in (1044, 1045):  # access denied (to the server, to the database)
                raise SinkError(
                    f"access denied ({exc.args[-1]}): check userName and the password in "
                    f"{' or '.join(PASSWORD_ENV)} (or the file named by *_FILE)"
                ) from None
            raise
        async with conn.cursor() as cur:  # the tables there already: no CREATE for them
            await cur.execute("SHOW TABLES")
            self._created = {str(name) for (name,) in await cur.fetchall()}
        return conn

    async def send(self, rows: Sequence[Row]) -> int | None:
        """Deliver ``rows`` in one transaction, or (table-per-property) a few, within a budget.

        single-table: one multi-row ``INSERT``, one round trip. table-per-property: the tables
        not there yet are created, 100 per round trip, then the rows go in, 200 tables per
        round trip (a multi-statement query) and one commit each, until half the sink's
        timeout is spent; what is left goes back to the queue (:class:`NotReady`).
        """
        from asyncmy.errors import DataError, IntegrityError, ProgrammingError

        if self._conn is None:
            self._conn = await self._connect()
        conn = self._conn
        tables = per_property(rows) if self.layout is MysqlLayout.TABLE_PER_PROPERTY else {}
        done: set[str] = set()
        try:
            async with conn.cursor() as cur:
                if self.layout is MysqlLayout.SINGLE_TABLE:
                    if SINGLE_TABLE not in self._created:
                        await cur.execute(CREATE_SINGLE)
                        self._created.add(SINGLE_TABLE)
                    await cur.executemany(
                        f"INSERT INTO {quote(SINGLE_TABLE)} "
                        "(namespace, device, property, ts, value, type) "
                        "VALUES (%s, %s, %s, %s, %s, %s)",
                        single(rows),
                    )
                    await conn.commit()
                    return None
                trips = await self._per_property(cur, conn, tables, done)
        except (DataError, ProgrammingError, IntegrityError) as exc:
            await conn.rollback()
            remaining = [r for t, rs in tables.items() if t not in done for r in rs]
            if exc.args and exc.args[0] == 1146:  # a table dropped behind our back: make it again
                self._created.clear()
                self._conn = None
                conn.close()
                raise PartlyDelivered(f"{exc.args[-1]}; creating it again", remaining) from None
            message = f"{type(exc).__name__}: {exc.args[-1] if exc.args else exc}"
            if done:  # what was committed is not refused with the rest
                raise PartlyDelivered(message, remaining) from None
            raise Refused(message) from None
        except Exception as exc:
            self._conn = None
            conn.close()
            if done:
                remaining = [r for t, rs in tables.items() if t not in done for r in rs]
                raise PartlyDelivered(describe(exc), remaining) from None
            raise
        except BaseException:
            self._conn = None
            conn.close()
            raise
        if len(done) < len(tables):
            raise NotReady([r for t, rs in tables.items() if t not in done for r in rs], trips)
        return trips

    async def _per_property(
        self, cur: Any, conn: Any, tables: dict[str, list[Row]], done: set[str]
    ) -> int:
        """Create and fill ``tables`` within the budget; ``done`` gets the committed ones."""
        deadline = anyio.current_time() + self.delivery.timeout / 2
        trips = 0
        missing = [t for t in tables if t not in self._created]
        for at in range(0, len(missing), CREATE_PER_ROUND_TRIP):
            if trips and anyio.current_time() > deadline:
                break
            chunk = missing[at : at + CREATE_PER_ROUND_TRIP]
            await cur.execute(";".join(create_table(t) for t in chunk))
            while await cur.nextset():
                pass
            self._created.update(chunk)
            trips += 1
        ready = [t for t in tables if t in self._created]
        for at in range(0, len(ready), INSERT_PER_ROUND_TRIP):
            if trips and anyio.current_time() > deadline:
                break
            chunk = ready[at : at + INSERT_PER_ROUND_TRIP]
            await cur.execute(inserts({t: tables[t] for t in chunk}, conn.literal))
            while await cur.nextset():
                pass
            await conn.commit()
            done.update(chunk)
            trips += 1
        return trips

    async def close(self) -> None:
        """Close the connection."""
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.close()
