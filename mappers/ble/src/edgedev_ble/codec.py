"""A property's value inside a characteristic value, both ways. Pure: no I/O.

Decoding takes the first rule that applies:

| visitor has | read | write |
| --- | --- | --- |
| ``dataConverter`` | bytes, integer, shifts, operations | the field placed into the value |
| ``format`` | the field at ``offset`` times ``scale`` | divided by ``scale``, at ``offset`` |
| ``dataWrite`` only | the key whose bytes equal the value | the bytes of the key |
| nothing | by the property type (below) | by the property type |

By type: INT is the whole value as a signed little-endian integer (1 to 8 bytes), FLOAT and
DOUBLE a little-endian float32 (4 bytes) or float64 (8 bytes), BOOLEAN true when any byte is
non-zero, STRING UTF-8 (trailing NULs dropped), BYTES the value itself. ``dataWrite`` always
wins on writes: a value that is one of its keys is written as that key's bytes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from edgedev.twin import (
    PropertyType,
    Value,
    format_value,
    parse_value,
    scaler,
    to_number,
    unscale_number,
)
from edgedev_ble.config import BleVisitor
from edgedev_ble.converter import convert, place
from edgedev_ble.formats import Format, Raw, decode, encode

_INT_SIZES = range(1, 9)


def _typed(raw: Raw | Decimal, type_: PropertyType) -> Value:
    """``raw`` as a value of ``type_``."""
    if isinstance(raw, Decimal):
        raw = to_number(raw)
    if type_ is PropertyType.BOOLEAN:
        return bool(raw)
    if type_ is PropertyType.INT:
        if isinstance(raw, float) and (raw.is_integer() or not math.isfinite(raw)):
            return int(raw) if math.isfinite(raw) else raw
        if isinstance(raw, str | bytes):
            raise ValueError(f"{raw!r} is not a number")
        return raw if isinstance(raw, float) else int(raw)  # a scaled integer keeps a fraction
    if type_ in (PropertyType.FLOAT, PropertyType.DOUBLE):
        if isinstance(raw, str | bytes):
            raise ValueError(f"{raw!r} is not a number")
        return float(raw)
    if type_ is PropertyType.STRING:
        if isinstance(raw, bytes):
            return raw.decode("utf-8", errors="replace")
        return format_value(raw, PropertyType.DOUBLE if isinstance(raw, float) else type_)
    return raw if isinstance(raw, bytes) else str(raw).encode()


@dataclass(frozen=True, slots=True)
class Codec:
    """How one property sits in its characteristic's value.

    Attributes:
        type: the property's type.
        visitor: the property's ``visitors.configData``.
    """

    type: PropertyType
    visitor: BleVisitor
    _scale: Callable[[int | float], int | float] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # the visitor's scale, applied to every reading: its fraction worked out once
        object.__setattr__(self, "_scale", scaler(self.visitor.scale))

    @classmethod
    def check(cls, type_: PropertyType, visitor: BleVisitor) -> list[tuple[str, str]]:
        """Problems of a type/visitor combination, as ``(field, message)`` pairs."""
        fmt = visitor.format
        if visitor.data_converter is not None and type_ is PropertyType.BYTES:
            return [("dataConverter", "dataConverter gives a number, not BYTES")]
        if fmt is not None:
            if fmt.is_number and type_ is PropertyType.BYTES:
                return [("format", f"format {fmt} gives a number, not BYTES")]
            if fmt in (Format.UTF8, Format.BYTES) and type_.is_number:
                return [("format", f"format {fmt} does not give a number for a {type_} property")]
            if visitor.scale != 1 and not fmt.is_number:
                return [("scale", f"scale applies to numbers, not format {fmt}")]
        return []

    @property
    def needs_current(self) -> bool:
        """Whether a write must know the current value (it changes part of it)."""
        if self.visitor.data_converter is not None:
            return True
        return self.visitor.format is not None and self.visitor.offset > 0

    # reading -------------------------------------------------------------------------------
    def decode(self, data: bytes) -> Value:
        """The property's value in characteristic value ``data``.

        Raises:
            ValueError: ``data`` is too short or not of the expected form.
        """
        v = self.visitor
        if v.data_converter is not None:
            return _typed(convert(data, v.data_converter), self.type)
        if v.format is not None:
            raw = decode(data, v.format, v.offset)
            if isinstance(raw, int | float) and not isinstance(raw, bool):
                raw = self._scale(raw)
            return _typed(raw, self.type)
        if v.data_write:
            for key, value in v.data_write.items():
                if value == data:
                    return parse_value(key, self.type)
        return self._decode_plain(data)

    def _decode_plain(self, data: bytes) -> Value:
        t = self.type
        if t is PropertyType.INT:
            if len(data) not in _INT_SIZES:
                raise ValueError(f"an INT needs 1 to 8 bytes, the value has {len(data)}")
            return int.from_bytes(data, "little", signed=True)
        if t in (PropertyType.FLOAT, PropertyType.DOUBLE):
            fmt = {4: Format.FLOAT32LE, 8: Format.FLOAT64LE}.get(len(data))
            if fmt is None:
                raise ValueError(f"a {t} needs 4 or 8 bytes or a format, not {len(data)}")
            return _typed(decode(data, fmt), t)
        if t is PropertyType.BOOLEAN:
            return any(data)
        if t is PropertyType.STRING:
            return _typed(decode(data, Format.UTF8), t)
        return bytes(data)

    # writing -------------------------------------------------------------------------------
    def encode(self, value: Value, current: bytes = b"") -> bytes:
        """The characteristic value that holds ``value``, built on ``current``.

        Raises:
            ValueError: the value has no encoding here (not a ``dataWrite`` key, too large).
        """
        v = self.visitor
        if v.data_write:
            data = self._data_write(value)
            if data is not None:
                return data
            if v.data_converter is None and v.format is None:
                keys = ", ".join(v.data_write)
                raise ValueError(f"{format_value(value, self.type)!r} is not one of {keys}")
        if v.data_converter is not None:
            return place(current, v.data_converter, _number(value))
        if v.format is not None:
            raw: Raw | Decimal = value
            if v.format.is_number:
                raw = unscale_number(_number(value), v.scale)
            field = encode(raw, v.format)
            buffer = current[: v.offset].ljust(v.offset, b"\x00")
            rest = b"" if v.format.size is None else current[v.offset + len(field) :]
            return buffer + field + rest
        return self._encode_plain(value, current)

    def _data_write(self, value: Value) -> bytes | None:
        table = self.visitor.data_write or {}
        text = format_value(value, self.type)
        if text in table:
            return table[text]
        for key, data in table.items():
            if key.lower() == text.lower():
                return data
            try:
                if parse_value(key, self.type) == value:
                    return data
            except ValueError:
                continue
        return None

    def _encode_plain(self, value: Value, current: bytes) -> bytes:
        t = self.type
        if t is PropertyType.INT:
            size = len(current) if len(current) in _INT_SIZES else 4
            try:
                return int(_number(value)).to_bytes(size, "little", signed=True)
            except OverflowError:
                raise ValueError(f"{value!r} does not fit {size} bytes") from None
        if t in (PropertyType.FLOAT, PropertyType.DOUBLE):
            fmt = Format.FLOAT64LE if len(current) == 8 else Format.FLOAT32LE
            return encode(float(_number(value)), fmt)
        if t is PropertyType.BOOLEAN:
            return b"\x01" if value else b"\x00"
        if isinstance(value, bytes):
            return value
        return str(value).encode("utf-8")


def _number(value: Value) -> int | float:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float):
        return value
    raise ValueError(f"{value!r} is not a number")
