"""One property's gpiozero device, behind a small typed interface (gpiozero is untyped).

A :class:`Line` is what the driver reads and writes: a digital input, a digital output, a
PWM output or an MCP3008 channel. Values here are logical: ``True`` is *active* (pressed,
on), whatever the electrical level; :func:`open_line` applies ``activeHigh`` and the pull.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from edgedev.drivers import DeviceError, WriteRefused
from edgedev_gpio.boards import Board
from edgedev_gpio.config import Direction, GpioVisitor, Pull

EdgeCallback = Callable[[bool], None]
"""Called with the new logical level, from whichever thread gpiozero uses."""


class Line(abc.ABC):
    """One pin (or ADC channel) of one property."""

    def __init__(self, device: Any) -> None:
        self._device = device

    @abc.abstractmethod
    def read(self) -> bool | float:
        """The logical level (digital) or the fraction 0..1 (PWM, ADC)."""

    def write(self, value: bool | float) -> None:
        """Set the output.

        Raises:
            WriteRefused: the line is an input, or ``value`` is out of range.
        """
        raise WriteRefused(f"{self} is an input and cannot be written")

    def close(self) -> None:
        """Release the pin; never raises."""
        # gpiozero's close may fail on a factory already closed
        with contextlib.suppress(Exception):
            self._device.close()

    def __str__(self) -> str:
        return str(getattr(self._device, "pin", None) or type(self).__name__)


class DigitalInput(Line):
    """A digital input; gpiozero reports its edges to the callback of :meth:`on_change`.

    ``invert`` is set when the requested active level differs from the one gpiozero infers
    from the pull resistor (gpiozero treats a pulled-up input as active low, always). The
    gpiozero callbacks are set once, here; :meth:`on_change` only swaps where they lead, so
    no callback is ever set to ``None`` while gpiozero's thread may be calling it.
    """

    def __init__(self, device: Any, invert: bool) -> None:
        super().__init__(device)
        self._invert = invert
        self._callback: EdgeCallback | None = None
        device.when_activated = self._activated
        device.when_deactivated = self._deactivated

    def read(self) -> bool:
        """The logical level now."""
        return bool(self._device.value) != self._invert

    def on_change(self, callback: EdgeCallback | None) -> None:
        """Call ``callback(level)`` on every edge (``None`` stops the calls)."""
        self._callback = callback

    def _activated(self) -> None:
        callback = self._callback
        if callback is not None:
            callback(not self._invert)

    def _deactivated(self) -> None:
        callback = self._callback
        if callback is not None:
            callback(self._invert)

    def close(self) -> None:
        """Stop the callbacks and release the pin."""
        self._callback = None
        super().close()


class DigitalOutput(Line):
    """A digital output (LED, relay)."""

    def read(self) -> bool:
        """Whether the output is on."""
        return bool(self._device.value)

    def write(self, value: bool | float) -> None:
        """Switch the output on (true, 1) or off (false, 0)."""
        if value not in (0, 1):
            raise WriteRefused(f"{self} is a digital output: write true/false or 1/0")
        self._device.value = bool(value)


class PwmOutput(Line):
    """A PWM output; its value is the duty cycle, 0..1."""

    def read(self) -> float:
        """The duty cycle."""
        return float(self._device.value)

    def write(self, value: bool | float) -> None:
        """Set the duty cycle.

        Raises:
            WriteRefused: ``value`` is not between 0 and 1.
        """
        duty = float(value)
        if not 0.0 <= duty <= 1.0:
            raise WriteRefused(f"duty cycle {value} of {self} is not between 0 and 1")
        self._device.value = duty


class AnalogInput(Line):
    """An MCP3008 channel through gpiozero (hardware SPI), 0..1 of the reference voltage."""

    def read(self) -> float:
        """The channel's value."""
        return float(self._device.value)


class MockAnalogInput(Line):
    """An MCP3008 channel of a mock board.

    Reads what the ``gpio`` simulator of this process put in ``board.analog``; when no
    simulator serves the channel, reads ``simulated()`` (0 when not given).
    """

    def __init__(
        self,
        board: Board,
        address: tuple[int, int, int],
        simulated: Callable[[], float] | None = None,
    ) -> None:
        super().__init__(None)
        self._board = board
        self._address = address
        self._simulated = simulated

    def read(self) -> float:
        """The simulated value of the channel, 0..1."""
        value = self._board.analog.get(self._address)
        if value is None:
            value = self._simulated() if self._simulated is not None else 0.0
        return value

    def close(self) -> None:
        """Nothing to release."""

    def __str__(self) -> str:
        port, device, channel = self._address
        return f"MCP3008 {port}.{device} channel {channel}"


@contextmanager
def _gpio_errors(what: str) -> Iterator[None]:
    """Map whatever a backend raises while claiming a pin to :class:`DeviceError`."""
    try:
        yield
    except DeviceError:
        raise
    except Exception as exc:  # gpiozero, lgpio and RPi.GPIO share no base exception
        raise DeviceError(f"{what}: {exc}") from exc


def open_line(
    board: Board,
    visitor: GpioVisitor,
    initial: bool | float | None = None,
    *,
    simulated: Callable[[], float] | None = None,
) -> Line:
    """Claim the pin (or channel) ``visitor`` describes on ``board``.

    Args:
        board: the pin factory to use.
        visitor: the property's settings.
        initial: the value an output starts with (off when ``None``).
        simulated: on a mock board, the value of an MCP3008 channel that no simulator of
            this process serves.

    Raises:
        DeviceError: the pin is invalid, in use, or the backend refused it.
    """
    from gpiozero import (
        MCP3008,
        DigitalInputDevice,
        DigitalOutputDevice,
        PWMOutputDevice,
    )

    factory = board.factory
    direction = visitor.direction
    active_high = visitor.effective_active_high
    if direction is Direction.ADC:
        assert visitor.channel is not None
        address = (visitor.spi_port, visitor.spi_device, visitor.channel)
        if board.is_mock:
            return MockAnalogInput(board, address, simulated)
        with _gpio_errors(f"MCP3008 channel {visitor.channel}"):
            return AnalogInput(
                MCP3008(
                    channel=visitor.channel,
                    port=visitor.spi_port,
                    device=visitor.spi_device,
                    pin_factory=factory,
                )
            )
    pin = visitor.pin
    with _gpio_errors(f"GPIO{pin} ({direction})"):
        if direction is Direction.IN:
            pull = visitor.effective_pull
            if pull is Pull.NONE:
                device = DigitalInputDevice(
                    pin, pull_up=None, active_state=active_high, pin_factory=factory
                )
                return DigitalInput(device, invert=False)
            device = DigitalInputDevice(pin, pull_up=pull is Pull.UP, pin_factory=factory)
            gpiozero_active_high = pull is Pull.DOWN
            return DigitalInput(device, invert=gpiozero_active_high != active_high)
        if direction is Direction.OUT:
            return DigitalOutput(
                DigitalOutputDevice(
                    pin, active_high=active_high, initial_value=bool(initial), pin_factory=factory
                )
            )
        return PwmOutput(
            PWMOutputDevice(
                pin,
                active_high=active_high,
                initial_value=float(initial or 0.0),
                frequency=visitor.frequency,
                pin_factory=factory,
            )
        )
