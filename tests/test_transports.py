"""The twin transport seam: a transport of one's own, plugged in with one line, no broker.

What a third party relies on (the docstrings of ``edgedev.mapper.TwinTransport``): its life
(attached when the mapper is made, run before the devices, flushed while its run still runs,
cancelled, closed), the reports of each device in order (``added`` before its first state),
devices it brings from its run, desired values it hands to the device's one writer and sees
come back read from the device, and its say in ``/readyz`` and ``/metrics``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import anyio
import pytest
from anyio.abc import TaskStatus

from edgedev import DeviceSpec, Driver, Mapper, PropertySpec, ProtocolConfig, VisitorConfig
from edgedev._metrics import Metric
from edgedev._plugins import Registry
from edgedev.drivers import AnyDriver
from edgedev.health import mapper_metrics, mapper_ready, render
from edgedev.loader import load_devices
from edgedev.mapper import Reading, StateChanges, TwinTransport
from edgedev.testing import device, device_model, device_property, write_documents
from edgedev.twin import DeviceState, Value

WAIT = 10


class MemoryProtocol(ProtocolConfig):
    pass


class MemoryVisitor(VisitorConfig):
    pass


class MemoryDriver(Driver[MemoryProtocol, MemoryVisitor]):
    """A device in memory: every property holds what was last written (0 at first)."""

    protocol_config = MemoryProtocol
    visitor_config = MemoryVisitor
    held: dict[str, dict[str, Value]] = {}

    async def connect(self) -> None:
        self.held.setdefault(self.device.id, {})

    async def close(self) -> None:
        pass

    async def read(self, properties: Sequence[PropertySpec]) -> Mapping[str, Value]:
        values = self.held[self.device.id]
        return {p.name: values.get(p.name, 0) for p in properties}

    async def write(self, prop: PropertySpec, value: Value) -> None:
        self.held[self.device.id][prop.name] = value


def memory_drivers() -> Registry[AnyDriver]:
    registry: Registry[AnyDriver] = Registry("edgedev.test-no-entry-points", Driver)
    registry.register("memory", MemoryDriver)
    return registry


def memory_devices(tmp_path: Path, *names: str) -> list[DeviceSpec]:
    model = device_model("mem", "memory", [{"name": "level", "type": "INT"}])
    level = [device_property("level", "memory", 50, {})]
    docs = [model, *(device(name, "mem", "memory", {}, level) for name in names)]
    return load_devices([write_documents(tmp_path, docs)], drivers=memory_drivers())


class Recording(TwinTransport):
    """A transport that notes what the mapper tells it, in order."""

    def __init__(self, bring: Sequence[DeviceSpec] = ()) -> None:
        self.events: list[tuple[str, ...]] = []
        self.bring = list(bring)
        self.running = False
        self.twins: list[tuple[str, dict[str, str]]] = []
        self.changed = anyio.Event()
        self.up = True

    def _note(self, *event: str) -> None:
        self.events.append(event)
        self.changed.set()
        self.changed = anyio.Event()

    async def wait(self, condition: object) -> None:
        assert callable(condition)
        with anyio.fail_after(WAIT):
            while not condition():
                await self.changed.wait()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        self.running = True
        self._note("run")
        try:
            for spec in self.bring:  # a device source: from its own task
                await self.mapper.add_device(spec)
                writer = self.mapper.writer(spec.id)
                assert writer is not None  # its writer exists as soon as it is added
                writer.update({"level": "7"})
            task_status.started()
            await anyio.sleep_forever()
        finally:
            self.running = False
            self._note("run ended")

    def added(self, device: DeviceSpec) -> None:
        self._note("added", device.id)

    def state(self, device: DeviceSpec, state: DeviceState, reason: str | None) -> None:
        self._note("state", device.id, str(state))

    def twin(self, device: DeviceSpec, readings: Sequence[Reading]) -> None:
        self.twins.append((device.id, {r.name: r.text for r in readings}))
        self._note("twin", device.id)

    def removed(self, device: DeviceSpec) -> None:
        self._note("removed", device.id)

    async def flush(self) -> None:
        self._note("flush", "while running" if self.running else "after run")

    async def close(self) -> None:
        self._note("close", "while running" if self.running else "after run")

    def ready(self) -> tuple[bool, str]:
        return (True, "recording") if self.up else (False, "recording stopped")

    def metrics(self) -> list[Metric]:
        return [Metric("edgedev_test_events_total", "events", "counter").add(len(self.events))]


async def test_a_transport_of_ones_own_lives_around_the_devices(tmp_path: Path):
    (spec,) = memory_devices(tmp_path, "a")
    transport = Recording()
    changes = StateChanges()
    mapper = Mapper([spec], transports=[transport], sinks=[changes], drivers=memory_drivers())
    assert transport.mapper is mapper  # attached when made
    async with anyio.create_task_group() as tg:
        await tg.start(mapper.run)
        await transport.wait(lambda: ("twin", spec.id) in transport.events)
        mapper.stop()
    names = [e[0] for e in transport.events]
    assert names[:4] == ["run", "added", "state", "twin"]  # run first; added before a state
    assert transport.events[2] == ("state", spec.id, "online")
    tail = transport.events[-4:]
    assert tail == [
        ("state", spec.id, "offline"),  # the devices stop first, and say so
        ("flush", "while running"),  # the connection is still there to deliver
        ("run ended",),
        ("close", "after run"),
    ]


async def test_a_transport_brings_devices_and_desired_values_that_come_back_read(
    tmp_path: Path,
):
    (spec,) = memory_devices(tmp_path, "b")
    transport = Recording(bring=[spec])
    mapper = Mapper([], transports=[transport], drivers=memory_drivers())
    async with anyio.create_task_group() as tg:
        await tg.start(mapper.run)
        await transport.wait(lambda: (spec.id, {"level": "7"}) in transport.twins)
        assert MemoryDriver.held[spec.id] == {"level": 7}  # written, then read back
        assert mapper.devices == [spec]
        await mapper.remove_device(spec.id)
        assert transport.events[-2:] == [("state", spec.id, "offline"), ("removed", spec.id)]
        tg.cancel_scope.cancel()


async def test_a_mapper_without_devices_runs_until_stopped(tmp_path: Path):
    (spec,) = memory_devices(tmp_path, "c")
    transport = Recording()
    mapper = Mapper([], transports=[transport], drivers=memory_drivers())
    async with anyio.create_task_group() as tg:
        await tg.start(mapper.run)
        await anyio.sleep(0.1)  # nothing to run yet: the mapper waits for devices
        assert transport.running
        await mapper.add_device(spec)  # as EdgeCore's first device would come, later
        await transport.wait(lambda: ("twin", spec.id) in transport.events)
        mapper.stop()
    assert not transport.running


async def test_ready_when_every_transport_is_and_metrics_of_each(tmp_path: Path):
    first, second = Recording(), Recording()
    devices = memory_devices(tmp_path, "d")
    mapper = Mapper(devices, transports=[first, second], drivers=memory_drivers())
    assert mapper_ready(mapper) == (True, "recording; recording")
    second.up = False
    assert mapper_ready(mapper) == (False, "recording stopped")
    text = render(mapper_metrics(mapper))
    assert text.count("# TYPE edgedev_test_events_total counter") == 1  # one family, merged
    assert text.count("edgedev_test_events_total 0") == 2
    assert mapper_ready(Mapper([])) == (True, "running, with no transport")


def test_a_transport_serves_one_mapper(tmp_path: Path):
    transport = Recording()
    Mapper([], transports=[transport])
    with pytest.raises(ValueError, match="another mapper"):
        Mapper([], transports=[transport])
