"""Twins on disk: one SQLite file, written in small batched transactions.

The store is synchronous on purpose: the agent calls :meth:`TwinStore.save` through
``anyio.to_thread.run_sync`` with every change collected since the last commit (group commit),
so the event loop never waits on the disk and a burst of reports costs one transaction.
The connection is used by one thread at a time (the agent awaits each call), hence
``check_same_thread=False``.

The file uses WAL and ``synchronous=FULL`` by default: a committed update survives a power
loss, and the agent answers an update only after its commit.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from edgedev._errors import EdgedevError
from edgedev.agent._records import DeviceRow, PropertyRow
from edgedev.twin._twin import TwinProperty, TwinValue, WriteFailure
from edgedev.twin._values import PropertyType

log = logging.getLogger("edgedev.agent")

SCHEMA_VERSION = 1
MEMORY = ":memory:"
"""Pass as ``path`` for a store that lives in memory (nothing survives a restart)."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS devices (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    last_online INTEGER NOT NULL,
    node TEXT,
    mapper TEXT,
    mapper_started INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS properties (
    device TEXT NOT NULL,
    name TEXT NOT NULL,
    type TEXT NOT NULL,
    version INTEGER NOT NULL,
    desired TEXT,
    desired_ts INTEGER,
    reported TEXT,
    reported_ts INTEGER,
    failure_value TEXT,
    failure_reason TEXT,
    failure_ts INTEGER,
    failure_retry INTEGER,
    declared TEXT,
    PRIMARY KEY (device, name)
) WITHOUT ROWID;
"""

_UPSERT_DEVICE = """
INSERT INTO devices (id, state, last_online, node, mapper, mapper_started)
VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET state = excluded.state, last_online = excluded.last_online,
    node = excluded.node, mapper = excluded.mapper, mapper_started = excluded.mapper_started
"""

_UPSERT_PROPERTY = """
INSERT OR REPLACE INTO properties (device, name, type, version, desired, desired_ts, reported,
    reported_ts, failure_value, failure_reason, failure_ts, failure_retry, declared)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""

_Row = tuple[
    str,
    str,
    str,
    int,
    str | None,
    int | None,
    str | None,
    int | None,
    str | None,
    str | None,
    int | None,
    int | None,
    str | None,
]


_OPT_STR = (str, type(None))
_OPT_INT = (int, type(None))
_DEVICE_TYPES: tuple[type | tuple[type, ...], ...] = (str, str, int, _OPT_STR, _OPT_STR, int)
_PROPERTY_TYPES: tuple[type | tuple[type, ...], ...] = (
    str, str, str, int, _OPT_STR, _OPT_INT, _OPT_STR, _OPT_INT,
    _OPT_STR, _OPT_STR, _OPT_INT, _OPT_INT, _OPT_STR,
)  # fmt: skip


def _usable(row: tuple[object, ...], types: tuple[type | tuple[type, ...], ...]) -> bool:
    """Whether a stored row has the types the agent reads; logs and skips one that has not.

    SQLite columns take any type, so a row written by hand or by a broken tool must not stop
    the agent from starting.
    """
    if len(row) == len(types) and all(isinstance(v, t) for v, t in zip(row, types, strict=True)):
        return True
    log.warning("stored row skipped, its columns have unexpected types: %.300r", row)
    return False


class StoreError(EdgedevError):
    """The database cannot be opened or is not an edgedev twin store."""


def _property_values(row: PropertyRow) -> _Row:
    p = row.prop
    d, r, f = p.desired, p.reported, p.failure
    return (
        row.device,
        row.name,
        p.type.value,
        p.version,
        d.value if d else None,
        d.timestamp if d else None,
        r.value if r else None,
        r.timestamp if r else None,
        f.value if f else None,
        f.reason if f else None,
        f.timestamp if f else None,
        int(f.retry) if f else None,
        row.declared,
    )


def _property_row(values: _Row) -> PropertyRow:
    (
        device,
        name,
        type_,
        version,
        desired,
        desired_ts,
        reported,
        reported_ts,
        f_value,
        f_reason,
        f_ts,
        f_retry,
        declared,
    ) = values
    try:
        ptype = PropertyType(type_)
    except ValueError:
        ptype = PropertyType.STRING
    prop = TwinProperty(
        ptype,
        desired=TwinValue(desired, desired_ts or 0) if desired is not None else None,
        reported=TwinValue(reported, reported_ts or 0) if reported is not None else None,
        version=version,
        failure=(
            WriteFailure(f_value, f_reason or "", f_ts or 0, bool(f_retry))
            if f_value is not None
            else None
        ),
    )
    return PropertyRow(device, name, prop, declared)


class TwinStore:
    """Every twin the agent keeps, in one SQLite file.

    Args:
        path: the database file (created with its directory when missing), or ``":memory:"``.
        synchronous: SQLite's ``synchronous`` pragma: ``FULL`` (default) survives a power
            loss; ``NORMAL`` survives a crash of the process and commits faster.
    """

    def __init__(self, path: str | Path, *, synchronous: str = "FULL") -> None:
        self.path = str(path)
        if synchronous.upper() not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
            raise ValueError(f"synchronous must be OFF, NORMAL, FULL or EXTRA, not {synchronous}")
        if self.path != MEMORY:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={synchronous.upper()}")
            self._db.executescript(_SCHEMA)
            found = self._db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
            if found is None:
                self._db.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
            elif found[0] != str(SCHEMA_VERSION):
                raise StoreError(
                    f"{self.path}: schema version {found[0]}, this edgedev reads "
                    f"version {SCHEMA_VERSION}"
                )
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: {exc}") from exc
        self.commits = 0
        """Transactions committed by :meth:`save`."""
        self.bytes = self._used()
        """Bytes the twins take in the database (its pages in use), after the last save."""

    def load(self) -> tuple[list[DeviceRow], list[PropertyRow]]:
        """Every device and every property stored."""
        devices = [
            DeviceRow(*row)
            for row in self._db.execute(
                "SELECT id, state, last_online, node, mapper, mapper_started FROM devices"
            )
            if _usable(row, _DEVICE_TYPES)
        ]
        props = [
            _property_row(row)
            for row in self._db.execute(
                "SELECT device, name, type, version, desired, desired_ts, reported, reported_ts, "
                "failure_value, failure_reason, failure_ts, failure_retry, declared FROM properties"
            )
            if _usable(row, _PROPERTY_TYPES)
        ]
        return devices, props

    def save(self, devices: Sequence[DeviceRow], props: Sequence[PropertyRow]) -> None:
        """Write ``devices`` and ``props`` (insert or replace) in one transaction.

        Raises:
            sqlite3.Error: the transaction failed and was rolled back.
        """
        if not devices and not props:
            return
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany(
                _UPSERT_DEVICE,
                [
                    (d.id, d.state, d.last_online, d.node, d.mapper, d.mapper_started)
                    for d in devices
                ],
            )
            db.executemany(_UPSERT_PROPERTY, [_property_values(p) for p in props])
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        self.commits += 1
        self.bytes = self._used()

    def _used(self) -> int:
        """The database's pages in use, in bytes (freed pages are not counted: reused)."""
        pages, free, size = (
            self._db.execute(f"PRAGMA {name}").fetchone()[0]
            for name in ("page_count", "freelist_count", "page_size")
        )
        return int((pages - free) * size)

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    def __enter__(self) -> TwinStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
