"""Sparkplug B payloads: metrics, births, deaths, data and commands, to and from protobuf. Pure.

Section numbers are those of the Eclipse Sparkplug 3.0.0 specification. The encoding is
protobuf, generated from Eclipse Tahu's ``sparkplug_b.proto`` (6.4.1; ``_pb``); this module
only fills in and reads those messages.

- A metric has a name (births) or an alias (data and commands, once the birth has paired them),
  a timestamp, a datatype (births only), a value in the field its datatype says, or
  ``is_null`` (6.4.6, 6.4.16, 6.4.17). Signed integers travel in unsigned fields as two's
  complement; Float is 32 bits.
- A property set carries metadata of a metric (6.4.8, 6.4.9): edgedev writes ``engUnit``,
  ``engLow``, ``engHigh`` and ``readOnly`` (the keys Tahu's examples and SCADA hosts use).
- NDEATH carries the ``bdSeq`` metric only and no ``seq`` (6.4.25); NBIRTH carries ``bdSeq``
  and ``Node Control/Rebirth`` (6.4.19, 5.17); every other message of the edge node carries
  ``seq`` (6.4.5).
"""

from __future__ import annotations

import enum
import math
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from google.protobuf.message import DecodeError

from edgedev.sparkplug._pb import sparkplug_b_pb2 as pb
from edgedev.twin._values import PropertyType, Value

BDSEQ = "bdSeq"
"""The metric pairing an NBIRTH with its NDEATH (5.4, 6.4.19, 6.4.25)."""
REBIRTH = "Node Control/Rebirth"
"""The node metric a host sets true in an NCMD to ask for every birth again (5.17)."""
QUALITY = "Quality"
"""The property of a metric's quality (6.4.9.1): 0 bad, 192 good, 500 stale."""

ENG_UNIT = "engUnit"
ENG_LOW = "engLow"
ENG_HIGH = "engHigh"
READ_ONLY = "readOnly"


class DataType(enum.IntEnum):
    """Sparkplug B datatypes (6.4.16), as the proto's ``DataType`` numbers them."""

    Unknown = 0
    Int8 = 1
    Int16 = 2
    Int32 = 3
    Int64 = 4
    UInt8 = 5
    UInt16 = 6
    UInt32 = 7
    UInt64 = 8
    Float = 9
    Double = 10
    Boolean = 11
    String = 12
    DateTime = 13
    Text = 14
    UUID = 15
    DataSet = 16
    Bytes = 17
    File = 18
    Template = 19
    PropertySet = 20
    PropertySetList = 21


_SIGNED_BITS: dict[int, int] = {
    DataType.Int8: 8,
    DataType.Int16: 16,
    DataType.Int32: 32,
    DataType.Int64: 64,
}
_UNSIGNED_BITS: dict[int, int] = {
    DataType.UInt8: 8,
    DataType.UInt16: 16,
    DataType.UInt32: 32,
    DataType.UInt64: 64,
    DataType.DateTime: 64,
}
_FIELDS = {
    **dict.fromkeys((DataType.Int8, DataType.Int16, DataType.Int32), "int_value"),
    **dict.fromkeys((DataType.UInt8, DataType.UInt16, DataType.UInt32), "int_value"),
    **dict.fromkeys((DataType.Int64, DataType.UInt64, DataType.DateTime), "long_value"),
    DataType.Float: "float_value",
    DataType.Double: "double_value",
    DataType.Boolean: "boolean_value",
    **dict.fromkeys((DataType.String, DataType.Text, DataType.UUID), "string_value"),
    **dict.fromkeys((DataType.Bytes, DataType.File), "bytes_value"),
}
"""The value field of each datatype edgedev reads and writes (6.4.17)."""

DATATYPES: Mapping[PropertyType, DataType] = {
    PropertyType.INT: DataType.Int64,
    PropertyType.FLOAT: DataType.Float,
    PropertyType.DOUBLE: DataType.Double,
    PropertyType.BOOLEAN: DataType.Boolean,
    PropertyType.STRING: DataType.String,
    PropertyType.BYTES: DataType.Bytes,
    PropertyType.STREAM: DataType.String,
}
"""The Sparkplug datatype of each DeviceModel property type (docs/sparkplug.md)."""


def datatype_of(type_: PropertyType) -> DataType:
    """The Sparkplug datatype a property of ``type_`` is born with."""
    return DATATYPES[type_]


def property_type_of(datatype: int) -> PropertyType:
    """The DeviceModel type that holds values of Sparkplug ``datatype`` (for what a host shows)."""
    if datatype in _SIGNED_BITS or datatype in _UNSIGNED_BITS:
        return PropertyType.INT
    if datatype == DataType.Float:
        return PropertyType.FLOAT
    if datatype == DataType.Double:
        return PropertyType.DOUBLE
    if datatype == DataType.Boolean:
        return PropertyType.BOOLEAN
    if datatype in (DataType.Bytes, DataType.File):
        return PropertyType.BYTES
    return PropertyType.STRING


def float32(value: float) -> float:
    """The shortest decimal that a 32-bit float holding ``value`` reads back as.

    A Float metric of 23.4 arrives as 23.399999618530273 once widened; it means 23.4.
    """
    if not math.isfinite(value):
        return value
    single = struct.unpack("<f", struct.pack("<f", value))[0]
    for digits in range(1, 10):
        shorter = float(f"{single:.{digits}g}")
        if struct.unpack("<f", struct.pack("<f", shorter))[0] == single:
            return shorter
    return float(single)


def set_value(metric: pb.Payload.Metric, datatype: DataType, value: Value | None) -> None:
    """Put ``value`` in ``metric``'s field for ``datatype`` (6.4.17), or mark it null.

    Raises:
        ValueError: the value does not fit the datatype (an integer out of range).
        TypeError: edgedev has no field for the datatype, or the value is not of it.
    """
    if value is None:
        metric.is_null = True
        return
    name = _FIELDS.get(datatype)
    if name is None:
        raise TypeError(f"no value field for datatype {datatype.name}")
    setattr(metric, name, _wire(datatype, value))


def check_fits(datatype: DataType, value: Value) -> None:
    """Nothing when ``value`` fits ``datatype``'s field (6.4.17), else why not.

    Raises:
        ValueError, TypeError: it does not fit (an integer out of range, a text for a number).
    """
    if datatype not in _FIELDS:
        raise TypeError(f"no value field for datatype {datatype.name}")
    _wire(datatype, value)


def _wire(datatype: DataType, value: Value) -> Value:
    if datatype in _SIGNED_BITS:
        bits = _SIGNED_BITS[datatype]
        number = _integer(value)
        if not -(1 << (bits - 1)) <= number < 1 << (bits - 1):
            raise ValueError(f"{number} does not fit {datatype.name}")
        return number & ((1 << (32 if bits < 64 else 64)) - 1)  # two's complement (6.4.17)
    if datatype in _UNSIGNED_BITS:
        number = _integer(value)
        if not 0 <= number < 1 << _UNSIGNED_BITS[datatype]:
            raise ValueError(f"{number} does not fit {datatype.name}")
        return number
    if datatype in (DataType.Float, DataType.Double):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"{value!r} is not a number")
        return float(value)
    if datatype == DataType.Boolean:
        if not isinstance(value, bool):
            raise TypeError(f"{value!r} is not a boolean")
        return value
    if datatype in (DataType.Bytes, DataType.File):
        if not isinstance(value, bytes):
            raise TypeError(f"{value!r} is not bytes")
        return value
    return value.hex() if isinstance(value, bytes) else str(value)


def _integer(value: Value) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{value!r} is not an integer")
    if isinstance(value, float):
        if not value.is_integer():
            raise TypeError(f"{value!r} is not an integer")
        return int(value)
    return value


def metric_value(metric: pb.Payload.Metric, datatype: int | None = None) -> Value | None:
    """The value ``metric`` carries, read as ``datatype`` (default: the metric's own).

    Signed integers come back signed, Floats as their shortest decimal (:func:`float32`);
    ``None`` when the metric is null or carries no value edgedev reads (a DataSet, a
    Template).
    """
    if metric.is_null:
        return None
    kind = metric.WhichOneof("value")
    if kind is None:
        return None
    if kind in ("int_value", "long_value"):
        number: int = getattr(metric, kind)
        bits = _SIGNED_BITS.get(datatype or metric.datatype)
        return number if bits is None else _signed(number, bits, 64 if kind == "long_value" else 32)
    if kind == "float_value":
        return float32(metric.float_value)
    if kind == "double_value":
        return float(metric.double_value)
    if kind == "boolean_value":
        return bool(metric.boolean_value)
    if kind == "string_value":
        return str(metric.string_value)
    if kind == "bytes_value":
        return bytes(metric.bytes_value)
    return None


def _signed(number: int, bits: int, width: int) -> int:
    """A signed integer from its unsigned field, whichever width its encoder took.

    Two's complement over the field's ``width`` (Tahu's encoding), or over the datatype's own
    ``bits`` (other encoders').
    """
    if number >= 1 << (width - 1):
        return number - (1 << width)
    if bits < width and (1 << (bits - 1)) <= number < (1 << bits):
        return number - (1 << bits)
    return number


@dataclass(frozen=True, slots=True)
class MetricInfo:
    """What a birth says of one metric beyond its value: its metadata (6.4.8).

    Attributes:
        unit: engineering unit (``engUnit``).
        low: lowest value (``engLow``).
        high: highest value (``engHigh``).
        read_only: ``readOnly``: the metric takes no command.
        description: the metric's description (``MetaData.description``, 6.4.7).
    """

    unit: str = ""
    low: float | None = None
    high: float | None = None
    read_only: bool | None = None
    description: str = ""


@dataclass(frozen=True, slots=True)
class Metric:
    """One metric to publish.

    Attributes:
        name: the name (births; ``None`` in data messages, where the alias says it).
        alias: the alias, or ``None`` (births of metrics that have none).
        datatype: the datatype (births; ``None`` in data messages, 6.4.6).
        value: the value; ``None``: null.
        timestamp: when it was read (ms since the epoch, UTC).
        historical: not a current value (``is_historical``, 6.4.6).
        info: metadata (births only).
        value_type: the datatype of the value's field where :attr:`datatype` is left out.
    """

    name: str | None
    alias: int | None
    datatype: DataType | None
    value: Value | None
    timestamp: int
    historical: bool = False
    info: MetricInfo | None = None
    value_type: DataType | None = field(default=None, repr=False)


def _properties(target: pb.Payload.PropertySet, info: MetricInfo) -> None:
    def add(key: str, datatype: DataType, value: Value) -> None:
        target.keys.append(key)
        entry = target.values.add()
        entry.type = datatype
        setattr(entry, _FIELDS[datatype], value)

    if info.unit:
        add(ENG_UNIT, DataType.String, info.unit)
    if info.low is not None:
        add(ENG_LOW, DataType.Double, float(info.low))
    if info.high is not None:
        add(ENG_HIGH, DataType.Double, float(info.high))
    if info.read_only is not None:
        add(READ_ONLY, DataType.Boolean, info.read_only)


def encode(metrics: Iterable[Metric], *, timestamp: int, seq: int | None = None) -> bytes:
    """A Sparkplug B payload (6.4.5): ``timestamp`` (when sent), ``seq``, the metrics.

    Raises:
        ValueError, TypeError: a metric's value does not fit its datatype.
    """
    payload = pb.Payload()
    payload.timestamp = timestamp
    if seq is not None:
        payload.seq = seq
    for m in metrics:
        metric = payload.metrics.add()
        if m.name is not None:
            metric.name = m.name
        if m.alias is not None:
            metric.alias = m.alias
        metric.timestamp = m.timestamp
        if m.datatype is not None:
            metric.datatype = m.datatype
        if m.historical:
            metric.is_historical = True
        if m.info is not None:
            if m.info.description:
                metric.metadata.description = m.info.description
            _properties(metric.properties, m.info)
        datatype = m.datatype if m.datatype is not None else m.value_type
        if datatype is None:
            raise TypeError(f"metric {m.name or m.alias} has no datatype for its value")
        set_value(metric, datatype, m.value)
    return payload.SerializeToString()


def node_death(bdseq: int, *, timestamp: int) -> bytes:
    """NDEATH: the ``bdSeq`` metric (Int64) alone, no ``seq`` (4.2.1.3.2, 6.4.25)."""
    return encode([Metric(BDSEQ, None, DataType.Int64, bdseq, timestamp)], timestamp=timestamp)


def rebirth_request(*, timestamp: int) -> bytes:
    """The NCMD a host sends to ask an edge node for every birth again (5.17, 6.4.23)."""
    return encode([Metric(REBIRTH, None, DataType.Boolean, True, timestamp)], timestamp=timestamp)


def decode(data: bytes) -> pb.Payload:
    """A Sparkplug B payload from its bytes.

    Raises:
        ValueError: not a protobuf Sparkplug payload.
    """
    payload = pb.Payload()
    try:
        payload.ParseFromString(data)
    except DecodeError as exc:
        raise ValueError(f"not a Sparkplug B payload ({len(data)} bytes): {exc}") from None
    return payload


def metric_info(metric: pb.Payload.Metric) -> MetricInfo:
    """The metadata of a birth's metric (its property set, 6.4.8)."""
    props = metric.properties
    found: dict[str, Value | None] = {}
    for key, value in zip(props.keys, props.values, strict=False):
        kind = value.WhichOneof("value")
        if kind is None or value.is_null:
            continue
        raw = getattr(value, kind)
        found[key] = raw if isinstance(raw, bool | int | float | str | bytes) else None
    low, high, unit, read_only = (
        found.get(ENG_LOW),
        found.get(ENG_HIGH),
        found.get(ENG_UNIT),
        found.get(READ_ONLY),
    )
    return MetricInfo(
        unit=unit if isinstance(unit, str) else "",
        low=float(low) if isinstance(low, int | float) and not isinstance(low, bool) else None,
        high=float(high) if isinstance(high, int | float) and not isinstance(high, bool) else None,
        read_only=read_only if isinstance(read_only, bool) else None,
        description=metric.metadata.description if metric.HasField("metadata") else "",
    )


def bdseq_of(payload: pb.Payload) -> int | None:
    """The ``bdSeq`` of an NBIRTH or NDEATH payload, or ``None`` when it carries none."""
    for metric in payload.metrics:
        if metric.name == BDSEQ:
            value = metric_value(metric, DataType.Int64)
            return value if isinstance(value, int) and not isinstance(value, bool) else None
    return None


def rebirth_asked(payload: pb.Payload) -> bool:
    """Whether an NCMD asks for a rebirth: ``Node Control/Rebirth`` set true (5.17)."""
    return any(
        m.name == REBIRTH and metric_value(m, DataType.Boolean) is True for m in payload.metrics
    )


def named(metrics: Sequence[pb.Payload.Metric]) -> list[str]:
    """The name (or ``alias N``) of each metric, to say which ones in a log line."""
    return [m.name or f"alias {m.alias}" for m in metrics]
