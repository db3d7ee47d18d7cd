"""Decimal arithmetic of device numbers: a scale with no float noise, the same on every path."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgedev.twin import (
    check_scale,
    scale_number,
    scaler,
    to_decimal,
    to_integer,
    to_number,
    unscale_number,
)


@pytest.mark.parametrize(
    ("raw", "scale", "expected"),
    [
        (235, 0.1, 23.5),
        (3, 0.1, 0.3),
        (1, 0.1, 0.1),
        (7, 0.01, 0.07),
        (-1234, 0.001, -1.234),
        (235, 1, 235),
        (235, 1.0, 235),
        (235, 10, 2350),
        (12, 2.0, 24),
        (5, 0.5, 2.5),
        (0.1, 3, 0.3),
        (0.7, 0.1, 0.07),
        (23.5, 1, 23.5),
        (1.5, -2, -3.0),
    ],
)
def test_scaling_has_no_float_noise(raw: float, scale: float, expected: float) -> None:
    scaled = scale_number(raw, scale)
    assert scaled == expected
    assert repr(scaled) == repr(expected)


def test_the_type_of_a_scaled_number_follows_the_scale() -> None:
    assert type(scale_number(235, 1)) is int
    assert type(scale_number(235, 10)) is int
    assert type(scale_number(235, 0.1)) is float
    assert type(scale_number(2, 0.5)) is float  # 1.0: a fractional scale makes a float
    assert scale_number(True, 0.1) is True
    assert scale_number(math.inf, 0.1) == math.inf
    assert math.isnan(scale_number(math.nan, 2))


@pytest.mark.parametrize("scale", [0, 0.0, math.inf, -math.inf, math.nan])
def test_a_scale_no_write_can_undo_is_refused(scale: float) -> None:
    for call in (check_scale, scaler, lambda s: scale_number(1, s), lambda s: unscale_number(1, s)):
        with pytest.raises(ValueError, match="scale must be a finite non-zero number"):
            call(scale)


SCALES = st.one_of(
    st.sampled_from([1, 1.0, 0.1, 0.01, 2, -0.5, 1e-05, 2.5, 100.0, 0.3, 1e20, 3e-300]),
    st.floats(allow_nan=False, allow_infinity=False).filter(bool),
)
RAWS = st.one_of(
    st.integers(-(2**64), 2**64),
    st.floats(allow_nan=False),
    st.booleans(),
)


@given(factor=SCALES, raw=RAWS)
def test_the_hot_path_scaler_gives_exactly_scale_number(factor: float, raw: int | float) -> None:
    fast, slow = scaler(factor)(raw), scale_number(raw, factor)
    assert type(fast) is type(slow)
    assert repr(fast) == repr(slow)


def test_decimal_helpers() -> None:
    assert to_decimal(0.1) == Decimal("0.1") and to_decimal(7) == Decimal(7)
    with pytest.raises(ValueError, match="not a finite number"):
        to_decimal(math.nan)
    assert to_integer(Decimal("2.5")) == 2 and to_integer(Decimal("3.5")) == 4
    assert to_number(Decimal("23.0")) == 23 and type(to_number(Decimal("23.0"))) is int
    assert to_number(Decimal("23.5")) == 23.5
