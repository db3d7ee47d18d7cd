"""EdgeX's transforms, bits and value maps, pure: the order, the exactness, the inverse."""

from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from edgedev.twin import (
    Transform,
    ValueMap,
    parse_raw_key,
    read_bit,
    scale_number,
    to_integer,
    write_bit,
)


@pytest.mark.parametrize(
    ("transform", "raw", "expected"),
    [
        # EdgeX's order: mask, then shift (right for positive), then base, scale, offset
        (Transform(mask=0x0F00, shift=8), 0x1A2B, 0x0A),
        (Transform(mask=0x00F0, shift=4, scale=10), 0x1234, 30),
        (Transform(shift=-2), 3, 12),
        (Transform(base=10), 3, 1000.0),
        (Transform(base=2, scale=0.5), 4, 8.0),
        (Transform(scale=0.1, offset=-40), 615, 21.5),
        (Transform(scale=0.1, offset=-40), 0, -40.0),
        (Transform(scale=0.01, offset=0.5), 1, 0.51),
        (Transform(offset=-40), 61, 21),
        (Transform(scale=2, offset=1), 3, 7),
        (Transform(mask=0xFF, scale=0.5), 0x1203, 1.5),
        (Transform(scale=0.1, offset=-40), 21.5, -37.85),  # a float reading, in decimal
        (Transform(mask=0x8000), -1, 0x8000),  # a signed reading masks as two's complement
        (Transform(shift=4), -32, -2),  # and shifts keeping its sign, as Go's >> does
    ],
)
def test_reads_apply_the_steps_in_edgex_order_without_float_noise(
    transform: Transform, raw: int | float, expected: int | float
) -> None:
    value = transform.read(raw)
    assert value == expected
    assert repr(value) == repr(expected)


def test_the_type_of_a_reading_follows_the_configuration() -> None:
    assert type(Transform(offset=-40).read(61)) is int
    assert type(Transform(scale=2.0, offset=-40.0).read(61)) is int
    assert type(Transform(scale=0.5, offset=1).read(4)) is float  # 3.0: a fraction could occur
    assert type(Transform(base=2).read(3)) is float
    assert type(Transform(mask=0xFF).read(0x1234)) is int
    assert Transform().read(True) is True  # nothing configured: the reading as it is


def test_a_power_beyond_the_float_range_is_an_infinity() -> None:
    assert Transform(base=10).read(400) == math.inf
    assert Transform(base=10).read(2**63) == math.inf
    assert Transform(base=0.5).read(2**20) == 0.0


def test_mask_and_shift_need_an_integer() -> None:
    with pytest.raises(ValueError, match=r"mask and shift apply to integers, not 1\.5"):
        Transform(mask=0xFF).read(1.5)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"mask": 0}, "mask must be a positive integer, not 0"),
        ({"shift": 64}, "shift must lie within -63..63, not 64"),
        ({"base": 1}, "base must be a finite number above 0 other than 1, not 1"),
        ({"base": -2}, "base must be a finite number above 0 other than 1"),
        ({"scale": 0}, "scale must be a finite non-zero number"),
        ({"offset": math.inf}, "valueOffset must be a finite number, not inf"),
    ],
)
def test_settings_no_reading_can_use_are_refused(settings: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Transform(**settings)


def test_writes_undo_offset_then_scale_exactly() -> None:
    transform = Transform(scale=0.1, offset=-40)
    assert transform.write(21.5) == Decimal(615)  # twin set 21.5 writes raw 615
    assert to_integer(transform.write(21.5)) == 615
    assert Transform(scale=0.01, offset=0.5).write(0.51) == Decimal(1)
    assert Transform().write(7) == Decimal(7)


@pytest.mark.parametrize(
    ("transform", "why"),
    [
        (Transform(mask=0x00F0), "mask 0xf0 keeps part of the register"),
        (Transform(shift=4), "shift 4 drops the 4 low bit"),
        (Transform(shift=-1), "shift -1 .left. has no exact inverse"),
        (Transform(base=10), "base 10 would need a logarithm"),
    ],
)
def test_writes_through_mask_shift_or_base_are_refused_with_the_reason(
    transform: Transform, why: str
) -> None:
    assert transform.refusal is not None
    with pytest.raises(ValueError, match=why):
        transform.write(1)


def test_place_gives_simulators_a_raw_number_for_any_transform() -> None:
    field = Transform(mask=0x00F0, shift=4)
    raw = field.place(0xA, current=0x1203)
    assert raw == 0x12A3 and field.read(raw) == 0xA  # the bits outside the mask are kept
    assert Transform(base=10).place(1000.0) == pytest.approx(3)
    assert Transform(scale=0.1, offset=-40).place(21.5) == 615.0


# property tests ------------------------------------------------------------------------
SCALES = st.sampled_from([1, 2, 10, 0.1, 0.01, 0.001, -0.5, 2.5, 0.25, 1e-05, 100.0, 0.3])
OFFSETS = st.sampled_from([0, -40, 273.15, 0.5, -0.25, 1000, -1e-3, 12.3456])


def _exact(raw: int, scale: float, offset: float) -> Fraction:
    return raw * Fraction(repr(scale)) + Fraction(repr(offset))


@given(raw=st.integers(-(2**64), 2**64), scale=SCALES, offset=OFFSETS)
def test_an_integer_reading_is_the_exact_result_rounded_once(
    raw: int, scale: float, offset: float
) -> None:
    transform = Transform(scale=scale, offset=offset)
    value = transform.read(raw)
    exact = _exact(raw, scale, offset)
    if transform.whole:
        assert value == exact and type(value) is int
    else:
        assert value == float(exact)  # Fraction -> float rounds correctly, once


@given(raw=st.one_of(st.integers(-(2**64), 2**64), st.floats(allow_nan=False)), scale=SCALES)
def test_scale_alone_is_scale_number(raw: int | float, scale: float) -> None:
    value, expected = Transform(scale=scale).read(raw), scale_number(raw, scale)
    assert repr(value) == repr(expected)


@given(
    raw=st.integers(-(2**31), 2**32),
    scale=SCALES,
    offset=OFFSETS,
)
def test_write_then_read_returns_the_value(raw: int, scale: float, offset: float) -> None:
    """A value the device can hold (some raw integer reads as it) survives a write and a read."""
    transform = Transform(scale=scale, offset=offset)
    value = transform.read(raw)
    written = to_integer(transform.write(value))
    assert written == raw
    assert transform.read(written) == value


@given(
    raw=st.floats(allow_nan=False, allow_infinity=False, min_value=-1e30, max_value=1e30),
    scale=SCALES,
    offset=OFFSETS,
)
def test_write_then_read_of_a_float_register_returns_the_value(
    raw: float, scale: float, offset: float
) -> None:
    transform = Transform(scale=scale, offset=offset)
    value = transform.read(raw)
    assume(math.isfinite(value))
    back = transform.read(float(transform.write(value)))
    assert back == pytest.approx(value, rel=1e-12, abs=1e-12)


@given(
    raw=st.integers(0, 2**16 - 1),
    mask=st.integers(1, 2**16 - 1),
    shift=st.integers(-8, 15),
    scale=SCALES,
    offset=OFFSETS,
)
def test_bit_fields_read_as_masked_and_shifted_integers(
    raw: int, mask: int, shift: int, scale: float, offset: float
) -> None:
    transform = Transform(mask=mask, shift=shift, scale=scale, offset=offset)
    field = raw & mask
    field = field >> shift if shift >= 0 else field << -shift
    assert transform.read(raw) == Transform(scale=scale, offset=offset).read(field)


@given(raw=st.integers(0, 2**64 - 1), bit=st.integers(0, 63), on=st.booleans())
def test_one_bit_written_leaves_the_others(raw: int, bit: int, on: bool) -> None:
    written = write_bit(raw, bit, on)
    assert read_bit(written, bit) is on
    assert written & ~(1 << bit) == raw & ~(1 << bit)
    assert 0 <= written < 2**64


# value maps ----------------------------------------------------------------------------
def test_a_value_map_turns_raw_numbers_into_text_and_back() -> None:
    modes = ValueMap({"0": "Off", "1": "Heat", "2": "Cool", "3": "Auto"})
    assert [modes.text(n) for n in (0, 1, 2, 3)] == ["Off", "Heat", "Cool", "Auto"]
    assert modes.text(3.0) == "Auto" and modes.text(True) == "Heat"
    assert modes.text(7) is None
    assert modes.raw("Cool") == 2
    assert modes.raw("7") == 7  # not strict: a number writes as itself
    with pytest.raises(ValueError, match="'Warm' is not one of Off, Heat, Cool, Auto"):
        modes.raw("Warm")


def test_a_strict_value_map_refuses_what_it_does_not_map() -> None:
    modes = ValueMap({"0": "Off", "1": "On"}, strict=True)
    with pytest.raises(ValueError, match="'7' is not one of Off, On"):
        modes.raw("7")


def test_value_map_keys_are_numbers_in_any_spelling() -> None:
    codes = ValueMap(
        {"0x10": "Overheat", "-1": "Fault", "2.5": "Half", "true": "Yes", "010": "Ten"}
    )
    assert codes.text(16) == "Overheat" and codes.text(-1) == "Fault"
    assert codes.text(2.5) == "Half" and codes.text(1) == "Yes" and codes.text(10) == "Ten"
    assert parse_raw_key(" 0b101 ") == 5
    with pytest.raises(ValueError, match="mapping key 'hot' is not a number"):
        ValueMap({"hot": "Hot"})
    with pytest.raises(ValueError, match="mapping keys '1' and '0x1' name the same number"):
        ValueMap({"1": "One", "0x1": "Also one"})
    with pytest.raises(ValueError, match="mapping key 'nan' is not a number"):
        ValueMap({"nan": "x"})
