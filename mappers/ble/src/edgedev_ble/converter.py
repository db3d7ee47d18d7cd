"""KubeEdge's BLE ``dataConverter``, as pure functions: bytes to a number and back.

Reading: the bytes at ``startIndex..endIndex`` (taken downwards when ``startIndex`` is the
larger, which reads a little-endian field) make an unsigned big-endian integer in the order
taken (two's complement with ``signed``); it is shifted left by ``shiftLeft``, then right by
``shiftRight``, ANDed with ``mask``, and ``orderOfOperations`` is applied in order, in
decimal arithmetic so that 2345 divided by 100 is exactly 23.45.

:func:`place` is the inverse, used by the simulator to build a characteristic value that
reads back as a given number; several fields (and bit fields) may share one value.
"""

from __future__ import annotations

from decimal import Decimal

from edgedev.twin import DECIMAL_CONTEXT, to_decimal, to_integer
from edgedev_ble.config import DataConverter, OperationType

_APPLY = {
    OperationType.ADD: DECIMAL_CONTEXT.add,
    OperationType.SUBTRACT: DECIMAL_CONTEXT.subtract,
    OperationType.MULTIPLY: DECIMAL_CONTEXT.multiply,
    OperationType.DIVIDE: DECIMAL_CONTEXT.divide,
}
_INVERSE = {
    OperationType.ADD: OperationType.SUBTRACT,
    OperationType.SUBTRACT: OperationType.ADD,
    OperationType.MULTIPLY: OperationType.DIVIDE,
    OperationType.DIVIDE: OperationType.MULTIPLY,
}


def raw_integer(data: bytes, converter: DataConverter) -> int:
    """The integer the selected bytes form, before shifts and operations.

    Raises:
        ValueError: the value is shorter than ``startIndex``/``endIndex`` require.
    """
    indices = converter.indices
    needed = max(indices) + 1
    if len(data) < needed:
        raise ValueError(f"dataConverter reads byte {needed - 1}, the value has {len(data)}")
    raw = int.from_bytes(bytes(data[i] for i in indices), "big")
    bits = 8 * len(indices)
    if converter.signed and raw >> (bits - 1):
        raw -= 1 << bits
    return raw


def convert(data: bytes, converter: DataConverter) -> Decimal:
    """The number a characteristic value stands for, after every step of ``converter``.

    Raises:
        ValueError: the value is too short for the configured byte range.
    """
    raw = raw_integer(data, converter) << converter.shift_left >> converter.shift_right
    if converter.mask is not None:
        raw &= converter.mask
    number = Decimal(raw)
    for op in converter.order_of_operations:
        number = _APPLY[op.operation_type](number, to_decimal(op.operation_value))
    return number


def unconvert(value: int | float | Decimal, converter: DataConverter) -> int:
    """The shifted, masked integer that :func:`convert` turns into ``value`` (rounded).

    Raises:
        ValueError: ``value`` is not finite.
    """
    number = value if isinstance(value, Decimal) else to_decimal(value)
    for op in reversed(converter.order_of_operations):
        number = _APPLY[_INVERSE[op.operation_type]](number, to_decimal(op.operation_value))
    return to_integer(number)


def place(data: bytes, converter: DataConverter, value: int | float | Decimal) -> bytes:
    """``data`` with the field of ``converter`` set so that it converts back to ``value``.

    The value grows with zeros when too short; bits outside the field (``mask``) are kept.
    A value beyond the field's range is clamped to it.
    """
    indices = converter.indices
    bits = 8 * len(indices)
    left, right = converter.shift_left, converter.shift_right
    field_mask = converter.mask if converter.mask is not None else (1 << bits) - 1 << left >> right
    target = max(min(unconvert(value, converter), _largest(field_mask)), _smallest(converter))
    buffer = bytearray(data.ljust(max(indices) + 1, b"\x00"))
    current = int.from_bytes(bytes(buffer[i] for i in indices), "big")
    in_raw = (field_mask << right >> left) & ((1 << bits) - 1)
    raw_bits = (target << right >> left) & ((1 << bits) - 1)
    new = (current & ~in_raw) | (raw_bits & in_raw)
    for i, byte in zip(indices, new.to_bytes(len(indices), "big"), strict=True):
        buffer[i] = byte
    return bytes(buffer)


def _largest(field_mask: int) -> int:
    return field_mask


def _smallest(converter: DataConverter) -> int:
    if converter.signed and converter.mask is None:
        bits = 8 * len(converter.indices)
        return -(1 << (bits - 1)) << converter.shift_left >> converter.shift_right
    return 0
