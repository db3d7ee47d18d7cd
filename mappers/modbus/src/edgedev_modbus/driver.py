"""The Modbus driver: coalesced reads and typed writes over pymodbus (TCP and RTU)."""

from __future__ import annotations

import logging
import struct
import weakref
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING

import anyio

from edgedev.drivers import (
    DeviceError,
    DeviceFault,
    Driver,
    Endpoints,
    Expectations,
    Lease,
    Raw,
    ValueRules,
    WriteRefused,
    value_problems,
    value_warnings,
)
from edgedev.twin import (
    NO_TRANSFORM,
    PropertyType,
    Sample,
    Transform,
    Value,
    scale_number,
)
from edgedev_modbus.codec import (
    DataType,
    Table,
    check_layout,
    decode_registers,
    default_data_type,
    encode_registers,
    fit_number,
    number_format,
    register_count,
    shortest_float32,
    unscale_value,
)
from edgedev_modbus.config import (
    KubeEdgeDataType,
    ModbusDeviceSpec,
    ModbusPropertySpec,
    ModbusProtocol,
    ModbusVisitor,
)
from edgedev_modbus.link import CLIENT_TIMEOUT, ModbusLink, Request
from edgedev_modbus.plan import Block, ReadItem, plan_reads, split_block

if TYPE_CHECKING:  # pymodbus is imported when a device connects
    from pymodbus.client import ModbusBaseClient
    from pymodbus.pdu import ModbusPDU

log = logging.getLogger("edgedev.modbus")

ILLEGAL_ADDRESS = 2
# A gateway answers these when the slave behind it is gone: the device is offline.
GATEWAY_PATH_UNAVAILABLE = 10
GATEWAY_TARGET_FAILED = 11


@dataclass(frozen=True, slots=True)
class Layout:
    """Where and how one property lives: table, address, span, data type, conversion.

    ``transform`` is the visitor's EdgeX transforms (``scale`` alone in the common case);
    ``rules``, present when the visitor gives more than ``scale`` (a ``bit``, a ``mapping``,
    ``mask`` ...), turns the raw number into the value and back.
    """

    table: Table
    offset: int
    count: int
    data_type: DataType
    swap_bytes: bool
    swap_registers: bool
    transform: Transform = NO_TRANSFORM
    rules: ValueRules | None = field(default=None, compare=False)

    @property
    def scale(self) -> float:
        """The visitor's ``scale``."""
        return self.transform.scale

    @property
    def bit(self) -> int | None:
        """The bit of the register the property is (``bit: N``), if it is one."""
        return None if self.rules is None else self.rules.bit

    @classmethod
    def of(cls, prop: ModbusPropertySpec, device_id: str = "") -> Layout:
        """The layout of ``prop`` (of device ``device_id``, which its warnings name).

        Raises:
            LayoutError: the visitor's settings are inconsistent (the message says how, the
                ``field`` which key).
        """
        visitor = prop.visitor
        table = visitor.table
        # a mapping reads a number (as an INT would), a bit an unsigned register
        kind = "INT" if visitor.mapping is not None else prop.type.value
        try:
            if visitor.bit is not None:
                data_type = _bit_data_type(visitor, table)
            elif visitor.data_type is None:
                data_type = default_data_type(kind, table, visitor.limit or 1)
            elif isinstance(visitor.data_type, KubeEdgeDataType):
                data_type = _kubeedge_data_type(visitor.data_type, table, visitor.limit or 1)
            else:
                data_type = visitor.data_type
        except LayoutError:
            raise
        except ValueError as exc:
            raise LayoutError("limit" if "limit" in str(exc) else "dataType", str(exc)) from None
        if visitor.limit is not None:
            limit = visitor.limit
        elif data_type in (DataType.STRING, DataType.BYTES):
            raise LayoutError("limit", f"a {data_type} needs limit (registers, two bytes each)")
        else:
            limit = 1 if table.is_bit else register_count(data_type, 1)
        try:
            check_layout(data_type, table, limit)
        except ValueError as exc:
            raise LayoutError("limit" if "limit" in str(exc) else "dataType", str(exc)) from None
        text = prop.type is PropertyType.STRING and visitor.mapping is None
        if text and data_type is not DataType.STRING:
            raise LayoutError(
                "dataType", f"a STRING property needs dataType string, not {data_type}"
            )
        if data_type is DataType.STRING and not text:
            raise LayoutError(
                "dataType", f"dataType string needs a STRING property, not {prop.type}"
            )
        if (prop.type is PropertyType.BYTES) != (data_type is DataType.BYTES):
            raise LayoutError(
                "dataType", f"dataType bytes goes with a BYTES property, not {prop.type}"
            )
        if visitor.bit is not None and visitor.bit >= 16 * limit:
            raise LayoutError(
                "bit", f"bit {visitor.bit} is beyond the {16 * limit} bits of {data_type}"
            )
        return cls(
            table,
            visitor.offset,
            limit,
            data_type,
            visitor.is_swap,
            visitor.is_register_swap,
            visitor.transform,
            None if visitor.plain else ValueRules(device_id, prop),
        )

    def raw(self, words: Sequence[int] | Sequence[bool]) -> int | float | bool | str | bytes:
        """The raw value in the property's registers (or its bit)."""
        if self.table.is_bit:
            return bool(words[0])
        return decode_registers(
            [int(w) for w in words],
            self.data_type,
            swap_bytes=self.swap_bytes,
            swap_registers=self.swap_registers,
        )

    def decode(self, words: Sequence[int] | Sequence[bool], type_: PropertyType) -> Value:
        """The property value from its registers (or bit).

        Raises:
            ValueError: the raw value has no value (a ``strict`` mapping does not map it).
        """
        raw = self.raw(words)
        if self.rules is not None and not isinstance(raw, str | bytes):
            return self.rules.value(raw)
        if self.table.is_bit:
            return int(raw) if type_ is PropertyType.INT else raw
        if isinstance(raw, str | bytes):
            return raw
        if type_ is PropertyType.BOOLEAN:
            return bool(raw)
        if isinstance(raw, bool):
            return raw
        value = raw if self.scale == 1 else scale_number(raw, self.scale)
        if type_ in (PropertyType.FLOAT, PropertyType.DOUBLE):
            return float(value)
        return value

    def encode(self, value: Value, current: Sequence[int] | None = None) -> list[int] | list[bool]:
        """The registers (or bit) to write for ``value``.

        Args:
            value: the property value.
            current: the registers as they are now; a bit is written into them.

        Raises:
            WriteRefused: the value does not fit the data type, or has no raw number.
        """
        rules = self.rules
        if self.table.is_bit:
            return [bool(rules.raw(value) if rules is not None else value)]
        try:
            if isinstance(value, bytes) and self.data_type is not DataType.BYTES:
                raise ValueError("bytes cannot be written to a register")
            raw: Value | Decimal = value
            if rules is not None:
                now = None if current is None else self.raw(current)
                raw = rules.raw(value, now if isinstance(now, int) else None)
            if isinstance(raw, Decimal):
                raw = fit_number(raw, self.data_type, value)
            elif isinstance(raw, int | float) and not isinstance(raw, bool):
                raw = unscale_value(raw, self.scale, self.data_type)
            return encode_registers(
                raw,
                self.data_type,
                self.count,
                swap_bytes=self.swap_bytes,
                swap_registers=self.swap_registers,
            )
        except ValueError as exc:
            raise WriteRefused(str(exc)) from None

    def place(self, value: Value, current: Sequence[int]) -> list[int] | list[bool]:
        """Registers that read as ``value``, whatever the transforms: what a simulator stores.

        ``current`` gives the bits a mask or a bit leaves as they are.
        """
        rules = self.rules
        if rules is None or self.table.is_bit:
            return self.encode(value, current)
        if rules.bit is not None or rules.mapping is not None or self.transform.refusal is None:
            return self.encode(value, current)
        now = self.raw(current)
        number = value if isinstance(value, int | float) else 0
        raw = self.transform.place(number, now if isinstance(now, int) else 0)
        try:
            if isinstance(raw, int):
                bits = 16 * self.count
                raw &= (1 << bits) - 1  # the register's bit pattern
                if self.data_type in _SIGNED:
                    raw = _signed(raw, self.data_type)
            else:
                raw = fit_number(Decimal(repr(raw)), self.data_type, value)
            return encode_registers(
                raw,
                self.data_type,
                self.count,
                swap_bytes=self.swap_bytes,
                swap_registers=self.swap_registers,
            )
        except ValueError:  # beyond what the registers hold: they keep their value
            return list(current)


class LayoutError(ValueError):
    """A property's visitor keys do not fit together; ``field`` names the key."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


_UNSIGNED = {1: DataType.UINT16, 2: DataType.UINT32, 4: DataType.UINT64}
_SIGNED = {
    DataType.INT16: DataType.UINT16,
    DataType.INT32: DataType.UINT32,
    DataType.INT64: DataType.UINT64,
}


def _signed(number: int, data_type: DataType) -> int:
    """``number`` (a bit pattern) as ``data_type``'s signed integer."""
    bits = 16 * register_count(data_type, 1)
    number &= (1 << bits) - 1
    return number - (1 << bits) if number >> (bits - 1) else number


def _bit_data_type(visitor: ModbusVisitor, table: Table) -> DataType:
    """The unsigned register type a ``bit: N`` property reads its bit from."""
    if table.is_bit:
        raise LayoutError("bit", f"{table} holds single bits already: drop bit")
    given = visitor.data_type
    if given is None or given is KubeEdgeDataType.INT:
        limit = visitor.limit or 1
        if limit not in _UNSIGNED:
            raise LayoutError("limit", f"a bit is read from 1, 2 or 4 registers, not limit {limit}")
        return _UNSIGNED[limit]
    if isinstance(given, DataType) and given in _SIGNED:
        return _SIGNED[given]  # the same bits, unsigned
    if isinstance(given, DataType) and given in _SIGNED.values():
        return given
    raise LayoutError("dataType", f"bit is read from an integer register, not dataType {given}")


def _kubeedge_data_type(word: KubeEdgeDataType, table: Table, limit: int) -> DataType:
    """The data type a KubeEdge Modbus ``dataType`` word means over ``limit`` registers."""
    if table.is_bit:
        if word in (KubeEdgeDataType.INT, KubeEdgeDataType.BOOL):
            return DataType.BOOLEAN
        raise ValueError(f"{table} holds single bits: dataType {word} cannot live there")
    if word is KubeEdgeDataType.BOOL:
        return DataType.BOOLEAN
    if word is KubeEdgeDataType.INT:
        by_limit = {1: DataType.UINT16, 2: DataType.UINT32, 4: DataType.UINT64}
    else:  # float, double: one register is a number to scale, as KubeEdge's demo reads it
        by_limit = {1: DataType.UINT16, 2: DataType.FLOAT32, 4: DataType.FLOAT64}
    if limit not in by_limit:
        raise ValueError(f"dataType {word} spans 1, 2 or 4 registers, not limit {limit}")
    return by_limit[limit]


@contextmanager
def _device_errors(address: str) -> Iterator[None]:
    """Map pymodbus' exceptions to :class:`DeviceError` at the driver's boundary."""
    from pymodbus.exceptions import ModbusException

    try:
        yield
    except ModbusException as exc:
        raise DeviceError(f"{address}: {exc}") from exc


async def open_link(cfg: ModbusProtocol, connections: int) -> ModbusLink:
    """Open the link to the endpoint of ``cfg``: TCP, or RTU on a serial port (one connection).

    Raises:
        DeviceError: the endpoint cannot be reached (the message says why).
        TimeoutError: not within the timeout of ``cfg``.
    """
    from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient

    make: Callable[[], ModbusBaseClient]
    if cfg.ip is not None:
        ip, port = cfg.ip, cfg.port

        def make() -> ModbusBaseClient:
            return AsyncModbusTcpClient(
                ip, port=port, timeout=CLIENT_TIMEOUT, retries=0, reconnect_delay=0
            )

        async def failure() -> str:
            why = await _why_not(ip, port, cfg.timeout)
            return f"cannot connect to Modbus TCP {cfg.address}: {why}"

    else:
        serial = str(cfg.serial_port)

        def make() -> ModbusBaseClient:
            return AsyncModbusSerialClient(
                serial,
                baudrate=cfg.baud_rate,
                bytesize=cfg.data_bits,
                parity=cfg.parity,
                stopbits=cfg.stop_bits,
                timeout=CLIENT_TIMEOUT,
                retries=0,
                reconnect_delay=0,
            )

        async def failure() -> str:
            return f"cannot open serial port {serial}"

        connections = 1  # one port, one frame on the wire at a time
    return await ModbusLink.open(
        cfg.address, make, connections, cfg.timeout / 1000, failure=failure
    )


async def _why_not(host: str, port: int, timeout_ms: int) -> str:
    """Why a TCP connection to ``host:port`` fails (pymodbus only says that it did)."""
    try:
        with anyio.fail_after(timeout_ms / 1000):
            stream = await anyio.connect_tcp(host, port)
    except TimeoutError:
        return f"timeout, no answer within {timeout_ms} ms"
    except OSError as exc:
        cause = exc.__cause__  # anyio: "all connection attempts failed", from each attempt's
        while isinstance(cause, BaseExceptionGroup) and cause.exceptions:
            cause = cause.exceptions[0]
        found = cause if isinstance(cause, OSError) else exc
        if isinstance(found, ConnectionRefusedError):
            return "connection refused"
        return found.strerror or str(found) or type(found).__name__
    await stream.aclose()
    return "the connection failed, then succeeded on a second attempt"


class _Shared:
    """What every device of one property list works out alike: layouts, plans, decoders.

    A fleet's devices share their property list (the loader validates each distinct list
    once), so the layouts, read plans and decoders of 1000 devices of 50 properties are made
    once (50 of each) instead of 50,000 times: ~40 MiB and ~0.3 ms per device at start.
    Kept while a driver holds it (:meth:`of` finds it by the identity of the property tuple,
    which it keeps alive, so the identity is never another list's); a list with value rules
    (``bit``, ``mapping`` ...) is per device, as their warnings name the device.
    """

    __slots__ = (
        "__weakref__",
        "coalesce",
        "decoders",
        "layouts",
        "max_gap",
        "plans",
        "props",
        "types",
    )
    props: tuple[ModbusPropertySpec, ...]
    layouts: dict[str, Layout]
    types: dict[str, PropertyType]
    plans: dict[tuple[str, ...], list[Block]]
    decoders: dict[int, list[tuple[str, _FastDecoder | None]]]
    """Per block of a plan in ``plans``, each value's decoder."""

    _found: weakref.WeakValueDictionary[tuple[int, bool, int, str], _Shared] = (
        weakref.WeakValueDictionary()
    )

    def __init__(self, device: ModbusDeviceSpec, coalesce: bool, max_gap: int) -> None:
        self.props = device.properties
        self.layouts = {p.name: Layout.of(p, device.id) for p in device.properties}
        self.types = {p.name: p.type for p in device.properties}
        self.coalesce, self.max_gap = coalesce, max_gap
        self.plans = {}
        self.decoders = {}

    @classmethod
    def of(cls, device: ModbusDeviceSpec, coalesce: bool, max_gap: int) -> _Shared:
        """The shared part for ``device`` (read with ``coalesce`` and ``max_gap``)."""
        props = device.properties
        alone = "" if all(p.visitor.plain for p in props) else device.id
        key = (id(props), coalesce, max_gap, alone)
        found = cls._found.get(key)
        if found is None or found.props is not props:
            found = cls._found[key] = cls(device, coalesce, max_gap)
        return found

    def plan(self, properties: Sequence[ModbusPropertySpec]) -> list[Block]:
        """The requests that read ``properties``."""
        key = tuple(p.name for p in properties)
        plan = self.plans.get(key)
        if plan is None:
            items = []
            for p in properties:
                layout = self.layouts[p.name]
                items.append(ReadItem(p.name, layout.table, layout.offset, layout.count))
            if self.coalesce:
                plan = plan_reads(items, max_gap=self.max_gap)
            else:  # one request per property
                plan = [b for item in items for b in plan_reads([item])]
            self.plans[key] = plan
        return plan

    def decoders_of(self, block: Block) -> list[tuple[str, _FastDecoder | None]]:
        """Each value's fast decoder for ``block`` of a plan; empty: the generic path."""
        made = [
            (item.key, _fast_decoder(self.layouts[item.key], self.types[item.key]))
            for item in block.items
        ]
        decoders = self.decoders[id(block)] = made if all(f for _, f in made) else []
        return decoders


class ModbusDriver(Driver[ModbusProtocol, ModbusVisitor]):
    """Modbus TCP and RTU through pymodbus.

    Reads are coalesced: the properties due in one cycle are grouped per table into as few
    requests as the protocol allows (125 registers, 2000 bits), each then split and decoded.
    Devices on one endpoint share its connection (:class:`~edgedev_modbus.link.ModbusLink`):
    every slave id behind one TCP ``ip:port`` (up to ``maxConnections`` connections), every
    RTU device on one serial port; their requests take fair turns, writes first.
    """

    protocol_config = ModbusProtocol
    visitor_config = ModbusVisitor

    def __init__(self, device: ModbusDeviceSpec, endpoints: Endpoints | None = None) -> None:
        super().__init__(device, endpoints)
        self._max_gap = self.config.max_gap
        self._shared = _Shared.of(device, self.config.coalesce, self._max_gap)
        self._layouts = self._shared.layouts
        self._lease: Lease[ModbusLink] | None = None
        self.requests = 0
        """Requests sent to the device (reads and writes)."""
        self._refused: set[tuple[Table, int, int | None]] = set()
        """Blocks refused (table, start, code) already warned of."""
        self._faults: list[tuple[Block, int | None]] = []
        """Blocks refused during the read in progress, with the exception code."""
        self._expect = Expectations(device.properties) or None
        """The ``expect``-ed values, when some property has one."""

    @classmethod
    def property_warnings(cls, prop: ModbusPropertySpec) -> list[tuple[str, str]]:
        """Readings EdgeCore refuses: an INT with fractions, mapping texts beyond its charset."""
        return value_warnings(prop)

    @classmethod
    def held_value(cls, prop: ModbusPropertySpec, value: Value) -> Value:
        """What a read gives back after ``value`` is written: encoded, then decoded.

        So the value keys (``scale`` and ``valueOffset``: 22.55555 at scale 0.1 on an
        integer register holds 22.6; a ``mapping``'s texts), the data type's range and a
        float32's precision say what the register holds, as they will when the device is
        written. A bit is written into the register as it is (here: zeros around it).

        Raises:
            ValueError: the value does not fit the data type, or cannot be written (mask,
                shift, base; a text a strict mapping does not map).
        """
        layout = Layout.of(prop)
        try:
            words = layout.encode(value, [0] * layout.count)
            return layout.decode(words, prop.type)
        except WriteRefused as exc:
            raise ValueError(str(exc)) from None

    @classmethod
    def check_property(cls, prop: ModbusPropertySpec) -> list[tuple[str, str]]:
        """Check data type, limit, address range and value keys of one property."""
        try:
            layout = Layout.of(prop)
        except LayoutError as exc:  # a value key of the wrong type says more than the layout
            return value_problems(prop, None) or [(exc.field, str(exc))]
        found = value_problems(prop, _raw_kind(layout))
        if found:
            return found
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
        return []  # a desired value: the loader asks held_value, as for every driver

    # connection ----------------------------------------------------------------------------
    @property
    def link(self) -> ModbusLink:
        """The shared link to the device's endpoint.

        Raises:
            DeviceError: not connected.
        """
        if self._lease is None:
            raise DeviceError(f"{self.config.address}: not connected")
        return self._lease.transport

    def endpoint_key(self) -> tuple[str, ...]:
        """What devices share a link by: the TCP address, or the serial port."""
        cfg = self.config
        if cfg.ip is not None:
            return ("modbus-tcp", cfg.ip, str(cfg.port))
        return ("modbus-rtu", str(cfg.serial_port))

    async def connect(self) -> None:
        """Join the endpoint's shared link, opening it if this is its first device.

        The device tells the link how many requests per second its cycles need; the need
        stays while the link lives (a device that timed out waiting for its turn still needs
        its requests).
        """
        self._lease = await self.endpoints.acquire(self.endpoint_key(), self._open_link)
        self._lease.transport.capacity.need(self.device.id, self.requests_needed())

    def requests_needed(self) -> float:
        """Requests per second the device's reads need: each cycle's plan, per second."""
        cycles: dict[float, list[ModbusPropertySpec]] = {}
        for prop in self.device.properties:
            cycles.setdefault(prop.collect_cycle, []).append(prop)
        return sum(len(self._plan(props)) / cycle for cycle, props in cycles.items() if cycle > 0)

    async def _open_link(self) -> ModbusLink:
        cfg = self.config
        connections = cfg.max_connections
        if cfg.ip is not None and "max_connections" not in cfg.model_fields_set:
            connections = self.endpoints.max_connections or connections
        return await open_link(cfg, connections)

    async def close(self) -> None:
        """Leave the shared link (closed by its last device)."""
        lease, self._lease = self._lease, None
        if lease is not None:  # its need stays while the link lives: it wants to come back
            await lease.release()

    async def _call(self, request: Request, *, urgent: bool = False) -> ModbusPDU:
        """One request on the shared link, bounded by the device's timeout once sent."""
        link = self.link
        self.requests += 1
        timeout = self.config.timeout
        if self.endpoints.users(self.endpoint_key()) > 1:
            # shared: a request may hold the link for half the device's deadline, so that
            # the devices queued behind a slave that stopped answering still meet theirs
            timeout //= 2
        try:
            with _device_errors(self.config.address):
                return await link.call(request, timeout=timeout / 1000, urgent=urgent)
        except TimeoutError:
            raise DeviceError(
                f"{self.config.address}: timeout, no answer within {timeout} ms"
            ) from None

    # reads ---------------------------------------------------------------------------------
    def _plan(self, properties: Sequence[ModbusPropertySpec]) -> list[Block]:
        return self._shared.plan(properties)

    async def _read_block(self, block: Block) -> Sequence[int] | Sequence[bool] | None:
        read, unit = _READ[block.table], self.config.slave_id
        response = await self._call(lambda client: read(client, block.start, block.count, unit))
        if not response.isError():
            words: Sequence[int] | Sequence[bool] = (
                response.bits if block.table.is_bit else response.registers
            )
            return words
        code = response.exception_code
        if code == ILLEGAL_ADDRESS and self._max_gap and _has_gap(block):
            log.info(
                "%s refused a read spanning unused addresses; reading without gaps", self.device.id
            )
            self._max_gap = 0
            self._shared = _Shared.of(self.device, self.config.coalesce, 0)
            raise _Replan
        if code in (GATEWAY_PATH_UNAVAILABLE, GATEWAY_TARGET_FAILED):
            raise DeviceError(f"{self.config.address}: the gateway's target does not answer")
        self._faults.append((block, code))
        return None

    async def read(self, properties: Sequence[ModbusPropertySpec]) -> Mapping[str, Value | Sample]:
        """Read ``properties`` in as few requests as the limits and gaps allow.

        A property of a request the device answered with an exception (while others were
        answered) is a Bad sample with the exception; so is a raw value that has no value
        (a ``strict`` mapping's unknown number).
        """
        for _ in range(2):
            try:
                return await self._read_all(properties)
            except _Replan:
                continue
        return await self._read_all(properties)

    async def _read_all(
        self, properties: Sequence[ModbusPropertySpec]
    ) -> dict[str, Value | Sample]:
        values: dict[str, Value | Sample] = {}
        answered = False
        self._faults.clear()
        for block in self._plan(properties):
            words = await self._read_block(block)
            if words is not None:
                answered = True
                self._decode_block(block, words, values)
        if self._expect is not None:
            self._expect.check(values)
        if not self._faults:
            self._refused.clear()  # all answered: warn again if a block is refused again
            return values
        if not answered:  # every request refused: reachable, not working (the runner logs)
            code = self._faults[-1][1]
            raise DeviceFault(
                f"{self.config.address}: every read refused ({exception_name(code)})", code
            )
        for block, code in self._faults:  # some refused: Bad, and logged once per block
            bad = Sample.bad(exception_name(code))
            for item in block.items:
                values[item.key] = bad
            where = (block.table, block.start, code)
            if where not in self._refused:
                self._refused.add(where)
                log.warning(
                    "%s: %s %d..%d refused (%s)",
                    self.device.id,
                    block.table,
                    block.start,
                    block.start + block.count - 1,
                    exception_name(code),
                )
        return values

    def _decode_block(
        self,
        block: Block,
        words: Sequence[int] | Sequence[bool],
        values: dict[str, Value | Sample],
    ) -> None:
        """Decode every value of ``block`` from the answer ``words`` into ``values``."""
        shared = self._shared
        decoders = shared.decoders.get(id(block))  # by identity: hashing a Block is slow
        if decoders is None:
            decoders = shared.decoders_of(block)
        if decoders and len(words) >= block.count:
            data = _pack_words(block.count, words)
            start = block.start
            try:
                for name, fast in decoders:
                    assert fast is not None
                    values[name] = fast(data, start)
            except ValueError:  # a raw value with no value: each property on its own, below
                pass
            else:
                return
        for name, part in split_block(block, words).items():
            try:
                values[name] = shared.layouts[name].decode(part, shared.types[name])
            except ValueError as exc:  # a value it cannot take (a strict mapping): Bad
                values[name] = Sample.bad(str(exc))

    # writes --------------------------------------------------------------------------------
    async def write(self, prop: ModbusPropertySpec, value: Value) -> None:
        """Write one coil or holding-register property.

        A ``bit: N`` property is written by reading its register and writing it back with
        that bit changed. Every write holds its registers (per slave, on the shared link)
        for its whole span, so that two devices setting bits of one register do not undo
        each other's.
        """
        layout = self._layouts[prop.name]
        if not layout.table.writable:
            raise WriteRefused(f"{layout.table} cannot be written")
        refusal = layout.transform.refusal
        if refusal is not None and layout.bit is None:
            raise WriteRefused(f"{prop.name}: {refusal}")
        unit = self.config.slave_id
        keys = [(unit, layout.table, a) for a in range(layout.offset, layout.offset + layout.count)]
        async with self.link.hold(keys):
            current = await self._current(prop.name, layout) if layout.bit is not None else None
            await self._send(layout, layout.encode(value, current))

    async def _current(self, name: str, layout: Layout) -> list[int]:
        """The registers of ``layout`` as they are now (a bit is written into them).

        Raises:
            WriteRefused: the device refused to read them.
        """
        read, unit = _READ[layout.table], self.config.slave_id
        start, count = layout.offset, layout.count
        response = await self._call(lambda client: read(client, start, count, unit), urgent=True)
        if response.isError():
            why = exception_name(response.exception_code)
            raise WriteRefused(
                f"{name}: cannot read register {start} to set bit {layout.bit} ({why})"
            )
        return [int(w) for w in response.registers[:count]]

    async def _send(self, layout: Layout, words: list[int] | list[bool]) -> None:
        address, unit = layout.offset, self.config.slave_id
        request: Request
        if layout.table is Table.COIL:
            bit = bool(words[0])

            def request(client: ModbusBaseClient) -> Awaitable[ModbusPDU]:
                return client.write_coil(address, bit, device_id=unit)

        elif len(words) == 1:
            word = int(words[0])

            def request(client: ModbusBaseClient) -> Awaitable[ModbusPDU]:
                return client.write_register(address, word, device_id=unit)

        else:
            registers = [int(w) for w in words]

            def request(client: ModbusBaseClient) -> Awaitable[ModbusPDU]:
                return client.write_registers(address, registers, device_id=unit)

        response = await self._call(request, urgent=True)
        if response.isError():
            code = response.exception_code
            raise WriteRefused(f"device refused the write (exception code {code})")


def _raw_kind(layout: Layout) -> Raw:
    """What the registers of ``layout`` hold, for :func:`~edgedev.drivers.value_problems`."""
    if (
        layout.bit is not None
        or layout.data_type in _SIGNED
        or layout.data_type in _SIGNED.values()
    ):
        return Raw.INTEGER
    if layout.table.is_bit or layout.data_type is DataType.BOOLEAN:
        return Raw.BOOLEAN
    if number_format(layout.data_type) is not None:
        return Raw.FLOAT
    return Raw.TEXT


_FastDecoder = Callable[[bytes, int], Value]
"""Decodes one value from a block's bytes (big-endian words) and the block's start address."""


def _pack_words(count: int, words: Sequence[int] | Sequence[bool]) -> bytes:
    """The first ``count`` register words as big-endian bytes, in one call."""
    try:
        return struct.pack(f">{count}H", *words[:count])
    except struct.error:  # a word out of 0..0xFFFF: refused with the codec's message
        for word in words[:count]:
            if not 0 <= int(word) <= 0xFFFF:
                raise ValueError(f"register word {word!r} is not in 0..0xFFFF") from None
        raise


def _fast_decoder(layout: Layout, type_: PropertyType) -> _FastDecoder | None:
    """A decoder equal to ``layout.decode`` on the common layouts, ``None`` on the others.

    Common: a number in registers with no byte or register swap. The work that does not
    depend on the value (struct format, scale as a fraction) is done here, once.
    """
    if layout.table.is_bit or layout.swap_bytes or layout.swap_registers:
        return None
    fmt = number_format(layout.data_type)
    if fmt is None:  # string, boolean
        return None
    unpack = struct.Struct(fmt).unpack_from
    offset = layout.offset
    shortest = layout.data_type is DataType.FLOAT32
    rules = layout.rules
    if rules is not None:  # bit, mapping, mask ...: the rules make the value
        value_of = rules.value

        def decode_raw(data: bytes, start: int) -> Value:
            (raw,) = unpack(data, 2 * (offset - start))
            return value_of(shortest_float32(raw) if shortest else raw)

        return decode_raw
    to_float = type_ in (PropertyType.FLOAT, PropertyType.DOUBLE)
    to_bool = type_ is PropertyType.BOOLEAN
    scaled = layout.transform.reader()

    def decode(data: bytes, start: int) -> Value:
        (raw,) = unpack(data, 2 * (offset - start))
        if shortest:
            raw = shortest_float32(raw)
        if to_bool:
            return bool(raw)
        value = scaled(raw)
        return float(value) if to_float else value

    return decode


_EXCEPTIONS = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
    5: "acknowledge",
    6: "server device busy",
    8: "memory parity error",
    10: "gateway path unavailable",
    11: "gateway target device failed to respond",
}


def exception_name(code: int | None) -> str:
    """``exception code 4 (server device failure)``, for messages."""
    name = _EXCEPTIONS.get(code) if code is not None else None
    return f"exception code {code}" + (f" ({name})" if name else "")


class _Replan(Exception):
    """A block with gaps was refused; the plan was rebuilt without gaps."""


def _has_gap(block: Block) -> bool:
    return sum(item.count for item in block.items) < block.count


_Read = Callable[["ModbusBaseClient", int, int, int], Awaitable["ModbusPDU"]]
"""Reads ``(client, start, count, slave id)`` from one table."""

_READ: dict[Table, _Read] = {
    Table.COIL: lambda c, start, n, unit: c.read_coils(start, count=n, device_id=unit),
    Table.DISCRETE_INPUT: lambda c, start, n, unit: c.read_discrete_inputs(
        start, count=n, device_id=unit
    ),
    Table.INPUT: lambda c, start, n, unit: c.read_input_registers(start, count=n, device_id=unit),
    Table.HOLDING: lambda c, start, n, unit: c.read_holding_registers(
        start, count=n, device_id=unit
    ),
}
"""The request that reads each table."""
