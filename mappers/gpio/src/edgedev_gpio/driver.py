"""The GPIO driver: gpiozero devices on an explicitly chosen pin factory, inputs pushed on edges."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from contextlib import ExitStack

import anyio

from edgedev.drivers import DeviceError, Driver, Endpoints, Report, Schedule, WriteRefused
from edgedev.twin import PropertyType, Value
from edgedev_gpio.boards import Board, BoardKey, boards
from edgedev_gpio.checks import device_problems, property_problems
from edgedev_gpio.config import (
    Direction,
    Edge,
    GpioDeviceSpec,
    GpioPropertySpec,
    GpioProtocol,
    GpioVisitor,
)
from edgedev_gpio.debounce import Debouncer
from edgedev_gpio.drive import analog_signal, drive_pattern
from edgedev_gpio.inbox import ThreadInbox
from edgedev_gpio.lines import DigitalInput, EdgeCallback, Line, open_line

log = logging.getLogger("edgedev.gpio")

_Edge = tuple[str, float, bool]
"""``(property, time.monotonic() when seen, logical level)``."""


def _typed(prop: GpioPropertySpec, value: bool | float) -> Value:
    """``value`` as a Python value of the property's type."""
    if prop.type is PropertyType.BOOLEAN:
        return bool(value)
    if prop.type is PropertyType.INT:
        return int(value)
    return float(value)


def _initial(prop: GpioPropertySpec) -> bool | float | None:
    """What an output starts with: ``initial``, else the desired value, else off."""
    visitor = prop.visitor
    if visitor.initial is not None:
        return visitor.initial
    if prop.desired is None:
        return None
    text = prop.desired.strip().lower()
    if visitor.direction is Direction.OUT:
        return text in ("true", "1", "on")
    try:
        return min(1.0, max(0.0, float(text)))
    except ValueError:
        return None


class GpioDriver(Driver[GpioProtocol, GpioVisitor]):
    """GPIO pins of the machine the mapper runs on, through gpiozero.

    Every gpiozero device is made with ``pin_factory=`` the board of :data:`boards` that the
    protocol ``configData`` names, never with gpiozero's global default. Digital inputs are
    watched: each edge is debounced and, as ``edge`` says, reported at once through
    :meth:`watch`, which also re-reads them every ``collectCycle`` and reports them then (a
    periodic report that also catches an edge the kernel dropped). Outputs and
    PWM duty cycles are written through desired values; inputs refuse writes.
    """

    protocol_config = GpioProtocol
    visitor_config = GpioVisitor

    def __init__(self, device: GpioDeviceSpec, endpoints: Endpoints | None = None) -> None:
        super().__init__(device, endpoints)
        self._board: Board | None = None
        self._lines: dict[str, Line] = {}
        self._debouncers: dict[str, Debouncer] = {}

    # load-time checks ----------------------------------------------------------------------
    @classmethod
    def check_property(cls, prop: GpioPropertySpec) -> list[tuple[str, str]]:
        """Check the property's type against its direction, and desired values of inputs."""
        return property_problems(prop)

    @classmethod
    def check_device(cls, device: GpioDeviceSpec) -> list[tuple[str, str]]:
        """Refuse two properties on one pin or channel, SPI pins in use, PWM on native."""
        return device_problems(device)

    def pushes(self, prop: GpioPropertySpec) -> bool:
        """Digital inputs are watched (:meth:`watch`): edges pushed at once, per ``edge``."""
        return prop.visitor.pushes

    # connection ----------------------------------------------------------------------------
    @property
    def board(self) -> Board:
        """The board in use (while connected).

        Raises:
            DeviceError: not connected.
        """
        if self._board is None:
            raise DeviceError(f"{self.device.id}: not connected")
        return self._board

    async def connect(self) -> None:
        """Take the board and claim every property's pin."""
        board = boards.acquire(BoardKey.of(self.config))
        self._board = board
        try:
            for prop in self.device.properties:
                visitor = prop.visitor
                simulated = None
                if board.is_mock and visitor.direction is Direction.ADC:
                    simulated = analog_signal(prop, self.device.id)
                self._lines[prop.name] = open_line(
                    board, visitor, _initial(prop), simulated=simulated
                )
        except BaseException:
            await self.close()
            raise
        log.debug("%s: %d pin(s) on %s", self.device.id, len(self._lines), board.key)

    async def close(self) -> None:
        """Release every pin, then the board."""
        lines, self._lines = self._lines, {}
        for line in lines.values():
            line.close()
        board, self._board = self._board, None
        if board is not None:
            boards.release(board)

    def _line(self, prop: GpioPropertySpec) -> Line:
        line = self._lines.get(prop.name)
        if line is None:
            raise DeviceError(f"{self.device.id}: not connected")
        return line

    # values --------------------------------------------------------------------------------
    async def read(self, properties: Sequence[GpioPropertySpec]) -> Mapping[str, Value]:
        """The level, duty cycle or channel value of each property, now."""
        return {p.name: _typed(p, self._line(p).read()) for p in properties}

    async def write(self, prop: GpioPropertySpec, value: Value) -> None:
        """Switch an output, or set a PWM duty cycle.

        Raises:
            WriteRefused: the property is an input, or the value does not fit the pin.
        """
        visitor = prop.visitor
        if visitor.is_input:
            where = f"GPIO{visitor.pin}" if visitor.pin is not None else "an MCP3008 channel"
            raise WriteRefused(
                f"property {prop.name!r} is an input ({where}); it cannot be written"
            )
        if isinstance(value, str | bytes):
            raise WriteRefused(f"property {prop.name!r} takes a number or a boolean")
        self._line(prop).write(value)

    # edges ---------------------------------------------------------------------------------
    async def watch(self, properties: Sequence[GpioPropertySpec], report: Report) -> None:
        """Report each debounced edge at once, and every input again each ``collectCycle``.

        On a mock board, inputs with ``simulate`` whose pattern nobody drives yet (no
        simulator in this process) are driven here, for as long as the watch lasts.
        """
        inputs: dict[str, DigitalInput] = {}
        for prop in properties:
            line = self._line(prop)
            if not isinstance(line, DigitalInput):
                raise DeviceError(f"{self.device.id}: {prop.name} is not a digital input")
            inputs[prop.name] = line
        with ThreadInbox[_Edge]() as inbox, ExitStack() as claims:
            async with anyio.create_task_group() as tg:
                for prop in properties:
                    visitor = prop.visitor
                    pattern = visitor.simulate
                    if (
                        pattern is not None
                        and visitor.pin is not None
                        and self.board.is_mock
                        and claims.enter_context(self.board.driving(visitor.pin))
                    ):
                        log.info(
                            "%s: driving the %s pattern of %s (mock pins, no simulator here)",
                            self.device.id,
                            pattern.pattern,
                            prop.name,
                        )
                        pin = self.board.factory.pin(visitor.pin)
                        tg.start_soon(drive_pattern, pin, pattern, visitor.effective_active_high)
                try:
                    await self._watch(properties, inputs, inbox, report)
                finally:
                    tg.cancel_scope.cancel()

    async def _watch(
        self,
        properties: Sequence[GpioPropertySpec],
        inputs: Mapping[str, DigitalInput],
        inbox: ThreadInbox[_Edge],
        report: Report,
    ) -> None:
        props = {p.name: p for p in properties}
        edges = {p.name: p.visitor.edge for p in properties}
        now = time.monotonic()
        self._debouncers = debouncers = {
            name: Debouncer(props[name].visitor.bounce_seconds, line.read())
            for name, line in inputs.items()
        }
        for name, line in inputs.items():
            line.on_change(_edge_sink(inbox, name))
        try:
            cycles = Schedule({p.name: p.collect_cycle for p in properties}, now)
            while True:
                now = time.monotonic()
                for name in cycles.pop_due(now):  # periodic report, catching lost edges
                    debouncers[name].edge(now, inputs[name].read())
                    report(name, _typed(props[name], debouncers[name].value))
                for name, debouncer in debouncers.items():
                    level = debouncer.settle(now)
                    if level is not None and _wanted(edges[name], level):
                        report(name, _typed(props[name], level))
                deadlines = [d.deadline for d in debouncers.values()]
                wake = min([cycles.next_deadline()] + [d for d in deadlines if d is not None])
                batch: list[_Edge] = []
                with anyio.move_on_after(max(0.0, wake - time.monotonic())):
                    batch = await inbox.get()
                for name, seen, level in batch:
                    reported = debouncers[name].edge(seen, level)
                    if reported is not None and _wanted(edges[name], reported):
                        report(name, _typed(props[name], reported))
        finally:
            for line in inputs.values():
                line.on_change(None)

    @property
    def bounced(self) -> int:
        """Edges suppressed as contact bounce since :meth:`watch` started."""
        return sum(d.bounced for d in self._debouncers.values())


def _wanted(edge: Edge, level: bool) -> bool:
    """Whether a change to ``level`` is pushed at once under ``edge``."""
    if edge is Edge.BOTH:
        return True
    if edge is Edge.RISING:
        return level
    return edge is Edge.FALLING and not level


def _edge_sink(inbox: ThreadInbox[_Edge], name: str) -> EdgeCallback:
    """A callback for gpiozero's threads: stamp the edge and hand it to the loop."""

    def seen(level: bool) -> None:
        inbox.put((name, time.monotonic(), level))

    return seen
