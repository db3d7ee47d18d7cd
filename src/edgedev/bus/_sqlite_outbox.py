"""An outbox kept in SQLite, so that queued messages survive a restart and a long outage.

Design (chosen for a publish path that never waits for the disk, and memory that does not
grow with the outage):

- :meth:`SqliteOutbox.put`, :meth:`~SqliteOutbox.take`, :meth:`~SqliteOutbox.ack` and
  :meth:`~SqliteOutbox.requeue` work on queues in memory, as :class:`~edgedev.bus.MemoryOutbox`
  does; they only append to a change buffer (under a lock held for a few microseconds). A
  writer thread owned by the outbox persists the buffer in batches: every message is
  inserted, every acknowledged or dropped message deleted, one transaction per batch, in WAL
  mode with ``synchronous=NORMAL``. A message acknowledged before its batch was written is
  never written at all, so with a healthy broker most messages cost no disk I/O.
- Memory holds the messages without readings (states, failed writes: few and small) and a
  **window** of the next ``window`` readings. While the broker is away, readings beyond the
  window live on disk only ("spilled"); when the window has been sent (or dropped), the next
  ones are read back from the disk, ``window`` at a time, in one query (a few milliseconds,
  the only disk read the event loop makes), together with those still waiting in the
  buffer. So memory stays at about a window, whatever the outage.
- The writer commits at most ``flush_interval`` seconds (default 0.05 s), plus the time to
  write one batch, after a message was put. A process killed with SIGKILL therefore loses at
  most the unacknowledged messages put in that last window; everything committed before is
  found again at the next start and sent first, in the original order.
  ``synchronous=NORMAL`` keeps committed transactions across a crash of the process; only a
  power loss can also take the last transactions that the OS had not yet written out.
- Bounds (see :mod:`edgedev.bus._outbox`): ``limit`` messages, ``max_bytes`` (the topics
  and payloads, :data:`~edgedev.bus._outbox.ENTRY_OVERHEAD` each), ``ttl``; the oldest
  readings go first, counted and logged. A full outbox costs one delete per message put:
  the file stops growing (SQLite reuses the freed pages), the CPU per message stays flat.
- A batch the disk refuses (disk full) is kept and tried again every :data:`RETRY` seconds;
  delivery goes on from memory meanwhile. An acknowledged message whose row cannot be deleted
  must never be sent again after a restart: its id is written (in place, needing no new disk
  space) to a small file allocated when the outbox opens (:data:`ACKED_SUFFIX`), and a
  restart deletes those rows by id instead of sending them. Counted in
  :attr:`SqliteOutbox.undeleted`.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import struct
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

from edgedev.bus._outbox import (
    ENTRY_OVERHEAD,
    MEMORY_MAX_BYTES,
    Entry,
    MemoryOutbox,
    Message,
    entry_size,
)

log = logging.getLogger("edgedev.bus")

FILE_NAME = "outbox.sqlite3"
"""The database's file name inside the data directory."""
ACKED_SUFFIX = "-acked"
"""Next to the database: ids of acknowledged messages whose rows are not deleted yet."""
ACKED_SIZE = 64 * 1024
"""Bytes allocated for that file when the outbox opens: room for 4,095 ranges of ids."""
RETRY = 1.0
"""Seconds between attempts to write a batch the disk refused."""
MAX_BYTES = 512 * 2**20
"""The default byte bound of the SQLite outbox (512 MiB): ``--outbox-max-mb``."""
TTL = 7 * 24 * 3600.0
"""The default age bound of its messages (7 days): ``--outbox-ttl``."""
WINDOW = 1000
"""Readings kept in memory ahead of sending; the rest of an outage waits on disk."""
PAGE_SIZE = 65536
"""SQLite's page size for a new file under the default bound: a twin report (up to ~16 kB)
never spills into an overflow page of its own, which doubled the file for 4 kB reports on
4 kB pages. A smaller ``max_bytes`` gets smaller pages (1/128 of it, 4 kB at least)."""
WAL_PAGES = 8
"""Pages the write-ahead log may hold at least (one transaction touches a few)."""
DATA_SHARE = 0.8
"""Of what ``max_bytes`` leaves after the write-ahead log and the small files beside the
database, the share the queued messages may take; the rest is for SQLite's partly filled
pages, so that the files together stay under ``max_bytes``."""
_SHM_SIZE = 32 * 1024  # the WAL index next to the database
MIN_DATA = 64 * 1024
"""The fewest bytes of messages a ``max_bytes`` must leave room for."""

_ACKED_MAGIC = b"EDAK"
_ACKED_HEAD = struct.Struct("<4sI")
_ACKED_RANGE = struct.Struct("<qq")
_ACKED_CAPACITY = (ACKED_SIZE - _ACKED_HEAD.size) // _ACKED_RANGE.size


def _ranges(ids: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted ``ids`` as inclusive ranges: acknowledgements come mostly in order."""
    out: list[tuple[int, int]] = []
    for seq in sorted(ids):
        if out and seq == out[-1][1] + 1:
            out[-1] = (out[-1][0], seq)
        else:
            out.append((seq, seq))
    return out


class _AckedFile:
    """A file of fixed size, allocated while there is room, rewritten in place."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            log.warning("%s: cannot open (%s); acknowledged ids kept in memory only", path, exc)
            return
        try:
            if os.fstat(fd).st_size < ACKED_SIZE:
                os.posix_fallocate(fd, 0, ACKED_SIZE)
        except OSError as exc:
            log.warning("%s: cannot allocate (%s); acknowledged ids kept in memory", path, exc)
            os.close(fd)
            return
        self._fd = fd

    def read(self) -> set[int]:
        """The ids written last time (empty when none, or unreadable)."""
        if self._fd is None:
            return set()
        data = os.pread(self._fd, ACKED_SIZE, 0)
        magic, count = _ACKED_HEAD.unpack_from(data)
        if magic != _ACKED_MAGIC or count > _ACKED_CAPACITY:
            return set()
        ids: set[int] = set()
        for n in range(count):
            first, last = _ACKED_RANGE.unpack_from(data, _ACKED_HEAD.size + n * _ACKED_RANGE.size)
            ids.update(range(first, last + 1))
        return ids

    def write(self, ids: Iterable[int]) -> bool:
        """Replace the ids in place; whether they all fit (and were written)."""
        if self._fd is None:
            return False
        ranges = _ranges(ids)
        kept = ranges[:_ACKED_CAPACITY]
        body = _ACKED_HEAD.pack(_ACKED_MAGIC, len(kept)) + b"".join(
            _ACKED_RANGE.pack(a, b) for a, b in kept
        )
        try:
            os.pwrite(self._fd, body, 0)
            os.fsync(self._fd)
        except OSError as exc:
            log.error("%s: cannot write acknowledged ids: %s", self.path, exc)
            return False
        return len(kept) == len(ranges)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _lock_file(path: Path, timeout: float) -> BinaryIO:
    """An open lock file held exclusively by this process (closing it lets go)."""
    handle = path.open("a+b")
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        return handle
    deadline = time.monotonic() + timeout
    waited = False
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return handle
        except BlockingIOError:
            if time.monotonic() >= deadline:
                handle.close()
                raise OSError(f"{path}: the queue is in use by another process") from None
            if not waited:
                log.warning("%s: waiting for another process to release the queue", path)
                waited = True
            time.sleep(0.2)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    retain INTEGER NOT NULL,
    readings INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL DEFAULT 0
)
"""
_COLUMNS = "seq, topic, payload, qos, retain, readings, created"
_SIZE = f"length(topic) + length(payload) + {ENTRY_OVERHEAD}"

Row = tuple[int, str, bytes, int, int, int, float]


def _page_size(max_bytes: int) -> int:
    """The page size of a new file: 1/128 of ``max_bytes``, a power of two from 4 kB up."""
    if not max_bytes:
        return PAGE_SIZE
    size = 4096
    while size * 2 <= min(PAGE_SIZE, max_bytes // 128):
        size *= 2
    return size


def _entry(row: Row) -> Entry:
    seq, topic, payload, qos, retain, readings, created = row
    return seq, Message(topic, bytes(payload), qos, bool(retain), readings), created


def _migrate(db: sqlite3.Connection, now: float) -> None:
    """Add the columns of readings and age to a queue written by an earlier edgedev.

    Its twin reports (``.../twin/update``) count as readings (one each: the count was not
    kept); its messages count as queued now.
    """
    columns = {row[1] for row in db.execute("PRAGMA table_info(outbox)")}
    if "readings" not in columns:
        db.execute("ALTER TABLE outbox ADD COLUMN readings INTEGER NOT NULL DEFAULT 0")
        db.execute("UPDATE outbox SET readings = 1 WHERE topic LIKE '%/twin/update'")
    if "created" not in columns:
        db.execute("ALTER TABLE outbox ADD COLUMN created REAL NOT NULL DEFAULT 0")
        db.execute("UPDATE outbox SET created = ?", (now,))


class SqliteOutbox(MemoryOutbox):
    """A bounded outbox persisted to SQLite by a writer thread, in batches.

    Args:
        path: a directory to keep :data:`FILE_NAME` in (made if missing), or the database
            file itself when the path has a suffix (``queue.db``).
        limit: most messages kept (in memory and on disk).
        max_bytes: most bytes kept (:data:`MAX_BYTES` by default); 0: no bound.
        ttl: seconds a message may wait (:data:`TTL` by default); ``None``: no bound.
        window: readings kept in memory ahead of sending (:data:`WINDOW`).
        flush_interval: seconds at most between a :meth:`put` and its commit to disk; the
            window of messages that a SIGKILL can take.
        batch: messages that wake the writer before the interval is over.
        lock_timeout: seconds to wait for another process that holds the same queue (a pod
            being replaced) to let go of it; the queue is never shared.
        clock: epoch seconds (for tests).

    Raises:
        OSError: the file cannot be opened, or another process kept it ``lock_timeout`` s.
        sqlite3.Error: the file is not a database.

    Attributes:
        persisted: messages written to disk since the outbox was opened.
        restored: messages found on disk when the outbox was opened (and sent again).
        undeleted: acknowledged messages whose rows the disk refused to delete (counted
            once each); they are deleted by id when it has room, at the latest at the next
            start, and never sent again.
        write_failures: batches the disk refused.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        limit: int = 100_000,
        max_bytes: int = MAX_BYTES,
        ttl: float | None = TTL,
        window: int = WINDOW,
        flush_interval: float = 0.05,
        batch: int = 2000,
        lock_timeout: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(limit, max_bytes=max_bytes, ttl=ttl, clock=clock)
        if flush_interval <= 0:
            raise ValueError("flush_interval must be positive")
        if window < 1:
            raise ValueError("window must be at least 1")
        self._page = _page_size(max_bytes)  # until the file says otherwise
        if max_bytes and self._data_bytes() < MIN_DATA:
            raise ValueError(
                f"max_bytes must be at least {self._least():,} (room for the write-ahead log "
                f"and {MIN_DATA:,} bytes of messages)"
            )
        target = Path(path)
        if target.is_dir() or not target.suffix:
            target.mkdir(parents=True, exist_ok=True)
            target = target / FILE_NAME
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
        self.path = target
        self._window = window
        self._spill_from: int | None = None  # the first reading not in memory, while spilled
        self._spilled = 0  # readings on disk (or in the buffer) only
        self._skip: set[int] = set()  # acknowledged before a restart, rows not yet deleted
        self._lock = _lock_file(target.with_name(target.name + ".lock"), lock_timeout)
        self.persisted = 0
        self.flush_interval = flush_interval
        self._batch = batch
        # change buffer, shared with the writer thread under _cond
        self._cond = threading.Condition()
        self._inserts: dict[int, Entry] = {}
        self._writing: dict[int, Entry] = {}  # the batch being written, until committed
        self._deletes: list[int] = []
        self._closing = False
        self._busy = False
        self._error: BaseException | None = None
        self._failed_at: float | None = None  # monotonic time the disk last refused a batch
        self._bytes_when_failing = 0
        self.undeleted = 0
        self.write_failures = 0
        self._acked: set[int] = set()  # acknowledged, row still on disk (written to _acked_file)
        self._acked_file = _AckedFile(target.with_name(target.name + ACKED_SUFFIX))
        self._db: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute(f"PRAGMA page_size={self._page}")  # a new file only
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._page = self._db.execute("PRAGMA page_size").fetchone()[0]
            wal = self._wal_bytes()
            self._db.execute(f"PRAGMA wal_autocheckpoint={max(2, wal // 2 // self._page)}")
            self._db.execute(f"PRAGMA journal_size_limit={wal}")
            self._db.execute(_SCHEMA)
            _migrate(self._db, self._clock())
            self._reader = sqlite3.connect(self.path, check_same_thread=False)
            self._restore()
        except BaseException:
            self._release()
            raise
        self._thread = threading.Thread(
            target=self._write_loop, name=f"edgedev-outbox-{self.path.name}", daemon=True
        )
        self._thread.start()
        self._enforce()

    def _restore(self) -> None:
        """Load the messages without readings, and count the readings left on disk.

        Messages acknowledged before the restart whose rows the disk kept (on record in the
        acked file) are deleted, never sent again.
        """
        assert self._reader is not None
        reader = self._reader
        acked = self._acked_file.read()
        control = reader.execute(
            f"SELECT {_COLUMNS} FROM outbox WHERE readings = 0 ORDER BY seq"
        ).fetchall()
        count, size, first, last = reader.execute(
            f"SELECT count(*), coalesce(sum({_SIZE}), 0), min(seq), max(seq) "
            "FROM outbox WHERE readings > 0"
        ).fetchone()
        on_disk = {row[0] for row in control}
        if acked and count:
            on_disk.update(
                seq
                for (seq,) in reader.execute(
                    "SELECT seq FROM outbox WHERE readings > 0 AND seq BETWEEN ? AND ?",
                    (min(acked), max(acked)),
                )
                if seq in acked
            )
        # ids on record are never reused, and the record keeps only rows still on disk
        self._seq = max(max(on_disk, default=0), last or 0, max(acked, default=0))
        self._acked = acked & on_disk
        if acked != self._acked:
            self._acked_file.write(self._acked)
        self._deletes.extend(sorted(self._acked))
        for row in control:
            if row[0] not in self._acked:
                entry = _entry(row)
                self._control.append(entry)
                self._bytes += entry_size(entry[1])
        self._skip = self._acked - {row[0] for row in control}  # readings: skipped when read
        if count:
            self._spill_from, self._spilled = first, count
            self._bytes += size
        self.restored = len(self._control) + count - len(self._skip)
        if self._acked:
            log.info(
                "outbox %s: %d messages acknowledged before the restart, deleting them",
                self.path,
                len(self._acked),
            )
        if self.restored:
            log.info("outbox %s: %d queued messages from the last run", self.path, self.restored)

    def _enforce(self) -> None:
        """Apply the bounds to what was restored (they may be lower than last time)."""
        self._expire(self._clock())
        self._bound()

    # the queue's changes, mirrored to the writer thread (event loop thread) ------------------
    def _stored(self, entry: Entry) -> None:
        with self._cond:
            self._inserts[entry[0]] = entry
            pending = len(self._inserts)
            if pending == 1 or pending >= self._batch:
                self._cond.notify()

    def _discarded(self, seq: int) -> None:
        with self._cond:
            self._forget(seq)

    def _keep(self, entry: Entry) -> bool:
        """Readings beyond the window, or behind those, wait on disk only."""
        if not entry[1].values:
            return True
        if self._spill_from is None and len(self._readings) < self._window:
            return True
        if self._spill_from is None:
            self._spill_from = entry[0]
        self._spilled += 1
        return False

    def _elsewhere(self) -> int:
        return self._spilled

    def _data_bytes(self) -> int:
        """The bytes the queued messages may take: their share of ``max_bytes``.

        What the write-ahead log and the small files beside the database leave, times
        :data:`DATA_SHARE` (0: no bound).
        """
        if not self.max_bytes:
            return 0
        room = self.max_bytes - self._fixed_bytes()
        return max(1, int(room * DATA_SHARE))

    def _byte_bound(self) -> int:
        """The bytes kept at most now: :meth:`_data_bytes`.

        While the disk refuses writes, at most :data:`MEMORY_MAX_BYTES` more than when it
        began: they wait in memory.
        """
        data = self._data_bytes()
        if self._failed_at is None:
            return data
        bound = self._bytes_when_failing + MEMORY_MAX_BYTES
        return min(data, bound) if data else bound

    def _fixed_bytes(self) -> int:
        """What ``max_bytes`` must leave besides the messages' pages.

        The write-ahead log (three times its bound: it is cut back at the first transaction
        after a checkpoint, which follows the one that crossed half of it, and a transaction
        rewrites whole pages), the files beside the database, its first pages (schema, root)
        and a spare one.
        """
        return 3 * self._wal_bytes() + ACKED_SIZE + _SHM_SIZE + 3 * self._page

    def _least(self) -> int:
        """The smallest ``max_bytes`` that leaves :data:`MIN_DATA` for messages."""
        return int(MIN_DATA / DATA_SHARE) + self._fixed_bytes() + 1

    def _wal_bytes(self) -> int:
        """What the write-ahead log may hold: 1/64 of ``max_bytes``, :data:`WAL_PAGES` up."""
        if not self.max_bytes:
            return 16 * 2**20
        return max(self._page * WAL_PAGES, self.max_bytes // 64)

    def _refill(self) -> None:
        """Read the next ``window`` spilled readings back, from the disk and the buffer."""
        if self._spill_from is None or self._reader is None:
            return
        start, want = self._spill_from, self._window
        with self._cond:
            pending = [
                e
                for e in (*self._writing.values(), *self._inserts.values())
                if e[0] >= start and e[1].values
            ]
        rows = self._reader.execute(
            f"SELECT {_COLUMNS} FROM outbox WHERE seq >= ? AND readings > 0 ORDER BY seq LIMIT ?",
            (start, want + len(self._skip)),
        ).fetchall()
        found = {e[0]: e for e in pending}
        for row in rows:
            if row[0] not in found:
                found[row[0]] = _entry(row)
        entries = []
        for seq in sorted(found):
            if seq in self._skip:  # delivered before a restart: deleting, never sent again
                self._skip.discard(seq)
                self._spilled -= 1
                self._bytes -= entry_size(found[seq][1])
                continue
            entries.append(found[seq])
            if len(entries) == want:
                break
        self._readings.extend(entries)
        self._spilled -= len(entries)
        if len(entries) < want:  # everything is in memory again
            if self._spilled:
                log.error("outbox %s: %d queued readings were not found", self.path, self._spilled)
            self._spill_from, self._spilled = None, 0
        else:
            self._spill_from = entries[-1][0] + 1

    def sync(self, timeout: float = 5.0) -> bool:
        """Block until every change so far is on disk; whether it was within ``timeout``.

        Blocks the calling thread: for tests and shutdown, not for the event loop.
        """
        with self._cond:
            self._cond.notify()
            return self._cond.wait_for(
                lambda: not (self._inserts or self._deletes or self._busy),
                timeout,
            )

    def close(self) -> None:
        """Write what is pending, stop the writer thread and close the database."""
        with self._cond:
            if self._closing:
                return
            self._closing = True
            self._cond.notify_all()
        self._thread.join()
        super().close()
        self._release()

    def _release(self) -> None:
        for db in (self._reader, self._db):
            if db is not None:
                db.close()
        self._acked_file.close()
        self._lock.close()  # releases the lock

    # the writer thread -----------------------------------------------------------------------
    def _forget(self, seq: int) -> None:
        """Under ``_cond``: the message need not be (or stay) on disk."""
        if self._inserts.pop(seq, None) is None:
            self._deletes.append(seq)

    def _take_inserts(self) -> dict[int, Entry]:
        """Under ``_cond``: the oldest pending inserts, up to a transaction's bytes.

        A transaction's pages stay in the write-ahead log until it commits: bounding it
        bounds the log (:meth:`_wal_bytes`).
        """
        budget = self._wal_bytes() // 4
        if sum(entry_size(e[1]) for e in self._inserts.values()) <= budget:
            inserts, self._inserts = self._inserts, {}
            return inserts
        taken: dict[int, Entry] = {}
        for seq, entry in self._inserts.items():
            taken[seq] = entry
            budget -= entry_size(entry[1])
            if budget <= 0:
                break
        for seq in taken:
            del self._inserts[seq]
        return taken

    def _write_loop(self) -> None:
        backlog = False
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._inserts or self._deletes or self._closing)
                if not self._closing and self._failed_at is not None:
                    # the disk refused the last batch: try again later, not in a loop
                    wait = self._failed_at + RETRY - time.monotonic()
                    if wait > 0:
                        self._cond.wait_for(lambda: self._closing, wait)
                elif not self._closing and not backlog and len(self._inserts) < self._batch:
                    # gather a batch, but commit within the interval
                    self._cond.wait_for(
                        lambda: self._closing or len(self._inserts) >= self._batch,
                        self.flush_interval,
                    )
                inserts = self._take_inserts()
                backlog = bool(self._inserts)  # more than one transaction's worth: go on
                self._writing = inserts
                deletes, self._deletes = self._deletes, []
                closing = self._closing
                self._busy = True
            if inserts or deletes:
                self._write(inserts, deletes)
            with self._cond:
                self._writing = {}
                self._busy = False
                self._cond.notify_all()  # wake sync() waiters
            if closing:
                with self._cond:
                    if self._failed_at is not None or (not self._inserts and not self._deletes):
                        return  # what the disk refused is on record (_acked_file) or lost

    def _write(self, inserts: dict[int, Entry], deletes: list[int]) -> None:
        assert self._db is not None
        db = self._db
        try:
            with db:
                db.execute("BEGIN")
                if deletes:  # first: the new rows take the pages the old ones leave
                    db.executemany("DELETE FROM outbox WHERE seq = ?", [(s,) for s in deletes])
                if inserts:
                    db.executemany(
                        f"INSERT OR REPLACE INTO outbox ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        [
                            (seq, m.topic, m.payload, m.qos, int(m.retain), m.values, created)
                            for seq, m, created in inserts.values()
                        ],
                    )
            self.persisted += len(inserts)
        except sqlite3.Error as exc:
            self._refused(exc, inserts, deletes)
            return
        if self._failed_at is not None:
            log.info("outbox %s: the disk takes writes again", self.path)
            self._failed_at = None
            self._error = None
        if self._acked and deletes:
            self._acked.difference_update(deletes)
            self._acked_file.write(self._acked)

    def _refused(self, exc: sqlite3.Error, inserts: dict[int, Entry], deletes: list[int]) -> None:
        """The disk refused a batch: keep it for the next attempt, put deletes on record.

        The queue in memory still holds every message it holds: delivery goes on, and the
        batch is tried again; an acknowledged row left on disk is put on record meanwhile.
        """
        self.write_failures += 1
        if self._error is None:
            log.error("outbox %s: cannot write to disk: %s", self.path, exc)
            self._bytes_when_failing = self._bytes
        self._error = exc
        self._failed_at = time.monotonic()
        with self._cond:
            gone = set(self._deletes)  # left the queue while the batch was being written
            self._inserts = {
                **{s: e for s, e in inserts.items() if s not in gone},
                **self._inserts,
            }
            self._deletes = deletes + self._deletes
            new = [s for s in deletes if s not in self._acked and s not in inserts]
        if new:
            self.undeleted += len(new)
            self._acked.update(new)
            if not self._acked_file.write(self._acked):
                log.error(
                    "outbox %s: %d acknowledged messages could not be put on record; "
                    "they will be sent again if the process restarts before the disk "
                    "has room",
                    self.path,
                    len(self._acked),
                )
