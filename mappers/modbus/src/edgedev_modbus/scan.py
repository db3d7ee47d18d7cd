"""Finding the readable addresses of a Modbus table, as requests to send: no I/O.

:class:`RangeScan` is a state machine in the manner of h11: :meth:`RangeScan.request` says
what to read next (a start address and a count), :meth:`RangeScan.answer` takes what the
device answered, and :attr:`RangeScan.ranges` grows. The I/O loop that drives it
(:mod:`edgedev_modbus.survey`) only sends.

How it walks a table from address 0 to the last address:

* a **block read** as large as the function allows (125 registers, 2000 bits) where nothing
  is known yet: a readable block is a range;
* a block refused with exception 2 (illegal data address) or 3 (illegal data value, which
  some devices answer instead) holds an address the device does not have: **bisection**
  finds how many of its first addresses are readable (one read of the first address, then a
  binary search), which is a range, and the address after it is not readable;
* past an address that is not readable, single addresses are read one by one, every
  ``stride``-th only with ``stride`` above 1, until one answers; with a stride, a binary
  search then finds where its range starts. A device refuses every read that includes an
  address it does not have, so only reading each of them tells them all apart: with stride 1
  no readable address is missed, and each unused address costs one request; with stride N
  they cost N times fewer, and a range shorter than N that falls between two probes is
  missed.

Any other exception, or no answer, on the table's first request means the device does not
serve the table (exception 1: illegal function) or not now: the scan stops and says why.
Later, it stops at the address that failed, keeping what it found.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from edgedev_modbus.codec import Table

MAX_COUNT = {
    Table.COIL: 2000,
    Table.DISCRETE_INPUT: 2000,
    Table.HOLDING: 125,
    Table.INPUT: 125,
}
"""The most bits or registers one read of each table may ask for (Modbus application protocol
v1.1b3, 6.1 to 6.4)."""
FUNCTION = {Table.COIL: 1, Table.DISCRETE_INPUT: 2, Table.HOLDING: 3, Table.INPUT: 4}
"""The read function code of each table."""
ILLEGAL_ADDRESS = 2
ILLEGAL_VALUE = 3
MAX_UNIT = 247


def parse_units(text: str) -> list[int]:
    """The unit ids of ``--unit``: ``1-247``, ``1,2,10-20``, in order, without repeats.

    Raises:
        ValueError: a part is not a unit id (0 to 247) or a range of them.
    """
    units: list[int] = []
    for part in text.split(","):
        low, dash, high = part.strip().partition("-")
        try:
            first = int(low)
            last = int(high) if dash else first
        except ValueError:
            raise ValueError(f"{part.strip()!r} is not a unit id or a range (1-247)") from None
        if not 0 <= first <= last <= MAX_UNIT:
            raise ValueError(f"{part.strip()!r}: unit ids go from 0 to {MAX_UNIT}, low to high")
        units += [u for u in range(first, last + 1) if u not in units]
    return units


NO_ANSWER = -1
"""What :meth:`RangeScan.answer` takes when the device did not answer within the timeout."""


class _Mode(Enum):
    WALK = "walk"  # a block read from an address not known to be unreadable
    PREFIX = "prefix"  # how much of a refused block is readable from its start
    GAP = "gap"  # single probes past an unreadable address
    START = "start"  # where the range of a probe that answered begins (stride above 1)
    DONE = "done"


@dataclass(slots=True)
class RangeScan:
    """The readable ranges of one table, from address 0 to ``last``.

    Args:
        table: the table scanned.
        last: the highest address to look at (inclusive).
        stride: in unused space, probe every ``stride``-th address (1: every address); at
            most one read's worth (125 registers, 2000 bits).

    Attributes:
        ranges: ``(start, count)`` of every readable range found, in address order.
        stopped: why the scan ended early (``exception code 1 (illegal function) at address
            0``), if it did.
        requests: requests asked for so far.
    """

    table: Table
    last: int
    stride: int = 1
    ranges: list[tuple[int, int]] = field(default_factory=list)
    stopped: str | None = None
    requests: int = 0
    _mode: _Mode = _Mode.WALK
    _at: int = 0  # WALK: next address; PREFIX: the block's start; GAP: an unreadable address
    _low: int = 0  # PREFIX: a readable count; START: the lowest start not ruled out
    _high: int = 0  # PREFIX: a refused count; START: the lowest start known readable
    _probe: int = 0  # START: the probe that answered
    _asked: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.stride <= MAX_COUNT[self.table]:
            raise ValueError(
                f"stride {self.stride}: give 1 to {MAX_COUNT[self.table]} for {self.table}"
            )
        if self.last < 0:
            self._mode = _Mode.DONE

    @property
    def done(self) -> bool:
        """Whether the scan is over."""
        return self._mode is _Mode.DONE

    def request(self) -> tuple[int, int] | None:
        """The next read to send, ``(start, count)``, or ``None`` when the scan is over.

        The same request comes again until :meth:`answer` is called.
        """
        if self._asked is not None or self._mode is _Mode.DONE:
            return self._asked
        mode = self._mode
        if mode is _Mode.WALK:
            asked = (self._at, min(MAX_COUNT[self.table], self.last - self._at + 1))
        elif mode is _Mode.PREFIX:
            asked = (self._at, 1 if self._low == 0 else (self._low + self._high) // 2)
        elif mode is _Mode.GAP:
            asked = (min(self._at + self.stride, self.last), 1)
        else:  # START: is [middle, probe] readable?
            middle = (self._low + self._high) // 2
            asked = (middle, self._probe - middle + 1)
        self._asked = asked
        self.requests += 1
        return asked

    def answer(self, code: int | None) -> None:
        """What the device answered to the last request.

        Args:
            code: ``None`` for data, else the exception code, or :data:`NO_ANSWER`.

        Raises:
            RuntimeError: no request is waiting for its answer.
        """
        asked = self._asked
        if asked is None:
            raise RuntimeError("answer() without a request()")
        self._asked = None
        start, count = asked
        ok = code is None
        if not ok and code not in (ILLEGAL_ADDRESS, ILLEGAL_VALUE):
            self._stop(start, code)
        elif self._mode is _Mode.WALK:
            if ok:
                self._found(start, count)
                self._walk(start + count)
            elif count == 1:
                self._gap(start)
            else:
                self._mode, self._low, self._high = _Mode.PREFIX, 0, count
        elif self._mode is _Mode.PREFIX:
            if ok:
                self._low = count
            else:
                self._high = count
            if self._low == 0:  # the block's first address is not readable
                self._gap(start)
            elif self._low + 1 >= self._high:
                self._found(start, self._low)
                self._gap(start + self._low)
        elif self._mode is _Mode.GAP:
            if ok and start == self._at + 1:
                self._walk(start)  # every address before it is known to be unreadable
            elif ok:
                self._mode, self._low, self._high, self._probe = (
                    _Mode.START,
                    self._at + 1,
                    start,
                    start,
                )
            else:
                self._gap(start)
        else:  # START: the lowest s with [s, probe] readable lies in [_low, _high]
            if ok:
                self._high = start
            else:
                self._low = start + 1
            if self._low >= self._high:
                self._walk(self._high)

    def _found(self, start: int, count: int) -> None:
        if self.ranges and sum(self.ranges[-1]) == start:
            first, length = self.ranges[-1]
            self.ranges[-1] = (first, length + count)
        else:
            self.ranges.append((start, count))

    def _walk(self, address: int) -> None:
        """Read on from ``address``, which is not known to be unreadable."""
        if address > self.last:
            self._mode = _Mode.DONE
        else:
            self._mode, self._at = _Mode.WALK, address

    def _gap(self, unreadable: int) -> None:
        """``unreadable`` is not readable: probe on past it."""
        if unreadable >= self.last:
            self._mode = _Mode.DONE
        else:
            self._mode, self._at = _Mode.GAP, unreadable

    def _stop(self, address: int, code: int | None) -> None:
        from edgedev_modbus.driver import exception_name

        why = "no answer" if code == NO_ANSWER else exception_name(code)
        self.stopped = f"{why} at address {address}"
        self._mode = _Mode.DONE
