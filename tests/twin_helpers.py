"""Builders for the twin tests: a Modbus thermostat file, payloads, and a running loop."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio

from edgedev import Bus, DeviceSpec, Mapper, load_devices
from edgedev.agent import Agent, AgentLimits
from edgedev.bus._outbox import Message
from edgedev.mqtt import KubeEdgeMqtt
from edgedev.testing import Recorder, free_port, unique_root, write_documents

API = "devices.kubeedge.io/v1beta1"
DEVICE = "plant/thermo"


def thermostat_docs(port: int, *, desired: str | None = None, cycle: int = 200) -> list[Any]:
    """A Modbus thermostat: setpoint (holding register, scaled), temp (input, ReadOnly),
    mode (holding register, no range)."""
    setpoint: dict[str, Any] = {
        "name": "setpoint",
        "collectCycle": cycle,
        "visitors": {
            "protocolName": "modbus",
            "configData": {
                "register": "HoldingRegister",
                "offset": 0,
                "limit": 1,
                "scale": 0.1,
                "dataType": "int16",
            },
        },
    }
    if desired is not None:
        setpoint["desired"] = {"value": desired}
    return [
        {
            "apiVersion": API,
            "kind": "DeviceModel",
            "metadata": {"name": "thermo", "namespace": "plant"},
            "spec": {
                "protocol": "modbus",
                "properties": [
                    {"name": "setpoint", "type": "FLOAT", "minimum": "10", "maximum": "30"},
                    {"name": "temp", "type": "FLOAT", "accessMode": "ReadOnly"},
                    {"name": "level", "type": "INT", "minimum": "0", "maximum": "100"},
                ],
            },
        },
        {
            "apiVersion": API,
            "kind": "Device",
            "metadata": {"name": "thermo", "namespace": "plant"},
            "spec": {
                "deviceModelRef": {"name": "thermo"},
                "protocol": {
                    "protocolName": "modbus",
                    "configData": {"ip": "127.0.0.1", "port": port},
                },
                "properties": [
                    setpoint,
                    {
                        "name": "temp",
                        "collectCycle": cycle,
                        "visitors": {
                            "protocolName": "modbus",
                            "configData": {
                                "register": "InputRegister",
                                "offset": 0,
                                "limit": 1,
                                "scale": 0.1,
                                "dataType": "int16",
                            },
                        },
                    },
                    {
                        "name": "level",
                        "collectCycle": cycle,
                        "visitors": {
                            "protocolName": "modbus",
                            "configData": {"register": "HoldingRegister", "offset": 3, "limit": 1},
                        },
                    },
                ],
            },
        },
    ]


def write_yaml(tmp_path: Path, docs: Sequence[Any]) -> Path:
    return write_documents(tmp_path, docs)


def thermostat(tmp_path: Path, **kwargs: Any) -> tuple[list[DeviceSpec], Path]:
    path = write_yaml(tmp_path, thermostat_docs(free_port(), **kwargs))
    return load_devices([path]), path


def root() -> str:
    return unique_root("twin")


def payload(message: Message) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(message.payload)
    return body


def on(channel: str, device: str = DEVICE) -> Callable[[Message], bool]:
    """A predicate: a message of ``channel`` (``twin/update/result`` ...) for ``device``."""
    return lambda m: m.topic.endswith(f"/device/{device}/{channel}")


def reported(name: str, value: float | None = None) -> Callable[[Message], bool]:
    """A predicate: a mapper report (``twin/update``) of ``name`` (equal to ``value``)."""

    def check(m: Message) -> bool:
        if not on("twin/update")(m):
            return False
        actual = ((payload(m)["twin"].get(name) or {}).get("actual")) or {}
        if actual.get("value") is None:
            return False
        return value is None or float(actual["value"]) == value

    return check


@asynccontextmanager
async def agent_running(
    url: str,
    topic_root: str,
    db: Path | str,
    devices: Sequence[DeviceSpec] = (),
    limits: AgentLimits | None = None,
) -> AsyncIterator[Agent]:
    """An agent on ``db``, connected to the broker; stopped on exit."""
    agent = Agent(devices, broker=url, topic_root=topic_root, db=db, node="edge-1", limits=limits)
    async with anyio.create_task_group() as tg:
        await tg.start(agent.run)
        assert agent.bus is not None
        with anyio.fail_after(10):
            await agent.bus.wait_connected()
        yield agent
        tg.cancel_scope.cancel()


@asynccontextmanager
async def mapper_running(
    url: str, topic_root: str, devices: Sequence[DeviceSpec], name: str = "m1"
) -> AsyncIterator[Mapper]:
    """A mapper for ``devices``; stopped on exit."""
    mapper = Mapper(
        devices, transports=[KubeEdgeMqtt(url, topic_root=topic_root)], node="edge-1", name=name
    )
    async with anyio.create_task_group() as tg:
        await tg.start(mapper.run)
        yield mapper
        tg.cancel_scope.cancel()


@asynccontextmanager
async def observer(url: str, topic_root: str) -> AsyncIterator[tuple[Bus, Recorder]]:
    """A client of the test's own, recording every message under ``topic_root``."""
    async with Bus(url) as bus, Recorder(bus, f"{topic_root}/#") as recorder:
        with anyio.fail_after(10):
            await bus.wait_connected()
        yield bus, recorder
