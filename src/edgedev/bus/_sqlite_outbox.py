"""An outbox kept in SQLite, so that queued messages survive a restart of the process.

Design (chosen for a publish path that never waits for the disk):

- :meth:`SqliteOutbox.put`, :meth:`~SqliteOutbox.take`, :meth:`~SqliteOutbox.ack` and
  :meth:`~SqliteOutbox.requeue` work on an in-memory queue, exactly like
  :class:`~edgedev.bus.MemoryOutbox`; they only append to a change buffer (under a lock held
  for a few microseconds), so the event loop never touches the disk.
- A writer thread owned by the outbox persists the change buffer in batches: every message
  is inserted, every acknowledged or dropped message deleted, one transaction per batch, in
  WAL mode with ``synchronous=NORMAL``. A message acknowledged before its batch was written
  is never written at all, so with a healthy broker most messages cost no disk I/O.
- The writer commits at most ``flush_interval`` seconds (default 0.05 s), plus the time to
  write one batch, after a message was put. A process killed with SIGKILL therefore loses at
  most the unacknowledged messages put in that last window; everything committed before is
  found again at the next start and sent first, in the original order.
  ``synchronous=NORMAL`` keeps committed transactions across a crash of the process; only a
  power loss can also take the last transactions that the OS had not yet written out.
- The limit bounds both the memory queue and the database: at the limit the oldest unsent
  message is dropped, counted in :attr:`dropped` and logged.
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
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from edgedev.bus._outbox import MemoryOutbox, Message

log = logging.getLogger("edgedev.bus")

FILE_NAME = "outbox.sqlite3"
"""The database's file name inside the data directory."""
ACKED_SUFFIX = "-acked"
"""Next to the database: ids of acknowledged messages whose rows are not deleted yet."""
ACKED_SIZE = 64 * 1024
"""Bytes allocated for that file when the outbox opens: room for 4,095 ranges of ids."""
RETRY = 1.0
"""Seconds between attempts to write a batch the disk refused."""

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


_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    retain INTEGER NOT NULL
)
"""


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


class SqliteOutbox(MemoryOutbox):
    """A bounded outbox persisted to SQLite by a writer thread, in batches.

    Args:
        path: a directory to keep :data:`FILE_NAME` in (made if missing), or the database
            file itself when the path has a suffix (``queue.db``).
        limit: most messages kept (in memory and on disk); at the limit the oldest unsent
            message is dropped (counted in :attr:`dropped`, logged).
        flush_interval: seconds at most between a :meth:`put` and its commit to disk; the
            window of messages that a SIGKILL can take.
        batch: messages that wake the writer before the interval is over.
        lock_timeout: seconds to wait for another process that holds the same queue (a pod
            being replaced) to let go of it; the queue is never shared.

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
        flush_interval: float = 0.05,
        batch: int = 2000,
        lock_timeout: float = 30.0,
    ) -> None:
        super().__init__(limit)
        if flush_interval <= 0:
            raise ValueError("flush_interval must be positive")
        target = Path(path)
        if target.is_dir() or not target.suffix:
            target.mkdir(parents=True, exist_ok=True)
            target = target / FILE_NAME
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
        self.path = target
        self._lock = _lock_file(target.with_name(target.name + ".lock"), lock_timeout)
        self.persisted = 0
        self.flush_interval = flush_interval
        self._batch = batch
        # change buffer, shared with the writer thread under _cond
        self._cond = threading.Condition()
        self._inserts: dict[int, Message] = {}
        self._deletes: list[int] = []
        self._closing = False
        self._writing = False
        self._error: BaseException | None = None
        self._failed_at: float | None = None  # monotonic time the disk last refused a batch
        self.undeleted = 0
        self.write_failures = 0
        self._acked: set[int] = set()  # acknowledged, row still on disk (written to _acked_file)
        self._acked_file = _AckedFile(target.with_name(target.name + ACKED_SUFFIX))
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        except BaseException:
            self._acked_file.close()
            self._lock.close()
            raise
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(_SCHEMA)
            rows = self._db.execute(
                "SELECT seq, topic, payload, qos, retain FROM outbox ORDER BY seq"
            ).fetchall()
        except BaseException:
            self._db.close()
            self._acked_file.close()
            self._lock.close()
            raise
        acked = self._acked_file.read()
        for seq, topic, payload, qos, retain in rows:
            if seq in acked:  # delivered before the restart: delete, never send again
                self._acked.add(seq)
                self._deletes.append(seq)
                continue
            self._queue.append((seq, Message(topic, bytes(payload), qos, bool(retain))))
        # ids on record are never reused, and the record keeps only rows still on disk
        self._seq = max(rows[-1][0] if rows else 0, max(acked, default=0))
        if acked != self._acked:
            self._acked_file.write(self._acked)
        self.restored = len(rows) - len(self._acked)
        if self._acked:
            log.info(
                "outbox %s: %d messages acknowledged before the restart, deleting them",
                self.path,
                len(self._acked),
            )
        while len(self._queue) > self.limit:  # the limit was lowered since the last run
            seq, old = self._queue.popleft()
            self._deletes.append(seq)
            self._count_drop(old)
        if self.restored:
            log.info("outbox %s: %d queued messages from the last run", self.path, self.restored)
        self._thread = threading.Thread(
            target=self._write_loop, name=f"edgedev-outbox-{self.path.name}", daemon=True
        )
        self._thread.start()

    # the queue's changes, mirrored to the writer thread (event loop thread) ------------------
    def _stored(self, seq: int, message: Message) -> None:
        with self._cond:
            self._inserts[seq] = message
            pending = len(self._inserts)
            if pending == 1 or pending >= self._batch:
                self._cond.notify()

    def _discarded(self, seq: int) -> None:
        with self._cond:
            self._forget(seq)

    def sync(self, timeout: float = 5.0) -> bool:
        """Block until every change so far is on disk; whether it was within ``timeout``.

        Blocks the calling thread: for tests and shutdown, not for the event loop.
        """
        with self._cond:
            self._cond.notify()
            return self._cond.wait_for(
                lambda: not (self._inserts or self._deletes or self._writing),
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
        self._db.close()
        self._acked_file.close()
        self._lock.close()  # releases the lock

    # the writer thread -----------------------------------------------------------------------
    def _forget(self, seq: int) -> None:
        """Under ``_cond``: the message need not be (or stay) on disk."""
        if self._inserts.pop(seq, None) is None:
            self._deletes.append(seq)

    def _write_loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._inserts or self._deletes or self._closing)
                if not self._closing and self._failed_at is not None:
                    # the disk refused the last batch: try again later, not in a loop
                    wait = self._failed_at + RETRY - time.monotonic()
                    if wait > 0:
                        self._cond.wait_for(lambda: self._closing, wait)
                elif not self._closing and len(self._inserts) < self._batch:
                    # gather a batch, but commit within the interval
                    self._cond.wait_for(
                        lambda: self._closing or len(self._inserts) >= self._batch,
                        self.flush_interval,
                    )
                inserts, self._inserts = self._inserts, {}
                deletes, self._deletes = self._deletes, []
                closing = self._closing
                self._writing = True
            if inserts or deletes:
                self._write(inserts, deletes)
            with self._cond:
                self._writing = False
                self._cond.notify_all()  # wake sync() waiters
            if closing:
                with self._cond:
                    if self._failed_at is not None or (not self._inserts and not self._deletes):
                        return  # what the disk refused is on record (_acked_file) or lost

    def _write(self, inserts: dict[int, Message], deletes: list[int]) -> None:
        try:
            with self._db:
                self._db.execute("BEGIN")
                if inserts:
                    self._db.executemany(
                        "INSERT OR REPLACE INTO outbox VALUES (?, ?, ?, ?, ?)",
                        [
                            (seq, m.topic, m.payload, m.qos, int(m.retain))
                            for seq, m in inserts.items()
                        ],
                    )
                if deletes:
                    self._db.executemany(
                        "DELETE FROM outbox WHERE seq = ?", [(s,) for s in deletes]
                    )
            self.persisted += len(inserts)
        except sqlite3.Error as exc:
            # the queue in memory still holds every message: delivery goes on, and the batch
            # is tried again; an acknowledged row left on disk is put on record meanwhile
            self.write_failures += 1
            if self._error is None:
                log.error("outbox %s: cannot write to disk: %s", self.path, exc)
            self._error = exc
            self._failed_at = time.monotonic()
            with self._cond:
                gone = set(self._deletes)  # left the queue while the batch was being written
                self._inserts = {
                    **{s: m for s, m in inserts.items() if s not in gone},
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
            return
        if self._failed_at is not None:
            log.info("outbox %s: the disk takes writes again", self.path)
            self._failed_at = None
            self._error = None
        if self._acked and deletes:
            self._acked.difference_update(deletes)
            self._acked_file.write(self._acked)
