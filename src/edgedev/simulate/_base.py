"""The simulator interface: what a protocol offers to ``edgedev simulate`` and ``edgedev demo``."""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from typing import Any, Generic

import anyio
from anyio.abc import TaskStatus

from edgedev.config._spec import DeviceSpec
from edgedev.drivers._base import ProtocolT, VisitorT


class Simulator(abc.ABC, Generic[ProtocolT, VisitorT]):
    """Serves simulated devices of one protocol at the addresses their files give.

    Generic over its driver's settings models, as :class:`~edgedev.drivers.Driver` is
    (``class ModbusSimulator(Simulator[ModbusProtocol, ModbusVisitor])``): ``self.devices``
    are then typed ``DeviceSpec[ModbusProtocol, ModbusVisitor]``.

    A simulator is the device side of a driver: ``edgedev simulate -f devices.yaml`` and a
    mapper run on the same file talk to each other. Read-only properties change over time
    (see :mod:`edgedev.simulate.signals`); writable ones keep what was written.

    Args:
        devices: the devices to serve, all of this simulator's protocol.
    """

    def __init__(self, devices: Sequence[DeviceSpec[ProtocolT, VisitorT]]) -> None:
        self.devices = list(devices)

    @abc.abstractmethod
    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled; call ``task_status.started()`` once every device answers."""

    def address(self, device: DeviceSpec[ProtocolT, VisitorT]) -> str:
        """Where ``device`` is served, in words (``tcp 127.0.0.1:5020 unit 1``).

        ``edgedev simulate`` prints it, so that a user knows what to point a mapper at. The
        default says the device is served inside the process.
        """
        return "in this process"

    @classmethod
    def demo_yaml(cls, allocate_port: Callable[[], int]) -> str:
        """YAML (DeviceModels and Devices) of a small fleet for ``edgedev demo``.

        Args:
            allocate_port: returns a free TCP port on 127.0.0.1 for each call.

        Returns:
            The YAML text, or ``""`` when the protocol has no demo.
        """
        return ""


AnySimulator = Simulator[Any, Any]
"""A simulator of any protocol: what the registry holds (see :data:`edgedev.drivers.AnyDriver`)."""
