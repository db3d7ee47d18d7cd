"""The GPIO ``configData`` schemas: KubeEdge has none for GPIO, so this is edgedev's.

Protocol ``configData`` chooses the pin factory (how gpiozero reaches the pins); each
visitor's ``configData`` says which pin a property lives on and how it behaves. Keys are
camelCase in YAML, unknown keys are refused. ``docs/protocols/gpio.md`` is drawn from these
models.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from edgedev.drivers import DeviceSpec, PropertySpec, ProtocolConfig, VisitorConfig

FACTORY_ENVS = ("EDGEDEV_GPIO_PIN_FACTORY", "GPIOZERO_PIN_FACTORY")
"""The environment variables that name the pin factory when ``pinFactory`` is not set, in
order: edgedev's own first, then gpiozero's."""

MAX_BCM_PIN = 53
"""The highest BCM GPIO number (BCM2835/2711 have 54 GPIOs; the header exposes 2 to 27)."""


class FactoryKind(StrEnum):
    """The gpiozero pin factories edgedev constructs.

    ``lgpio`` (``/dev/gpiochip*``, the only one that works on a Raspberry Pi 5), ``rpigpio``
    (RPi.GPIO, ``/dev/gpiomem``, Pi 4 and older), ``native`` (gpiozero's pure-Python
    ``/dev/gpiomem`` driver, no PWM), ``mock`` (gpiozero's ``MockFactory``, for simulation
    and tests), ``auto`` (the first of lgpio, rpigpio, native that opens, as gpiozero does).
    """

    AUTO = "auto"
    LGPIO = "lgpio"
    RPIGPIO = "rpigpio"
    NATIVE = "native"
    MOCK = "mock"


class Direction(StrEnum):
    """What a pin does: digital input, digital output, PWM output, or MCP3008 channel."""

    IN = "in"
    OUT = "out"
    PWM = "pwm"
    ADC = "adc"


class Pull(StrEnum):
    """The input's pull resistor."""

    UP = "up"
    DOWN = "down"
    NONE = "none"


class Edge(StrEnum):
    """Which input changes are reported at once; the others wait for the ``collectCycle``."""

    BOTH = "both"
    RISING = "rising"
    FALLING = "falling"
    NONE = "none"


class Pattern(StrEnum):
    """How the simulator drives an input: ``toggle`` (square wave) or ``pulse`` (train)."""

    TOGGLE = "toggle"
    PULSE = "pulse"


class SimulateConfig(BaseModel):
    """``simulate`` inside a visitor: how the ``gpio`` simulator drives an input pin.

    ``toggle`` flips the input every ``period`` ms. ``pulse`` makes it active for ``width``
    ms once every ``period`` ms. ``bounce`` adds that many contact-bounce chatter edges
    (``bounceSpacing`` ms apart) after every transition, to show debouncing at work. Levels
    are logical: the simulator drives the electrical level that ``activeHigh`` implies.
    """

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, frozen=True, extra="forbid"
    )

    pattern: Pattern = Field(
        Pattern.TOGGLE, description="`toggle` (square wave) or `pulse` (pulse train)."
    )
    period: int = Field(2000, gt=0, description="Milliseconds of one cycle of the pattern.")
    width: int = Field(200, gt=0, description="Milliseconds a pulse stays active.")
    bounce: int = Field(
        0, ge=0, le=50, description="Brief returns to the old level after each transition."
    )
    bounce_spacing: float = Field(1.0, gt=0, description="Milliseconds between chatter edges.")

    @model_validator(mode="after")
    def _width_fits(self) -> SimulateConfig:
        if self.pattern is Pattern.PULSE and self.width >= self.period:
            raise ValueError(f"width {self.width} must be shorter than period {self.period}")
        return self


class GpioProtocol(ProtocolConfig):
    """``spec.protocol.configData`` of a GPIO Device.

    ``pinFactory`` names the gpiozero pin factory (``auto``, ``lgpio``, ``rpigpio``,
    ``native``, ``mock``); when absent, the ``EDGEDEV_GPIO_PIN_FACTORY`` environment variable
    decides, then ``GPIOZERO_PIN_FACTORY``, and ``auto`` when both are unset. ``chip``
    selects ``/dev/gpiochipN`` for lgpio (default: gpiozero's choice, 4 on a Pi 5 with an
    older kernel, else 0). ``mockName`` names the
    process-wide mock board that a mapper and the simulator share in ``edgedev demo``.
    """

    pin_factory: FactoryKind | None = Field(
        None,
        description="gpiozero pin factory; default: $EDGEDEV_GPIO_PIN_FACTORY, else "
        "$GPIOZERO_PIN_FACTORY, else `auto` (lgpio, rpigpio, native: the first that opens).",
    )
    chip: int | None = Field(
        None, ge=0, le=31, description="/dev/gpiochipN for lgpio (default: gpiozero's choice)."
    )
    mock_name: str = Field(
        "default",
        min_length=1,
        description="Mock board name: devices and the simulator of one process share its pins.",
    )

    @property
    def factory_kind(self) -> FactoryKind:
        """The pin factory: ``pinFactory``, else the environment's, else ``auto``.

        The environment is read through :func:`factory_from_env`.

        Raises:
            ValueError: the environment variable names no factory edgedev knows.
        """
        if self.pin_factory is not None:
            return self.pin_factory
        return factory_from_env(os.environ)


def factory_from_env(environ: Mapping[str, str]) -> FactoryKind:
    """The pin factory the environment names (see :data:`FACTORY_ENVS`), ``auto`` if none.

    Raises:
        ValueError: the variable names no factory edgedev knows.
    """
    for variable in FACTORY_ENVS:
        name = environ.get(variable, "").strip().lower()
        if not name:
            continue
        try:
            return FactoryKind(name)
        except ValueError:
            have = ", ".join(k.value for k in FactoryKind)
            raise ValueError(f"{variable}={name!r} is not one of {have}") from None
    return FactoryKind.AUTO


class GpioVisitor(VisitorConfig):
    """``visitors.configData`` of a GPIO property.

    ``pin`` is the BCM GPIO number (not the header position). ``direction`` is ``in``
    (BOOLEAN or INT), ``out`` (BOOLEAN or INT), ``pwm`` (FLOAT duty cycle 0..1) or ``adc``
    (FLOAT 0..1 from an MCP3008 ``channel`` on SPI ``spiPort``/``spiDevice``; no ``pin``).

    Inputs: ``pull`` (``up``, ``down``, ``none``; default ``none``), ``activeHigh`` (default:
    false with a pull-up, where a pressed button reads low, else true), ``bounceTime`` (ms;
    edges within it after a reported edge are bounce), ``edge`` (which edges are pushed at
    once), ``simulate`` (the simulator's pattern). Outputs: ``activeHigh`` (default true),
    ``initial`` (the value set on connect; default the property's desired value, else off),
    and for PWM ``pwmFrequency`` (Hz, default 100).
    """

    pin: int | None = Field(
        None, ge=0, le=MAX_BCM_PIN, description="BCM GPIO number (not the header position)."
    )
    direction: Direction = Field(
        Direction.IN, description="`in`, `out`, `pwm` (duty cycle 0..1) or `adc` (MCP3008)."
    )
    pull: Pull | None = Field(None, description="Input pull resistor (default `none`).")
    active_high: bool | None = Field(
        None, description="High means active; default false for `pull: up` inputs, else true."
    )
    bounce_time: int | None = Field(
        None, ge=0, le=10_000, description="Input: ms after a reported edge that are bounce."
    )
    edge: Edge = Field(
        Edge.BOTH, description="Input: changes reported at once (others wait for collectCycle)."
    )
    pwm_frequency: float | None = Field(
        None, gt=0, le=100_000, description="PWM frequency in Hz (default 100)."
    )
    initial: bool | float | None = Field(
        None, description="Output: value when claimed (default: desired value, else off)."
    )
    channel: int | None = Field(None, ge=0, le=7, description="ADC: MCP3008 channel.")
    spi_port: Literal[0, 1] = Field(0, description="ADC: SPI port (/dev/spidevP.D).")
    spi_device: Literal[0, 1, 2] = Field(0, description="ADC: SPI chip select.")
    simulate: SimulateConfig | None = Field(
        None, description="Input under the mock factory: the pattern that drives it."
    )

    @model_validator(mode="after")
    def _fits_direction(self) -> GpioVisitor:
        unused: dict[str, object]
        inputs_only: dict[str, object] = {
            "pull": self.pull,
            "bounceTime": self.bounce_time,
            "simulate": self.simulate,
        }
        if self.direction is Direction.ADC:
            if self.channel is None:
                raise ValueError("direction adc needs channel (0..7 of the MCP3008)")
            if self.pin is not None:
                raise ValueError("direction adc reads an MCP3008 channel: give channel, not pin")
            unused = {**inputs_only, "activeHigh": self.active_high, "initial": self.initial}
        else:
            if self.pin is None:
                raise ValueError(f"direction {self.direction} needs pin (a BCM GPIO number)")
            if self.channel is not None:
                raise ValueError("channel is for direction adc only")
            unused = {} if self.direction is Direction.IN else dict(inputs_only)
            if self.direction is Direction.IN:
                unused["initial"] = self.initial
        if self.direction is not Direction.PWM:
            unused["pwmFrequency"] = self.pwm_frequency
        if self.direction is not Direction.IN and "edge" in self.model_fields_set:
            unused["edge"] = self.edge
        given = [name for name, value in unused.items() if value is not None]
        if given:
            raise ValueError(f"{', '.join(given)} do(es) not apply to direction {self.direction}")
        if (
            self.direction is Direction.PWM
            and isinstance(self.initial, float | int)
            and not (0 <= float(self.initial) <= 1)
        ):
            raise ValueError(f"initial {self.initial} is not a duty cycle between 0 and 1")
        return self

    @property
    def is_input(self) -> bool:
        """Whether the property is read from the world (``in`` or ``adc``)."""
        return self.direction in (Direction.IN, Direction.ADC)

    @property
    def pushes(self) -> bool:
        """Whether the driver watches this input rather than the runtime polling it.

        Every digital input is watched; ``edge`` decides which changes are reported at
        once, the others wait for the next ``collectCycle``.
        """
        return self.direction is Direction.IN

    @property
    def effective_pull(self) -> Pull:
        """The pull resistor to set (``none`` when not given)."""
        return self.pull or Pull.NONE

    @property
    def effective_active_high(self) -> bool:
        """Whether a high level means active (true, on, pressed)."""
        if self.active_high is not None:
            return self.active_high
        return not (self.direction is Direction.IN and self.pull is Pull.UP)

    @property
    def bounce_seconds(self) -> float:
        """``bounceTime`` in seconds (0 when unset)."""
        return (self.bounce_time or 0) / 1000

    @property
    def frequency(self) -> float:
        """``pwmFrequency``, 100 Hz by default (gpiozero's default)."""
        return self.pwm_frequency or 100.0


GpioDeviceSpec = DeviceSpec[GpioProtocol, GpioVisitor]
"""A device resolved with the GPIO driver's settings models."""
GpioPropertySpec = PropertySpec[GpioVisitor]
"""A property of a GPIO device."""
