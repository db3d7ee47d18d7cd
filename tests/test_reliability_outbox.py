"""The SQLite outbox: order, limit, acknowledgements, and what survives a restart."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from edgedev.bus import Message, SqliteOutbox


def msg(i: int, topic: str = "t") -> Message:
    return Message(topic, str(i).encode())


def drain(outbox: SqliteOutbox) -> list[int]:
    out = []
    while (item := outbox.take()) is not None:
        seq, message = item
        out.append(int(message.payload))
        outbox.ack(seq)
    return out


def test_unacknowledged_messages_survive_a_reopen_in_order(tmp_path: Path):
    outbox = SqliteOutbox(tmp_path)
    for i in range(100):
        outbox.put(msg(i))
    for _ in range(30):  # 30 acknowledged, 10 in flight, 60 waiting
        item = outbox.take()
        assert item is not None
        outbox.ack(item[0])
    in_flight = [outbox.take() for _ in range(10)]
    assert all(in_flight)
    outbox.close()

    again = SqliteOutbox(tmp_path)
    try:
        assert again.restored == 70 and len(again) == 70
        assert drain(again) == list(range(30, 100))  # in flight counts as unsent
        again.put(msg(1000))  # sequence numbers go on after the restored ones
        assert drain(again) == [1000]
    finally:
        again.close()
    assert (tmp_path / "outbox.sqlite3").exists()


def test_requeue_puts_in_flight_messages_back_first(tmp_path: Path):
    outbox = SqliteOutbox(tmp_path / "q.db")
    try:
        for i in range(5):
            outbox.put(msg(i))
        assert outbox.take() is not None and outbox.take() is not None
        outbox.requeue()
        assert drain(outbox) == [0, 1, 2, 3, 4]
    finally:
        outbox.close()


def test_limit_drops_the_oldest_counts_and_keeps_disk_bounded(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    outbox = SqliteOutbox(tmp_path, limit=10)
    for i in range(25):
        outbox.put(msg(i))
    assert outbox.dropped == 15 and len(outbox) == 10
    assert "outbox full" in caplog.text
    assert outbox.sync()
    with sqlite3.connect(tmp_path / "outbox.sqlite3") as db:
        rows = db.execute("SELECT count(*) FROM outbox").fetchone()[0]
    assert rows == 10
    outbox.close()
    again = SqliteOutbox(tmp_path, limit=4)  # a lower limit applies to what was kept
    try:
        assert again.dropped == 6
        assert drain(again) == [21, 22, 23, 24]
    finally:
        again.close()


def test_acknowledged_messages_leave_the_disk(tmp_path: Path):
    outbox = SqliteOutbox(tmp_path)
    try:
        for i in range(50):
            outbox.put(msg(i))
        assert outbox.sync()
        assert drain(outbox) == list(range(50))
        assert outbox.sync()
        with sqlite3.connect(tmp_path / "outbox.sqlite3") as db:
            assert db.execute("SELECT count(*) FROM outbox").fetchone()[0] == 0
    finally:
        outbox.close()


def test_messages_older_than_the_flush_window_survive_sigkill(tmp_path: Path):
    """A process that puts messages and is killed: what is older than the window is kept."""
    script = textwrap.dedent(
        f"""
        import os, signal, time
        from edgedev.bus import Message, SqliteOutbox
        outbox = SqliteOutbox({str(tmp_path)!r}, flush_interval=0.05)
        for i in range(2000):
            outbox.put(Message("t", str(i).encode()))
        time.sleep(0.5)  # ten windows: everything is committed by now
        for i in range(2000, 2010):
            outbox.put(Message("t", str(i).encode()))
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], timeout=60, check=False)
    assert proc.returncode == -signal.SIGKILL
    outbox = SqliteOutbox(tmp_path)
    try:
        got = drain(outbox)
    finally:
        outbox.close()
    assert got[:2000] == list(range(2000)), "every message older than the window survived"
    assert got == list(range(len(got)))  # whatever else was kept is in order, no gap


def test_bad_arguments_are_refused(tmp_path: Path):
    with pytest.raises(ValueError, match="limit"):
        SqliteOutbox(tmp_path, limit=0)
    with pytest.raises(ValueError, match="flush_interval"):
        SqliteOutbox(tmp_path, flush_interval=0)
    with pytest.raises(ValueError, match=r"max_bytes must be at least 290,817 \(room for"):
        SqliteOutbox(tmp_path, max_bytes=200_000)
    assert not list(tmp_path.iterdir()), "nothing was created"


def test_one_queue_belongs_to_one_process_at_a_time(tmp_path: Path):
    """A second mapper on the same data directory waits, then gives up; never shares it."""
    first = SqliteOutbox(tmp_path)
    try:
        with pytest.raises(OSError, match="in use by another process"):
            SqliteOutbox(tmp_path, lock_timeout=0.3)
    finally:
        first.close()
    second = SqliteOutbox(tmp_path, lock_timeout=0.3)  # free again once the first is closed
    second.close()


def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path):
    (tmp_path / "outbox.sqlite3").write_bytes(b"this is not sqlite " * 100)
    with pytest.raises(sqlite3.DatabaseError):
        SqliteOutbox(tmp_path)
    SqliteOutbox(tmp_path / "other.db").close()  # the lock was released: usable elsewhere
