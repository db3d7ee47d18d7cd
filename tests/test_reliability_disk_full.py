"""A full disk while acknowledgements arrive: nothing delivered is sent again after a restart.

The test makes its own small file system (a 1 MiB tmpfs; the suite runs as root in CI) and
fills it, so that SQLite's deletes fail with "database or disk is full" as they would on an
edge node's data volume.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgedev.bus import Message, SqliteOutbox
from reliability_helpers import small_tmpfs

MESSAGES = 200
DELIVERED = 194


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    with small_tmpfs(tmp_path / "disk", "1m") as mount:
        yield mount


def fill(disk: Path) -> Path:
    """Fill ``disk`` to the last byte; the filler file, to delete to make room."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (65536, 4096, 512, 1):
            while True:
                try:
                    os.write(fd, b"\0" * size)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC
                    break
    finally:
        os.close(fd)
    return filler


def rows(outbox_path: Path) -> int:
    with contextlib.closing(sqlite3.connect(outbox_path)) as db:
        count: int = db.execute("SELECT count(*) FROM outbox").fetchone()[0]
    return count


def wait_until(condition: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def deliver_on_a_full_disk(disk: Path) -> tuple[SqliteOutbox, Path]:
    """Queue 200 messages, fill the disk, acknowledge 194: their deletes fail."""
    outbox = SqliteOutbox(disk / "queue", flush_interval=0.01)
    for i in range(MESSAGES):
        outbox.put(Message("t", str(i).encode() * 100))
    assert outbox.sync()
    with contextlib.closing(sqlite3.connect(outbox.path)) as db:  # deletes now need new pages
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    filler = fill(disk)
    for _ in range(DELIVERED):
        taken = outbox.take()
        assert taken is not None
        outbox.ack(taken[0])
    assert not outbox.sync(timeout=1)  # the writer tried, and the disk refused
    wait_until(lambda: outbox.undeleted == DELIVERED)
    assert outbox.write_failures >= 1
    return outbox, filler


def test_delivered_rows_are_deleted_once_the_disk_has_room(small_disk: Path) -> None:
    outbox, filler = deliver_on_a_full_disk(small_disk)
    try:
        assert rows(outbox.path) == MESSAGES  # still there, but on record as delivered
        filler.unlink()
        assert outbox.sync(timeout=10)
        assert rows(outbox.path) == MESSAGES - DELIVERED
    finally:
        outbox.close()


def test_no_delivered_message_is_sent_again_after_a_restart(small_disk: Path) -> None:
    outbox, filler = deliver_on_a_full_disk(small_disk)
    outbox.close()  # the process stops while the disk is full
    assert rows(outbox.path) == MESSAGES
    filler.unlink()
    again = SqliteOutbox(small_disk / "queue", flush_interval=0.01)
    try:
        assert again.restored == MESSAGES - DELIVERED
        sent = []
        while (taken := again.take()) is not None:
            sent.append(taken[1].payload)
        assert sent == [str(i).encode() * 100 for i in range(DELIVERED, MESSAGES)]
        assert again.sync(timeout=10)
        assert rows(again.path) == MESSAGES - DELIVERED
    finally:
        again.close()


def test_a_restart_on_a_disk_still_full_sends_only_the_undelivered(small_disk: Path) -> None:
    outbox, _filler = deliver_on_a_full_disk(small_disk)
    outbox.close()
    again = SqliteOutbox(small_disk / "queue", flush_interval=0.01)
    try:
        assert again.restored == len(again) == MESSAGES - DELIVERED
    finally:
        again.close()
