"""Coalescing of Modbus reads into few requests, with no I/O.

A Modbus round trip costs about the same whether it carries 1 register or 125, so the number
of requests per cycle decides a mapper's throughput. :func:`plan_reads` merges the values a
device wants into the fewest read requests the protocol allows, and :func:`split_block` cuts a
request's answer back into per-value slices.

Example:
    >>> items = [
    ...     ReadItem("temperature", Table.HOLDING, 0, 2),
    ...     ReadItem("humidity", Table.HOLDING, 2, 1),
    ...     ReadItem("alarm", Table.COIL, 7, 1),
    ... ]
    >>> [(b.table.value, b.start, b.count) for b in plan_reads(items)]
    [('CoilRegister', 7, 1), ('HoldingRegister', 0, 3)]
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from edgedev_modbus.codec import Table

__all__ = (
    "MAX_READ_BITS",
    "MAX_READ_REGISTERS",
    "Block",
    "ReadItem",
    "plan_reads",
    "split_block",
)

MAX_READ_REGISTERS = 125
"""Most registers one read holding/input registers request may ask for (Modbus spec)."""

MAX_READ_BITS = 2000
"""Most bits one read coils/discrete inputs request may ask for (Modbus spec)."""

_ADDRESS_SPACE = 0x10000
_TABLE_ORDER = {table: index for index, table in enumerate(Table)}


@dataclass(frozen=True, slots=True)
class ReadItem:
    """One value to read: ``count`` registers (or bits) of ``table`` from ``offset``.

    Attributes:
        key: The caller's name for the value (e.g. the property name); unique per plan.
        table: The Modbus table the value lives in.
        offset: The 0-based protocol address of its first register or bit.
        count: The registers it spans, or bits on a bit table; at least 1.

    Raises:
        ValueError: When ``offset`` or ``count`` fall outside the 16-bit address space.
    """

    key: str
    table: Table
    offset: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError(f"{self.key}: count must be at least 1, got {self.count}")
        if self.offset < 0 or self.offset + self.count > _ADDRESS_SPACE:
            raise ValueError(
                f"{self.key}: addresses {self.offset}..{self.offset + self.count - 1} "
                f"fall outside 0..{_ADDRESS_SPACE - 1}"
            )

    @property
    def end(self) -> int:
        """The address just past the value's last register or bit."""
        return self.offset + self.count


@dataclass(frozen=True, slots=True)
class Block:
    """One read request: ``count`` registers (or bits) of ``table`` from ``start``.

    Attributes:
        table: The table to read.
        start: The first address to read.
        count: How many registers or bits to read.
        items: The values the answer holds, sorted by offset.
    """

    table: Table
    start: int
    count: int
    items: tuple[ReadItem, ...]

    @property
    def end(self) -> int:
        """The address just past the last register or bit read."""
        return self.start + self.count


def plan_reads(
    items: Iterable[ReadItem],
    *,
    max_gap: int = 0,
    max_registers: int = MAX_READ_REGISTERS,
    max_bits: int = MAX_READ_BITS,
) -> list[Block]:
    """Group read items into the fewest read requests.

    Items of the same table whose addresses are contiguous, overlap, or are separated by at
    most ``max_gap`` addresses that no item uses, share a request, as long as the request
    reads at most ``max_registers`` registers (``max_bits`` bits on coils and discrete inputs).

    The plan is a greedy sweep over the items of each table sorted by offset: an item joins the
    current block when the hole before it is at most ``max_gap`` and the block stays within the
    limit, otherwise it starts a new block. This is optimal: call the first item of each greedy
    block its leader. A block is closed either at a hole wider than ``max_gap`` that no item
    covers at all, which no request may span since it would hold that hole, or because the next
    leader ends more than ``limit`` past the current leader's offset. Leaders' ends strictly
    increase (every item of a block ends within ``limit`` of its leader's offset, before the
    next leader's end), so any two leaders are separated by such a hole or lie farther than
    ``limit`` apart: no request can hold two of them, and any plan needs at least as many
    requests as the sweep makes.

    Args:
        items: The values to read. Identical items may repeat; a key may not name two
            different locations.
        max_gap: Unused addresses a request may read to join two items (0: only contiguous or
            overlapping items merge).
        max_registers: Most registers per request on input and holding registers.
        max_bits: Most bits per request on coils and discrete inputs.

    Returns:
        The requests, ordered by table (coils, discrete inputs, input registers, holding
        registers) and then by start address; each request's items are sorted by offset.

    Raises:
        ValueError: When a limit or ``max_gap`` is out of range, an item alone exceeds its
            table's limit, or a key names two different locations.
    """
    if max_gap < 0:
        raise ValueError(f"max_gap must not be negative, got {max_gap}")
    if max_registers < 1 or max_bits < 1:
        raise ValueError(
            f"limits must be positive, got max_registers={max_registers}, max_bits={max_bits}"
        )
    by_table: dict[Table, list[ReadItem]] = {}
    seen: dict[str, ReadItem] = {}
    for item in items:
        previous = seen.setdefault(item.key, item)
        if previous != item:
            raise ValueError(f"key {item.key!r} names two locations: {previous} and {item}")
        limit = max_bits if item.table.is_bit else max_registers
        if item.count > limit:
            raise ValueError(
                f"{item.key}: {item.count} {'bits' if item.table.is_bit else 'registers'} "
                f"exceed the {limit} one {item.table} request may read"
            )
        by_table.setdefault(item.table, []).append(item)

    blocks: list[Block] = []
    for table in sorted(by_table, key=_TABLE_ORDER.__getitem__):
        limit = max_bits if table.is_bit else max_registers
        ordered = sorted(by_table[table], key=lambda i: (i.offset, i.count, i.key))
        current: list[ReadItem] = []
        start = end = 0
        for item in ordered:
            if current and item.offset - end <= max_gap and max(end, item.end) - start <= limit:
                current.append(item)
                end = max(end, item.end)
                continue
            if current:
                blocks.append(Block(table, start, end - start, tuple(current)))
            current = [item]
            start, end = item.offset, item.end
        blocks.append(Block(table, start, end - start, tuple(current)))
    return blocks


def split_block(
    block: Block, words: Sequence[int] | Sequence[bool]
) -> dict[str, list[int] | list[bool]]:
    """Cut the answer to a read request into each item's registers or bits.

    Args:
        block: The request that was sent.
        words: The registers or bits it returned, from ``block.start`` on. Extra trailing
            entries are ignored (bit reads come back padded to a multiple of 8).

    Returns:
        Each item's slice, keyed by item key.

    Raises:
        ValueError: When ``words`` is shorter than the block.
    """
    if len(words) < block.count:
        raise ValueError(
            f"a read of {block.count} from {block.table} {block.start} returned only {len(words)}"
        )
    result: dict[str, list[int] | list[bool]] = {}
    for item in block.items:
        first = item.offset - block.start
        result[item.key] = list(words[first : first + item.count])
    return result
