"""How good a value is, and when the device measured it. Pure.

OPC-UA servers say both with every value: a StatusCode, whose two top bits give its class
(Good, Uncertain, Bad: OPC 10000-4, 7.39), and a SourceTimestamp. A driver that knows them
returns a :class:`Sample` instead of a bare value; a bare value is Good, measured when it was
read. Modbus answers a refused block read with an exception per request, which makes every
value of that request Bad.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import final

from edgedev.twin._values import Value


class Quality(StrEnum):
    """The class of a value's status: OPC-UA's Good, Uncertain and Bad."""

    GOOD = "Good"
    UNCERTAIN = "Uncertain"
    BAD = "Bad"


@final
@dataclass(frozen=True, slots=True)
class Sample:
    """A value with its quality and the time the device measured it.

    What a driver may return (from a read, or to a push) instead of a bare value.

    Attributes:
        value: the value (``None`` when Bad: there is none).
        quality: Good, Uncertain or Bad.
        source_time: when the device measured it, in ms since the epoch; ``None`` when it
            does not say (the time of the read counts).
        reason: why it is not Good, in words (``BadSensorFailure``, ``exception code 2
            (illegal data address)``).
    """

    value: Value | None
    quality: Quality = Quality.GOOD
    source_time: int | None = None
    reason: str | None = None

    @classmethod
    def bad(cls, reason: str, source_time: int | None = None) -> Sample:
        """A Bad sample: no value, and why."""
        return cls(None, Quality.BAD, source_time, reason)
