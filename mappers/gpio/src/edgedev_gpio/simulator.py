"""Simulated GPIO for ``edgedev simulate``, ``edgedev demo`` and tests: patterns on mock pins.

GPIO is not served over a network: a simulated pin is a :class:`~gpiozero.pins.mock.MockPin`
of a ``MockFactory`` inside one process, and the mock board is found by ``mockName`` (see
:mod:`edgedev_gpio.boards`). So simulation works in two ways:

- **one process** (``edgedev demo``, tests, an application embedding both): this simulator
  holds the mock board and drives the inputs' ``simulate`` patterns; the mapper's driver
  finds the pins already driven and only watches them.
- **a separately started mapper** (``edgedev run`` on a file with ``pinFactory: mock``): no
  simulator shares its pins, so the driver drives the patterns itself from the same
  ``configData``. A separate ``edgedev simulate`` process then plays the patterns on pins no
  mapper sees; it is accepted for symmetry with the other protocols and says so.

Inputs with ``simulate`` follow their pattern (with contact bounce when asked); MCP3008
channels follow :func:`edgedev.simulate.signals.signal`; outputs keep what the mapper
writes (mock pins record every state, for tests to check).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import anyio
from anyio.abc import TaskStatus

from edgedev.simulate import Simulator
from edgedev_gpio.boards import Board, BoardKey, boards
from edgedev_gpio.config import (
    Direction,
    FactoryKind,
    GpioDeviceSpec,
    GpioProtocol,
    GpioVisitor,
    SimulateConfig,
)
from edgedev_gpio.drive import analog_signal, drive_pattern

log = logging.getLogger("edgedev.gpio.simulator")

ANALOG_PERIOD = 0.1
"""Seconds between two updates of the simulated MCP3008 channels."""


@dataclass(frozen=True, slots=True)
class _Input:
    pin: Any
    config: SimulateConfig
    active_high: bool


@dataclass(frozen=True, slots=True)
class _Analog:
    board: Board
    address: tuple[int, int, int]
    value: Callable[[], float]


class GpioSimulator(Simulator[GpioProtocol, GpioVisitor]):
    """Drives the inputs of mock-factory GPIO devices with their ``simulate`` patterns.

    Devices whose pin factory is not ``mock`` are skipped (with a warning): their pins are
    real. The boards are held from :meth:`run`'s start to its end, so a mapper in the same
    process finds the very pins the simulator drives.

    Args:
        devices: the ``gpio`` devices.
        clock: the time source of the patterns (seconds).
    """

    def __init__(
        self, devices: Sequence[GpioDeviceSpec], clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__(devices)
        self._clock = clock
        self._boards: dict[str, Board] = {}

    def address(self, device: GpioDeviceSpec) -> str:
        """GPIO is simulated on mock pins inside the mapper's own process."""
        return "mock pins, in the mapper's own process (EDGEDEV_GPIO_PIN_FACTORY=mock)"

    def board(self, device_id: str) -> Board:
        """The mock board of ``device_id`` (while :meth:`run` runs)."""
        return self._boards[device_id]

    def pin(self, device_id: str, prop: str) -> Any:
        """The mock pin of ``prop`` on ``device_id`` (while :meth:`run` runs)."""
        spec = next(d for d in self.devices if d.id == device_id)
        visitor = spec.property(prop).visitor
        return self._boards[device_id].factory.pin(visitor.pin)

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Drive every simulated input until cancelled."""
        with ExitStack() as stack:
            inputs: list[_Input] = []
            analogs: list[_Analog] = []
            for spec in self.devices:
                config = spec.config
                key = BoardKey.of(config)
                if key.kind is not FactoryKind.MOCK:
                    log.warning(
                        "device %s uses the %s pin factory, not mock: not simulated",
                        spec.id,
                        key.kind,
                    )
                    continue
                board = stack.enter_context(boards.use(key))
                self._boards[spec.id] = board
                for prop in spec.properties:
                    visitor = prop.visitor
                    if visitor.direction is Direction.ADC:
                        assert visitor.channel is not None
                        address = (visitor.spi_port, visitor.spi_device, visitor.channel)
                        value = analog_signal(prop, spec.id, self._clock)
                        analogs.append(_Analog(board, address, value))
                    elif visitor.direction is Direction.IN and visitor.simulate is not None:
                        assert visitor.pin is not None
                        if stack.enter_context(board.driving(visitor.pin)):
                            inputs.append(
                                _Input(
                                    board.factory.pin(visitor.pin),
                                    visitor.simulate,
                                    visitor.effective_active_high,
                                )
                            )
            if self._boards:
                log.debug(
                    "simulating %d GPIO device(s) on mock pins; a mapper sees them only in "
                    "this process (a separate mapper with pinFactory mock drives its own)",
                    len(self._boards),
                )
            async with anyio.create_task_group() as tg:
                for item in inputs:
                    tg.start_soon(
                        drive_pattern, item.pin, item.config, item.active_high, self._clock
                    )
                if analogs:
                    tg.start_soon(self._analog, analogs)
                task_status.started()

    async def _analog(self, analogs: list[_Analog]) -> None:
        try:
            while True:
                for item in analogs:
                    item.board.analog[item.address] = item.value()
                await anyio.sleep(ANALOG_PERIOD)
        finally:  # a mapper that stays on the board simulates the channels itself again
            for item in analogs:
                item.board.analog.pop(item.address, None)

    @classmethod
    def demo_yaml(cls, allocate_port: Callable[[], int]) -> str:
        """A panel on mock pins: a push button (pulse train with bounce), a relay, a lamp."""
        from importlib.resources import files

        return files("edgedev_gpio").joinpath("demo.yaml").read_text(encoding="utf-8")
