"""The value keys of every visitor that reads numbers, and what a driver does with them.

:class:`ValueConfig` is the part of ``visitors.configData`` that says how a raw number
becomes the property's value: EdgeX's transforms (``mask``, ``shift``, ``base``, ``scale``,
``valueOffset``), one ``bit`` as a BOOLEAN, a ``mapping`` of raw numbers to text, and an
``expect``-ed value. The Modbus, BLE and OPC-UA visitors take it; the arithmetic is
:mod:`edgedev.twin`'s (:class:`~edgedev.twin.Transform`, :class:`~edgedev.twin.ValueMap`).
:class:`ValueRules` is one property's conversion at run time, :func:`value_problems` the
check ``edgedev validate`` runs, and :class:`Expectations` marks a device unhealthy while
a value it expects reads otherwise.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from decimal import Decimal
from enum import Enum
from typing import Any

from pydantic import Field, field_validator

from edgedev._errors import DeviceFault, WriteRefused
from edgedev.config._spec import PropertySpec
from edgedev.drivers._advice import fractional_scale
from edgedev.drivers._base import VisitorConfig
from edgedev.twin._numbers import check_scale, to_integer
from edgedev.twin._quality import Sample
from edgedev.twin._transforms import MAX_SHIFT, Transform, ValueMap, read_bit, write_bit
from edgedev.twin._values import PropertyType, Value, format_value, parse_value, text_equal
from edgedev.wire import value_refusal

log = logging.getLogger("edgedev.drivers")


class Raw(Enum):
    """What kind of raw value a property's location holds, for :func:`value_problems`."""

    INTEGER = "an integer"
    FLOAT = "a float"
    NUMBER = "a number"  # integer or float: known only once connected (an OPC-UA node)
    BOOLEAN = "a boolean"
    TEXT = "text"


class ValueConfig(VisitorConfig):
    """How a raw number becomes the property's value (a base of number visitors).

    On reads, in EdgeX's order: ``mask`` ANDs the raw integer, ``shift`` shifts it right
    (left when negative), ``base`` raises ``base`` to the value, ``scale`` multiplies it and
    ``valueOffset`` is added (EdgeX's ``offset``, renamed: ``offset`` is the register address
    in KubeEdge's Modbus visitor). ``bit: N`` instead reads bit N of the raw integer as a
    BOOLEAN. ``mapping`` turns raw numbers into text for a STRING property (and text back
    on writes); an unmapped number reads as itself, with a warning once, unless
    ``strict: true`` refuses it. ``expect`` marks the device ``unhealthy`` while the value
    reads otherwise (a device-type check register).
    """

    scale: float = Field(1.0, description="Multiplies the number read; a write divides by it.")
    mask: int | None = Field(
        None, ge=1, description="ANDed with the raw integer first (EdgeX's mask); 0x00F0 works."
    )
    shift: int = Field(
        0,
        ge=-MAX_SHIFT,
        le=MAX_SHIFT,
        description="Bits to shift the raw integer right after the mask; negative: left.",
    )
    base: float | None = Field(
        None, gt=0, description="The value becomes base raised to the raw number (EdgeX's base)."
    )
    value_offset: float = Field(
        0.0, description="Added after scale (EdgeX's offset); a write subtracts it first."
    )
    bit: int | None = Field(
        None, ge=0, le=63, description="Reads this bit of the raw integer (0: least significant)."
    )
    mapping: dict[str, str] | None = Field(
        None, description="Text of each raw number, for a STRING property: {0: Off, 1: Heat}."
    )
    strict: bool = Field(False, description="Refuse raw numbers (and writes) mapping does not map.")
    expect: str | None = Field(
        None, description="The value the property must read; otherwise the device is unhealthy."
    )

    @field_validator("mask", mode="before")
    @classmethod
    def _mask_text(cls, value: Any) -> Any:
        """``0x00F0`` or ``0b1111`` as a string (DMI carries numbers as 32-bit floats)."""
        if isinstance(value, str):
            try:
                value = int(value.strip().replace("_", ""), 0)
            except ValueError:
                raise ValueError(f"mask {value!r} is not an integer (such as 0x00F0)") from None
        if isinstance(value, int) and value < 1:
            raise ValueError(f"mask {value} keeps no bit: give a positive integer (such as 0x00F0)")
        return value

    @field_validator("shift", mode="before")
    @classmethod
    def _shift_range(cls, value: Any) -> Any:
        if isinstance(value, int | float) and not -MAX_SHIFT <= value <= MAX_SHIFT:
            raise ValueError(
                f"shift {value} is beyond a 64-bit value: give -{MAX_SHIFT}..{MAX_SHIFT} "
                "(right for positive, left for negative)"
            )
        return value

    @field_validator("bit", mode="before")
    @classmethod
    def _bit_range(cls, value: Any) -> Any:
        if isinstance(value, int | float) and not 0 <= value <= MAX_SHIFT:
            raise ValueError(f"bit {value} is beyond a 64-bit value: give 0..{MAX_SHIFT}")
        return value

    @field_validator("scale")
    @classmethod
    def _scale(cls, value: float) -> float:
        check_scale(value)
        return value

    @field_validator("base")
    @classmethod
    def _base(cls, value: float | None) -> float | None:
        if value is not None and (value == 1 or not math.isfinite(value)):
            raise ValueError(f"base {value} leaves nothing to read (finite, above 0, not 1)")
        return value

    @field_validator("value_offset")
    @classmethod
    def _offset(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError(f"valueOffset must be a finite number, not {value}")
        return value

    @field_validator("mapping", mode="before")
    @classmethod
    def _mapping_text(cls, value: Any) -> Any:
        """YAML's ``{0: Off}`` has integer keys; its texts may be numbers or booleans."""
        if isinstance(value, Mapping):
            for key, text in value.items():
                if isinstance(text, bool):
                    raise ValueError(
                        f"the text of {_text(key)} is the boolean {_text(text)}: YAML reads "
                        'Off, On, Yes and No unquoted as booleans; quote the text ("Off")'
                    )
            return {_text(k): _text(v) for k, v in value.items()}
        return value

    @field_validator("mapping")
    @classmethod
    def _mapping_keys(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is not None:
            if not value:
                raise ValueError("mapping maps nothing: give at least one raw number")
            ValueMap(value)  # the keys are numbers, each named once
        return value

    @field_validator("expect", mode="before")
    @classmethod
    def _expect_text(cls, value: Any) -> Any:
        return _text(value) if isinstance(value, int | float) else value

    @property
    def transform(self) -> Transform:
        """The visitor's EdgeX transforms."""
        return Transform(self.mask, self.shift, self.base, self.scale, self.value_offset)

    @property
    def value_map(self) -> ValueMap | None:
        """The visitor's ``mapping``, if any."""
        return None if self.mapping is None else ValueMap(self.mapping, self.strict)

    @property
    def plain(self) -> bool:
        """Whether the value is the raw number times ``scale`` (no other key given)."""
        return (
            self.mask is None
            and self.shift == 0
            and self.base is None
            and self.value_offset == 0
            and self.bit is None
            and self.mapping is None
        )


def _text(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value) if isinstance(value, int | float) else value


def value_problems(prop: PropertySpec[ValueConfig], raw: Raw | None) -> list[tuple[str, str]]:
    """What is wrong with a property's value keys, as ``(configData field, message)`` pairs.

    A driver calls it from :meth:`~edgedev.drivers.Driver.check_property`.

    Args:
        prop: the property (its type, access, desired value and visitor).
        raw: what its location holds: the driver knows (a Modbus ``dataType``, a BLE
            ``format``), or :attr:`Raw.NUMBER` when only the connected device will tell;
            ``None`` checks only what the property's type decides.
    """
    v = prop.visitor
    type_ = prop.type
    numeric = [key for key, given in _numeric_keys(v) if given]
    if v.bit is not None and numeric:
        return [(numeric[0], f"bit reads one bit as it is: drop {', '.join(numeric)}")]
    if v.strict and v.mapping is None:
        return [("strict", "strict applies to mapping, which is not given")]
    if v.mapping is not None and type_ is not PropertyType.STRING:
        return [("mapping", f"mapping gives text: the property must be STRING, not {type_}")]
    if v.mapping is None and type_ is PropertyType.STRING and (numeric or v.bit is not None):
        key = numeric[0] if numeric else "bit"
        return [(key, f"{key} gives a number: a STRING property needs mapping (number to text)")]
    bit_type = type_ in (PropertyType.BOOLEAN, PropertyType.INT)
    if v.bit is not None and v.mapping is None and not bit_type:
        return [("bit", f"bit reads a BOOLEAN (or INT 0/1), not a {type_} property")]
    if raw is not None:
        found = _raw_problem(v, raw)
        if found:
            return [found]
    if v.expect is not None:
        problem = _expect_problem(prop)
        if problem:
            return [("expect", problem)]
    if prop.desired is not None and prop.writable:
        why = v.transform.refusal if v.bit is None else None
        if why is not None:
            key = "mask" if v.mask is not None else "shift" if v.shift else "base"
            return [(key, f"the desired value {prop.desired!r} cannot be written: {why}")]
        if v.mapping is not None:
            try:
                ValueMap(v.mapping, v.strict).raw(prop.desired)
            except ValueError as exc:
                return [("mapping", f"the desired value cannot be written: {exc}")]
    return []


def _raw_problem(v: ValueConfig, raw: Raw) -> tuple[str, str] | None:
    """A value key that the raw value ``raw`` cannot take."""
    numeric = [key for key, given in _numeric_keys(v) if given]
    if raw in (Raw.TEXT, Raw.BOOLEAN):
        used = numeric + (["bit"] if v.bit is not None else [])
        if raw is Raw.TEXT and v.mapping is not None:
            used.append("mapping")
        if used:
            return (used[0], f"{used[0]} applies to numbers, and the value is {raw.value}")
    if raw is Raw.FLOAT:
        for key, given in (("bit", v.bit is not None), ("mask", v.mask is not None)):
            if given:
                return (key, f"{key} applies to integers, and the value is a float")
        if v.shift:
            return ("shift", "shift applies to integers, and the value is a float")
    return None


def value_warnings(prop: PropertySpec[ValueConfig]) -> list[tuple[str, str]]:
    """What loads but will not report as meant: fractions of an INT, texts EdgeCore refuses."""
    v = prop.visitor
    if v.mapping is None:
        return fractional_scale(prop, v.scale, v.value_offset, v.base)
    found = []
    for key, text in v.mapping.items():
        why = value_refusal(text, "string")
        if why is not None:
            found.append(
                (
                    f"mapping.{key}",
                    f"EdgeCore refuses {why}: a reading of {key} would be left out of twin reports",
                )
            )
    return found


def _numeric_keys(v: ValueConfig) -> list[tuple[str, bool]]:
    return [
        ("mask", v.mask is not None),
        ("shift", v.shift != 0),
        ("base", v.base is not None),
        ("scale", v.scale != 1),
        ("valueOffset", v.value_offset != 0),
    ]


def _expect_problem(prop: PropertySpec[ValueConfig]) -> str | None:
    v = prop.visitor
    assert v.expect is not None
    if v.mapping is not None:
        names = list(ValueMap(v.mapping).names)
        if v.expect in names:
            return None
        if v.expect in v.mapping:  # a raw number given where its text is read
            return (
                f"expect {v.expect!r} is a raw number; the property reads its text "
                f"(did you mean {v.mapping[v.expect]!r}?)"
            )
        if v.strict:
            return f"expect {v.expect!r} is none of the texts of mapping ({', '.join(names)})"
        return None
    try:
        parse_value(v.expect, prop.type)
    except ValueError as exc:
        return f"expect: {exc} (the property is {prop.type})"
    return None


class ValueRules:
    """One property's value from its raw number and back, as its visitor says.

    Args:
        device_id: the device, for the log.
        prop: the property; its visitor is a :class:`ValueConfig`.
    """

    __slots__ = ("_device_id", "_prop", "_read", "_unmapped", "bit", "mapping", "transform")

    def __init__(self, device_id: str, prop: PropertySpec[ValueConfig]) -> None:
        self._device_id = device_id
        self._prop = prop
        visitor = prop.visitor
        self.transform = visitor.transform
        self.bit = visitor.bit
        self.mapping = visitor.value_map
        self._read = self.transform.reader()
        self._unmapped = False

    @property
    def needs_current(self) -> bool:
        """Whether a write must know the raw value it changes (a bit of it)."""
        return self.bit is not None

    def value(self, raw: int | float | bool) -> Value:
        """The property's value for raw number ``raw``.

        Raises:
            ValueError: ``strict`` mapping and ``raw`` is not mapped; or mask/shift met a float.
        """
        type_ = self._prop.type
        number: int | float
        if self.bit is not None:
            number = int(read_bit(int(raw), self.bit))
            if self.mapping is None:
                return bool(number) if type_ is PropertyType.BOOLEAN else number
        else:
            number = self._read(raw)
        if self.mapping is not None:
            return self._text(number)
        if type_ in (PropertyType.FLOAT, PropertyType.DOUBLE):
            return float(number)
        if type_ is PropertyType.BOOLEAN:
            return bool(number)
        return number

    def _text(self, number: int | float) -> str:
        assert self.mapping is not None
        text = self.mapping.text(number)
        if text is not None:
            return text
        shown = format_value(
            number, PropertyType.INT if isinstance(number, int) else PropertyType.DOUBLE
        )
        if self.mapping.strict:
            raise ValueError(f"raw value {shown} is not in mapping (strict)")
        if not self._unmapped:
            self._unmapped = True
            log.warning(
                "device %s: property %s: raw value %s is not in mapping; reported as the number",
                self._device_id,
                self._prop.name,
                shown,
            )
        return shown

    def raw(self, value: Value, current: int | None = None) -> int | float | Decimal | bool:
        """The raw number to write for ``value`` (``current``: the raw integer it changes).

        A bit is set in ``current``; a mapped text becomes its number; a number goes back
        through valueOffset and scale. The caller rounds a Decimal to its wire type.

        Raises:
            WriteRefused: no inverse (mask, shift, base), an unmapped text, or a bit write
                without ``current``.
        """
        name = self._prop.name
        mapped: int | float | Decimal | bool
        if self.mapping is not None:
            try:
                mapped = self.mapping.raw(str(value))
            except ValueError as exc:
                raise WriteRefused(f"{name}: {exc}") from None
        elif isinstance(value, str | bytes):
            raise WriteRefused(f"{name}: {value!r} is not a number")
        else:
            mapped = value
        if self.bit is not None:
            if current is None:
                raise WriteRefused(f"{name}: a bit is written into the register's current value")
            if mapped not in (0, 1):
                raise WriteRefused(f"{name}: a bit is 0 or 1, not {mapped}")
            return write_bit(current, self.bit, bool(mapped))
        if isinstance(mapped, bool) or self.transform.identity:
            return mapped
        try:
            return self.transform.write(mapped)
        except ValueError as exc:
            raise WriteRefused(f"{name}: {exc}") from None


def held_through_rules(
    prop: PropertySpec[ValueConfig], value: Value, *, integer: bool = False
) -> Value:
    """What a property reads back once ``value`` is written through its value keys.

    The value goes through :meth:`ValueRules.raw` (a mapped text to its number, offset and
    scale undone, a bit into zeros around it) and back through :meth:`ValueRules.value`,
    the raw number kept as the location keeps it: rounded to an integer (``integer``, ties
    to even), else as the nearest float. The common case of every driver whose visitor is a
    :class:`ValueConfig` (:meth:`~edgedev.drivers.Driver.held_value`); a driver that knows
    its location better (a register's width, a float32) says so in its own ``held_value``.

    Raises:
        ValueError: the value cannot be written through the keys (mask, shift, base; a text a
            strict mapping does not map); the message says why.
    """
    v = prop.visitor
    if v.plain and v.scale == 1:
        return value
    if isinstance(value, str | bytes) and v.mapping is None:
        return value
    rules = ValueRules("", prop)
    try:
        raw = rules.raw(value, 0 if rules.bit is not None else None)
    except WriteRefused as exc:
        raise ValueError(str(exc).partition(": ")[2] or str(exc)) from None
    if isinstance(raw, Decimal):
        raw = to_integer(raw) if integer else float(raw)
    return rules.value(raw)


class Expectations:
    """The ``expect``-ed values of a device's properties, and whether they hold now.

    A driver calls :meth:`check` with every set of values it read; while an expected
    property last read otherwise, every read raises :class:`~edgedev.DeviceFault` (the device
    is reported ``unhealthy``, its values withheld), until the property reads as expected.

    Args:
        properties: the device's properties; those with ``expect`` are watched.
    """

    __slots__ = ("_expected", "_failing")

    def __init__(self, properties: Iterable[PropertySpec[Any]]) -> None:
        self._expected = {
            p.name: (p.visitor.expect, p.type)
            for p in properties
            if getattr(p.visitor, "expect", None) is not None
        }
        self._failing: dict[str, str] = {}

    def __bool__(self) -> bool:
        return bool(self._expected)

    def check(self, values: Mapping[str, Value | Sample]) -> None:
        """Note the expected properties in ``values`` (a Bad sample tells nothing).

        Raises:
            DeviceFault: an expected property reads otherwise (now or at its last read).
        """
        for name, (expected, type_) in self._expected.items():
            value = values.get(name)
            if isinstance(value, Sample):
                value = value.value
            if value is None:
                continue
            text = format_value(value, type_)
            if text_equal(text, expected, type_):
                self._failing.pop(name, None)
            else:
                self._failing[name] = f"property {name} reads {text}, expected {expected}"
        if self._failing:
            raise DeviceFault("; ".join(self._failing.values()))
