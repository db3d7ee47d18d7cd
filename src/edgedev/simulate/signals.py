"""Values that change over time, for simulated devices. Pure functions of the time."""

from __future__ import annotations

import math
import zlib

from edgedev.config._spec import PropertySpec
from edgedev.drivers._values import ValueConfig
from edgedev.twin._values import PropertyType, Value, parse_value


def _phase(key: str) -> float:
    return (zlib.crc32(key.encode()) % 1000) / 1000


def signal(prop: PropertySpec, t: float, *, key: str = "") -> Value:
    """A plausible value of ``prop`` at time ``t`` (seconds).

    Numbers follow a slow sine between the property's minimum and maximum (0 to 100 when
    unset), integers rounded; booleans toggle every few seconds; strings and bytes are fixed.
    ``key`` (for example the device id) shifts the phase so that devices differ. A visitor's
    ``expect``-ed value is what the property always reads, and a ``mapping``'s texts take
    turns every few seconds.
    """
    phase = _phase(key + prop.name)
    visitor = prop.visitor
    if isinstance(visitor, ValueConfig):
        if visitor.expect is not None:
            return parse_value(visitor.expect, prop.type)
        if visitor.mapping:
            texts = list(dict.fromkeys(visitor.mapping.values()))
            return texts[math.floor(t / 5 + phase * len(texts)) % len(texts)]
    if prop.type is PropertyType.BOOLEAN:
        return math.floor(t / 5 + phase * 2) % 2 == 1
    if prop.type is PropertyType.STRING:
        return f"SIM{zlib.crc32((key + prop.name).encode()) % 0x10000:04X}"
    if prop.type is PropertyType.BYTES:
        return prop.name.encode()
    low = prop.minimum if prop.minimum is not None else 0.0
    high = prop.maximum if prop.maximum is not None else 100.0
    middle, amplitude = (low + high) / 2, (high - low) / 2 * 0.8
    value = middle + amplitude * math.sin(2 * math.pi * (t / 30 + phase))
    if prop.type is PropertyType.INT:
        return round(value)
    return round(value, 2)


def initial(prop: PropertySpec) -> Value:
    """The value a writable property starts with: its desired value, else its minimum or 0."""
    if prop.desired is not None:
        return parse_value(prop.desired, prop.type)
    visitor = prop.visitor
    if isinstance(visitor, ValueConfig) and (visitor.expect is not None or visitor.mapping):
        return signal(prop, 0.0)
    if prop.type is PropertyType.BOOLEAN:
        return False
    if prop.type is PropertyType.INT:
        return int(prop.minimum or 0)
    if prop.type in (PropertyType.FLOAT, PropertyType.DOUBLE):
        return float(prop.minimum or 0)
    return signal(prop, 0.0)
