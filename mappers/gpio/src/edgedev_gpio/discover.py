"""``edgedev discover gpio``: the lines of a GPIO chip as a draft Device.

The chip's lines come from lgpio's line information (``/dev/gpiochipN``: name, consumer,
direction, active-low, which the kernel gives without taking the line), or from a gpiozero
``MockFactory`` (``--pin-factory mock``: the pins of the board it simulates, in tests and
demos). A free input line becomes a ``BOOLEAN`` input property; a line in use, or an output
nobody holds, is skipped with the reason: taking an output to read it would change it.

Reading a free input line's level takes the line as an input, as it already is, with its
bias left as it is, and gives it back: nothing is driven, no direction changes.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from edgedev.discover import (
    DeviceDraft,
    Discoverer,
    Discovery,
    Options,
    PropertyDraft,
    Summary,
    UsageError,
)
from edgedev.drivers import AccessMode, DeviceError
from edgedev.twin import PropertyType
from edgedev_gpio.config import MAX_BCM_PIN

IN_USE = 1
OUTPUT = 2
ACTIVE_LOW = 4
"""Line flags as lgpio's line information gives them (the kernel's, bits 0 to 2)."""


@dataclass(frozen=True, slots=True)
class Line:
    """One GPIO line as the chip describes it.

    Attributes:
        offset: its number on the chip (the BCM number on a Raspberry Pi).
        name: its name (``GPIO17``), or empty.
        user: who holds it (the consumer's label), or empty.
        used: whether someone holds it.
        output: whether it is an output.
        active_low: whether the kernel marks it active low.
        pull: a pull resistor the board fixes (``up`` on a Pi's I2C pins), if any.
        value: its level when read (free inputs only).
    """

    offset: int
    name: str = ""
    user: str = ""
    used: bool = False
    output: bool = False
    active_low: bool = False
    pull: str | None = None
    value: bool | None = None

    @property
    def label(self) -> str:
        """``line 17 (GPIO17)``, for messages."""
        return f"line {self.offset}" + (f" ({self.name})" if self.name else "")


def line_property(line: Line) -> PropertyDraft | str:
    """The property of a line, or why it has none."""
    if line.used:
        return f"in use by {line.user or 'another consumer'}"
    if line.output:
        return (
            "an output nobody holds: its level cannot be read without taking the line, "
            "which would change it; add it by hand (direction: out, initial: ...)"
        )
    if line.offset > MAX_BCM_PIN:
        return f"beyond the GPIO driver's pins (0 to {MAX_BCM_PIN})"
    visitor: dict[str, Any] = {"pin": line.offset, "direction": "in"}
    if line.pull:
        visitor["pull"] = line.pull
    visitor["activeHigh"] = not line.active_low  # the electrical level, unless marked
    level = "" if line.value is None else (", high" if line.value else ", low")
    return PropertyDraft(
        name=line.name or f"gpio{line.offset}",
        type=PropertyType.BOOLEAN,
        visitor=visitor,
        access=AccessMode.READ_ONLY,
        description=f"{line.label}: input{level} when discovered",
    )


def lgpio_lines(chip: int) -> tuple[str, list[Line]]:
    """The label and the lines of ``/dev/gpiochip<chip>``, through lgpio.

    Raises:
        DeviceError: lgpio is not installed, or the chip cannot be opened.
    """
    try:
        import lgpio
    except ImportError:
        raise DeviceError(
            "lgpio is not installed: pip install 'edgedev-gpio[lgpio]' (or --pin-factory mock)"
        ) from None
    try:
        handle = lgpio.gpiochip_open(chip)
    except lgpio.error as exc:
        raise DeviceError(f"cannot open /dev/gpiochip{chip}: {exc}") from None
    try:
        _, count, name, label = lgpio.gpio_get_chip_info(handle)
        lines = []
        for offset in range(count):
            _, _, flags, line_name, user = lgpio.gpio_get_line_info(handle, offset)
            used, output = bool(flags & IN_USE), bool(flags & OUTPUT)
            value = None
            if not used and not output:
                lgpio.gpio_claim_input(handle, offset)  # as it is: input, bias untouched
                try:
                    value = bool(lgpio.gpio_read(handle, offset))
                finally:
                    lgpio.gpio_free(handle, offset)
            lines.append(
                Line(offset, line_name, user, used, output, bool(flags & ACTIVE_LOW), None, value)
            )
        return f"{name} ({label})" if label else str(name), lines
    except lgpio.error as exc:
        raise DeviceError(f"/dev/gpiochip{chip}: {exc}") from None
    finally:
        lgpio.gpiochip_close(handle)


def mock_lines(mock_name: str) -> tuple[str, list[Line]]:
    """The GPIO pins of the mock board ``mock_name`` of this process, as lines."""
    from edgedev_gpio.boards import boards

    with boards.mock(mock_name) as board:
        factory = board.factory
        lines = []
        seen: set[int] = set()
        for header in factory.board_info.headers.values():
            for info in header.pins.values():
                numbers = [n for n in info.names if isinstance(n, int)]
                if "gpio" not in info.interfaces or not numbers or numbers[0] in seen:
                    continue
                number = numbers[0]
                seen.add(number)
                holders = [ref() for ref in factory._reservations.get(info, [])]
                holders = [h for h in holders if h is not None]
                pin = factory.pins.get(info)
                output = pin is not None and pin.function == "output"
                lines.append(
                    Line(
                        offset=number,
                        name=info.name,
                        user=", ".join(type(h).__name__ for h in holders),
                        used=bool(holders),
                        output=output,
                        pull=info.pull or None,
                        value=None if pin is None or output else bool(pin.state),
                    )
                )
        return f"mock board {mock_name} ({factory.board_info.model})", sorted(
            lines, key=lambda line: line.offset
        )


class GpioDiscoverer(Discoverer):
    """Lists a GPIO chip's lines into a draft Device."""

    help = "list a GPIO chip's lines (name, direction, level) into a draft Device"
    description = """\
List the lines of a GPIO chip (lgpio, /dev/gpiochipN) with their names, directions and
levels, and write a draft Device with a BOOLEAN input property per free input line. Lines
in use, and outputs nobody holds (reading one would take it and change it), are listed as
skipped. --pin-factory mock lists the pins of a gpiozero MockFactory board of this process
(tests, demos)."""

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """The chip."""
        parser.add_argument(
            "--chip", type=int, default=0, metavar="N", help="/dev/gpiochipN (default 0)"
        )
        parser.add_argument(
            "--pin-factory",
            choices=("lgpio", "mock"),
            default="lgpio",
            help="where the lines come from (default lgpio)",
        )
        parser.add_argument(
            "--mock-name", default="default", metavar="NAME", help="the mock board (mockName)"
        )

    async def discover(self, args: argparse.Namespace, options: Options) -> Discovery:
        """Read the lines, make the draft."""
        import anyio

        if not 0 <= args.chip <= 31:
            raise UsageError(f"--chip {args.chip}: give 0 to 31")
        config: dict[str, Any]
        if args.pin_factory == "mock":
            config = {"pinFactory": "mock", "mockName": args.mock_name}
            chip, lines = mock_lines(args.mock_name)
            name = f"gpio-mock-{args.mock_name}"
        else:
            config = {"pinFactory": "lgpio", "chip": args.chip}
            chip, lines = await anyio.to_thread.run_sync(lgpio_lines, args.chip)
            name = f"gpiochip{args.chip}"
        summary = Summary(target=chip)
        summary.sent("line information", len(lines))
        properties = []
        for line in lines:
            made = line_property(line)
            if isinstance(made, str):
                summary.skip(line.label, made)
            else:
                properties.append(made)
        free = sum(1 for line in lines if not line.used)
        summary.note(f"{len(lines)} lines: {free} free, {len(properties)} free inputs")
        devices = [DeviceDraft(name, properties, config)] if properties else []
        return Discovery(devices, summary)
