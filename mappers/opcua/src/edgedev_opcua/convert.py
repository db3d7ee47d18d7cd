"""Values between edgedev's property types and OPC-UA's built-in types, without I/O.

:class:`Builtin` mirrors the OPC-UA built-in type ids (which asyncua's ``VariantType``
also uses), so that this module needs no asyncua import and is tested on its own.
"""

from __future__ import annotations

import math
import struct
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from enum import IntEnum
from typing import Any

from edgedev.twin import PropertyType, Value, format_value, parse_value, to_integer

FLOAT32_MAX = 3.4028234663852886e38


class Builtin(IntEnum):
    """OPC-UA built-in data types that properties can live in (ids as in Part 6, 5.1.2)."""

    BOOLEAN = 1
    SBYTE = 2
    BYTE = 3
    INT16 = 4
    UINT16 = 5
    INT32 = 6
    UINT32 = 7
    INT64 = 8
    UINT64 = 9
    FLOAT = 10
    DOUBLE = 11
    STRING = 12
    DATETIME = 13
    BYTESTRING = 15

    @property
    def opcua_name(self) -> str:
        """The type's name as OPC-UA spells it (``UInt16``, ``ByteString`` ...)."""
        return _NAMES[self]

    @property
    def is_integer(self) -> bool:
        """Whether the type is one of the eight integer widths."""
        return self in INTEGER_RANGES

    @classmethod
    def parse(cls, text: str) -> Builtin:
        """The type called ``text`` (case-insensitive: ``Int16``, ``uint32``, ``Float``).

        Raises:
            ValueError: no such type; the message lists the valid names.
        """
        found = _BY_NAME.get(text.strip().lower())
        if found is None:
            names = ", ".join(_NAMES.values())
            raise ValueError(f"unknown OPC-UA data type {text!r} (expected one of: {names})")
        return found


_NAMES = {
    Builtin.BOOLEAN: "Boolean",
    Builtin.SBYTE: "SByte",
    Builtin.BYTE: "Byte",
    Builtin.INT16: "Int16",
    Builtin.UINT16: "UInt16",
    Builtin.INT32: "Int32",
    Builtin.UINT32: "UInt32",
    Builtin.INT64: "Int64",
    Builtin.UINT64: "UInt64",
    Builtin.FLOAT: "Float",
    Builtin.DOUBLE: "Double",
    Builtin.STRING: "String",
    Builtin.DATETIME: "DateTime",
    Builtin.BYTESTRING: "ByteString",
}
_BY_NAME = {name.lower(): member for member, name in _NAMES.items()}

INTEGER_RANGES: dict[Builtin, tuple[int, int]] = {
    Builtin.SBYTE: (-(2**7), 2**7 - 1),
    Builtin.BYTE: (0, 2**8 - 1),
    Builtin.INT16: (-(2**15), 2**15 - 1),
    Builtin.UINT16: (0, 2**16 - 1),
    Builtin.INT32: (-(2**31), 2**31 - 1),
    Builtin.UINT32: (0, 2**32 - 1),
    Builtin.INT64: (-(2**63), 2**63 - 1),
    Builtin.UINT64: (0, 2**64 - 1),
}

# Standard subtypes of built-in types (namespace 0 DataType ids) that servers commonly use.
_SUBTYPES = {
    256: Builtin.STRING,  # NumericRange
    288: Builtin.UINT32,  # IntegerId
    289: Builtin.UINT32,  # Counter
    290: Builtin.DOUBLE,  # Duration
    294: Builtin.DATETIME,  # UtcTime
    295: Builtin.STRING,  # LocaleId
    12878: Builtin.STRING,  # NormalizedString
    12879: Builtin.STRING,  # DecimalString
    12880: Builtin.STRING,  # DurationString
    12881: Builtin.STRING,  # TimeString
    12882: Builtin.STRING,  # DateString
}

_COMPATIBLE: dict[PropertyType, frozenset[Builtin]] = {
    PropertyType.INT: frozenset(INTEGER_RANGES),
    PropertyType.FLOAT: frozenset({Builtin.FLOAT, Builtin.DOUBLE}),
    PropertyType.DOUBLE: frozenset({Builtin.FLOAT, Builtin.DOUBLE}),
    PropertyType.BOOLEAN: frozenset({Builtin.BOOLEAN}),
    PropertyType.STRING: frozenset({Builtin.STRING, Builtin.DATETIME}),
    PropertyType.BYTES: frozenset({Builtin.BYTESTRING}),
}

_DEFAULT = {
    PropertyType.INT: Builtin.INT32,
    PropertyType.FLOAT: Builtin.FLOAT,
    PropertyType.DOUBLE: Builtin.DOUBLE,
    PropertyType.BOOLEAN: Builtin.BOOLEAN,
    PropertyType.STRING: Builtin.STRING,
    PropertyType.BYTES: Builtin.BYTESTRING,
}


def default_builtin(type_: PropertyType) -> Builtin:
    """The OPC-UA type a property of ``type_`` has when its visitor names none."""
    return _DEFAULT[type_]


def compatible(type_: PropertyType, builtin: Builtin) -> bool:
    """Whether a property of ``type_`` can live in a node of ``builtin``."""
    return builtin in _COMPATIBLE[type_]


def builtin_of_data_type(namespace: int, identifier: object) -> Builtin | None:
    """The built-in type of a node whose ``DataType`` attribute is ``ns=namespace;i=identifier``.

    Returns ``None`` for types this function cannot tell without browsing the server
    (enumerations, structures, vendor subtypes).
    """
    if namespace != 0 or not isinstance(identifier, int) or isinstance(identifier, bool):
        return None
    if identifier in Builtin._value2member_map_:
        return Builtin(identifier)
    return _SUBTYPES.get(identifier)


def shortest_float32(value: float) -> float:
    """The float with the fewest significant digits that is the same float32 as ``value``.

    A Float node holding 23.1 arrives as 23.100000381469727; this gives back 23.1.
    """
    if not math.isfinite(value):
        return value
    single = _to_float32(value)
    for digits in range(1, 10):
        candidate = float(f"{single:.{digits}g}")
        if _to_float32(candidate) == single:
            return candidate
    return single


def _to_float32(value: float) -> float:
    try:
        return float(struct.unpack("<f", struct.pack("<f", value))[0])
    except OverflowError:
        return value


def from_opcua(raw: Any, type_: PropertyType, builtin: Builtin | None = None) -> Value:
    """The property value of ``type_`` for the value ``raw`` that asyncua decoded.

    Numbers convert between widths, DateTime becomes ISO 8601 text, LocalizedText its text.
    A value of a ``Float`` node (``builtin``) loses its float32 noise (see
    :func:`shortest_float32`).

    Raises:
        ValueError: ``raw`` cannot be a value of ``type_`` (null, array, wrong kind).
    """
    if raw is None:
        raise ValueError("the node has no value (null)")
    if isinstance(raw, list | tuple):
        raise ValueError("array values are not supported")
    if isinstance(raw, datetime):  # UTC with "Z": EdgeCore refuses the "+" of "+00:00"
        moment = raw.astimezone(UTC) if raw.tzinfo else raw.replace(tzinfo=UTC)
        raw = moment.isoformat().replace("+00:00", "Z")
    elif isinstance(raw, uuid.UUID):
        raw = str(raw)
    elif not isinstance(raw, bool | int | float | str | bytes):
        text = getattr(raw, "Text", None)  # LocalizedText
        to_string = getattr(raw, "to_string", None)  # NodeId, QualifiedName: ns=2;s=x, 2:x
        if isinstance(text, str):
            raw = text
        elif callable(to_string):
            raw = str(to_string())
        else:
            raw = str(raw)
    if type_ is PropertyType.STRING:
        if isinstance(raw, bytes):
            return raw.decode("utf-8", errors="replace")
        return raw if isinstance(raw, str) else format_value(raw, type_)
    if type_ is PropertyType.BYTES:
        return raw if isinstance(raw, bytes) else str(raw).encode()
    if isinstance(raw, str):
        return parse_value(raw, type_)
    if isinstance(raw, bytes):
        raise ValueError(f"a ByteString cannot be a {type_} value")
    if type_ is PropertyType.BOOLEAN:
        return bool(raw)
    if type_ is PropertyType.INT:
        if isinstance(raw, float) and not raw.is_integer():
            return raw  # an integer property fed by a Float node keeps its fraction
        return int(raw)
    if builtin is Builtin.FLOAT and isinstance(raw, float):
        return shortest_float32(raw)
    return float(raw)


def source_millis(stamp: datetime | None) -> int | None:
    """A ``SourceTimestamp`` in ms since the epoch; ``None`` when the server gives none.

    asyncua decodes OPC-UA's DateTime to a ``datetime`` in UTC (naive or aware); the OPC-UA
    "no time" (1601-01-01, or anything before 1970) is ``None``.
    """
    if stamp is None:
        return None
    moment = stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)
    millis = int(moment.timestamp() * 1000)
    return millis if millis > 0 else None


def number_from_opcua(raw: Any, builtin: Builtin | None = None) -> int | float | bool:
    """The number in the value ``raw`` that asyncua decoded, for a property's value keys.

    A ``Float`` node's value loses its float32 noise (see :func:`shortest_float32`).

    Raises:
        ValueError: ``raw`` is not a number (null, text, an array ...).
    """
    if isinstance(raw, bool | int):
        return raw
    if isinstance(raw, float):
        return shortest_float32(raw) if builtin is Builtin.FLOAT else raw
    if raw is None:
        raise ValueError("the node has no value (null)")
    kind = "an array" if isinstance(raw, list | tuple) else f"{type(raw).__name__} {raw!r}"
    raise ValueError(f"the node holds {kind}, not a number")


def number_to_opcua(number: int | float | bool | Decimal, builtin: Builtin) -> int | float | bool:
    """``number`` (a raw number from a property's value keys) as a node of ``builtin`` takes it.

    Integer nodes take it rounded (halves to even) and range-checked; float nodes the nearest
    float; Boolean nodes 0 or 1.

    Raises:
        ValueError: the node does not hold numbers, or the number does not fit.
    """
    name = builtin.opcua_name
    if builtin is Builtin.BOOLEAN:
        if number in (0, 1):
            return bool(number)
        raise ValueError(f"{number} cannot be written to a Boolean node")
    if builtin.is_integer:
        if isinstance(number, int):
            whole = int(number)
        else:
            whole = to_integer(number if isinstance(number, Decimal) else Decimal(repr(number)))
        low, high = INTEGER_RANGES[builtin]
        if not low <= whole <= high:
            raise ValueError(f"{whole} is out of range for {name} ({low}..{high})")
        return whole
    if builtin in (Builtin.FLOAT, Builtin.DOUBLE):
        real = _to_float(float(number), name)
        if builtin is Builtin.FLOAT and math.isfinite(real) and abs(real) > FLOAT32_MAX:
            raise ValueError(f"{real!r} is out of range for Float")
        return real
    raise ValueError(f"a number cannot be written to a {name} node")


def to_opcua(value: Value, builtin: Builtin) -> bool | int | float | str | bytes | datetime:
    """The Python value asyncua sends in a Variant of ``builtin`` for property value ``value``.

    Raises:
        ValueError: ``value`` does not fit ``builtin`` (out of range, not an integer ...).
    """
    name = builtin.opcua_name
    if builtin is Builtin.BOOLEAN:
        return _to_bool(value, name)
    if builtin.is_integer:
        number = _to_int(value, name)
        low, high = INTEGER_RANGES[builtin]
        if not low <= number <= high:
            raise ValueError(f"{number} is out of range for {name} ({low}..{high})")
        return number
    if builtin in (Builtin.FLOAT, Builtin.DOUBLE):
        real = _to_float(value, name)
        if builtin is Builtin.FLOAT and math.isfinite(real) and abs(real) > FLOAT32_MAX:
            raise ValueError(f"{real!r} is out of range for Float")
        return real
    if builtin is Builtin.STRING:
        if isinstance(value, bytes):
            return value.decode("utf-8", errors="replace")
        return value if isinstance(value, str) else format_value(value, PropertyType.STRING)
    if builtin is Builtin.BYTESTRING:
        return value if isinstance(value, bytes) else str(value).encode()
    if isinstance(value, str):  # DateTime
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{value!r} is not an ISO 8601 date and time") from None
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    raise ValueError(f"a {type(value).__name__} cannot be written to a DateTime node")


def _to_bool(value: Value, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        parsed = parse_value(value, PropertyType.BOOLEAN)
        assert isinstance(parsed, bool)
        return parsed
    raise ValueError(f"{value!r} cannot be written to a {name} node")


def _to_int(value: Value, name: str) -> int:
    if isinstance(value, bool | int):
        return int(value)
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError(f"{value!r} is not an integer (the node is {name})")
        return int(value)
    if isinstance(value, str):
        parsed = parse_value(value, PropertyType.INT)
        assert isinstance(parsed, int)
        return parsed
    raise ValueError(f"bytes cannot be written to a {name} node")


def _to_float(value: Value, name: str) -> float:
    if isinstance(value, bool | int | float):
        return float(value)
    if isinstance(value, str):
        return float(parse_value(value, PropertyType.DOUBLE))
    raise ValueError(f"bytes cannot be written to a {name} node")
