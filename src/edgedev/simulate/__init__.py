"""Simulated devices for every protocol: the registry and the common runner."""

from __future__ import annotations

from collections.abc import Sequence

import anyio
from anyio.abc import TaskStatus

from edgedev._plugins import Registry
from edgedev.config._spec import DeviceSpec
from edgedev.simulate._base import AnySimulator, Simulator

simulators: Registry[AnySimulator] = Registry("edgedev.simulators", Simulator)  # type: ignore[type-abstract]
"""Installed simulators by protocol name (entry-point group ``edgedev.simulators``)."""


async def simulate(
    devices: Sequence[DeviceSpec],
    *,
    task_status: TaskStatus[list[AnySimulator]] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve every device with its protocol's simulator until cancelled.

    ``task_group.start(simulate, devices)`` returns the running simulators once every device
    answers (one per protocol), for example to print where each device is served.

    Raises:
        edgedev.PluginError: a protocol has no simulator installed.
    """
    by_protocol: dict[str, list[DeviceSpec]] = {}
    for device in devices:
        by_protocol.setdefault(device.protocol, []).append(device)
    instances = [simulators.get(name)(group) for name, group in sorted(by_protocol.items())]
    async with anyio.create_task_group() as tg:
        for instance in instances:
            await tg.start(instance.run)
        task_status.started(instances)


__all__ = ("AnySimulator", "Simulator", "simulate", "simulators")
