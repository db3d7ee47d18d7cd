from __future__ import annotations

import itertools
import random
from collections.abc import Iterator, Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgedev_modbus.codec import Table
from edgedev_modbus.plan import (
    MAX_READ_BITS,
    MAX_READ_REGISTERS,
    Block,
    ReadItem,
    plan_reads,
    split_block,
)

H = Table.HOLDING


def spans(blocks: Sequence[Block]) -> list[tuple[Table, int, int]]:
    return [(block.table, block.start, block.count) for block in blocks]


def keys(blocks: Sequence[Block]) -> list[list[str]]:
    return [[item.key for item in block.items] for block in blocks]


# --- merging --------------------------------------------------------------------------------


def test_empty() -> None:
    assert plan_reads([]) == []


def test_single_item() -> None:
    item = ReadItem("a", H, 10, 2)
    assert plan_reads([item]) == [Block(H, 10, 2, (item,))]


def test_contiguous_items_merge() -> None:
    items = [ReadItem("c", H, 3, 2), ReadItem("a", H, 0, 2), ReadItem("b", H, 2, 1)]
    blocks = plan_reads(items)
    assert spans(blocks) == [(H, 0, 5)]
    assert keys(blocks) == [["a", "b", "c"]]


def test_gap_within_max_gap_merges() -> None:
    items = [ReadItem("a", H, 0, 1), ReadItem("b", H, 3, 1)]  # addresses 1 and 2 unused
    assert spans(plan_reads(items, max_gap=2)) == [(H, 0, 4)]
    assert spans(plan_reads(items, max_gap=5)) == [(H, 0, 4)]


def test_gap_over_max_gap_splits() -> None:
    items = [ReadItem("a", H, 0, 1), ReadItem("b", H, 3, 1)]
    assert spans(plan_reads(items, max_gap=1)) == [(H, 0, 1), (H, 3, 1)]
    assert spans(plan_reads(items)) == [(H, 0, 1), (H, 3, 1)]


def test_gap_is_measured_from_the_furthest_end() -> None:
    # "a" covers 0..9, "b" sits inside it; "c" starts right after "a" although far after "b".
    items = [ReadItem("a", H, 0, 10), ReadItem("b", H, 2, 1), ReadItem("c", H, 10, 1)]
    assert spans(plan_reads(items)) == [(H, 0, 11)]


def test_overlapping_items_merge() -> None:
    items = [ReadItem("a", H, 0, 4), ReadItem("b", H, 2, 4), ReadItem("c", H, 1, 1)]
    blocks = plan_reads(items)
    assert spans(blocks) == [(H, 0, 6)]
    assert keys(blocks) == [["a", "c", "b"]]


def test_identical_items_are_kept() -> None:
    item = ReadItem("a", H, 5, 2)
    blocks = plan_reads([item, item])
    assert blocks == [Block(H, 5, 2, (item, item))]


def test_same_address_under_two_keys() -> None:
    items = [ReadItem("raw", H, 5, 2), ReadItem("alias", H, 5, 2)]
    blocks = plan_reads(items)
    assert spans(blocks) == [(H, 5, 2)]
    assert keys(blocks) == [["alias", "raw"]]
    assert split_block(blocks[0], [1, 2]) == {"alias": [1, 2], "raw": [1, 2]}


def test_key_naming_two_locations_is_an_error() -> None:
    with pytest.raises(ValueError, match="key 'a' names two locations"):
        plan_reads([ReadItem("a", H, 0, 1), ReadItem("a", H, 1, 1)])
    with pytest.raises(ValueError, match="key 'a' names two locations"):
        plan_reads([ReadItem("a", H, 0, 1), ReadItem("a", Table.INPUT, 0, 1)])


# --- limits ---------------------------------------------------------------------------------


def test_register_limit_constants() -> None:
    assert MAX_READ_REGISTERS == 125
    assert MAX_READ_BITS == 2000


@pytest.mark.parametrize("table", [Table.HOLDING, Table.INPUT])
def test_register_limit_exactly_at_the_boundary(table: Table) -> None:
    items = [ReadItem("a", table, 0, 100), ReadItem("b", table, 100, 25)]
    assert spans(plan_reads(items)) == [(table, 0, 125)]
    items = [ReadItem("a", table, 0, 100), ReadItem("b", table, 100, 26)]
    assert spans(plan_reads(items)) == [(table, 0, 100), (table, 100, 26)]


@pytest.mark.parametrize("table", [Table.COIL, Table.DISCRETE_INPUT])
def test_bit_limit_exactly_at_the_boundary(table: Table) -> None:
    items = [ReadItem("a", table, 0, 1), ReadItem("b", table, 1999, 1)]
    assert spans(plan_reads(items, max_gap=2000)) == [(table, 0, 2000)]
    items = [ReadItem("a", table, 0, 1), ReadItem("b", table, 2000, 1)]
    assert spans(plan_reads(items, max_gap=2000)) == [(table, 0, 1), (table, 2000, 1)]


def test_single_item_at_the_limit() -> None:
    assert spans(plan_reads([ReadItem("a", H, 7, 125)])) == [(H, 7, 125)]
    assert spans(plan_reads([ReadItem("a", Table.COIL, 7, 2000)])) == [(Table.COIL, 7, 2000)]
    # Bit tables have the bit limit, register tables the register limit.
    assert spans(plan_reads([ReadItem("a", Table.COIL, 0, 126)])) == [(Table.COIL, 0, 126)]


def test_item_over_the_limit_is_an_error() -> None:
    with pytest.raises(ValueError, match="a: 126 registers exceed the 125 one HoldingRegister"):
        plan_reads([ReadItem("a", H, 0, 126)])
    with pytest.raises(ValueError, match="b: 2001 bits exceed the 2000 one CoilRegister"):
        plan_reads([ReadItem("b", Table.COIL, 0, 2001)])
    with pytest.raises(ValueError, match="c: 3 registers exceed the 2"):
        plan_reads([ReadItem("c", Table.INPUT, 0, 3)], max_registers=2)


def test_limit_splits_a_long_run_into_full_blocks() -> None:
    items = [ReadItem(f"r{i}", H, i, 1) for i in range(300)]
    assert spans(plan_reads(items)) == [(H, 0, 125), (H, 125, 125), (H, 250, 50)]


def test_custom_limits() -> None:
    items = [ReadItem(f"r{i}", H, 2 * i, 2) for i in range(5)]
    assert spans(plan_reads(items, max_registers=4)) == [(H, 0, 4), (H, 4, 4), (H, 8, 2)]
    bits = [ReadItem(f"b{i}", Table.COIL, i, 1) for i in range(5)]
    assert spans(plan_reads(bits, max_bits=2)) == [
        (Table.COIL, 0, 2),
        (Table.COIL, 2, 2),
        (Table.COIL, 4, 1),
    ]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_gap": -1}, "max_gap must not be negative"),
        ({"max_registers": 0}, "limits must be positive"),
        ({"max_bits": 0}, "limits must be positive"),
    ],
)
def test_bad_options(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        plan_reads([], **kwargs)


# --- tables and order -----------------------------------------------------------------------


def test_mixed_tables_never_merge_and_come_in_table_order() -> None:
    items = [
        ReadItem("h", Table.HOLDING, 0, 1),
        ReadItem("i", Table.INPUT, 0, 1),
        ReadItem("d", Table.DISCRETE_INPUT, 0, 1),
        ReadItem("c", Table.COIL, 0, 1),
        ReadItem("h2", Table.HOLDING, 1, 1),
        ReadItem("c2", Table.COIL, 50, 1),
    ]
    assert spans(plan_reads(items)) == [
        (Table.COIL, 0, 1),
        (Table.COIL, 50, 1),
        (Table.DISCRETE_INPUT, 0, 1),
        (Table.INPUT, 0, 1),
        (Table.HOLDING, 0, 2),
    ]


def test_output_does_not_depend_on_input_order() -> None:
    items = [
        ReadItem(f"k{i}", table, (i * 37) % 200, 1 + i % 4)
        for i, table in zip(range(60), list(Table) * 15, strict=True)
    ]
    expected = plan_reads(items, max_gap=3)
    rng = random.Random(4)
    for _ in range(10):
        rng.shuffle(items)
        assert plan_reads(items, max_gap=3) == expected


def test_accepts_any_iterable() -> None:
    blocks = plan_reads(ReadItem(f"r{i}", H, i, 1) for i in range(3))
    assert spans(blocks) == [(H, 0, 3)]


# --- items and splitting --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offset", "count", "message"),
    [
        (0, 0, "count must be at least 1"),
        (-1, 1, "fall outside"),
        (65535, 2, "fall outside"),
    ],
)
def test_read_item_validation(offset: int, count: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ReadItem("x", H, offset, count)


def test_read_item_at_the_top_of_the_address_space() -> None:
    item = ReadItem("x", H, 65535, 1)
    assert item.end == 65536


def test_split_block() -> None:
    items = [ReadItem("a", H, 10, 2), ReadItem("b", H, 11, 1), ReadItem("c", H, 14, 1)]
    (block,) = plan_reads(items, max_gap=2)
    assert (block.start, block.count, block.end) == (10, 5, 15)
    assert split_block(block, [1, 2, 3, 4, 5]) == {"a": [1, 2], "b": [2], "c": [5]}


def test_split_block_of_bits_ignores_padding() -> None:
    items = [ReadItem("a", Table.COIL, 3, 1), ReadItem("b", Table.COIL, 4, 2)]
    (block,) = plan_reads(items)
    padded = [True, False, True, False, False, False, False, False]  # bit reads pad to 8
    assert split_block(block, padded) == {"a": [True], "b": [False, True]}


def test_split_block_too_short() -> None:
    (block,) = plan_reads([ReadItem("a", H, 0, 3)])
    with pytest.raises(ValueError, match="a read of 3 from HoldingRegister 0 returned only 2"):
        split_block(block, [1, 2])


# --- properties against a brute-force optimum -----------------------------------------------


def valid_group(items: Sequence[ReadItem], max_gap: int, limit: int) -> bool:
    """Whether one request can hold ``items``: its span fits, no unused run exceeds max_gap."""
    if len({item.table for item in items}) != 1:
        return False
    ordered = sorted(items, key=lambda item: item.offset)
    start = ordered[0].offset
    end = ordered[0].end
    for item in ordered[1:]:
        if item.offset - end > max_gap:
            return False
        end = max(end, item.end)
    return end - start <= limit


def partitions(items: list[ReadItem]) -> Iterator[list[list[ReadItem]]]:
    if not items:
        yield []
        return
    first, rest = items[0], items[1:]
    for partition in partitions(rest):
        yield [[first], *partition]
        for index in range(len(partition)):
            yield [*partition[:index], [first, *partition[index]], *partition[index + 1 :]]


def optimal_block_count(
    items: list[ReadItem], max_gap: int, max_registers: int, max_bits: int
) -> int:
    best = len(items)
    for partition in partitions(items):
        if len(partition) < best and all(
            valid_group(group, max_gap, max_bits if group[0].table.is_bit else max_registers)
            for group in partition
        ):
            best = len(partition)
    return best


@st.composite
def plans(draw: st.DrawFn) -> tuple[list[ReadItem], int, int, int]:
    max_registers = draw(st.integers(1, 10))
    max_bits = draw(st.integers(1, 10))
    max_gap = draw(st.integers(0, 3))
    count = draw(st.integers(0, 7))
    items = []
    for index in range(count):
        table = draw(st.sampled_from([Table.HOLDING, Table.HOLDING, Table.COIL]))
        limit = max_bits if table.is_bit else max_registers
        size = draw(st.integers(1, limit))
        offset = draw(st.integers(0, 24))
        items.append(ReadItem(f"k{index}", table, offset, size))
    return items, max_gap, max_registers, max_bits


@given(plans())
def test_plan_properties(case: tuple[list[ReadItem], int, int, int]) -> None:
    items, max_gap, max_registers, max_bits = case
    blocks = plan_reads(items, max_gap=max_gap, max_registers=max_registers, max_bits=max_bits)

    # Every item is in exactly one block.
    placed = [item.key for block in blocks for item in block.items]
    assert sorted(placed) == sorted(item.key for item in items)

    for block in blocks:
        limit = max_bits if block.table.is_bit else max_registers
        assert 1 <= block.count <= limit
        assert block.items == tuple(sorted(block.items, key=lambda i: (i.offset, i.count, i.key)))
        assert all(item.table is block.table for item in block.items)
        # The block reads exactly from its first item to its furthest end.
        assert block.start == min(item.offset for item in block.items)
        assert block.end == max(item.end for item in block.items)
        assert valid_group(block.items, max_gap, limit)

    # Deterministic order: table, then start; starts and ends strictly increase per table.
    order = {table: index for index, table in enumerate(Table)}
    assert spans(blocks) == sorted(spans(blocks), key=lambda s: (order[s[0]], s[1]))
    for before, after in itertools.pairwise(blocks):
        if before.table is after.table:
            assert before.start < after.start
            assert before.end < after.end

    # Minimal: as few blocks as the best partition found by brute force.
    assert len(blocks) == optimal_block_count(items, max_gap, max_registers, max_bits)


@given(plans(), st.randoms())
def test_split_gives_each_item_its_words(
    case: tuple[list[ReadItem], int, int, int], rng: random.Random
) -> None:
    items, max_gap, max_registers, max_bits = case
    memory = {table: [rng.randrange(0x10000) for _ in range(40)] for table in Table}
    for block in plan_reads(items, max_gap=max_gap, max_registers=max_registers, max_bits=max_bits):
        words = memory[block.table][block.start : block.end]
        sliced = split_block(block, words)
        for item in block.items:
            assert sliced[item.key] == memory[item.table][item.offset : item.end]
