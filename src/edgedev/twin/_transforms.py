"""Values as plants encode them: EdgeX's transforms, single bits and value maps. Pure.

A register or node holds a raw number; the value a user wants is often a function of it.
:class:`Transform` applies, on reads and in this order, the five steps of an EdgeX device
resource (edgex-docs ADR 0011 "Data Transformations"; device-sdk-go's
``TransformReadResult``):

1. ``mask``: the raw integer ANDed with the mask;
2. ``shift``: shifted right by ``shift`` bits, left for a negative ``shift``;
3. ``base``: the value becomes ``base`` raised to the value;
4. ``scale``: multiplied by ``scale``;
5. ``offset`` (``valueOffset`` in ``configData``): ``offset`` added.

Mask and shift work on the raw integer (Python's integers: a left shift does not wrap at the
register's width); the other steps compute without float noise, as
:func:`~edgedev.twin.scale_number` does: an integer reading is transformed as an exact
fraction and rounded once (raw 615 with scale 0.1 and offset -40 is 21.5), a float reading
in decimal from its shortest repr. Writes undo scale and offset (offset first, as EdgeX
does); mask, shift and base have no exact inverse, and :attr:`Transform.refusal` says why.

:func:`read_bit` and :func:`write_bit` read and set one bit of a register; :class:`ValueMap`
turns raw numbers into text (an enum register's ``0`` into ``Off``) and back.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Context, Decimal, InvalidOperation, Overflow

from edgedev.twin._numbers import DECIMAL_CONTEXT, check_scale, scaler, to_decimal, to_integer

_EXACT = Context(prec=720)
"""Wide enough to add any two finite floats' reprs exactly (their exponents span < 700)."""
MAX_SHIFT = 63
"""The largest shift either way (the widest register value is 64 bits)."""


def _fraction(number: float) -> tuple[int, int]:
    """``number``'s shortest decimal repr as an exact fraction ``(numerator, denominator)``."""
    sign, digits, exponent = Decimal(repr(number)).as_tuple()
    assert isinstance(exponent, int)  # finite: the callers check
    numerator = int("".join(map(str, digits))) * (-1 if sign else 1)
    if exponent >= 0:
        return numerator * 10**exponent, 1
    common = math.gcd(numerator, 10**-exponent)
    return numerator // common, 10**-exponent // common


def _unchanged(raw: int | float) -> int | float:
    return raw


@dataclass(frozen=True, slots=True)
class Transform:
    """EdgeX's read transforms of a raw number, in EdgeX's order, and their inverse.

    Attributes:
        mask: ANDed with the raw integer first (``None``: no mask).
        shift: bits to shift the (masked) integer right; negative: left.
        base: the value becomes ``base ** value`` (``None``: no power).
        scale: multiplies the value.
        offset: added last (``valueOffset`` in ``configData``).

    Raises:
        ValueError: a setting no reading can use (the message names it).
    """

    mask: int | None = None
    shift: int = 0
    base: float | None = None
    scale: float = 1.0
    offset: float = 0.0
    _read: Callable[[int | float], int | float] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.mask is not None and self.mask <= 0:
            raise ValueError(f"mask must be a positive integer, not {self.mask}")
        if not -MAX_SHIFT <= self.shift <= MAX_SHIFT:
            raise ValueError(f"shift must lie within -{MAX_SHIFT}..{MAX_SHIFT}, not {self.shift}")
        if self.base is not None and (
            not math.isfinite(self.base) or self.base <= 0 or self.base == 1
        ):
            raise ValueError(f"base must be a finite number above 0 other than 1, not {self.base}")
        check_scale(self.scale)
        if not math.isfinite(self.offset):
            raise ValueError(f"valueOffset must be a finite number, not {self.offset}")
        object.__setattr__(self, "_read", self._make_reader())

    # what the transform is ---------------------------------------------------------------
    @property
    def identity(self) -> bool:
        """Whether every reading passes unchanged (no step configured)."""
        return self.mask is None and not self.shift and self.base is None and self.numeric_identity

    @property
    def numeric_identity(self) -> bool:
        """Whether scale and offset leave the value as it is (the common case)."""
        return self.scale == 1 and self.offset == 0

    @property
    def on_integers(self) -> bool:
        """Whether a step needs an integer reading (mask or shift)."""
        return self.mask is not None or self.shift != 0

    @property
    def whole(self) -> bool:
        """Whether an integer reading stays an integer (no base, whole scale and offset)."""
        return self.base is None and float(self.scale).is_integer() and self.offset % 1 == 0

    @property
    def refusal(self) -> str | None:
        """Why a write cannot be undone through the transform; ``None`` when it can."""
        if self.mask is not None:
            return (
                f"mask {self.mask:#x} keeps part of the register, and a write would have to "
                "invent the other bits (a single bit is written with bit: N)"
            )
        if self.shift > 0:
            return (
                f"shift {self.shift} drops the {self.shift} low bit(s), which a write cannot "
                "restore"
            )
        if self.shift < 0:
            return f"shift {self.shift} (left) has no exact inverse for every value"
        if self.base is not None:
            return f"base {self.base:g} would need a logarithm to write, which is not exact"
        return None

    # reads ---------------------------------------------------------------------------------
    def read(self, raw: int | float) -> int | float:
        """The value of raw number ``raw`` after every step (a bool counts as 0 or 1).

        An integer reading stays an integer when :attr:`whole`, else it becomes the nearest
        float of the exact result; a float reading stays a float. A power beyond the float
        range gives an infinity.

        Raises:
            ValueError: mask or shift given a non-integer reading.
        """
        return self._read(raw)

    def reader(self) -> Callable[[int | float], int | float]:
        """:meth:`read` as a plain function, for a hot path.

        The scale-only case is :func:`~edgedev.twin.scaler`'s function itself.
        """
        return self._read

    def _integer(self, raw: int | float) -> int | float:
        if isinstance(raw, bool):
            raw = int(raw)
        if not self.on_integers:
            return raw
        if not isinstance(raw, int):
            raise ValueError(f"mask and shift apply to integers, not {raw!r}")
        if self.mask is not None:
            raw &= self.mask
        return raw >> self.shift if self.shift >= 0 else raw << -self.shift

    def _make_reader(self) -> Callable[[int | float], int | float]:
        if self.identity:
            return _unchanged
        integer = self._integer
        if self.base is not None:
            return lambda raw: self._decimal(integer(raw))
        if self.offset == 0:  # scale alone after the bit steps: the one scaling there is
            scaled = scaler(self.scale)
            if not self.on_integers:
                return scaled
            return lambda raw: scaled(integer(raw))
        n, d = _fraction(self.scale)
        p, q = _fraction(self.offset)
        numerator, addend, denominator = n * q, p * d, d * q
        decimal = self._decimal

        def read(raw: int | float) -> int | float:
            value = integer(raw)
            if type(value) is not int:
                return decimal(value)
            exact = value * numerator + addend  # over denominator: rounded once, below
            return exact if denominator == 1 else exact / denominator

        return read

    def _decimal(self, value: int | float) -> int | float:
        """The steps after mask and shift, in decimal (float readings, and base)."""
        if isinstance(value, float) and not math.isfinite(value):
            result = value if self.base is None else self.base**value
            return result * self.scale + self.offset
        number = to_decimal(value)
        if self.base is not None:
            try:
                number = DECIMAL_CONTEXT.power(to_decimal(self.base), number)
            except Overflow:
                return math.inf
        if self.scale != 1:
            number = DECIMAL_CONTEXT.multiply(number, to_decimal(self.scale))
        if self.offset:
            number = _EXACT.add(number, to_decimal(self.offset))
        if isinstance(value, int) and self.whole:
            return int(number)
        return float(number)

    # writes --------------------------------------------------------------------------------
    def write(self, value: int | float | Decimal) -> Decimal:
        """The raw number that reads as ``value``: offset subtracted, then divided by scale.

        The caller rounds it to its wire type (:func:`~edgedev.twin.to_integer`, ``float``).

        Raises:
            ValueError: the transform has no inverse (:attr:`refusal`), or ``value`` is not
                finite.
        """
        why = self.refusal
        if why is not None:
            raise ValueError(why)
        number = value if isinstance(value, Decimal) else to_decimal(value)
        if self.offset:
            number = _EXACT.subtract(number, to_decimal(self.offset))
        if self.scale != 1:
            number = DECIMAL_CONTEXT.divide(number, to_decimal(self.scale))
        return number

    def place(self, value: int | float, current: int = 0) -> int | float:
        """A raw number that reads as (about) ``value``, for simulators, whatever the steps.

        The inverse of :meth:`write` where there is one; a power is undone with a logarithm
        (rounded), a shift by the opposite shift, and a mask keeps the bits of ``current``
        outside it. An integer is returned where mask or shift apply, else the nearest float.
        """
        number = to_decimal(value)
        if self.offset:
            number = _EXACT.subtract(number, to_decimal(self.offset))
        if self.scale != 1:
            number = DECIMAL_CONTEXT.divide(number, to_decimal(self.scale))
        if self.base is not None:
            try:
                number = DECIMAL_CONTEXT.divide(
                    DECIMAL_CONTEXT.ln(number), DECIMAL_CONTEXT.ln(to_decimal(self.base))
                )
            except InvalidOperation:  # no power of a positive base is zero or less
                number = Decimal(0)
        if not self.on_integers:
            return float(number)
        raw = to_integer(number)
        raw = raw << self.shift if self.shift >= 0 else raw >> -self.shift
        if self.mask is not None:
            raw = (current & ~self.mask) | (raw & self.mask)
        return raw


NO_TRANSFORM = Transform()
"""Every reading as it is."""


def read_bit(raw: int, bit: int) -> bool:
    """Bit ``bit`` (0: the least significant) of integer ``raw``."""
    return bool(raw >> bit & 1)


def write_bit(current: int, bit: int, on: bool) -> int:
    """``current`` with bit ``bit`` set (``on``) or cleared, the other bits kept."""
    return current | 1 << bit if on else current & ~(1 << bit)


def parse_raw_key(key: str) -> int | Decimal:
    """The raw number a :class:`ValueMap` key names: ``7``, ``-1``, ``0x1F``, ``2.5``, ``true``.

    Raises:
        ValueError: not a finite number (nor ``true``/``false``).
    """
    text = key.strip()
    lowered = text.lower()
    if lowered in ("true", "false"):
        return int(lowered == "true")
    try:
        return int(text, 0)  # 7, -1, 0x1F, 0b101
    except ValueError:
        pass
    try:
        number = Decimal(text)
    except InvalidOperation:
        number = Decimal("nan")
    if not number.is_finite():
        raise ValueError(f"mapping key {key!r} is not a number (such as 0, 0x1F, -1, 2.5, true)")
    return int(number) if number == number.to_integral_value() else number


@dataclass(frozen=True, slots=True)
class ValueMap:
    """Raw numbers as text and back: an enum register's ``0`` as ``Off``.

    Args:
        texts: the text of each raw number, keyed by the number as text (``"0"``, ``"0x10"``,
            ``"-1"``, ``"true"``: see :func:`parse_raw_key`).
        strict: an unmapped raw number is refused (``None`` from :meth:`text`), and so is a
            write of a text no key maps to; else such a number reads, and writes, as itself.

    Raises:
        ValueError: a key is not a number, or two keys name the same number.
    """

    texts: Mapping[str, str]
    strict: bool = False
    _by_raw: dict[int | Decimal, str] = field(init=False, repr=False, compare=False)
    _by_text: dict[str, int | Decimal] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_raw: dict[int | Decimal, str] = {}
        keys: dict[int | Decimal, str] = {}
        by_text: dict[str, int | Decimal] = {}
        for key, text in self.texts.items():
            raw = parse_raw_key(key)
            if raw in keys:
                raise ValueError(f"mapping keys {keys[raw]!r} and {key!r} name the same number")
            keys[raw] = key
            by_raw[raw] = text
            by_text.setdefault(text, raw)  # two keys with one text: a write takes the first
        object.__setattr__(self, "_by_raw", by_raw)
        object.__setattr__(self, "_by_text", by_text)

    @property
    def names(self) -> Iterable[str]:
        """The texts, in the order given."""
        return self._by_text.keys()

    def text(self, raw: int | float) -> str | None:
        """The text of raw number ``raw``, or ``None`` when no key maps it."""
        if isinstance(raw, float):
            if not math.isfinite(raw):
                return None
            return self._by_raw.get(Decimal(repr(raw)))
        return self._by_raw.get(int(raw))

    def raw(self, text: str) -> int | Decimal:
        """The raw number to write for ``text``.

        A text that no key maps is written as the number it spells, unless :attr:`strict`.

        Raises:
            ValueError: ``text`` is neither a mapped text nor (without ``strict``) a number.
        """
        found = self._by_text.get(text)
        if found is not None:
            return found
        if not self.strict:
            try:
                return parse_raw_key(text)
            except ValueError:
                pass
        names = ", ".join(self.names)
        raise ValueError(f"{text!r} is not one of {names}")
