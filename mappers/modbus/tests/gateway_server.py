"""A Modbus TCP gateway built by the tests, not by edgedev, for ``edgedev discover modbus``.

A plain pymodbus server with three units behind one port, as a gateway to an RS-485 line:

* unit 1: sparse blocks in every table, and device identification (function 43/14) and
  report server id (17) answered;
* unit 2: a block of holding and of input registers; 43 and 17 refused (illegal function);
* unit 3: answers every request with exception 4 (server device failure);
* every other unit id: exception 11, as a gateway says that nothing answers behind it.

Each table of a unit holds only the addresses of ``MAP`` (a read that touches any other is
refused with exception 2, illegal data address), with fixed values; no write is taken. The
server counts every function code it receives (at most one counter per code: bounded) in
``Gateway.functions``, and when the last thousand requests came in ``Gateway.times``.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from pymodbus.constants import ExcCodes
from pymodbus.pdu import ExceptionResponse
from pymodbus.pdu.device import ModbusDeviceIdentification
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from edgedev_modbus.codec import Table
from edgedev_modbus.simulator import _pack_bits  # pymodbus' packed bit blocks

SIZE = 2048
"""Addresses of each table the server holds values for (the map decides what is readable)."""
IDENTITY = {"VendorName": "Acme", "ProductCode": "PM-3000", "MajorMinorRevision": "2.1"}
READ_FUNCTIONS = {1: Table.COIL, 2: Table.DISCRETE_INPUT, 3: Table.HOLDING, 4: Table.INPUT}
IDENTIFICATION, SERVER_ID = 43, 17

MAP: dict[int, dict[Table, dict[int, int]]] = {
    1: {
        Table.COIL: {a: a % 3 == 0 for a in [*range(0, 12), *range(100, 104)]},
        Table.DISCRETE_INPUT: {a: a % 2 == 1 for a in range(16, 21)},
        Table.INPUT: {a: 1000 + a for a in range(0, 4)},
        Table.HOLDING: {
            **{a: 10 * a for a in range(0, 10)},
            **{a: 500 + a for a in range(100, 120)},
            1000: 0xBEEF,
            1001: 7,
        },
    },
    2: {
        Table.HOLDING: {a: 2 * a for a in range(40, 50)},
        Table.INPUT: {a: 3 * a for a in range(200, 205)},
    },
}
"""Unit -> table -> address -> value: what each unit serves (units 1 and 2)."""
FAILING = 3


def _unit(unit: int) -> SimDevice:
    tables = MAP.get(unit, {})
    words = {t: [int(tables.get(t, {}).get(a, 0)) for a in range(SIZE)] for t in Table}

    async def action(
        function: int,
        _start: int,
        _address: int,
        _count: int,
        registers: list[int],
        values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        table = READ_FUNCTIONS.get(function)
        if table is None or values is not None:
            return ExcCodes.ILLEGAL_FUNCTION  # this test device takes no write
        if table.is_bit:
            _pack_bits(words[table], registers)
        else:
            registers[: len(words[table])] = words[table]
        return None  # which addresses are served is Gateway.trace's to say

    blocks = (
        [SimData(0, SIZE, False, DataType.BITS)],
        [SimData(0, SIZE, False, DataType.BITS)],
        [SimData(0, SIZE, 0, DataType.REGISTERS)],
        [SimData(0, SIZE, 0, DataType.REGISTERS)],
    )
    return SimDevice(unit, blocks, action=action)


@dataclass
class Gateway:
    """The running gateway: its port and what it received."""

    port: int
    functions: Counter[int] = field(default_factory=Counter)
    times: deque[float] = field(default_factory=lambda: deque(maxlen=1000))
    _refused: set[tuple[int, int]] = field(default_factory=set)

    def trace(self, sending: bool, pdu: Any) -> Any:
        """Count what comes in; answer as each unit would on the way out.

        pymodbus' simulated blocks have no holes at the bit level, so a read that touches an
        address the map does not serve is refused here, from the request's own address and
        count (exception 2), as a device with that map refuses it.
        """
        unit, function = pdu.dev_id, pdu.function_code & 0x7F
        key = (unit, pdu.transaction_id)
        if not sending:
            self.functions[pdu.function_code] += 1
            self.times.append(time.monotonic())
            table = READ_FUNCTIONS.get(function)
            if table is not None and unit in MAP:
                served = MAP[unit].get(table, {})
                if any(a not in served for a in range(pdu.address, pdu.address + pdu.count)):
                    self._refused.add(key)
            return pdu
        transaction = pdu.transaction_id
        if unit == FAILING:
            return ExceptionResponse(function, ExcCodes.DEVICE_FAILURE, unit, transaction)
        if unit not in MAP:
            return ExceptionResponse(function, ExcCodes.GATEWAY_NO_RESPONSE, unit, transaction)
        if key in self._refused:
            self._refused.discard(key)
            return ExceptionResponse(function, ExcCodes.ILLEGAL_ADDRESS, unit, transaction)
        if function in (IDENTIFICATION, SERVER_ID) and unit != 1:
            return ExceptionResponse(function, ExcCodes.ILLEGAL_FUNCTION, unit, transaction)
        return pdu


@asynccontextmanager
async def gateway(port: int) -> AsyncIterator[Gateway]:
    """The gateway on 127.0.0.1:``port`` until the block ends."""
    served = Gateway(port)
    units = [_unit(u) for u in (*MAP, FAILING)] + [_unit(0)]  # id 0: every other unit
    server = ModbusTcpServer(
        units,
        address=("127.0.0.1", port),
        identity=ModbusDeviceIdentification(info_name=IDENTITY),
        trace_pdu=served.trace,
    )
    await server.serve_forever(background=True)
    try:
        yield served
    finally:
        await server.shutdown()  # type: ignore[no-untyped-call]
