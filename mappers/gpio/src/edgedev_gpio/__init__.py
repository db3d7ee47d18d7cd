"""GPIO mapper for edgedev on gpiozero: Raspberry Pi pins as KubeEdge device twins.

Installed, it registers the ``gpio`` driver and simulator through the ``edgedev.drivers``
and ``edgedev.simulators`` entry points. gpiozero's pin factory is chosen by configuration
(``pinFactory``) or by ``EDGEDEV_GPIO_PIN_FACTORY`` / ``GPIOZERO_PIN_FACTORY``, constructed
explicitly and shared through :data:`boards`; the backend (lgpio, RPi.GPIO) is imported only
when a device connects.
"""

from __future__ import annotations

from edgedev_gpio.boards import Board, BoardKey, Boards, boards
from edgedev_gpio.config import (
    Direction,
    Edge,
    FactoryKind,
    GpioProtocol,
    GpioVisitor,
    Pattern,
    Pull,
    SimulateConfig,
)
from edgedev_gpio.debounce import Debouncer
from edgedev_gpio.drive import analog_signal, drive_pattern
from edgedev_gpio.driver import GpioDriver
from edgedev_gpio.inbox import ThreadInbox
from edgedev_gpio.simulator import GpioSimulator

__all__ = (
    "Board",
    "BoardKey",
    "Boards",
    "Debouncer",
    "Direction",
    "Edge",
    "FactoryKind",
    "GpioDriver",
    "GpioProtocol",
    "GpioSimulator",
    "GpioVisitor",
    "Pattern",
    "Pull",
    "SimulateConfig",
    "ThreadInbox",
    "analog_signal",
    "boards",
    "drive_pattern",
)
