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

The visitor's value keys (:class:`~edgedev.drivers.ValueConfig`: ``mask``, ``bit``,
``mapping`` ...) turn the number read into the value through
:class:`~edgedev.drivers.ValueRules`; a ``bit`` or a ``mapping`` without ``format`` reads the
value as an INT does.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from edgedev.drivers import Raw as RawKind
from edgedev.drivers import ValueRules
from edgedev.twin import (
    PropertyType,
    Value,
    format_value,
    parse_value,
    scaler,
    to_decimal,
    to_integer,
    to_number,
    unscale_number,
)
from edgedev_ble.config import BlePropertySpec, BleVisitor
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
        rules: the visitor's value keys beyond ``scale`` (``None`` when it gives none).
    """

    type: PropertyType
    visitor: BleVisitor
    rules: ValueRules | None = field(default=None, compare=False)
    _scale: Callable[[int | float], int | float] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # the visitor's scale, applied to every reading: its fraction worked out once
        object.__setattr__(self, "_scale", scaler(self.visitor.scale))

    @classmethod
    def of(cls, device_id: str, prop: BlePropertySpec) -> Codec:
        """The codec of ``prop`` of device ``device_id`` (which its warnings name)."""
        visitor = prop.visitor
        return cls(prop.type, visitor, None if visitor.plain else ValueRules(device_id, prop))

    @classmethod
    def check(cls, type_: PropertyType, visitor: BleVisitor) -> list[tuple[str, str]]:
        """Problems of a type/visitor combination, as ``(field, message)`` pairs."""
        fmt = visitor.format
        if visitor.data_converter is not None and type_ is PropertyType.BYTES:
            return [("dataConverter", "dataConverter gives a number, not BYTES")]
        if visitor.data_converter is not None:
            for key, given in (
                ("mask", visitor.mask is not None),
                ("shift", visitor.shift != 0),
                ("base", visitor.base is not None),
                ("valueOffset", visitor.value_offset != 0),
                ("bit", visitor.bit is not None),
            ):
                if given:
                    return [
                        (
                            key,
                            f"{key} applies to format or the property type; dataConverter "
                            "has its own shiftLeft, shiftRight, mask and orderOfOperations",
                        )
                    ]
        if fmt is not None:
            if fmt.is_number and type_ is PropertyType.BYTES:
                return [("format", f"format {fmt} gives a number, not BYTES")]
            number = type_.is_number or (type_ is PropertyType.STRING and bool(visitor.mapping))
            if fmt in (Format.UTF8, Format.BYTES) and number:
                return [("format", f"format {fmt} does not give a number for a {type_} property")]
            if visitor.scale != 1 and not fmt.is_number:
                return [("scale", f"scale applies to numbers, not format {fmt}")]
        return []

    def raw_kind(self) -> RawKind:
        """What the property's number is read as, for :func:`~edgedev.drivers.value_problems`."""
        v = self.visitor
        if v.data_converter is not None:
            return RawKind.NUMBER
        if v.format is not None:
            if v.format.is_integer:
                return RawKind.INTEGER
            if v.format.is_number:
                return RawKind.FLOAT
            return RawKind.BOOLEAN if v.format is Format.BOOL else RawKind.TEXT
        if self._as_integer or self.type is PropertyType.INT:
            return RawKind.INTEGER
        if self.type in (PropertyType.FLOAT, PropertyType.DOUBLE):
            return RawKind.FLOAT
        return RawKind.BOOLEAN if self.type is PropertyType.BOOLEAN else RawKind.TEXT

    @property
    def _as_integer(self) -> bool:
        """Whether a value with no format is read as an INT (for a bit, or a mapping)."""
        return self.visitor.bit is not None or self.visitor.mapping is not None

    @property
    def needs_current(self) -> bool:
        """Whether a write must know the current value (it changes part of it)."""
        if self.visitor.data_converter is not None or self.visitor.bit is not None:
            return True
        return self.visitor.format is not None and self.visitor.offset > 0

    # reading -------------------------------------------------------------------------------
    def decode(self, data: bytes) -> Value:
        """The property's value in characteristic value ``data``.

        Raises:
            ValueError: ``data`` is too short or not of the expected form.
        """
        v = self.visitor
        rules = self.rules
        if v.data_converter is not None:
            number = convert(data, v.data_converter)
            if rules is not None:
                return rules.value(to_number(number))
            return _typed(number, self.type)
        if v.format is not None:
            raw = decode(data, v.format, v.offset)
            if isinstance(raw, int | float) and not isinstance(raw, bool):
                if rules is not None:
                    return rules.value(raw)
                raw = self._scale(raw)
            return _typed(raw, self.type)
        if v.data_write:
            for key, value in v.data_write.items():
                if value == data:
                    return parse_value(key, self.type)
        if rules is not None:
            plain = self._plain_number(data)
            if plain is not None:
                return rules.value(plain)
        return self._decode_plain(data)

    def _plain_number(self, data: bytes) -> int | float | None:
        """The number a value without format holds, where the value keys need one."""
        if self._as_integer or self.type is PropertyType.INT:
            if len(data) not in _INT_SIZES:
                raise ValueError(f"an INT needs 1 to 8 bytes, the value has {len(data)}")
            return int.from_bytes(data, "little", signed=True)
        if self.type in (PropertyType.FLOAT, PropertyType.DOUBLE):
            fmt = {4: Format.FLOAT32LE, 8: Format.FLOAT64LE}.get(len(data))
            if fmt is None:
                raise ValueError(f"a {self.type} needs 4 or 8 bytes or a format, not {len(data)}")
            number = decode(data, fmt)
            assert isinstance(number, float)
            return number
        return None

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
        rules = self.rules
        if v.data_converter is not None:
            number = _number(value) if rules is None else _number(rules.raw(value))
            return place(current, v.data_converter, number)
        if v.format is not None:
            raw: Raw | Decimal = value
            if rules is not None:
                now = None
                if rules.bit is not None:  # a value too short grows with zeros
                    now = _current(current, v.format, v.offset) or 0
                raw = _signed(_rule_raw(rules.raw(value, now)), v.format)
            elif v.format.is_number:
                raw = unscale_number(_number(value), v.scale)
            field = encode(raw, v.format)
            buffer = current[: v.offset].ljust(v.offset, b"\x00")
            rest = b"" if v.format.size is None else current[v.offset + len(field) :]
            return buffer + field + rest
        if rules is not None and (self._as_integer or self.type.is_number):
            size = len(current) if len(current) in _INT_SIZES else 4
            if rules.bit is not None:  # the bits as they are, unsigned
                bits = rules.raw(value, int.from_bytes(current, "little") if current else 0)
                return int(bits).to_bytes(size, "little")
            raw = _rule_raw(rules.raw(value))
            if self._as_integer or self.type is PropertyType.INT:
                try:
                    return _integer_bytes(raw, size)
                except OverflowError:
                    raise ValueError(f"{raw!r} does not fit {size} bytes") from None
            fmt = Format.FLOAT64LE if len(current) == 8 else Format.FLOAT32LE
            return encode(raw, fmt)
        return self._encode_plain(value, current)

    def place(self, value: Value, current: bytes = b"") -> bytes:
        """A characteristic value that reads as ``value``, whatever the transforms.

        What a simulated peripheral holds: a ``mask``, ``shift`` or ``base``, which a write
        refuses, is undone as well as it can be (:meth:`~edgedev.twin.Transform.place`).

        Raises:
            ValueError: the value has no encoding here.
        """
        v = self.visitor
        transform = v.transform
        if self.rules is None or v.bit is not None or transform.refusal is None:
            return self.encode(value, current)
        number = _number(value)
        fmt = v.format
        if fmt is not None:
            now = _current(current, fmt, v.offset) or 0
            raw = _signed(transform.place(number, now), fmt)
            field = encode(raw, fmt)
            rest = b"" if fmt.size is None else current[v.offset + len(field) :]
            return current[: v.offset].ljust(v.offset, b"\x00") + field + rest
        size = len(current) if len(current) in _INT_SIZES else 4
        raw = transform.place(number, int.from_bytes(current, "little") if current else 0)
        if isinstance(raw, float):
            return encode(raw, Format.FLOAT64LE if size == 8 else Format.FLOAT32LE)
        return (raw & ((1 << 8 * size) - 1)).to_bytes(size, "little")

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


def _current(data: bytes, fmt: Format, offset: int) -> int | None:
    """The integer field a bit is written into (its bits, unsigned), if the value holds one."""
    try:
        raw = decode(data, fmt, offset)
    except ValueError:
        return None
    if not isinstance(raw, int) or isinstance(raw, bool) or fmt.size is None:
        return None
    return raw & ((1 << 8 * fmt.size) - 1)


def _signed(raw: Raw | Decimal, fmt: Format) -> Raw | Decimal:
    """The bits ``raw`` of a signed integer format as its (negative) number."""
    if not fmt.is_integer or not fmt.value.startswith("int") or not isinstance(raw, int):
        return raw
    bits = 8 * (fmt.size or 8)
    return raw - (1 << bits) if 1 << (bits - 1) <= raw < 1 << bits else raw


def _rule_raw(raw: int | float | Decimal | bool) -> Raw | Decimal:
    return int(raw) if isinstance(raw, bool) else raw


def _integer_bytes(raw: Raw | Decimal, size: int) -> bytes:
    """``raw`` rounded to an integer, as ``size`` little-endian signed bytes.

    Raises:
        OverflowError: it does not fit.
        ValueError: ``raw`` is not a number.
    """
    if isinstance(raw, str | bytes):
        raise ValueError(f"{raw!r} is not a number")
    number = raw if isinstance(raw, Decimal) else to_decimal(raw)
    return to_integer(number).to_bytes(size, "little", signed=True)


def _number(value: Value | Decimal) -> int | float:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, Decimal):
        return to_number(value)
    if isinstance(value, int | float):
        return value
    raise ValueError(f"{value!r} is not a number")
