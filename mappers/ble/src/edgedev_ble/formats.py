"""Typed decoding of characteristic values: integers, floats, IEEE-11073 SFLOAT/FLOAT, text.

Pure functions, no I/O. Bluetooth SIG characteristics are little-endian; most carry a fixed
scale (Temperature ``0x2A6E`` is ``int16le`` in 0.01 degC, Humidity ``0x2A6F`` ``uint16le``
in 0.01 %), which the visitor's ``scale`` applies on top of these formats. Health devices use
IEEE-11073 decimal floats: ``medfloat16`` (SFLOAT) and ``medfloat32`` (FLOAT).
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Literal

from edgedev.twin import DECIMAL_CONTEXT, to_decimal, to_integer

Raw = int | float | str | bool | bytes
"""A decoded field before the property's type is applied."""


class Format(StrEnum):
    """Value formats of the visitor's ``format``."""

    INT8 = "int8"
    UINT8 = "uint8"
    INT16LE = "int16le"
    INT16BE = "int16be"
    UINT16LE = "uint16le"
    UINT16BE = "uint16be"
    INT24LE = "int24le"
    INT24BE = "int24be"
    UINT24LE = "uint24le"
    UINT24BE = "uint24be"
    INT32LE = "int32le"
    INT32BE = "int32be"
    UINT32LE = "uint32le"
    UINT32BE = "uint32be"
    INT64LE = "int64le"
    INT64BE = "int64be"
    UINT64LE = "uint64le"
    UINT64BE = "uint64be"
    FLOAT16LE = "float16le"
    FLOAT16BE = "float16be"
    FLOAT32LE = "float32le"
    FLOAT32BE = "float32be"
    FLOAT64LE = "float64le"
    FLOAT64BE = "float64be"
    MEDFLOAT16 = "medfloat16"
    MEDFLOAT32 = "medfloat32"
    BOOL = "bool"
    UTF8 = "utf8"
    BYTES = "bytes"

    @property
    def size(self) -> int | None:
        """Bytes the field takes, or ``None`` when it runs to the end of the value."""
        if self in (Format.UTF8, Format.BYTES):
            return None
        if self is Format.BOOL:
            return 1
        if self in _INTEGERS:
            return _INTEGERS[self].size
        if self is Format.MEDFLOAT16:
            return 2
        if self is Format.MEDFLOAT32:
            return 4
        return _FLOATS[self][1]

    @property
    def is_number(self) -> bool:
        """Whether the format holds a number (integer or float)."""
        return self not in (Format.UTF8, Format.BYTES, Format.BOOL)

    @property
    def is_integer(self) -> bool:
        """Whether the format holds an integer."""
        return self in _INTEGERS


@dataclass(frozen=True, slots=True)
class _Integer:
    size: int
    signed: bool
    order: Literal["little", "big"]

    @property
    def low(self) -> int:
        return -(1 << (8 * self.size - 1)) if self.signed else 0

    @property
    def high(self) -> int:
        return (1 << (8 * self.size - (1 if self.signed else 0))) - 1


def _integers() -> dict[Format, _Integer]:
    table: dict[Format, _Integer] = {}
    for fmt in Format:
        name = fmt.value
        if not name.startswith(("int", "uint")):
            continue
        signed = name.startswith("int")
        digits = name.removeprefix("u").removeprefix("int")
        order: Literal["little", "big"] = "big" if digits.endswith("be") else "little"
        bits = int(digits.removesuffix("le").removesuffix("be"))
        table[fmt] = _Integer(bits // 8, signed, order)
    return table


_INTEGERS = _integers()
_FLOATS: dict[Format, tuple[str, int]] = {
    Format.FLOAT16LE: ("<e", 2),
    Format.FLOAT16BE: (">e", 2),
    Format.FLOAT32LE: ("<f", 4),
    Format.FLOAT32BE: (">f", 4),
    Format.FLOAT64LE: ("<d", 8),
    Format.FLOAT64BE: (">d", 8),
}


@dataclass(frozen=True, slots=True)
class _MedFloat:
    """IEEE-11073 decimal float: a signed mantissa times ten to a signed exponent."""

    mantissa_bits: int
    exponent_bits: int

    @property
    def size(self) -> int:
        return (self.mantissa_bits + self.exponent_bits) // 8

    @property
    def nan(self) -> int:
        return (1 << (self.mantissa_bits - 1)) - 1

    @property
    def nres(self) -> int:
        return 1 << (self.mantissa_bits - 1)

    @property
    def plus_infinity(self) -> int:
        return self.nan - 1

    @property
    def minus_infinity(self) -> int:
        return self.nres + 2

    @property
    def reserved(self) -> int:
        return self.nres + 1

    @property
    def largest_mantissa(self) -> int:
        return self.plus_infinity - 1  # 2045 for SFLOAT: 0x7FE and up are special values

    @property
    def exponents(self) -> range:
        half = 1 << (self.exponent_bits - 1)
        return range(-half, half)


_MEDFLOATS = {Format.MEDFLOAT16: _MedFloat(12, 4), Format.MEDFLOAT32: _MedFloat(24, 8)}


def _signed(value: int, bits: int) -> int:
    return value - (1 << bits) if value >> (bits - 1) else value


def _field(data: bytes, offset: int, size: int | None, fmt: Format) -> bytes:
    end = len(data) if size is None else offset + size
    if offset > len(data) or end > len(data):
        raise ValueError(f"{fmt} at byte {offset} needs {end} bytes, the value has {len(data)}")
    return data[offset:end]


def decode_medfloat(raw: int, fmt: Format) -> float:
    """The number an IEEE-11073 SFLOAT (``medfloat16``) or FLOAT (``medfloat32``) encodes."""
    spec = _MEDFLOATS[fmt]
    if raw in (spec.nan, spec.nres, spec.reserved):
        return math.nan
    if raw == spec.plus_infinity:
        return math.inf
    if raw == spec.minus_infinity:
        return -math.inf
    mantissa = _signed(raw & ((1 << spec.mantissa_bits) - 1), spec.mantissa_bits)
    exponent = _signed(raw >> spec.mantissa_bits, spec.exponent_bits)
    return float(Decimal(mantissa).scaleb(exponent, DECIMAL_CONTEXT))


def encode_medfloat(value: float | Decimal, fmt: Format) -> int:
    """The IEEE-11073 raw integer nearest to ``value``, with as many digits as fit.

    Raises:
        ValueError: ``value`` is too large in magnitude for the format.
    """
    spec = _MEDFLOATS[fmt]
    if isinstance(value, float) and math.isnan(value):
        return spec.nan
    if isinstance(value, float) and math.isinf(value):
        return spec.plus_infinity if value > 0 else spec.minus_infinity
    number = to_decimal(value) if isinstance(value, float) else value
    normalized = number.normalize(DECIMAL_CONTEXT).as_tuple().exponent
    if not isinstance(normalized, int):
        raise ValueError(f"{value} is not a finite number")
    exponents = spec.exponents
    exponent = max(normalized, exponents.start)
    while True:
        mantissa = to_integer(number.scaleb(-exponent, DECIMAL_CONTEXT))
        if abs(mantissa) <= spec.largest_mantissa:
            break
        exponent += 1
        if exponent >= exponents.stop:
            raise ValueError(f"{value} is too large for {fmt}")
    while exponent > 0 and abs(mantissa * 10) <= spec.largest_mantissa:
        mantissa, exponent = mantissa * 10, exponent - 1  # integers carry no exponent
    if mantissa == 0:
        exponent = 0
    if exponent >= exponents.stop:
        raise ValueError(f"{value} is too large for {fmt}")
    mask = (1 << spec.mantissa_bits) - 1
    return ((exponent & ((1 << spec.exponent_bits) - 1)) << spec.mantissa_bits) | (mantissa & mask)


def decode(data: bytes, fmt: Format, offset: int = 0) -> Raw:
    """Decode the field of format ``fmt`` at byte ``offset`` of a characteristic value.

    Returns:
        An int for integer formats, a float for float formats, a bool, text (UTF-8, trailing
        NULs removed) or bytes.

    Raises:
        ValueError: the value is too short for the field, or is not UTF-8.
    """
    field = _field(data, offset, fmt.size, fmt)
    if fmt in _INTEGERS:
        spec = _INTEGERS[fmt]
        return int.from_bytes(field, spec.order, signed=spec.signed)
    if fmt in _FLOATS:
        result: float = struct.unpack(_FLOATS[fmt][0], field)[0]
        return result
    if fmt in _MEDFLOATS:
        return decode_medfloat(int.from_bytes(field, "little"), fmt)
    if fmt is Format.BOOL:
        return field[0] != 0
    if fmt is Format.UTF8:
        try:
            return field.rstrip(b"\x00").decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"the value is not UTF-8: {exc.reason}") from None
    return bytes(field)


def encode(value: Raw | Decimal, fmt: Format) -> bytes:
    """The bytes of ``value`` in format ``fmt`` (numbers rounded to integers, halves to even).

    Raises:
        ValueError: the value does not fit the format, or has the wrong kind.
    """
    if fmt is Format.BYTES:
        if not isinstance(value, bytes):
            raise ValueError("format bytes needs a BYTES value")
        return value
    if fmt is Format.UTF8:
        if isinstance(value, bytes):
            return value
        return (value if isinstance(value, str) else str(value)).encode("utf-8")
    if isinstance(value, str | bytes):
        raise ValueError(f"format {fmt} needs a number, not {value!r}")
    if fmt is Format.BOOL:
        return b"\x01" if value else b"\x00"
    number = value if isinstance(value, Decimal) else to_decimal(value)
    if fmt in _INTEGERS:
        spec = _INTEGERS[fmt]
        integer = to_integer(number)
        if not spec.low <= integer <= spec.high:
            raise ValueError(f"{integer} does not fit {fmt} ({spec.low}..{spec.high})")
        return integer.to_bytes(spec.size, spec.order, signed=spec.signed)
    if fmt in _MEDFLOATS:
        return encode_medfloat(number, fmt).to_bytes(_MEDFLOATS[fmt].size, "little")
    code, _ = _FLOATS[fmt]
    try:
        return struct.pack(code, float(number))
    except (OverflowError, struct.error):
        raise ValueError(f"{value} does not fit {fmt}") from None
