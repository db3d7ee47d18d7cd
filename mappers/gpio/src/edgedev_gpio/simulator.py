"""Simulated GPIO for ``edgedev demo`` and tests: patterns driven into mock pins.

GPIO is not served over a network: a simulated pin is a :class:`~gpiozero.pins.mock.MockPin`
of a ``MockFactory`` inside one process. The simulator and the mapper meet on the mock
board that both look up by ``mockName`` (see :mod:`edgedev_gpio.boards`), which works when
they run in one process (``edgedev demo``, tests, an application that embeds both). A
separate ``edgedev simulate`` process drives pins no mapper can see; it says so and serves
them anyway, for symmetry with the other protocols.

Inputs with ``simulate`` in their visitor follow their pattern (with contact bounce when
asked); MCP3008 channels follow :func:`edgedev.simulate.signals.signal`; outputs keep what
the mapper writes (the mock pins record every state, for tests to check).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, replace
from typing import Any

import anyio
from anyio.abc import TaskStatus

from edgedev import DeviceSpec, PropertySpec, Simulator
from edgedev.simulate.signals import signal
from edgedev_gpio.boards import Board, BoardKey, boards
from edgedev_gpio.config import Direction, FactoryKind, GpioProtocol, GpioVisitor, SimulateConfig
from edgedev_gpio.patterns import chatter, level_at, next_change

log = logging.getLogger("edgedev.gpio.simulator")

ANALOG_PERIOD = 0.1
"""Seconds between two updates of the simulated MCP3008 channels."""


@dataclass(frozen=True, slots=True)
class _Input:
    device: str
    prop: str
    pin: Any
    config: SimulateConfig
    active_high: bool


@dataclass(frozen=True, slots=True)
class _Analog:
    device: str
    prop: PropertySpec
    board: Board
    address: tuple[int, int, int]


class GpioSimulator(Simulator):
    """Drives the inputs of mock-factory GPIO devices with their ``simulate`` patterns.

    Devices whose pin factory is not ``mock`` are skipped (with a warning): their pins are
    real. The boards are held from :meth:`run`'s start to its end, so a mapper in the same
    process finds the very pins the simulator drives.

    Args:
        devices: the ``gpio`` devices.
        clock: the time source of the patterns (seconds).
    """

    def __init__(
        self, devices: Sequence[DeviceSpec], clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__(devices)
        self._clock = clock
        self._boards: dict[str, Board] = {}

    def board(self, device_id: str) -> Board:
        """The mock board of ``device_id`` (while :meth:`run` runs)."""
        return self._boards[device_id]

    def pin(self, device_id: str, prop: str) -> Any:
        """The mock pin of ``prop`` on ``device_id`` (while :meth:`run` runs)."""
        spec = next(d for d in self.devices if d.id == device_id)
        visitor = spec.property(prop).visitor
        assert isinstance(visitor, GpioVisitor)
        return self._boards[device_id].factory.pin(visitor.pin)

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Drive every simulated input until cancelled."""
        with ExitStack() as stack:
            inputs: list[_Input] = []
            analogs: list[_Analog] = []
            for spec in self.devices:
                config = spec.config
                assert isinstance(config, GpioProtocol)
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
                    assert isinstance(visitor, GpioVisitor)
                    if visitor.direction is Direction.ADC:
                        assert visitor.channel is not None
                        address = (visitor.spi_port, visitor.spi_device, visitor.channel)
                        scaled = replace(
                            prop,
                            minimum=0.0 if prop.minimum is None else prop.minimum,
                            maximum=1.0 if prop.maximum is None else prop.maximum,
                        )
                        analogs.append(_Analog(spec.id, scaled, board, address))
                    elif visitor.direction is Direction.IN and visitor.simulate is not None:
                        inputs.append(
                            _Input(
                                spec.id,
                                prop.name,
                                board.factory.pin(visitor.pin),
                                visitor.simulate,
                                visitor.effective_active_high,
                            )
                        )
            if self._boards:
                log.info(
                    "simulating %d GPIO device(s) on mock pins of this process only",
                    len(self._boards),
                )
            async with anyio.create_task_group() as tg:
                start = self._clock()
                for item in inputs:
                    tg.start_soon(self._drive, item, start)
                if analogs:
                    tg.start_soon(self._analog, analogs, start)
                task_status.started()

    async def _drive(self, item: _Input, start: float) -> None:
        """Follow the pattern: drive each transition, then its chatter."""
        t = self._clock() - start
        level = level_at(item.config, t)
        _drive(item, level)
        spacing = item.config.bounce_spacing / 1000
        while True:
            at = next_change(item.config, t)
            await anyio.sleep(max(0.0, at - (self._clock() - start)))
            t = at
            level = not level
            _drive(item, level)
            for bounce in chatter(item.config, level):
                await anyio.sleep(spacing)
                _drive(item, bounce)

    async def _analog(self, analogs: list[_Analog], start: float) -> None:
        while True:
            t = self._clock() - start
            for item in analogs:
                value = float(signal(item.prop, t, key=item.device))
                item.board.analog[item.address] = min(1.0, max(0.0, value))
            await anyio.sleep(ANALOG_PERIOD)

    @classmethod
    def demo_yaml(cls, allocate_port: Callable[[], int]) -> str:
        """A panel on mock pins: a push button (pulse train with bounce), a relay, a lamp."""
        from importlib.resources import files

        return files("edgedev_gpio").joinpath("demo.yaml").read_text(encoding="utf-8")


def _drive(item: _Input, active: bool) -> None:
    """Drive ``item``'s pin to the electrical level of logical ``active``."""
    pin = item.pin
    if pin.function != "input":  # claimed as an output by a misconfigured mapper
        return
    if active == item.active_high:
        pin.drive_high()
    else:
        pin.drive_low()
