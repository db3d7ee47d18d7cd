"""Register encoding for Modbus values, with no I/O.

A Modbus register is a 16-bit word; a value spans one or more registers (or one bit on the
coil and discrete input tables). This module turns register words into Python values and back,
following the visitor ``configData`` of KubeEdge devices:

* multi-register values are big-endian (high register first) unless ``isRegisterSwap``
  reverses the register order, and ``isSwap`` swaps the two bytes inside each register;
* ``scale`` divides a written number (:func:`unscale_value`) in decimal; a decoded one is
  multiplied by :func:`edgedev.twin.scale_number` (raw 235 with scale 0.1 is 23.5);
* float32 values decode to the shortest decimal that round-trips through float32.

Example:
    >>> encode_registers(0x01020304, DataType.UINT32, 2)
    [258, 772]
    >>> decode_registers([0x3DCC, 0xCCCD], DataType.FLOAT32)
    0.1
    >>> unscale_value(23.5, 0.1, DataType.INT16)
    235
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from decimal import ROUND_UP, Context, Decimal
from enum import StrEnum
from typing import Literal

from edgedev.twin import check_scale, to_integer, unscale_number

__all__ = (
    "DataType",
    "Table",
    "check_layout",
    "decode_bits",
    "decode_registers",
    "default_data_type",
    "encode_registers",
    "fit_number",
    "number_format",
    "register_count",
    "shortest_float32",
    "unscale_value",
)


class DataType(StrEnum):
    """How the registers of a value are interpreted (the visitor's ``dataType``)."""

    INT16 = "int16"
    UINT16 = "uint16"
    INT32 = "int32"
    UINT32 = "uint32"
    INT64 = "int64"
    UINT64 = "uint64"
    FLOAT32 = "float32"
    FLOAT64 = "float64"
    BOOLEAN = "boolean"
    STRING = "string"
    BYTES = "bytes"


class Table(StrEnum):
    """The four Modbus data tables, named as KubeEdge's visitor ``register`` field names them."""

    COIL = "CoilRegister"
    DISCRETE_INPUT = "DiscreteInputRegister"
    INPUT = "InputRegister"
    HOLDING = "HoldingRegister"

    @property
    def is_bit(self) -> bool:
        """Whether the table holds single bits (coils, discrete inputs) rather than words."""
        return self in (Table.COIL, Table.DISCRETE_INPUT)

    @property
    def writable(self) -> bool:
        """Whether a client may write the table (coils and holding registers)."""
        return self in (Table.COIL, Table.HOLDING)


# struct format (big-endian) of each fixed-size data type.
_FORMATS: dict[DataType, str] = {
    DataType.INT16: ">h",
    DataType.UINT16: ">H",
    DataType.INT32: ">i",
    DataType.UINT32: ">I",
    DataType.INT64: ">q",
    DataType.UINT64: ">Q",
    DataType.FLOAT32: ">f",
    DataType.FLOAT64: ">d",
}

_WIDTHS: dict[DataType, int] = {
    data_type: struct.calcsize(fmt) // 2 for data_type, fmt in _FORMATS.items()
}
_WIDTHS[DataType.BOOLEAN] = 1

_INTEGER_RANGES: dict[DataType, tuple[int, int]] = {
    DataType.INT16: (-(2**15), 2**15 - 1),
    DataType.UINT16: (0, 2**16 - 1),
    DataType.INT32: (-(2**31), 2**31 - 1),
    DataType.UINT32: (0, 2**32 - 1),
    DataType.INT64: (-(2**63), 2**63 - 1),
    DataType.UINT64: (0, 2**64 - 1),
}

_FLOATS = frozenset({DataType.FLOAT32, DataType.FLOAT64})


def number_format(data_type: DataType) -> str | None:
    """The big-endian :mod:`struct` format of a number data type; ``None`` for the others."""
    return _FORMATS.get(data_type)


def register_count(data_type: DataType, limit: int) -> int:
    """Return how many registers (or bits) a value of ``data_type`` spans.

    Args:
        data_type: The value's data type.
        limit: The visitor's ``limit``; only strings use it (one register per two characters).

    Returns:
        1 for int16, uint16 and boolean, 2 for 32-bit types, 4 for 64-bit types, ``limit`` for
        strings.

    Raises:
        ValueError: For a string whose ``limit`` is not positive.
    """
    if data_type in (DataType.STRING, DataType.BYTES):
        if limit < 1:
            raise ValueError(f"a {data_type} spans at least 1 register, got limit {limit}")
        return limit
    return _WIDTHS[data_type]


def check_layout(data_type: DataType, table: Table, limit: int) -> None:
    """Check that a value of ``data_type`` can live in ``table`` over ``limit`` registers.

    Args:
        data_type: The value's data type (given or from :func:`default_data_type`).
        table: The Modbus table the value lives in.
        limit: The visitor's ``limit``: registers, or bits on a bit table.

    Raises:
        ValueError: When the combination is impossible, with a message naming it.
    """
    if table.is_bit:
        if data_type is not DataType.BOOLEAN:
            raise ValueError(
                f"{table} holds single bits: dataType must be boolean, not {data_type}"
            )
        if limit != 1:
            raise ValueError(f"a boolean on {table} spans 1 bit, not limit {limit}")
        return
    expected = register_count(data_type, limit)
    if limit != expected:
        raise ValueError(f"{data_type} spans {expected} register(s), not limit {limit}")


def default_data_type(model_type: str, table: Table, limit: int) -> DataType:
    """Return the data type of a property whose visitor gives no ``dataType``.

    The rule follows the model's ``type`` and the visitor's ``limit``: INT with limit 1, 2 or 4
    is int16, int32 or int64; FLOAT with limit 2 is float32 (limit 4: float64); DOUBLE with
    limit 4 is float64 (limit 2: float32); BOOLEAN is the bit on coils and discrete inputs and a
    register (non-zero is true) elsewhere, as INT is (0 or 1) on coils and discrete inputs;
    STRING is ASCII over ``limit`` registers, BYTES the raw bytes of ``limit`` registers.

    Args:
        model_type: The DeviceModel property ``type`` (INT, FLOAT, DOUBLE, BOOLEAN, STRING;
            case-insensitive).
        table: The Modbus table the property lives in.
        limit: The visitor's ``limit``.

    Returns:
        The data type to decode and encode the property with.

    Raises:
        ValueError: For a combination that has no data type, e.g. FLOAT on a coil, INT with
            limit 3, or the BYTES type.
    """
    kind = model_type.upper()
    by_limit: dict[int, DataType]
    if kind == "BOOLEAN":
        data_type = DataType.BOOLEAN
    elif kind == "STRING":
        data_type = DataType.STRING
    elif kind == "BYTES":
        data_type = DataType.BYTES
    else:
        if kind == "INT":
            by_limit = {1: DataType.INT16, 2: DataType.INT32, 4: DataType.INT64}
        elif kind in ("FLOAT", "DOUBLE"):
            by_limit = {2: DataType.FLOAT32, 4: DataType.FLOAT64}
        else:
            raise ValueError(
                f"no Modbus dataType for a {model_type!r} property: give one explicitly "
                f"or use INT, FLOAT, DOUBLE, BOOLEAN or STRING"
            )
        if table.is_bit:
            if kind == "INT":  # the bit, as 0 or 1
                check_layout(DataType.BOOLEAN, table, limit)
                return DataType.BOOLEAN
            raise ValueError(f"{table} holds single bits: a {kind} property cannot live there")
        if limit not in by_limit:
            allowed = " or ".join(str(n) for n in by_limit)
            raise ValueError(f"a {kind} property spans {allowed} registers, not limit {limit}")
        data_type = by_limit[limit]
    check_layout(data_type, table, limit)
    return data_type


def _words_to_bytes(registers: Sequence[int], *, swap_bytes: bool, swap_registers: bool) -> bytes:
    for word in registers:
        if not 0 <= word <= 0xFFFF:
            raise ValueError(f"register word {word!r} is not in 0..0xFFFF")
    ordered = reversed(registers) if swap_registers else registers
    order: Literal["little", "big"] = "little" if swap_bytes else "big"
    return b"".join(word.to_bytes(2, order) for word in ordered)


def _bytes_to_words(data: bytes, *, swap_bytes: bool, swap_registers: bool) -> list[int]:
    order: Literal["little", "big"] = "little" if swap_bytes else "big"
    words = [int.from_bytes(data[i : i + 2], order) for i in range(0, len(data), 2)]
    if swap_registers:
        words.reverse()
    return words


_F32 = struct.Struct(">f")
_F32_BITS = struct.Struct(">I")


def _to_float32(value: float) -> float:
    result: float = _F32.unpack(_F32.pack(value))[0]
    return result


def _round_trips(candidate: float, value: float) -> bool:
    try:
        return _to_float32(candidate) == value
    except OverflowError:
        return False


def _shortest_float32(value: float) -> float:
    """Return the float with the fewest significant digits that packs to float32 ``value``.

    ``value`` must be exactly representable as a float32. The correctly rounded ``digits``-digit
    decimal is the closest candidate, so it round-trips whenever any ``digits``-digit decimal
    does, except at powers of two, where the float32 spacing below is half that above: there the
    candidate rounded away from zero gets a second chance.

    Away from powers of two, the closest ``digits + 1``-digit decimal is at least as close as
    the closest ``digits``-digit one (which is also a ``digits + 1``-digit decimal), and the
    float32 rounding interval is symmetric: so once a digit count round-trips, every larger one
    does, and a binary search over 1..9 finds the same answer as trying them in turn.
    """
    if value == 0.0 or not math.isfinite(value):
        return value
    (bits,) = _F32_BITS.unpack(_F32.pack(value))
    power_of_two = bits & 0x7FFFFF == 0
    if not power_of_two:
        low, high = 1, 9  # 9 significant digits always round-trip
        best = value
        while low <= high:
            middle = (low + high) // 2
            candidate = float(f"{value:.{middle - 1}e}")
            if _round_trips(candidate, value):
                best, high = candidate, middle - 1
            else:
                low = middle + 1
        return best
    for digits in range(1, 10):
        candidate = float(f"{value:.{digits - 1}e}")
        if _round_trips(candidate, value):
            return candidate
        if power_of_two:
            away = Context(prec=digits, rounding=ROUND_UP).plus(Decimal(value))
            if _round_trips(float(away), value):
                return float(away)
    return value  # unreachable: 9 significant digits always identify a float32


def decode_registers(
    registers: Sequence[int],
    data_type: DataType,
    *,
    swap_bytes: bool = False,
    swap_registers: bool = False,
) -> int | float | bool | str | bytes:
    """Decode the register words of one value.

    Args:
        registers: The words as read, lowest address first, each in 0..0xFFFF.
        data_type: How to interpret them.
        swap_bytes: Swap the two bytes inside each register (``isSwap``).
        swap_registers: Reverse the register order (``isRegisterSwap``).

    Returns:
        An int for integer types; a float for float types (float32 as the shortest decimal that
        round-trips through float32, so raw 0.1 gives ``0.1``); a bool for boolean (non-zero
        is true); a str for string (ASCII, two characters per register, high byte first,
        trailing NULs and spaces stripped, non-ASCII bytes replaced by U+FFFD); the raw bytes
        (two per register) for bytes.

    Raises:
        ValueError: When the number of registers does not match the data type, or a word is
            out of range.
    """
    spans = data_type in (DataType.STRING, DataType.BYTES)
    if not spans and len(registers) != _WIDTHS[data_type]:
        raise ValueError(
            f"{data_type} spans {_WIDTHS[data_type]} register(s), got {len(registers)}"
        )
    if spans and not registers:
        raise ValueError(f"a {data_type} spans at least 1 register, got none")
    data = _words_to_bytes(registers, swap_bytes=swap_bytes, swap_registers=swap_registers)
    if data_type is DataType.BYTES:
        return data
    if data_type is DataType.BOOLEAN:
        return any(data)
    if data_type is DataType.STRING:
        return data.decode("ascii", errors="replace").rstrip("\x00 ")
    (value,) = struct.unpack(_FORMATS[data_type], data)
    if data_type is DataType.FLOAT32:
        return _shortest_float32(value)
    result: int | float = value
    return result


shortest_float32 = _shortest_float32


def decode_bits(bits: Sequence[bool]) -> bool:
    """Decode a one-bit property read from a coil or discrete input.

    Args:
        bits: The bits as read; exactly one.

    Returns:
        The bit.

    Raises:
        ValueError: When ``bits`` does not hold exactly one bit.
    """
    if len(bits) != 1:
        raise ValueError(f"a bit property spans 1 bit, got {len(bits)}")
    return bool(bits[0])


def _as_integer(value: int | float | bool | str, data_type: DataType) -> int:
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        number = int(value)
    else:
        raise ValueError(f"{value!r} is not an integer: it does not fit {data_type}")
    low, high = _INTEGER_RANGES[data_type]
    if not low <= number <= high:
        raise ValueError(f"{value!r} does not fit {data_type} (range {low}..{high})")
    return number


def _encode_bytes(
    value: int | float | bool | str | bytes, data_type: DataType, count: int
) -> bytes:
    if data_type is DataType.BYTES:
        if not isinstance(value, bytes):
            raise ValueError(f"{value!r} is not bytes: it does not fit {data_type}")
        if len(value) > 2 * count:
            raise ValueError(
                f"{len(value)} bytes do not fit {count} register(s) ({2 * count} bytes)"
            )
        return value.ljust(2 * count, b"\x00")
    if isinstance(value, bytes):
        raise ValueError(f"bytes do not fit {data_type}")
    if data_type is DataType.STRING:
        if not isinstance(value, str):
            raise ValueError(f"{value!r} is not a str: it does not fit {data_type}")
        try:
            raw = value.encode("ascii")
        except UnicodeEncodeError:
            raise ValueError(f"{value!r} is not ASCII: it does not fit {data_type}") from None
        if len(raw) > 2 * count:
            raise ValueError(
                f"{value!r} has {len(raw)} characters: it does not fit {data_type} "
                f"over {count} register(s) ({2 * count} characters)"
            )
        return raw.ljust(2 * count, b"\x00")
    if data_type is DataType.BOOLEAN:
        if isinstance(value, bool) or (isinstance(value, int) and value in (0, 1)):
            return (1 if value else 0).to_bytes(2, "big")
        raise ValueError(f"{value!r} is not a bool: it does not fit {data_type}")
    if data_type in _FLOATS:
        if isinstance(value, str):
            raise ValueError(f"{value!r} is not a number: it does not fit {data_type}")
        try:
            return struct.pack(_FORMATS[data_type], float(value))
        except OverflowError:
            raise ValueError(f"{value!r} does not fit {data_type}") from None
    return struct.pack(_FORMATS[data_type], _as_integer(value, data_type))


def encode_registers(
    value: int | float | bool | str | bytes,
    data_type: DataType,
    count: int,
    *,
    swap_bytes: bool = False,
    swap_registers: bool = False,
) -> list[int]:
    """Encode one value into register words, the inverse of :func:`decode_registers`.

    Integer types take an int (or an integral float); float types take any real number and
    round it to the type's precision; boolean takes a bool (or 0/1) and writes 1 or 0; string
    takes an ASCII str of at most ``2 * count`` characters, padded with NULs.

    Args:
        value: The value to write.
        data_type: How to encode it.
        count: The registers the value spans (:func:`register_count`).
        swap_bytes: Swap the two bytes inside each register (``isSwap``).
        swap_registers: Reverse the register order (``isRegisterSwap``).

    Returns:
        The words to write, lowest address first.

    Raises:
        ValueError: When ``count`` does not match the data type, or the value does not fit the
            data type (out of range, too long, wrong kind); the message names the type.
    """
    expected = register_count(data_type, count)
    if count != expected:
        raise ValueError(f"{data_type} spans {expected} register(s), not {count}")
    data = _encode_bytes(value, data_type, count)
    return _bytes_to_words(data, swap_bytes=swap_bytes, swap_registers=swap_registers)


def unscale_value(value: int | float, scale: float, data_type: DataType) -> int | float:
    """Divide a value to write by the visitor's ``scale``, the inverse of scaling a reading.

    The reading side is :func:`edgedev.twin.scale_number`; both compute in decimal.

    Args:
        value: The value as reported (e.g. the twin's desired value).
        scale: The divisor (``scale``, default 1).
        data_type: The data type the result is encoded with. Integer types round the quotient
            to the nearest int (ties to even); float types give a float.

    Returns:
        The raw number to encode.

    Raises:
        ValueError: When ``scale`` is zero or not finite, when an integer result is out of the
            data type's range or not finite, or when a boolean or string is given a scale other
            than 1.
    """
    check_scale(scale)
    if data_type in (DataType.BOOLEAN, DataType.STRING, DataType.BYTES):
        if scale != 1:
            raise ValueError(f"{data_type} values cannot be scaled (scale {scale!r})")
        return value
    if isinstance(value, float) and not math.isfinite(value):
        if data_type in _FLOATS:
            return value / scale
        raise ValueError(f"{value!r} does not fit {data_type}")
    return fit_number(unscale_number(value, scale), data_type, value)


def fit_number(number: Decimal, data_type: DataType, value: object) -> int | float:
    """The raw number ``number`` (exact, from a write's inverse) as ``data_type`` takes it.

    Integer types round it to the nearest int (ties to even) and check the range; float types
    take the nearest float.

    Args:
        number: the raw number.
        data_type: the number's data type.
        value: what the write asked for, for the message.

    Raises:
        ValueError: an integer out of the data type's range; the message names both.
    """
    if data_type in _FLOATS:
        return float(number)
    if data_type not in _INTEGER_RANGES:
        raise ValueError(f"{value!r} gives the number {number}, and {data_type} holds no number")
    result = to_integer(number)
    low, high = _INTEGER_RANGES[data_type]
    if not low <= result <= high:
        raise ValueError(
            f"{value!r} gives {result}, which does not fit {data_type} (range {low}..{high})"
        )
    return result
