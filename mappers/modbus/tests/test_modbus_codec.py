from __future__ import annotations

import math
import struct
from decimal import ROUND_CEILING, ROUND_FLOOR, Context, Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgedev.twin import scale_number
from edgedev_modbus.codec import (
    DataType,
    Table,
    check_layout,
    decode_bits,
    decode_registers,
    default_data_type,
    encode_registers,
    register_count,
    unscale_value,
)

INTEGER_RANGES = {
    DataType.INT16: (-(2**15), 2**15 - 1),
    DataType.UINT16: (0, 2**16 - 1),
    DataType.INT32: (-(2**31), 2**31 - 1),
    DataType.UINT32: (0, 2**32 - 1),
    DataType.INT64: (-(2**63), 2**63 - 1),
    DataType.UINT64: (0, 2**64 - 1),
}
WIDTHS = {
    DataType.INT16: 1,
    DataType.UINT16: 1,
    DataType.INT32: 2,
    DataType.UINT32: 2,
    DataType.INT64: 4,
    DataType.UINT64: 4,
    DataType.FLOAT32: 2,
    DataType.FLOAT64: 4,
    DataType.BOOLEAN: 1,
}
SWAPS = [(False, False), (False, True), (True, False), (True, True)]


def float32(value: float) -> float:
    result: float = struct.unpack(">f", struct.pack(">f", value))[0]
    return result


def float32_words(value: float) -> list[int]:
    (bits,) = struct.unpack(">I", struct.pack(">f", value))
    return [bits >> 16, bits & 0xFFFF]


def significant_digits(value: float) -> int:
    return len(Decimal(repr(value)).normalize().as_tuple().digits)


def fewest_digits_float32(value: float) -> int:
    """Reference: the fewest significant digits of a decimal that packs back to ``value``.

    Any decimal with ``p`` digits that round-trips lies in the interval of reals that round to
    ``value``; that interval holds ``value``, so the nearest ``p``-digit decimal below or above
    ``value`` round-trips too: checking those two is exhaustive.
    """
    exact = Decimal(value)
    for digits in range(1, 10):
        for rounding in (ROUND_FLOOR, ROUND_CEILING):
            candidate = float(Context(prec=digits, rounding=rounding).plus(exact))
            try:
                if float32(candidate) == value:
                    return digits
            except OverflowError:
                pass
    raise AssertionError(f"no decimal of at most 9 digits gives {value!r}")


# --- tables and data types ----------------------------------------------------------------


def test_table_values_are_kubeedge_names() -> None:
    assert [t.value for t in Table] == [
        "CoilRegister",
        "DiscreteInputRegister",
        "InputRegister",
        "HoldingRegister",
    ]
    assert Table("HoldingRegister") is Table.HOLDING


@pytest.mark.parametrize(
    ("table", "is_bit", "writable"),
    [
        (Table.COIL, True, True),
        (Table.DISCRETE_INPUT, True, False),
        (Table.INPUT, False, False),
        (Table.HOLDING, False, True),
    ],
)
def test_table_properties(table: Table, is_bit: bool, writable: bool) -> None:
    assert table.is_bit is is_bit
    assert table.writable is writable


def test_data_type_values() -> None:
    assert [d.value for d in DataType] == [
        "int16",
        "uint16",
        "int32",
        "uint32",
        "int64",
        "uint64",
        "float32",
        "float64",
        "boolean",
        "string",
        "bytes",
    ]


@pytest.mark.parametrize(("data_type", "width"), WIDTHS.items())
def test_register_count_fixed(data_type: DataType, width: int) -> None:
    assert register_count(data_type, 7) == width


def test_register_count_string() -> None:
    assert register_count(DataType.STRING, 5) == 5
    with pytest.raises(ValueError, match="string"):
        register_count(DataType.STRING, 0)


@pytest.mark.parametrize(
    ("model_type", "table", "limit", "expected"),
    [
        ("INT", Table.HOLDING, 1, DataType.INT16),
        ("INT", Table.INPUT, 2, DataType.INT32),
        ("INT", Table.HOLDING, 4, DataType.INT64),
        ("int", Table.HOLDING, 1, DataType.INT16),
        ("FLOAT", Table.HOLDING, 2, DataType.FLOAT32),
        ("FLOAT", Table.INPUT, 4, DataType.FLOAT64),
        ("DOUBLE", Table.HOLDING, 4, DataType.FLOAT64),
        ("DOUBLE", Table.HOLDING, 2, DataType.FLOAT32),
        ("BOOLEAN", Table.COIL, 1, DataType.BOOLEAN),
        ("BOOLEAN", Table.DISCRETE_INPUT, 1, DataType.BOOLEAN),
        ("BOOLEAN", Table.HOLDING, 1, DataType.BOOLEAN),
        ("STRING", Table.HOLDING, 8, DataType.STRING),
        ("STRING", Table.INPUT, 1, DataType.STRING),
    ],
)
def test_default_data_type(model_type: str, table: Table, limit: int, expected: DataType) -> None:
    assert default_data_type(model_type, table, limit) is expected


@pytest.mark.parametrize(
    ("model_type", "table", "limit", "message"),
    [
        ("FLOAT", Table.COIL, 2, "CoilRegister holds single bits"),
        ("DOUBLE", Table.DISCRETE_INPUT, 1, "DiscreteInputRegister holds single bits"),
        ("STRING", Table.COIL, 4, "dataType must be boolean"),
        ("INT", Table.HOLDING, 3, "INT property spans 1 or 2 or 4 registers, not limit 3"),
        ("FLOAT", Table.HOLDING, 1, "FLOAT property spans 2 or 4 registers"),
        ("DOUBLE", Table.HOLDING, 8, "DOUBLE property"),
        ("BOOLEAN", Table.COIL, 2, "boolean on CoilRegister spans 1 bit"),
        ("BOOLEAN", Table.HOLDING, 2, "boolean spans 1 register"),
        ("STRING", Table.HOLDING, 0, "at least 1 register"),
        ("BYTES", Table.COIL, 1, "dataType must be boolean"),
        ("COMPLEX", Table.HOLDING, 2, "no Modbus dataType"),
    ],
)
def test_default_data_type_errors(model_type: str, table: Table, limit: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        default_data_type(model_type, table, limit)


def test_check_layout() -> None:
    check_layout(DataType.UINT32, Table.INPUT, 2)
    check_layout(DataType.BOOLEAN, Table.COIL, 1)
    check_layout(DataType.STRING, Table.HOLDING, 10)
    with pytest.raises(ValueError, match="float32 spans 2 register"):
        check_layout(DataType.FLOAT32, Table.HOLDING, 4)
    with pytest.raises(ValueError, match="dataType must be boolean, not int16"):
        check_layout(DataType.INT16, Table.COIL, 1)


# --- exact words ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("swap_bytes", "swap_registers", "words"),
    [
        (False, False, [0x0102, 0x0304]),
        (False, True, [0x0304, 0x0102]),
        (True, False, [0x0201, 0x0403]),
        (True, True, [0x0403, 0x0201]),
    ],
)
@pytest.mark.parametrize("data_type", [DataType.INT32, DataType.UINT32])
def test_int32_words(
    data_type: DataType, swap_bytes: bool, swap_registers: bool, words: list[int]
) -> None:
    swaps = {"swap_bytes": swap_bytes, "swap_registers": swap_registers}
    assert encode_registers(0x01020304, data_type, 2, **swaps) == words
    assert decode_registers(words, data_type, **swaps) == 0x01020304


@pytest.mark.parametrize(
    ("swap_bytes", "swap_registers", "words"),
    [
        (False, False, [0x0102, 0x0304, 0x0506, 0x0708]),
        (False, True, [0x0708, 0x0506, 0x0304, 0x0102]),
        (True, False, [0x0201, 0x0403, 0x0605, 0x0807]),
        (True, True, [0x0807, 0x0605, 0x0403, 0x0201]),
    ],
)
@pytest.mark.parametrize("data_type", [DataType.INT64, DataType.UINT64])
def test_int64_words(
    data_type: DataType, swap_bytes: bool, swap_registers: bool, words: list[int]
) -> None:
    swaps = {"swap_bytes": swap_bytes, "swap_registers": swap_registers}
    assert encode_registers(0x0102030405060708, data_type, 4, **swaps) == words
    assert decode_registers(words, data_type, **swaps) == 0x0102030405060708


@pytest.mark.parametrize(
    ("data_type", "value", "words"),
    [
        (DataType.INT16, -2, [0xFFFE]),
        (DataType.INT16, 0x0102, [0x0102]),
        (DataType.INT16, -(2**15), [0x8000]),
        (DataType.UINT16, 65535, [0xFFFF]),
        (DataType.INT32, -1, [0xFFFF, 0xFFFF]),
        (DataType.INT32, -(2**31), [0x8000, 0x0000]),
        (DataType.UINT32, 2**32 - 1, [0xFFFF, 0xFFFF]),
        (DataType.INT64, -2, [0xFFFF, 0xFFFF, 0xFFFF, 0xFFFE]),
        (DataType.UINT64, 2**64 - 1, [0xFFFF] * 4),
        (DataType.FLOAT32, 1.0, [0x3F80, 0x0000]),
        (DataType.FLOAT32, -2.5, [0xC020, 0x0000]),
        (DataType.FLOAT32, 0.1, [0x3DCC, 0xCCCD]),
        (DataType.FLOAT64, 1.0, [0x3FF0, 0, 0, 0]),
        (DataType.FLOAT64, 0.1, [0x3FB9, 0x9999, 0x9999, 0x999A]),
        (DataType.BOOLEAN, True, [1]),
        (DataType.BOOLEAN, False, [0]),
    ],
)
def test_fixed_words(data_type: DataType, value: float, words: list[int]) -> None:
    assert encode_registers(value, data_type, len(words)) == words
    assert decode_registers(words, data_type) == value


def test_float32_swaps() -> None:
    assert encode_registers(1.0, DataType.FLOAT32, 2, swap_registers=True) == [0x0000, 0x3F80]
    assert encode_registers(1.0, DataType.FLOAT32, 2, swap_bytes=True) == [0x803F, 0x0000]
    assert encode_registers(-2.5, DataType.FLOAT32, 2, swap_bytes=True, swap_registers=True) == [
        0x0000,
        0x20C0,
    ]
    assert decode_registers([0xCC3D, 0xCDCC], DataType.FLOAT32, swap_bytes=True) == 0.1
    assert decode_registers([0xCCCD, 0x3DCC], DataType.FLOAT32, swap_registers=True) == 0.1


def test_float64_swaps() -> None:
    words = [0x3FF0, 0, 0, 0]
    assert encode_registers(1.0, DataType.FLOAT64, 4, swap_registers=True) == words[::-1]
    assert encode_registers(1.0, DataType.FLOAT64, 4, swap_bytes=True) == [0xF03F, 0, 0, 0]
    assert (
        decode_registers([0, 0, 0, 0xF03F], DataType.FLOAT64, swap_bytes=True, swap_registers=True)
        == 1.0
    )


def test_boolean_register_is_true_when_non_zero() -> None:
    assert decode_registers([0x0100], DataType.BOOLEAN) is True
    assert decode_registers([0xFFFF], DataType.BOOLEAN) is True
    assert decode_registers([0], DataType.BOOLEAN, swap_bytes=True) is False
    assert encode_registers(True, DataType.BOOLEAN, 1, swap_bytes=True) == [0x0100]
    assert encode_registers(1, DataType.BOOLEAN, 1) == [1]
    assert encode_registers(0, DataType.BOOLEAN, 1) == [0]


def test_decode_bits() -> None:
    assert decode_bits([True]) is True
    assert decode_bits([False]) is False
    with pytest.raises(ValueError, match="1 bit"):
        decode_bits([True, False])
    with pytest.raises(ValueError, match="1 bit"):
        decode_bits([])


# --- strings --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "count", "swaps", "words"),
    [
        ("AB", 1, {}, [0x4142]),
        ("ABC", 2, {}, [0x4142, 0x4300]),
        ("", 2, {}, [0, 0]),
        ("ABCD", 2, {"swap_bytes": True}, [0x4241, 0x4443]),
        ("ABCD", 2, {"swap_registers": True}, [0x4344, 0x4142]),
        ("ABCD", 2, {"swap_bytes": True, "swap_registers": True}, [0x4443, 0x4241]),
    ],
)
def test_string_words(value: str, count: int, swaps: dict[str, bool], words: list[int]) -> None:
    assert encode_registers(value, DataType.STRING, count, **swaps) == words
    assert decode_registers(words, DataType.STRING, **swaps) == value


def test_string_strips_trailing_nuls_and_spaces_only() -> None:
    words = [0x2041, 0x2042, 0x2000, 0x0000]  # " A B " + NULs
    assert decode_registers(words, DataType.STRING) == " A B"


def test_string_replaces_non_ascii() -> None:
    assert decode_registers([0x41FF, 0x4200], DataType.STRING) == "A\ufffdB"


def test_string_fills_every_register() -> None:
    assert decode_registers([0x4142, 0x4344, 0x4546], DataType.STRING) == "ABCDEF"
    assert encode_registers("ABCDEF", DataType.STRING, 3) == [0x4142, 0x4344, 0x4546]


# --- float32 without noise ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.1, "0.1"),
        (23.5, "23.5"),
        (-0.3, "-0.3"),
        (3.14159, "3.14159"),
        (1e-45, "1e-45"),  # smallest subnormal
        (3.4028235e38, "3.4028235e+38"),  # largest finite float32
        (16777217.0, "16777216.0"),  # 2**24 + 1 is not a float32
        (100.0, "100.0"),
        (0.0, "0.0"),
        (-0.0, "-0.0"),
    ],
)
def test_float32_decodes_to_shortest_repr(value: float, text: str) -> None:
    decoded = decode_registers(float32_words(value), DataType.FLOAT32)
    assert repr(decoded) == text


def test_float32_non_finite() -> None:
    assert decode_registers([0x7F80, 0], DataType.FLOAT32) == math.inf
    assert decode_registers([0xFF80, 0], DataType.FLOAT32) == -math.inf
    decoded = decode_registers([0x7FC0, 0], DataType.FLOAT32)
    assert isinstance(decoded, float)
    assert math.isnan(decoded)
    assert encode_registers(math.inf, DataType.FLOAT32, 2) == [0x7F80, 0]


def check_shortest_float32(bits: int) -> None:
    exact: float = struct.unpack(">f", bits.to_bytes(4, "big"))[0]
    decoded = decode_registers([bits >> 16, bits & 0xFFFF], DataType.FLOAT32)
    assert isinstance(decoded, float)
    if math.isnan(exact):
        assert math.isnan(decoded)
        return
    if math.isinf(exact):
        assert decoded == exact
        return
    assert float32(decoded) == exact
    assert math.copysign(1.0, decoded) == math.copysign(1.0, exact)
    assert significant_digits(decoded) == fewest_digits_float32(exact)
    assert encode_registers(decoded, DataType.FLOAT32, 2) == [bits >> 16, bits & 0xFFFF]


@given(st.integers(0, 0xFFFFFFFF))
def test_float32_shortest_for_any_bits(bits: int) -> None:
    check_shortest_float32(bits)


@pytest.mark.parametrize("sign", [0, 1])
def test_float32_shortest_at_every_power_of_two(sign: int) -> None:
    # The spacing below a power of two is half the spacing above: the nearest short decimal
    # may miss while a farther one above still rounds back.
    for exponent in range(1, 255):
        check_shortest_float32(sign << 31 | exponent << 23)
    for bit in range(23):
        check_shortest_float32(sign << 31 | 1 << bit)  # subnormal powers of two


# --- round trips ----------------------------------------------------------------------------


@st.composite
def integer_cases(draw: st.DrawFn) -> tuple[DataType, int]:
    data_type = draw(st.sampled_from(sorted(INTEGER_RANGES)))
    low, high = INTEGER_RANGES[data_type]
    return data_type, draw(st.integers(low, high))


@given(integer_cases(), st.sampled_from(SWAPS))
def test_integer_round_trip(case: tuple[DataType, int], swaps: tuple[bool, bool]) -> None:
    data_type, value = case
    swap_bytes, swap_registers = swaps
    words = encode_registers(
        value,
        data_type,
        WIDTHS[data_type],
        swap_bytes=swap_bytes,
        swap_registers=swap_registers,
    )
    assert len(words) == WIDTHS[data_type]
    assert all(0 <= word <= 0xFFFF for word in words)
    decoded = decode_registers(
        words, data_type, swap_bytes=swap_bytes, swap_registers=swap_registers
    )
    assert type(decoded) is int
    assert decoded == value


@given(st.floats(width=32, allow_nan=False), st.sampled_from(SWAPS))
def test_float32_round_trip(value: float, swaps: tuple[bool, bool]) -> None:
    swap_bytes, swap_registers = swaps
    words = encode_registers(
        value, DataType.FLOAT32, 2, swap_bytes=swap_bytes, swap_registers=swap_registers
    )
    decoded = decode_registers(
        words, DataType.FLOAT32, swap_bytes=swap_bytes, swap_registers=swap_registers
    )
    assert isinstance(decoded, float)
    assert float32(decoded) == value
    assert math.copysign(1.0, decoded) == math.copysign(1.0, value)


@given(st.floats(allow_nan=False), st.sampled_from(SWAPS))
def test_float64_round_trip(value: float, swaps: tuple[bool, bool]) -> None:
    swap_bytes, swap_registers = swaps
    words = encode_registers(
        value, DataType.FLOAT64, 4, swap_bytes=swap_bytes, swap_registers=swap_registers
    )
    decoded = decode_registers(
        words, DataType.FLOAT64, swap_bytes=swap_bytes, swap_registers=swap_registers
    )
    assert decoded == value
    assert isinstance(decoded, float)
    assert math.copysign(1.0, decoded) == math.copysign(1.0, value)


@given(
    st.sampled_from(sorted(INTEGER_RANGES)),
    st.lists(st.integers(0, 0xFFFF), min_size=4, max_size=4),
    st.sampled_from(SWAPS),
)
def test_integer_words_round_trip(
    data_type: DataType, words: list[int], swaps: tuple[bool, bool]
) -> None:
    words = words[: WIDTHS[data_type]]
    swap_bytes, swap_registers = swaps
    value = decode_registers(words, data_type, swap_bytes=swap_bytes, swap_registers=swap_registers)
    assert isinstance(value, int)
    again = encode_registers(
        value, data_type, len(words), swap_bytes=swap_bytes, swap_registers=swap_registers
    )
    assert again == words


@given(
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=12),
    st.integers(0, 3),
    st.sampled_from(SWAPS),
)
def test_string_round_trip(value: str, spare: int, swaps: tuple[bool, bool]) -> None:
    swap_bytes, swap_registers = swaps
    count = max(1, (len(value) + 1) // 2 + spare)
    words = encode_registers(
        value, DataType.STRING, count, swap_bytes=swap_bytes, swap_registers=swap_registers
    )
    assert len(words) == count
    decoded = decode_registers(
        words, DataType.STRING, swap_bytes=swap_bytes, swap_registers=swap_registers
    )
    assert decoded == value


# --- encoding errors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "data_type", "count", "message"),
    [
        (70000, DataType.INT16, 1, r"70000 does not fit int16 \(range -32768\.\.32767\)"),
        (-1, DataType.UINT16, 1, "does not fit uint16"),
        (2**31, DataType.INT32, 2, "does not fit int32"),
        (-1, DataType.UINT32, 2, "does not fit uint32"),
        (2**63, DataType.INT64, 4, "does not fit int64"),
        (2**64, DataType.UINT64, 4, "does not fit uint64"),
        (1.5, DataType.INT16, 1, "1.5 is not an integer: it does not fit int16"),
        (math.nan, DataType.INT32, 2, "does not fit int32"),
        ("12", DataType.INT16, 1, "does not fit int16"),
        (1e39, DataType.FLOAT32, 2, "does not fit float32"),
        ("1.0", DataType.FLOAT64, 4, "does not fit float64"),
        ("ABCDEFGHIJ", DataType.STRING, 2, "10 characters: it does not fit string over 2"),
        ("caf\u00e9", DataType.STRING, 4, "not ASCII: it does not fit string"),
        (12, DataType.STRING, 2, "does not fit string"),
        (2, DataType.BOOLEAN, 1, "does not fit boolean"),
        ("true", DataType.BOOLEAN, 1, "does not fit boolean"),
        (1, DataType.INT32, 1, "int32 spans 2 register"),
        (1.0, DataType.FLOAT64, 2, "float64 spans 4 register"),
        ("A", DataType.STRING, 0, "at least 1 register"),
    ],
)
def test_encode_errors(value: object, data_type: DataType, count: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        encode_registers(value, data_type, count)  # type: ignore[arg-type]


def test_encode_accepts_integral_floats_for_integers() -> None:
    assert encode_registers(3.0, DataType.INT16, 1) == [3]
    assert encode_registers(True, DataType.UINT16, 1) == [1]


@pytest.mark.parametrize(
    ("words", "data_type", "message"),
    [
        ([1], DataType.INT32, "int32 spans 2 register"),
        ([1, 2, 3], DataType.FLOAT32, "float32 spans 2 register"),
        ([1, 2], DataType.BOOLEAN, "boolean spans 1 register"),
        ([], DataType.STRING, "at least 1 register"),
        ([0x10000], DataType.UINT16, "not in 0..0xFFFF"),
        ([-1], DataType.INT16, "not in 0..0xFFFF"),
    ],
)
def test_decode_errors(words: list[int], data_type: DataType, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        decode_registers(words, data_type)


# --- scaling --------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [0, 0.0, math.inf, -math.inf, math.nan])
def test_bad_scale(scale: float) -> None:
    with pytest.raises(ValueError, match="scale must be a finite non-zero number"):
        unscale_value(1, scale, DataType.INT16)


@pytest.mark.parametrize(
    ("value", "scale", "data_type", "expected"),
    [
        (23.5, 0.1, DataType.INT16, 235),
        (0.3, 0.1, DataType.UINT16, 3),
        (23.45, 0.1, DataType.INT16, 234),  # 234.5: ties to even
        (23.55, 0.1, DataType.INT16, 236),  # 235.5: ties to even
        (23.46, 0.1, DataType.INT16, 235),
        (-1.234, 0.001, DataType.INT32, -1234),
        (2350, 10, DataType.INT32, 235),
        (7, 1, DataType.INT64, 7),
        (7.0, 1, DataType.UINT64, 7),
        (2**64 - 1, 1, DataType.UINT64, 2**64 - 1),
        (23.5, 0.1, DataType.FLOAT32, 235.0),
        (0.3, 3, DataType.FLOAT64, 0.1),
        (1, 1, DataType.FLOAT64, 1.0),
    ],
)
def test_unscale_value(value: float, scale: float, data_type: DataType, expected: float) -> None:
    result = unscale_value(value, scale, data_type)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    ("value", "scale", "data_type", "message"),
    [
        (3276.8, 0.1, DataType.INT16, "gives 32768, which does not fit int16"),
        (-0.1, 0.1, DataType.UINT16, "gives -1, which does not fit uint16"),
        (70000, 1, DataType.UINT16, "does not fit uint16"),
        (math.inf, 1, DataType.INT32, "does not fit int32"),
        (math.nan, 0.1, DataType.INT64, "does not fit int64"),
        (1, 0.1, DataType.BOOLEAN, "boolean values cannot be scaled"),
        (1, 2, DataType.STRING, "string values cannot be scaled"),
    ],
)
def test_unscale_errors(value: float, scale: float, data_type: DataType, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        unscale_value(value, scale, data_type)


def test_unscale_passes_non_numbers_and_non_finite_floats() -> None:
    assert unscale_value(True, 1, DataType.BOOLEAN) is True
    assert unscale_value(math.inf, 0.5, DataType.FLOAT32) == math.inf


@given(
    st.integers(-(2**31), 2**31 - 1),
    st.sampled_from([0.1, 0.01, 0.001, 0.5, 0.25, 2, 10, 1, -0.1, 1.5]),
)
def test_scale_then_unscale_is_identity(raw: int, scale: float) -> None:
    scaled = scale_number(raw, scale)
    assert unscale_value(scaled, scale, DataType.INT32) == raw
    assert unscale_value(scaled, scale, DataType.FLOAT64) == raw


@given(st.integers(-(2**15), 2**15 - 1), st.sampled_from([0.1, 0.01, 0.001]))
def test_scaled_repr_is_the_decimal_product(raw: int, scale: float) -> None:
    expected = Decimal(raw) * Decimal(repr(scale))
    assert Decimal(repr(scale_number(raw, scale))) == expected
