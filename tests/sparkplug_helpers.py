"""An independent Sparkplug B host (pysparkplug, in a process of its own) for the Sparkplug tests.

pysparkplug 0.6.1 needs paho-mqtt 1.x and edgedev needs 2.x: the host runs in a virtual
environment of its own (``HOST_VENV``), made by ``.ci/run`` with
``tests/sparkplug_host_requirements.txt``; ``tests/sparkplug_host.py`` is the script it runs.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import pytest

from edgedev.sparkplug import EdgeNode

REPO = Path(__file__).resolve().parents[1]
HOST_VENV = Path(os.environ.get("EDGEDEV_SPARKPLUG_HOST_VENV", REPO / ".venv-sparkplug-host"))
MAKE_VENV = (
    f"python3 -m venv {HOST_VENV} && {HOST_VENV}/bin/pip install "
    f"-r {REPO / 'tests' / 'sparkplug_host_requirements.txt'}"
)


def host_python() -> str:
    """The host venv's python; the test is skipped (failed in a complete run) without it."""
    python = HOST_VENV / "bin" / "python"
    if not python.exists():
        reason = f"the Sparkplug host's venv is missing: {MAKE_VENV}"
        if os.environ.get("EDGEDEV_TEST_COMPLETE") == "1":
            pytest.fail(f"{reason}; EDGEDEV_TEST_COMPLETE=1 says every test must run")
        pytest.skip(reason)
    return str(python)


Line = dict[str, Any]


class Host:
    """pysparkplug as the primary host application: what it received, and what it sends.

    Use as a context manager; :meth:`expect` waits (in a worker thread) for a line.

    Args:
        url: the broker.
        edge: the edge node the host listens to (its whole group).
        host_id: the host application's id.
        online: the STATE it publishes first.
    """

    def __init__(self, url: str, edge: EdgeNode, host_id: str, *, online: bool = True) -> None:
        parts = urlsplit(url)
        self.edge = edge
        self.host_id = host_id
        self.lines: list[Line] = []
        self._unmatched: list[Line] = []
        self._queue: queue.Queue[Line | None] = queue.Queue()
        self._proc = subprocess.Popen(
            [
                host_python(),
                str(REPO / "tests" / "sparkplug_host.py"),
                parts.hostname or "127.0.0.1",
                str(parts.port or 1883),
                edge.group,
                edge.node,
                host_id,
                "online" if online else "offline",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for text in self._proc.stdout:
            self._queue.put(json.loads(text))
        self._queue.put(None)

    async def start(self) -> Host:
        """Wait until the host's subscriptions are in place."""
        await self.expect(lambda line: line.get("ready") is True, what="the host ready")
        return self

    def send(self, **command: Any) -> None:
        """Hand the host a command (see ``tests/sparkplug_host.py``)."""
        assert self._proc.stdin is not None
        self._proc.stdin.write(json.dumps(command) + "\n")
        self._proc.stdin.flush()

    async def expect(
        self, predicate: Callable[[Line], bool], *, timeout: float = 15.0, what: str = ""
    ) -> Line:
        """The oldest line received, not yet returned, that satisfies ``predicate``.

        Every line is kept in :attr:`lines`, in order of arrival.

        Raises:
            AssertionError: none within ``timeout`` seconds, or the host ended.
        """
        for index, line in enumerate(self._unmatched):
            if predicate(line):
                del self._unmatched[index]
                return line
        deadline = anyio.current_time() + timeout
        while True:
            left = deadline - anyio.current_time()
            if left <= 0:
                raise AssertionError(f"no {what or 'such message'} within {timeout} s")
            try:
                line = await anyio.to_thread.run_sync(self._queue.get, True, min(left, 0.5))
            except queue.Empty:
                continue
            if line is None:
                err = self._proc.stderr.read() if self._proc.stderr else ""
                raise AssertionError(f"the host ended waiting for {what}: {err[-2000:]}")
            self.lines.append(line)
            if predicate(line):
                return line
            self._unmatched.append(line)

    def forget(self) -> None:
        """Let :meth:`expect` look only at lines received from now on."""
        self._unmatched.clear()

    def of(self, kind: str, device: str | None = None) -> Callable[[Line], bool]:
        """A predicate: a message of this edge node of type ``kind`` (of ``device``)."""

        def match(line: Line) -> bool:
            return (
                line.get("type") == kind
                and line.get("edge") == self.edge.node
                and (device is None or line.get("device") == device)
            )

        return match

    def close(self) -> None:
        """End the host process."""
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        for stream in (self._proc.stdin, self._proc.stdout, self._proc.stderr):
            if stream is not None:
                stream.close()

    def __enter__(self) -> Host:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def metrics(line: Line) -> dict[str, Line]:
    """The metrics of a birth (or of a message pysparkplug resolved the names of), by name."""
    return {m["name"]: m for m in line.get("metrics", [])}


def seqs_continue(lines: list[Line], edge: EdgeNode) -> list[int]:
    """The ``seq`` of the edge node's messages in order, checked one more each, 255 -> 0,
    from each NBIRTH's 0 (6.4.5); NDEATH (no ``seq``) and commands are left out."""
    seen = [
        line
        for line in lines
        if line.get("edge") == edge.node
        and line.get("type") in ("NBIRTH", "DBIRTH", "NDATA", "DDATA", "DDEATH")
    ]
    previous = None
    out = []
    for line in seen:
        seq = line["seq"]
        if line["type"] == "NBIRTH":
            assert seq == 0, line
        elif previous is not None:
            assert seq == (previous + 1) % 256, (previous, line)
        previous = seq
        out.append(seq)
    return out
