"""The GPIO ``configData`` schemas: KubeEdge has none for GPIO, so this is edgedev's.

Protocol ``configData`` chooses the pin factory (how gpiozero reaches the pins); each
visitor's ``configData`` says which pin a property lives on and how it behaves. Keys are
camelCase in YAML, unknown keys are refused. ``docs/protocols/gpio.md`` is drawn from these
models.
"""

from __future__ import annotations

import os
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from edgedev.drivers import ProtocolConfig, VisitorConfig

FACTORY_ENV = "GPIOZERO_PIN_FACTORY"
"""The environment variable that names the pin factory when ``pinFactory`` is not set."""

MAX_BCM_PIN = 53
"""The highest BCM GPIO number (BCM2835/2711 have 54 GPIOs; the header exposes 2 to 27)."""


class FactoryKind(StrEnum):
    """The gpiozero pin factories edgedev constructs.

    ``lgpio`` (``/dev/gpiochip*``, the only one that works on a Raspberry Pi 5), ``rpigpio``
    (RPi.GPIO, ``/dev/gpiomem``, Pi 4 and older), ``native`` (gpiozero's pure-Python
    ``/dev/gpiomem`` driver, no PWM), ``mock`` (gpiozero's ``MockFactory``, for simulation
    and tests).
    """

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
    """Which input edges are pushed at once; ``none`` leaves the input to polling."""

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

    pattern: Pattern = Pattern.TOGGLE
    period: int = Field(2000, gt=0, description="Milliseconds of one cycle of the pattern.")
    width: int = Field(200, gt=0, description="Milliseconds a pulse stays active.")
    bounce: int = Field(0, ge=0, le=50, description="Chatter edges after each transition.")
    bounce_spacing: float = Field(1.0, gt=0, description="Milliseconds between chatter edges.")

    @model_validator(mode="after")
    def _width_fits(self) -> SimulateConfig:
        if self.pattern is Pattern.PULSE and self.width >= self.period:
            raise ValueError(f"width {self.width} must be shorter than period {self.period}")
        return self


class GpioProtocol(ProtocolConfig):
    """``spec.protocol.configData`` of a GPIO Device.

    ``pinFactory`` names the gpiozero pin factory (``lgpio``, ``rpigpio``, ``native``,
    ``mock``); when absent, the ``GPIOZERO_PIN_FACTORY`` environment variable decides, and
    ``lgpio`` when that is unset too. ``chip`` selects ``/dev/gpiochipN`` for lgpio (default:
    gpiozero's choice, 4 on a Pi 5 with an older kernel, else 0). ``mockName`` names the
    process-wide mock board that a mapper and the simulator share in ``edgedev demo``.
    """

    pin_factory: FactoryKind | None = None
    chip: int | None = Field(None, ge=0, le=31)
    mock_name: str = Field("default", min_length=1)

    @property
    def factory_kind(self) -> FactoryKind:
        """``pinFactory``, else ``$GPIOZERO_PIN_FACTORY``, else ``lgpio``.

        Raises:
            ValueError: the environment variable names no factory edgedev knows.
        """
        if self.pin_factory is not None:
            return self.pin_factory
        name = os.environ.get(FACTORY_ENV, "").strip().lower()
        if not name:
            return FactoryKind.LGPIO
        try:
            return FactoryKind(name)
        except ValueError:
            have = ", ".join(k.value for k in FactoryKind)
            raise ValueError(f"{FACTORY_ENV}={name!r} is not one of {have}") from None


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

    pin: int | None = Field(None, ge=0, le=MAX_BCM_PIN)
    direction: Direction = Direction.IN
    pull: Pull | None = None
    active_high: bool | None = None
    bounce_time: int | None = Field(None, ge=0, le=10_000)
    edge: Edge = Edge.BOTH
    pwm_frequency: float | None = Field(None, gt=0, le=100_000)
    initial: bool | float | None = None
    channel: int | None = Field(None, ge=0, le=7)
    spi_port: Literal[0, 1] = 0
    spi_device: Literal[0, 1, 2] = 0
    simulate: SimulateConfig | None = None

    @model_validator(mode="after")
    def _fits_direction(self) -> GpioVisitor:
        inputs_only = {"pull": self.pull, "bounceTime": self.bounce_time, "simulate": self.simulate}
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
        """Whether edges of this input are pushed at once rather than polled."""
        return self.direction is Direction.IN and self.edge is not Edge.NONE

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
