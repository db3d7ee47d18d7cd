"""Decimal arithmetic for converted values: no float noise (raw 2345 times 0.01 is 23.45)."""

from __future__ import annotations

import math
from decimal import ROUND_HALF_EVEN, Context, Decimal

CONTEXT = Context(prec=34)
"""Precision of every conversion (decimal128, far beyond a double's 17 digits)."""


def to_decimal(number: int | float) -> Decimal:
    """``number`` as a Decimal, floats through their shortest repr (``0.1`` is ``0.1``).

    Raises:
        ValueError: ``number`` is not finite.
    """
    if isinstance(number, float):
        if not math.isfinite(number):
            raise ValueError(f"{number} is not a finite number")
        return Decimal(repr(number))
    return Decimal(number)


def to_number(value: Decimal) -> int | float:
    """An int when ``value`` is integral, else the nearest float."""
    if value == value.to_integral_value():
        return int(value)
    return float(value)


def to_integer(value: Decimal) -> int:
    """``value`` rounded to an integer, halves to even."""
    return int(value.to_integral_value(rounding=ROUND_HALF_EVEN, context=CONTEXT))


def scale(raw: int | float, factor: float) -> int | float:
    """``raw * factor`` computed in decimal; an int stays an int when the product is integral.

    Non-finite floats are multiplied as floats.
    """
    if factor == 1:
        return raw
    if isinstance(raw, float) and not math.isfinite(raw):
        return raw * factor
    product = CONTEXT.multiply(to_decimal(raw), to_decimal(factor))
    return to_number(product) if isinstance(raw, int) else float(product)


def unscale(value: int | float, factor: float) -> Decimal:
    """``value / factor`` in decimal, the inverse of :func:`scale`.

    Raises:
        ValueError: ``value`` is not finite.
    """
    number = to_decimal(value)
    return number if factor == 1 else CONTEXT.divide(number, to_decimal(factor))
