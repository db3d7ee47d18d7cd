"""Exact decimal arithmetic for device numbers: a ``scale`` applied without float noise.

Raw 235 times 0.1 reports 23.5, not 23.500000000000004: a float enters as its shortest repr
(``0.1`` is exactly ``Decimal("0.1")``) and the arithmetic is done in decimal, in
:data:`DECIMAL_CONTEXT`, whose 60 digits hold the exact product or quotient of two 17-digit
reprs or of a 64-bit integer and a repr. The caller's (thread-local) decimal context plays no
part. Every driver that scales readings (Modbus, BLE) uses these, so that one reading gives
the same value whichever protocol carried it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from decimal import ROUND_HALF_EVEN, Context, Decimal

DECIMAL_CONTEXT = Context(prec=60)
"""The precision of every conversion here."""


def to_decimal(number: int | float) -> Decimal:
    """``number`` as a Decimal, a float through its shortest repr (``0.1`` is ``0.1``).

    Raises:
        ValueError: ``number`` is not finite.
    """
    if isinstance(number, float):
        if not math.isfinite(number):
            raise ValueError(f"{number} is not a finite number")
        return Decimal(repr(number))
    return Decimal(number)


def to_integer(value: Decimal) -> int:
    """``value`` rounded to an integer, halves to even."""
    return int(value.to_integral_value(rounding=ROUND_HALF_EVEN, context=DECIMAL_CONTEXT))


def to_number(value: Decimal) -> int | float:
    """An int when ``value`` is integral, else the nearest float."""
    if value == value.to_integral_value():
        return int(value)
    return float(value)


def check_scale(factor: float) -> None:
    """Refuse a scale that cannot be undone by a write.

    Raises:
        ValueError: ``factor`` is zero or not finite.
    """
    if not math.isfinite(factor) or factor == 0:
        raise ValueError(f"scale must be a finite non-zero number, not {factor!r}")


def scale_number(raw: int | float, factor: float) -> int | float:
    """``raw * factor`` computed in decimal: raw 235 with scale 0.1 is 23.5.

    The result's type follows the configuration, not the reading: an int stays an int when
    ``factor`` is a whole number (scale 1 in particular), else it is a float (2 with scale 0.5
    is 1.0). Booleans pass unchanged; non-finite floats are multiplied as floats.

    Raises:
        ValueError: ``factor`` is zero or not finite.
    """
    check_scale(factor)
    if isinstance(raw, bool) or factor == 1:
        return raw
    if isinstance(raw, float) and not math.isfinite(raw):
        return raw * factor
    product = DECIMAL_CONTEXT.multiply(to_decimal(raw), to_decimal(factor))
    if isinstance(raw, int) and float(factor).is_integer():
        return int(product)
    return float(product)


def scaler(factor: float) -> Callable[[int | float], int | float]:
    """:func:`scale_number` by ``factor``, with what does not depend on the reading done once.

    For a hot path that scales every reading of a property: an int reading is multiplied by
    ``factor``'s shortest decimal as an exact fraction (``raw * n / 10**k``, int true division,
    correctly rounded), which equals the decimal product rounded to a float, at a tenth of the
    cost; other readings go through :func:`scale_number`.

    Raises:
        ValueError: ``factor`` is zero or not finite.
    """
    check_scale(factor)
    if factor == 1:
        return _unchanged
    sign, digits, exponent = Decimal(repr(factor)).as_tuple()
    assert isinstance(exponent, int)  # finite: checked above
    numerator = int("".join(map(str, digits))) * (-1 if sign else 1)
    if exponent >= 0:
        numerator, denominator = numerator * 10**exponent, 1
    elif float(factor).is_integer():
        numerator, denominator = numerator // 10**-exponent, 1
    else:
        denominator = 10**-exponent

    def scale(raw: int | float) -> int | float:
        if type(raw) is int and raw:  # 0 goes the slow way: 0 * -0.1 is -0.0 in decimal
            return raw * numerator if denominator == 1 else raw * numerator / denominator
        return scale_number(raw, factor)

    return scale


def _unchanged(raw: int | float) -> int | float:
    return raw


def unscale_number(value: int | float, factor: float) -> Decimal:
    """``value / factor`` in decimal, the inverse of :func:`scale_number` (for writes).

    The caller rounds it to its wire type (:func:`to_integer`, ``float``).

    Raises:
        ValueError: ``factor`` is zero or not finite, or ``value`` is not finite.
    """
    check_scale(factor)
    number = to_decimal(value)
    return number if factor == 1 else DECIMAL_CONTEXT.divide(number, to_decimal(factor))
