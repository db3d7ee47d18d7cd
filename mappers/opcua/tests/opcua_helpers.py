"""Builders of OPC-UA Device files, servers in a thread of their own, and a read counter."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from anyio.from_thread import BlockingPortal, start_blocking_portal

from edgedev import DeviceSpec, load_devices
from edgedev.testing import Recorder, free_port
from edgedev_opcua import OpcuaSimulator

API = "devices.kubeedge.io/v1beta1"
VALUE = 13  # the Value attribute id


def model(name: str, props: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "DeviceModel",
        "metadata": {"name": name},
        "spec": {"protocol": "opcua", "properties": list(props)},
    }


def device(
    name: str, model_name: str, url: str, props: Sequence[dict[str, Any]], **config: Any
) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "Device",
        "metadata": {"name": name},
        "spec": {
            "deviceModelRef": {"name": model_name},
            "protocol": {"protocolName": "opcua", "configData": {"url": url, **config}},
            "properties": list(props),
        },
    }


def visit(name: str, node_id: str, cycle: int = 200, **config: Any) -> dict[str, Any]:
    return {
        "name": name,
        "collectCycle": cycle,
        "visitors": {"protocolName": "opcua", "configData": {"nodeID": node_id, **config}},
    }


def url() -> str:
    return f"opc.tcp://127.0.0.1:{free_port()}/edgedev/test"


def write_yaml(tmp_path: Path, docs: Sequence[dict[str, Any]]) -> Path:
    path = tmp_path / f"devices-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return path


def load(tmp_path: Path, docs: Sequence[dict[str, Any]]) -> list[DeviceSpec]:
    return load_devices([write_yaml(tmp_path, docs)])


def root() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


def merged(recorder: Recorder, device: str, before: int | None = None) -> dict[str, Any]:
    """The last reported entry of every property of ``device`` (its name), over its twin
    updates so far (up to message index ``before``)."""
    twin: dict[str, Any] = {}
    for message in recorder.messages[:before]:
        if message.topic.endswith(f"/{device}/twin/update"):
            twin.update(json.loads(message.payload)["twin"])
    return twin


def state_of(device: str, state: str) -> Any:
    """A predicate: a state update of ``device`` (its name) saying ``state``."""

    def predicate(message: Any) -> bool:
        return (
            message.topic.endswith(f"/{device}/state/update")
            and json.loads(message.payload)["state"] == state
        )

    return predicate


@contextmanager
def portal() -> Iterator[BlockingPortal]:
    """An event loop in a thread of its own, for servers shared by several tests."""
    with start_blocking_portal() as p:
        yield p


@dataclass
class Served:
    """A simulator running in a portal's thread; ``stop()`` takes it down (a server crash)."""

    sim: OpcuaSimulator
    portal: BlockingPortal
    future: Future[Any] | None = None

    def start(self) -> Served:
        self.future, _ = self.portal.start_task(self.sim.run)
        return self

    def stop(self) -> None:
        if self.future is not None:
            self.future.cancel()
            done = threading.Event()
            self.future.add_done_callback(lambda _: done.set())
            done.wait(30)
            self.future = None

    def call(self, func: Any, *args: Any) -> Any:
        """Run ``await func(*args)`` in the server's loop."""
        return self.portal.call(func, *args)


@contextmanager
def served(devices: Sequence[DeviceSpec], p: BlockingPortal) -> Iterator[Served]:
    """``devices`` served by a simulator in the portal's thread."""
    s = Served(OpcuaSimulator(devices), p).start()
    try:
        yield s
    finally:
        s.stop()


@dataclass
class ReadCounter:
    """Read service requests that a server received, as the node ids each one asked for."""

    requests: list[list[Any]] = field(default_factory=list)

    def of(self, node_ids: set[Any]) -> list[list[Any]]:
        """The requests that asked for any of ``node_ids``."""
        return [r for r in self.requests if node_ids & set(r)]


def count_reads(server: Any) -> ReadCounter:
    """Hook the server's attribute service to record every Read of values it serves."""
    counter = ReadCounter()
    service = server.iserver.attribute_service
    original = service.read

    def read(params: Any) -> Any:
        nodes = [item.NodeId for item in params.NodesToRead if item.AttributeId == VALUE]
        if nodes:
            counter.requests.append(nodes)
        return original(params)

    service.read = read
    return counter


__all__ = [
    "ReadCounter",
    "Served",
    "count_reads",
    "device",
    "free_port",
    "load",
    "merged",
    "model",
    "portal",
    "root",
    "served",
    "state_of",
    "url",
    "visit",
    "write_yaml",
]
