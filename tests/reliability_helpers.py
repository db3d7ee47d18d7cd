"""Modbus fleets, a gate in front of the broker, and mapper subprocesses for reliability tests."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.abc import SocketStream, TaskStatus

from edgedev import DeviceSpec
from edgedev.bus import Message, SqliteOutbox
from edgedev.testing import free_port, load_documents, unique_root, write_documents

API = "devices.kubeedge.io/v1beta1"


def fleet_docs(
    names: Sequence[str], cycle_ms: int = 100, *, ports: dict[str, int] | None = None, **config: Any
) -> list[dict[str, Any]]:
    """A model and one Modbus TCP device per name, each on its own port, one INT property."""
    docs: list[dict[str, Any]] = [
        {
            "apiVersion": API,
            "kind": "DeviceModel",
            "metadata": {"name": "counter"},
            "spec": {
                "protocol": "modbus",
                "properties": [{"name": "n", "type": "INT", "accessMode": "ReadOnly"}],
            },
        }
    ]
    for name in names:
        port = (ports or {}).get(name) or free_port()
        docs.append(
            {
                "apiVersion": API,
                "kind": "Device",
                "metadata": {"name": name},
                "spec": {
                    "deviceModelRef": {"name": "counter"},
                    "protocol": {
                        "protocolName": "modbus",
                        "configData": {"ip": "127.0.0.1", "port": port, **config},
                    },
                    "properties": [
                        {
                            "name": "n",
                            "collectCycle": cycle_ms,
                            "reportCycle": cycle_ms,
                            "visitors": {
                                "protocolName": "modbus",
                                "configData": {"register": "HoldingRegister", "offset": 0},
                            },
                        }
                    ],
                },
            }
        )
    return docs


def write_docs(tmp_path: Path, docs: Sequence[dict[str, Any]]) -> Path:
    return write_documents(tmp_path, docs)


def load_docs(tmp_path: Path, docs: Sequence[dict[str, Any]]) -> list[DeviceSpec]:
    return load_documents(tmp_path, docs)


def topic_root() -> str:
    return unique_root("rel")


def is_report(message: Message) -> bool:
    return message.topic.endswith("/twin/update")


def device_of(message: Message) -> str:
    """``name`` of ``{root}/device/default/{name}/twin/update``."""
    return message.topic.split("/device/", 1)[1].split("/")[1]


def readings(messages: Sequence[Message]) -> dict[str, list[tuple[str, int]]]:
    """Per device, ``(event_id, value timestamp)`` of each report in arrival order."""
    out: dict[str, list[tuple[str, int]]] = {}
    for message in messages:
        if is_report(message):
            payload = json.loads(message.payload)
            ts = payload["twin"]["n"]["actual"]["metadata"]["timestamp"]
            out.setdefault(device_of(message), []).append((payload["event_id"], ts))
    return out


def first_occurrences(items: Sequence[tuple[str, int]]) -> tuple[list[tuple[str, int]], int]:
    """Items without repeated event ids, and how many repeats there were."""
    seen: set[str] = set()
    unique = []
    for item in items:
        if item[0] not in seen:
            seen.add(item[0])
            unique.append(item)
    return unique, len(items) - len(unique)


class RecordingOutbox(SqliteOutbox):
    """A SQLite outbox that remembers every message put and acknowledged (completeness checks)."""

    def __init__(self, path: Path, **kwargs: Any) -> None:
        super().__init__(path, **kwargs)
        self.put_log: list[Message] = []
        self.acked_log: list[Message] = []

    def put(self, message: Message) -> None:
        self.put_log.append(message)
        super().put(message)

    def ack(self, seq: int) -> None:
        entry = self._inflight.get(seq)  # (seq, message, queued at)
        if entry is not None:
            self.acked_log.append(entry[1])
        super().ack(seq)


class Gate:
    """A TCP forwarder in front of the broker that the test opens and closes.

    Clients connect to :attr:`port`; while closed, connections are refused (accepted and
    closed at once). It lets a test decide who reaches a restarted broker first. ``drop``
    discards chunks sent by clients (e.g. RTU frames for a slave that is dead); ``delay``
    holds every answer back that long (a slow device).
    """

    def __init__(
        self,
        upstream_port: int,
        drop: Callable[[bytes], bool] | None = None,
        delay: float = 0.0,
    ) -> None:
        self.upstream_port = upstream_port
        self.drop = drop
        self.delay = delay
        self.port = 0
        self.is_open = True
        self._scopes: set[anyio.CancelScope] = set()

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def open(self) -> None:
        self.is_open = True

    def close(self) -> None:
        self.is_open = False
        for scope in self._scopes:
            scope.cancel()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
        async with listener:
            self.port = listener.extra(anyio.abc.SocketAttribute.local_port)
            task_status.started()
            await listener.serve(self._handle)

    async def _handle(self, client: SocketStream) -> None:
        async with client:
            if not self.is_open:
                return
            try:
                upstream = await anyio.connect_tcp("127.0.0.1", self.upstream_port)
            except OSError:
                return
            async with upstream, anyio.create_task_group() as tg:
                self._scopes.add(tg.cancel_scope)

                async def pump(source: SocketStream, sink: SocketStream, filtered: bool) -> None:
                    try:
                        async for chunk in source:
                            if not filtered and self.delay:
                                await anyio.sleep(self.delay)  # a slow device or link
                            if not (filtered and self.drop is not None and self.drop(chunk)):
                                await sink.send(chunk)
                    except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                        pass
                    tg.cancel_scope.cancel()

                tg.start_soon(pump, client, upstream, True)
                tg.start_soon(pump, upstream, client, False)
            self._scopes.discard(tg.cancel_scope)


class BlackHole:
    """A TCP server that accepts connections and never answers."""

    def __init__(self) -> None:
        self.port = 0
        self.accepted = 0

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
        async with listener:
            self.port = listener.extra(anyio.abc.SocketAttribute.local_port)
            task_status.started()
            await listener.serve(self._handle)

    async def _handle(self, client: SocketStream) -> None:
        self.accepted += 1
        async with client:
            await anyio.sleep_forever()


def start_mapper(files: Sequence[Path], *args: str) -> subprocess.Popen[bytes]:
    """``edgedev run -f FILE... ARGS`` in a subprocess (stderr kept for failures)."""
    cmd = [sys.executable, "-m", "edgedev", "-v", "run"]
    for file in files:
        cmd += ["-f", str(file)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([*cmd, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)


def stop_process(proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
    """End ``proc`` (if still running) and reap it."""
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()


async def eventually(condition: Callable[[], bool], timeout: float = 20) -> None:
    """Return once ``condition()`` holds: state that a library object or a process keeps,
    with no event to wait on (a counter, a descriptor count)."""
    with anyio.fail_after(timeout):
        while True:
            if condition():
                return
            await anyio.sleep(0.02)


@contextlib.contextmanager
def small_tmpfs(mount: Path, size: str) -> Iterator[Path]:
    """A small disk that fills for real: a tmpfs of ``size`` (``1m``) at ``mount``.

    Skips the test where mounting is not allowed (it needs root).
    """
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
