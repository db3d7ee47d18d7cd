"""Pin factories, constructed explicitly and shared process-wide as :class:`Board` objects.

gpiozero keeps one global default factory on ``Device.pin_factory``; edgedev never uses it.
Each GPIO device's driver asks :data:`boards` for the board its ``configData`` names, and
passes ``board.factory`` to every gpiozero device it makes (``pin_factory=``). Devices of one
process that name the same factory share one instance, so that pin reservations are checked
across all of them and ``/dev/gpiochipN`` is opened once.

Mock boards are keyed by ``mockName``: the ``gpio`` simulator and the mapper of one process
(``edgedev demo``, tests) hold the same :class:`~gpiozero.pins.mock.MockFactory`, which is
how the simulator's input patterns reach the mapper. A mock board lives as long as anyone
holds it; two processes never share one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from edgedev.drivers import DeviceError
from edgedev_gpio.config import FactoryKind, GpioProtocol

log = logging.getLogger("edgedev.gpio")


@dataclass(frozen=True, slots=True)
class BoardKey:
    """Which board: the factory kind and its chip (lgpio) or name (mock)."""

    kind: FactoryKind
    name: str = ""

    @classmethod
    def of(cls, config: GpioProtocol) -> BoardKey:
        """The board that ``config`` names.

        Raises:
            DeviceError: ``GPIOZERO_PIN_FACTORY`` names an unknown factory.
        """
        try:
            kind = config.factory_kind
        except ValueError as exc:
            raise DeviceError(str(exc)) from None
        if kind is FactoryKind.MOCK:
            return cls(kind, config.mock_name)
        if kind in (FactoryKind.LGPIO, FactoryKind.AUTO) and config.chip is not None:
            return cls(kind, str(config.chip))
        return cls(kind)

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}" if self.name else str(self.kind)


@dataclass(eq=False, slots=True)
class Board:
    """One pin factory and the devices of this process that use it.

    Attributes:
        key: what the board is.
        factory: the gpiozero pin factory (untyped: gpiozero has no annotations).
        analog: simulated MCP3008 channel values of a mock board, keyed by
            ``(spiPort, spiDevice, channel)``, 0..1 (gpiozero's software SPI cannot run on
            a mock factory without its global default factory, so mock ADCs read these).
        users: how many holders the board has (see :class:`Boards`).
    """

    key: BoardKey
    factory: Any
    analog: dict[tuple[int, int, int], float] = field(default_factory=dict)
    users: int = 0
    _driven: set[int] = field(default_factory=set)

    def claim_pattern(self, pin: int) -> bool:
        """Take the job of driving input ``pin``'s simulated pattern.

        Whoever starts first (the simulator in ``edgedev demo``, else the mapper's driver)
        drives the pin; the others must not, or each edge would be driven twice.

        Returns:
            Whether the caller got the job (and must :meth:`release_pattern` it).
        """
        if pin in self._driven:
            return False
        self._driven.add(pin)
        return True

    def release_pattern(self, pin: int) -> None:
        """Give up driving ``pin``'s pattern."""
        self._driven.discard(pin)

    @contextmanager
    def driving(self, pin: int) -> Iterator[bool]:
        """:meth:`claim_pattern` for the block; yields whether the job is the caller's."""
        got = self.claim_pattern(pin)
        try:
            yield got
        finally:
            if got:
                self.release_pattern(pin)

    @property
    def is_mock(self) -> bool:
        """Whether the board is a ``MockFactory``."""
        return self.key.kind is FactoryKind.MOCK


def make_factory(key: BoardKey) -> Any:
    """Construct the gpiozero pin factory ``key`` names, importing its backend lazily.

    ``auto`` tries lgpio, rpigpio and native in turn (gpiozero's own order, without pigpio)
    and takes the first that opens: lgpio on a Raspberry Pi 5, RPi.GPIO or native on older
    boards where lgpio is not installed.

    Raises:
        DeviceError: the backend is not installed, or the factory cannot open the GPIO
            chip (no such device, permission denied, not a Raspberry Pi).
    """
    if key.kind is not FactoryKind.AUTO:
        return _make_one(key.kind, key.name)
    failures = []
    for kind in (FactoryKind.LGPIO, FactoryKind.RPIGPIO, FactoryKind.NATIVE):
        try:
            factory = _make_one(kind, key.name if kind is FactoryKind.LGPIO else "")
        except DeviceError as exc:
            failures.append(str(exc))
            continue
        log.info("pin factory auto: using %s", kind)
        return factory
    raise DeviceError("no pin factory opens the GPIO chip: " + "; ".join(failures))


def _make_one(kind: FactoryKind, name: str) -> Any:
    try:
        if kind is FactoryKind.MOCK:
            from gpiozero.pins.mock import MockFactory, MockPWMPin

            return MockFactory(pin_class=MockPWMPin)  # PWM-capable pins serve every use
        if kind is FactoryKind.LGPIO:
            from gpiozero.pins.lgpio import LGPIOFactory

            return LGPIOFactory(chip=int(name) if name else None)
        if kind is FactoryKind.RPIGPIO:
            from gpiozero.pins.rpigpio import RPiGPIOFactory

            return RPiGPIOFactory()
        from gpiozero.pins.native import NativeFactory

        return NativeFactory()
    except ImportError as exc:
        extra = "" if kind is FactoryKind.NATIVE else f"[{kind}]"
        raise DeviceError(
            f"pin factory {kind} is not available ({exc}); install edgedev-gpio{extra}"
        ) from exc
    except Exception as exc:  # lgpio.error, OSError, gpiozero's errors: all mean "no GPIO"
        raise DeviceError(f"pin factory {kind} cannot open the GPIO chip: {exc}") from exc


class Boards:
    """The boards of this process, created on first use and closed by their last user."""

    def __init__(self) -> None:
        self._boards: dict[BoardKey, Board] = {}
        self._lock = threading.Lock()

    def acquire(self, key: BoardKey) -> Board:
        """The board ``key`` names, created when nobody holds it yet.

        Every :meth:`acquire` needs one :meth:`release`.

        Raises:
            DeviceError: the factory cannot be constructed.
        """
        with self._lock:
            board = self._boards.get(key)
            if board is None:
                board = self._boards[key] = Board(key, make_factory(key))
                log.debug("pin factory %s opened", key)
            board.users += 1
            return board

    def release(self, board: Board) -> None:
        """Give ``board`` back; the last user closes its factory. Never raises."""
        with self._lock:
            board.users -= 1
            if board.users > 0 or self._boards.get(board.key) is not board:
                return
            del self._boards[board.key]
        try:
            board.factory.close()
        except Exception:  # closing must not raise; a faulty backend is only noted
            log.debug("closing pin factory %s failed", board.key, exc_info=True)
        log.debug("pin factory %s closed", board.key)

    @contextmanager
    def use(self, key: BoardKey) -> Iterator[Board]:
        """Hold the board ``key`` names for the duration of the block."""
        board = self.acquire(key)
        try:
            yield board
        finally:
            self.release(board)

    @contextmanager
    def mock(self, name: str = "default") -> Iterator[Board]:
        """Hold the mock board ``name`` (what ``pinFactory: mock, mockName: NAME`` shares)."""
        with self.use(BoardKey(FactoryKind.MOCK, name)) as board:
            yield board

    def __contains__(self, key: object) -> bool:
        return key in self._boards


boards = Boards()
"""The process-wide boards: every GPIO driver and simulator of the process uses these."""
