"""Builders of GPIO Device files, a running mapper on mock pins, and twin message helpers."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio

from edgedev import Bus, DeviceSpec, Mapper
from edgedev.bus._outbox import Message
from edgedev.mqtt import KubeEdgeMqtt
from edgedev.testing import (
    Recorder,
    device_model,
    device_property,
    load_documents,
    unique_root,
    write_documents,
)
from edgedev.testing import device as kube_device
from edgedev.wire import dumps, new_event_id, now_ms
from edgedev_gpio import Board, GpioSimulator, boards


def model(name: str, props: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return device_model(name, "gpio", props)


def prop(
    name: str, type_: str = "BOOLEAN", access: str = "ReadWrite", **more: Any
) -> dict[str, Any]:
    return {"name": name, "type": type_, "accessMode": access, **more}


def device(
    name: str, model_name: str, props: Sequence[dict[str, Any]], **config: Any
) -> dict[str, Any]:
    return kube_device(name, model_name, "gpio", config, props)


def visit(name: str, cycle: int = 60_000, **config: Any) -> dict[str, Any]:
    return device_property(name, "gpio", cycle, config)


def write_yaml(tmp_path: Path, docs: Sequence[dict[str, Any]]) -> Path:
    return write_documents(tmp_path, docs, prefix="gpio")


def load(tmp_path: Path, docs: Sequence[dict[str, Any]]) -> list[DeviceSpec]:
    return load_documents(tmp_path, docs)


def unique(prefix: str) -> str:
    return unique_root(prefix)


def twin_values(message: Message) -> dict[str, str]:
    """``{property: actual value}`` of a ``twin/update`` message."""
    twin = json.loads(message.payload)["twin"]
    return {name: entry["actual"]["value"] for name, entry in twin.items() if "actual" in entry}


def write_error(message: Message, name: str) -> dict[str, Any] | None:
    """The ``error`` a ``twin/update`` reports for a failed write of ``name``, if any."""
    if not message.topic.endswith("/twin/update"):
        return None
    entry = json.loads(message.payload)["twin"].get(name) or {}
    error: dict[str, Any] | None = entry.get("error")
    return error


def reports(name: str, value: str | None = None) -> Callable[[Message], bool]:
    """A predicate: a ``twin/update`` that reports ``name`` (with ``value``, if given)."""

    def check(message: Message) -> bool:
        if not message.topic.endswith("/twin/update"):
            return False
        values = twin_values(message)
        return name in values and (value is None or values[name] == value)

    return check


def delta(values: dict[str, str], types: dict[str, str]) -> bytes:
    """A ``twin/update/delta`` as KubeEdge's DeviceTwin sends it to a mapper."""
    ts = now_ms()
    return dumps(
        {
            "event_id": new_event_id(),
            "timestamp": ts,
            "twin": {
                name: {
                    "expected": {"value": value, "metadata": {"timestamp": ts}},
                    "metadata": {"type": types[name]},
                }
                for name, value in values.items()
            },
            "delta": values,
        }
    )


async def recorder_ready(bus: Bus, timeout: float = 30.0) -> None:
    """Return once ``bus`` is connected, and so its recorders' subscriptions are made.

    A :class:`Recorder` entered before the connection only registers its filters; the bus
    subscribes them when it connects, and reports ``connected`` only after the broker has
    confirmed them. A mapper started before that point can publish its first report (sent
    once per ``collectCycle``) before the recorder listens, and a test waiting for it times
    out: on a loaded machine the mapper's client often connects first.
    """
    with anyio.fail_after(timeout):
        await bus.wait_connected()


@asynccontextmanager
async def running(
    devices: Sequence[DeviceSpec],
    url: str,
    topic_root: str,
    mock_name: str,
    *,
    simulator: bool = False,
) -> AsyncIterator[tuple[Board, Mapper, Bus, Recorder]]:
    """A mapper for ``devices`` on the mock board ``mock_name`` (held by the test).

    With ``simulator`` the :class:`GpioSimulator` drives the patterns, as in ``edgedev
    demo``; without it, the test drives the pins (or the driver drives the patterns).
    """
    mapper = Mapper(
        devices, transports=[KubeEdgeMqtt(url, topic_root=topic_root)], name=f"m-{topic_root}"
    )
    with boards.mock(mock_name) as board:
        async with anyio.create_task_group() as tg:
            if simulator:
                await tg.start(GpioSimulator(devices).run)
            async with Bus(url) as bus, Recorder(bus, f"{topic_root}/#") as recorder:
                await recorder_ready(bus)  # else the mapper's first reports may pass unseen
                await tg.start(mapper.run)
                yield board, mapper, bus, recorder
            tg.cancel_scope.cancel()


__all__ = [
    "delta",
    "device",
    "load",
    "model",
    "prop",
    "recorder_ready",
    "reports",
    "running",
    "twin_values",
    "unique",
    "visit",
    "write_error",
    "write_yaml",
]
