"""The Modbus driver: coalesced reads and typed writes over pymodbus (TCP and RTU)."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import anyio

from edgedev import DeviceError, DeviceSpec, Driver, PropertySpec, Value, WriteRefused
from edgedev.twin import PropertyType
from edgedev_modbus.codec import (
    DataType,
    Table,
    check_layout,
    decode_registers,
    default_data_type,
    encode_registers,
    register_count,
    scale_value,
    unscale_value,
)
from edgedev_modbus.config import ModbusProtocol, ModbusVisitor
from edgedev_modbus.plan import Block, ReadItem, plan_reads, split_block

log = logging.getLogger("edgedev.modbus")

ILLEGAL_ADDRESS = 2


@dataclass(frozen=True, slots=True)
class Layout:
    """Where and how one property lives: table, address, span, data type, conversion."""

    table: Table
    offset: int
    count: int
    data_type: DataType
    scale: float
    swap_bytes: bool
    swap_registers: bool

    @classmethod
    def of(cls, prop: PropertySpec) -> Layout:
        """The layout of ``prop``.

        Raises:
            ValueError: the visitor's settings are inconsistent (the message says how).
        """
        visitor = prop.visitor
        assert isinstance(visitor, ModbusVisitor)
        table = visitor.table
        if visitor.data_type is None:
            data_type = default_data_type(prop.type.value, table, visitor.limit or 1)
        else:
            data_type = visitor.data_type
        if visitor.limit is not None:
            limit = visitor.limit
        elif data_type is DataType.STRING:
            raise ValueError("a string needs limit (registers, two characters each)")
        else:
            limit = 1 if table.is_bit else register_count(data_type, 1)
        check_layout(data_type, table, limit)
        if prop.type is PropertyType.STRING and data_type is not DataType.STRING:
            raise ValueError(f"a STRING property needs dataType string, not {data_type}")
        if data_type is DataType.STRING and prop.type is not PropertyType.STRING:
            raise ValueError(f"dataType string needs a STRING property, not {prop.type}")
        if prop.type is PropertyType.BYTES:
            raise ValueError("BYTES properties are not supported on Modbus")
        return cls(
            table,
            visitor.offset,
            limit,
            data_type,
            visitor.scale,
            visitor.is_swap,
            visitor.is_register_swap,
        )

    def decode(self, words: Sequence[int] | Sequence[bool], type_: PropertyType) -> Value:
        """The property value from its registers (or bit)."""
        if self.table.is_bit:
            return bool(words[0])
        raw = decode_registers(
            [int(w) for w in words],
            self.data_type,
            swap_bytes=self.swap_bytes,
            swap_registers=self.swap_registers,
        )
        if isinstance(raw, str):
            return raw
        if type_ is PropertyType.BOOLEAN:
            return bool(raw)
        if isinstance(raw, bool):
            return raw
        value = raw if self.scale == 1 else scale_value(raw, self.scale)
        if type_ in (PropertyType.FLOAT, PropertyType.DOUBLE):
            return float(value)
        return value

    def encode(self, value: Value) -> list[int] | list[bool]:
        """The registers (or bit) to write for ``value``.

        Raises:
            WriteRefused: the value does not fit the data type.
        """
        if self.table.is_bit:
            return [bool(value)]
        try:
            if isinstance(value, bytes):
                raise ValueError("bytes cannot be written to a register")
            if isinstance(value, int | float) and not isinstance(value, bool):
                value = unscale_value(value, self.scale, self.data_type)
            return encode_registers(
                value,
                self.data_type,
                self.count,
                swap_bytes=self.swap_bytes,
                swap_registers=self.swap_registers,
            )
        except ValueError as exc:
            raise WriteRefused(str(exc)) from None


@contextmanager
def _device_errors(address: str) -> Iterator[None]:
    """Map pymodbus' exceptions to :class:`DeviceError` at the driver's boundary."""
    from pymodbus.exceptions import ModbusException

    try:
        yield
    except ModbusException as exc:
        raise DeviceError(f"{address}: {exc}") from exc


class _SerialLine:
    """One serial port shared by every RTU device on it, one request at a time."""

    lines: dict[str, _SerialLine] = {}

    def __init__(self, client: Any) -> None:
        self.client = client
        self.lock = anyio.Lock()
        self.users = 0


class ModbusDriver(Driver[ModbusProtocol, ModbusVisitor]):
    """Modbus TCP and RTU through pymodbus.

    Reads are coalesced: the properties due in one cycle are grouped per table into as few
    requests as the protocol allows (125 registers, 2000 bits), each then split and decoded.
    Several RTU devices on one serial port share its connection and take turns.
    """

    protocol_config = ModbusProtocol
    visitor_config = ModbusVisitor

    def __init__(self, device: DeviceSpec) -> None:
        super().__init__(device)
        self._layouts = {p.name: Layout.of(p) for p in device.properties}
        self._plans: dict[tuple[str, ...], list[Block]] = {}
        self._max_gap = self.config.max_gap
        self._client: Any = None
        self._line: _SerialLine | None = None
        self.requests = 0
        """Requests sent to the device (reads and writes)."""

    @classmethod
    def check_property(cls, prop: PropertySpec) -> list[tuple[str, str]]:
        """Check data type, limit and address range of one property."""
        try:
            layout = Layout.of(prop)
        except ValueError as exc:
            field = "limit" if "limit" in str(exc) else "dataType"
            return [(field, str(exc))]
        if layout.offset + layout.count > 65536:
            return [
                (
                    "offset",
                    f"offset {layout.offset} + {layout.count} registers runs past "
                    f"the last address 65535",
                )
            ]
        if not layout.table.writable and prop.writable and prop.desired is not None:
            return [
                ("register", f"{layout.table} is read-only but the property has a desired value")
            ]
        return []

    # connection ----------------------------------------------------------------------------
    async def connect(self) -> None:
        """Open the TCP connection, or join the shared serial line."""
        from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient

        cfg = self.config
        timeout = cfg.timeout / 1000
        if cfg.ip is not None:
            self._client = AsyncModbusTcpClient(
                cfg.ip, port=cfg.port, timeout=timeout, retries=0, reconnect_delay=0
            )
            with _device_errors(cfg.address):
                connected = await self._client.connect()
            if not connected:
                raise DeviceError(f"cannot connect to Modbus TCP {cfg.address}")
            return
        port = str(cfg.serial_port)
        line = _SerialLine.lines.get(port)
        if line is None or not line.client.connected:
            client = AsyncModbusSerialClient(
                port,
                baudrate=cfg.baud_rate,
                bytesize=cfg.data_bits,
                parity=cfg.parity,
                stopbits=cfg.stop_bits,
                timeout=timeout,
                retries=0,
                reconnect_delay=0,
            )
            with _device_errors(port):
                if not await client.connect():
                    raise DeviceError(f"cannot open serial port {port}")
            users = line.users if line else 0
            line = _SerialLine.lines[port] = _SerialLine(client)
            line.users = users
        line.users += 1
        self._line = line
        self._client = line.client

    async def close(self) -> None:
        """Close the TCP connection, or leave the serial line (closed by its last user)."""
        client, self._client = self._client, None
        line, self._line = self._line, None
        if line is not None:
            line.users -= 1
            if line.users <= 0:
                _SerialLine.lines = {k: v for k, v in _SerialLine.lines.items() if v is not line}
                line.client.close()
        elif client is not None:
            client.close()

    async def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        if self._client is None:
            raise DeviceError(f"{self.config.address}: not connected")
        self.requests += 1
        call = getattr(self._client, method)
        with _device_errors(self.config.address):
            if self._line is None:
                return await call(*args, device_id=self.config.slave_id, **kwargs)
            async with self._line.lock:
                return await call(*args, device_id=self.config.slave_id, **kwargs)

    # reads ---------------------------------------------------------------------------------
    def _plan(self, properties: Sequence[PropertySpec]) -> list[Block]:
        key = tuple(p.name for p in properties)
        plan = self._plans.get(key)
        if plan is None:
            items = []
            for p in properties:
                layout = self._layouts[p.name]
                items.append(ReadItem(p.name, layout.table, layout.offset, layout.count))
            plan = self._plans[key] = plan_reads(items, max_gap=self._max_gap)
        return plan

    async def _read_block(self, block: Block) -> Sequence[int] | Sequence[bool] | None:
        method = _READ[block.table]
        response = await self._call(method, block.start, count=block.count)
        if not response.isError():
            words: Sequence[int] | Sequence[bool] = (
                response.bits if block.table.is_bit else response.registers
            )
            return words
        code = getattr(response, "exception_code", None)
        if code == ILLEGAL_ADDRESS and self._max_gap and _has_gap(block):
            log.info(
                "%s refused a read spanning unused addresses; reading without gaps", self.device.id
            )
            self._max_gap = 0
            self._plans.clear()
            raise _Replan
        log.warning(
            "%s: %s %d..%d refused (exception code %s)",
            self.device.id,
            block.table,
            block.start,
            block.start + block.count - 1,
            code,
        )
        return None

    async def read(self, properties: Sequence[PropertySpec]) -> Mapping[str, Value]:
        """Read ``properties`` in as few requests as the limits and gaps allow."""
        for _ in range(2):
            try:
                return await self._read_all(properties)
            except _Replan:
                continue
        return await self._read_all(properties)

    async def _read_all(self, properties: Sequence[PropertySpec]) -> dict[str, Value]:
        values: dict[str, Value] = {}
        types = {p.name: p.type for p in properties}
        for block in self._plan(properties):
            words = await self._read_block(block)
            if words is None:
                continue
            for name, part in split_block(block, words).items():
                values[name] = self._layouts[name].decode(part, types[name])
        return values

    # writes --------------------------------------------------------------------------------
    async def write(self, prop: PropertySpec, value: Value) -> None:
        """Write one coil or holding-register property."""
        layout = self._layouts[prop.name]
        if not layout.table.writable:
            raise WriteRefused(f"{layout.table} cannot be written")
        words = layout.encode(value)
        if layout.table is Table.COIL:
            response = await self._call("write_coil", layout.offset, bool(words[0]))
        elif len(words) == 1:
            response = await self._call("write_register", layout.offset, int(words[0]))
        else:
            response = await self._call("write_registers", layout.offset, [int(w) for w in words])
        if response.isError():
            code = getattr(response, "exception_code", None)
            raise WriteRefused(f"device refused the write (exception code {code})")


class _Replan(Exception):
    """A block with gaps was refused; the plan was rebuilt without gaps."""


def _has_gap(block: Block) -> bool:
    return sum(item.count for item in block.items) < block.count


_READ = {
    Table.COIL: "read_coils",
    Table.DISCRETE_INPUT: "read_discrete_inputs",
    Table.INPUT: "read_input_registers",
    Table.HOLDING: "read_holding_registers",
}
