"""Typed property values and their string form on the wire.

KubeEdge carries every value as a string and names its type in ``metadata.type``. This module is
the one place that converts between the two, without I/O.
"""

from __future__ import annotations

import base64
import binascii
import math
from decimal import Decimal
from enum import StrEnum
from typing import Protocol, TypeVar

from edgedev._errors import NoSuchProperty, WriteRefused

Value = bool | int | float | str | bytes
"""A property value as drivers produce and consume it."""


class PropertyType(StrEnum):
    """Property types of a KubeEdge DeviceModel (``spec.properties[].type``)."""

    INT = "INT"
    FLOAT = "FLOAT"
    DOUBLE = "DOUBLE"
    STRING = "STRING"
    BOOLEAN = "BOOLEAN"
    BYTES = "BYTES"
    STREAM = "STREAM"

    @property
    def is_number(self) -> bool:
        """Whether values of this type are numbers (and may have a range or a deadband)."""
        return self in _NUMERIC


_NUMERIC = frozenset({PropertyType.INT, PropertyType.FLOAT, PropertyType.DOUBLE})
_TRUE = frozenset({"true", "1", "on", "yes"})
_FALSE = frozenset({"false", "0", "off", "no"})


def plain_float(value: float) -> str:
    """``value`` in positional notation with the fewest digits that round-trip.

    ``1e16`` is ``"10000000000000000.0"`` and ``1e-07`` is ``"0.0000001"``: the ``+`` of an
    exponent is outside EdgeCore's value charset. Non-finite values are ``nan``, ``inf``,
    ``-inf`` (Go's ParseFloat reads them).
    """
    if not math.isfinite(value):
        return str(value).lower()
    text = repr(value)
    if "e" not in text:
        return text
    plain = format(Decimal(text), "f")
    return plain if "." in plain else plain + ".0"


def format_value(value: Value, type_: PropertyType) -> str:
    """Render a typed value as the string KubeEdge carries.

    Floats use the shortest digits that round-trip, never an exponent (``23.5`` stays
    ``"23.5"``, ``1e16`` is ``"10000000000000000.0"``: EdgeCore refuses the ``+`` of
    ``1e+16``); booleans are ``"true"``/``"false"``; bytes are lower-case hex (``"0aff"``),
    a text form inside EdgeCore's value charset (base64's ``+``, ``/`` and ``=`` are not all).
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, float):
        if type_ is PropertyType.INT and value.is_integer():
            return str(int(value))
        return plain_float(value)
    return str(value)


def parse_value(text: str, type_: PropertyType) -> Value:
    """Parse the wire string of a value of ``type_``.

    Raises:
        ValueError: ``text`` is not a valid value of that type; the message says why.
    """
    stripped = text.strip()
    if type_ is PropertyType.INT:
        try:
            return int(stripped)
        except ValueError:
            pass
        try:
            number = float(stripped)  # "30.0" is an acceptable integer; "30.5" is not
        except ValueError:
            number = math.nan
        if not number.is_integer():
            raise ValueError(f"{text!r} is not an integer") from None
        return int(number)
    if type_ in (PropertyType.FLOAT, PropertyType.DOUBLE):
        try:
            return float(stripped)
        except ValueError:
            raise ValueError(f"{text!r} is not a number") from None
    if type_ is PropertyType.BOOLEAN:
        lowered = stripped.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ValueError(f"{text!r} is not a boolean (true/false)")
    if type_ is PropertyType.BYTES:
        try:  # hex, as edgedev reports bytes; base64 (the older form) is still read
            return bytes.fromhex(stripped)
        except ValueError:
            pass
        try:
            return base64.b64decode(stripped, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"{text!r} is neither hex nor base64") from None
    return text


def coerce_value(value: Value, type_: PropertyType) -> Value:
    """Convert a driver's value to the Python type that ``type_`` calls for.

    Raises:
        ValueError: the value cannot represent that type.
    """
    if isinstance(value, str):
        return parse_value(value, type_)
    if type_ is PropertyType.INT:
        if isinstance(value, float) and not value.is_integer():
            return value  # a scaled integer register keeps its fraction
        return int(value)
    if type_ in (PropertyType.FLOAT, PropertyType.DOUBLE):
        if isinstance(value, bytes):
            raise ValueError("bytes cannot be a number")
        return float(value)
    if type_ is PropertyType.BOOLEAN:
        return bool(value)
    if type_ is PropertyType.BYTES:
        return value if isinstance(value, bytes) else str(value).encode()
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


class Writable(Protocol):
    """What a write is checked against: a DeviceModel property.

    :class:`~edgedev.PropertySpec` and the twin's :class:`PropertyModel` both are one.
    """

    @property
    def type(self) -> PropertyType:
        """The value type."""

    @property
    def writable(self) -> bool:
        """Whether writes are allowed (``ReadWrite``)."""

    @property
    def minimum(self) -> float | None:
        """The lowest number a write may set."""

    @property
    def maximum(self) -> float | None:
        """The highest number a write may set."""


_W = TypeVar("_W", bound=Writable)


def check_writable(device_id: str, name: str, prop: _W | None) -> _W:
    """Check that property ``name`` of device ``device_id`` exists and is writable.

    Raises:
        NoSuchProperty: ``prop`` is ``None`` (the device has no such property).
        WriteRefused: the property is ``ReadOnly``.
    """
    if prop is None:
        raise NoSuchProperty(f"device {device_id} has no property {name!r}")
    if not prop.writable:
        raise WriteRefused(f"property {name!r} is ReadOnly")
    return prop


def check_write(device_id: str, name: str, prop: Writable | None, text: str) -> Value:
    """Check a write of wire string ``text`` to property ``name`` before any I/O.

    The property must exist and be writable (:func:`check_writable`), and ``text`` must be a
    value of its type within its range (:func:`check_value`).

    Raises:
        NoSuchProperty: the device has no such property.
        WriteRefused: read-only, not a value of the type, or out of range.
    """
    target = check_writable(device_id, name, prop)
    try:
        return check_value(text, target.type, target.minimum, target.maximum)
    except ValueError as exc:
        raise WriteRefused(f"{name}: {exc}") from None


def values_equal(a: Value, b: Value, type_: PropertyType) -> bool:
    """Whether two values of ``type_`` are the same value (``30`` equals ``30.0``)."""
    if type_.is_number and not isinstance(a, bytes | str) and not isinstance(b, bytes | str):
        return a == b or (math.isnan(float(a)) and math.isnan(float(b)))
    return a == b


def text_equal(a: str, b: str, type_: PropertyType) -> bool:
    """Whether two wire strings denote the same value of ``type_`` (falls back to text)."""
    try:
        return values_equal(parse_value(a, type_), parse_value(b, type_), type_)
    except ValueError:
        return a == b


def is_pending(desired: str | None, reported: str | None, type_: PropertyType) -> bool:
    """Whether a desired value is set and the reported value differs from it (a delta)."""
    if desired is None:
        return False
    return reported is None or not text_equal(desired, reported, type_)


def check_value(
    text: str, type_: PropertyType, minimum: float | None = None, maximum: float | None = None
) -> Value:
    """Parse ``text`` as a value of ``type_`` that may be sent to a device.

    The one rule for values crossing into a device, applied by the twin agent, the mapper and
    ``edgedev validate`` alike: the text parses as the type, a number is finite (``nan``,
    ``inf`` and ``1e400`` are refused) and lies within ``minimum``/``maximum`` when given.

    Raises:
        ValueError: the value is not acceptable; the message says why (without the property's
            name, which the caller adds).
    """
    value = parse_value(text, type_)
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{text.strip()!r} is not a finite number")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if minimum is not None and value < minimum:
            raise ValueError(f"{text.strip()} is below the minimum {minimum:g}")
        if maximum is not None and value > maximum:
            raise ValueError(f"{text.strip()} is above the maximum {maximum:g}")
    return value
