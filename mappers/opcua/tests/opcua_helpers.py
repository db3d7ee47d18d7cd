"""Builders of OPC-UA Device files, servers in a thread of their own, and a read counter."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from anyio.from_thread import BlockingPortal, start_blocking_portal

from edgedev import DeviceSpec
from edgedev.testing import (
    Recorder,
    device_model,
    device_property,
    free_port,
    load_documents,
    unique_root,
    write_documents,
)
from edgedev.testing import device as kube_device
from edgedev_opcua import OpcuaSimulator

VALUE = 13  # the Value attribute id


def model(name: str, props: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return device_model(name, "opcua", props)


def device(
    name: str, model_name: str, url: str, props: Sequence[dict[str, Any]], **config: Any
) -> dict[str, Any]:
    return kube_device(name, model_name, "opcua", {"url": url, **config}, props)


def visit(name: str, node_id: str, cycle: int = 200, **config: Any) -> dict[str, Any]:
    return device_property(name, "opcua", cycle, {"nodeID": node_id, **config})


def url() -> str:
    return f"opc.tcp://127.0.0.1:{free_port()}/edgedev/test"


def write_yaml(tmp_path: Path, docs: Sequence[dict[str, Any]]) -> Path:
    return write_documents(tmp_path, docs)


def load(tmp_path: Path, docs: Sequence[dict[str, Any]]) -> list[DeviceSpec]:
    return load_documents(tmp_path, docs)


def root() -> str:
    return unique_root()


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


def plain(values: Any) -> dict[str, Any]:
    """A driver's read as bare values (a Sample's value: servers stamp their values)."""
    from edgedev.twin import Sample

    return {k: v.value if isinstance(v, Sample) else v for k, v in values.items()}


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
    "plain",
    "portal",
    "root",
    "served",
    "state_of",
    "url",
    "visit",
    "write_yaml",
]
