"""Simulated Modbus TCP devices for ``edgedev simulate``, ``edgedev demo`` and tests.

One pymodbus server per ``ip:port``, one unit per ``slaveID``. The simulator keeps each
device's tables in its own arrays: before every read, read-only properties are refreshed
from :func:`edgedev.simulate.signals.signal` (values that change over time); writes from
clients land in the arrays, so writable properties keep what was written. Every request is
recorded in :attr:`ModbusSimulator.requests`, which lets tests count them at the server.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio
from anyio.abc import TaskStatus
from pymodbus.constants import ExcCodes

if TYPE_CHECKING:
    from pymodbus.server import ModbusBaseServer
    from pymodbus.simulator.simdevice import SimAction

from edgedev.simulate import Simulator
from edgedev.simulate.signals import initial, signal
from edgedev.twin import Value
from edgedev_modbus.codec import Table
from edgedev_modbus.config import ModbusDeviceSpec, ModbusProtocol, ModbusVisitor
from edgedev_modbus.driver import Layout

log = logging.getLogger("edgedev.modbus.simulator")

_TABLE_OF_FUNCTION = {
    1: Table.COIL,
    5: Table.COIL,
    15: Table.COIL,
    2: Table.DISCRETE_INPUT,
    4: Table.INPUT,
    3: Table.HOLDING,
    6: Table.HOLDING,
    16: Table.HOLDING,
    22: Table.HOLDING,
    23: Table.HOLDING,
}
_READS = frozenset({1, 2, 3, 4})


@dataclass(frozen=True, slots=True)
class Request:
    """One request a simulated device received."""

    device: str
    function: int
    address: int
    count: int
    refused: bool = False
    """Whether it was answered with an exception (see :meth:`ModbusSimulator.fail`)."""

    @property
    def table(self) -> Table:
        """The table the request addressed."""
        return _TABLE_OF_FUNCTION[self.function]

    @property
    def is_read(self) -> bool:
        """Whether it was a read."""
        return self.function in _READS


class _SimDevice:
    """One simulated unit: its tables, and how its properties map onto them."""

    def __init__(self, spec: ModbusDeviceSpec, clock: Callable[[], float]) -> None:
        self.spec = spec
        self.clock = clock
        self.layouts = {p.name: Layout.of(p, spec.id) for p in spec.properties}
        sizes = dict.fromkeys(Table, 1)
        for layout in self.layouts.values():
            sizes[layout.table] = max(sizes[layout.table], layout.offset + layout.count)
        self.words: dict[Table, list[int]] = {t: [0] * n for t, n in sizes.items()}
        self.sensors = [p for p in spec.properties if not p.writable]
        for prop in spec.properties:
            self.set(prop.name, initial(prop) if prop.writable else signal(prop, 0, key=spec.id))

    def set(self, name: str, value: Value) -> None:
        layout = self.layouts[name]
        if isinstance(value, str) and layout.rules is None:
            value = value[: layout.count * 2]  # what the registers can hold
        span = slice(layout.offset, layout.offset + layout.count)
        words = layout.place(value, self.words[layout.table][span])
        self.words[layout.table][span] = [int(w) for w in words]

    def get(self, name: str) -> Value:
        layout = self.layouts[name]
        part = self.words[layout.table][layout.offset : layout.offset + layout.count]
        return layout.decode(part, self.spec.property(name).type)

    def refresh(self, table: Table) -> None:
        now = self.clock()
        for prop in self.sensors:
            if self.layouts[prop.name].table is table:
                self.set(prop.name, signal(prop, now, key=self.spec.id))


def _pack_bits(bits: Sequence[int], registers: list[int]) -> None:
    """Copy bits into pymodbus' packed block (16 bits a register, least significant first)."""
    for index in range(len(registers)):
        word = 0
        for bit, value in enumerate(bits[index * 16 : index * 16 + 16]):
            word |= (1 if value else 0) << bit
        registers[index] = word


class ModbusSimulator(Simulator[ModbusProtocol, ModbusVisitor]):
    """Modbus servers for simulated devices: TCP per ``ip:port``, RTU per serial line.

    An RTU line may be a real serial port or ``socket://HOST:PORT`` (pyserial's URL form),
    which carries real RTU frames over TCP: several devices (slave ids) share the line as on
    an RS-485 bus, and a mapper reaches them with the same ``serialPort`` URL.

    Args:
        devices: the devices to serve.
        clock: the time signals follow.
        silent: ids of devices whose slave never answers (a dead slave behind a gateway).

    Attributes:
        requests: every request received, in order (reset it freely).
        connections: client connections open now, over every server.
        accepted: client connections accepted so far.
    """

    def __init__(
        self,
        devices: Sequence[ModbusDeviceSpec],
        clock: Callable[[], float] = time.monotonic,
        *,
        silent: Sequence[str] = (),
    ) -> None:
        super().__init__(devices)
        self._silent = frozenset(silent)
        self._hush = anyio.Event()
        self.connections = 0
        self.accepted = 0
        self._connections_changed: anyio.Event | None = None
        # one server per TCP address or serial line; one unit per slave id on it
        self._units: dict[tuple[str, int] | str, dict[int, _SimDevice]] = {}
        self._by_id: dict[str, _SimDevice] = {}
        for spec in devices:
            cfg = spec.config
            line = (cfg.ip, cfg.port) if cfg.ip is not None else str(cfg.serial_port)
            unit = _SimDevice(spec, clock)
            self._units.setdefault(line, {})[cfg.slave_id] = unit
            self._by_id[spec.id] = unit
        self.requests: list[Request] = []
        self._failing: dict[str, int] = {}
        self._delays: dict[str, float] = {}
        self._servers: list[ModbusBaseServer] = []
        self._request_seen: anyio.Event | None = None

    def address(self, device: ModbusDeviceSpec) -> str:
        """``tcp HOST:PORT unit N``, or ``rtu LINE unit N`` for a serial line."""
        cfg = device.config
        if cfg.ip is not None:
            return f"tcp {cfg.ip}:{cfg.port} unit {cfg.slave_id}"
        return f"rtu {cfg.serial_port} unit {cfg.slave_id}"

    def get(self, device_id: str, prop: str) -> Value:
        """The value of ``prop`` on ``device_id`` as the device holds it now."""
        return self._by_id[device_id].get(prop)

    def set(self, device_id: str, prop: str, value: Value) -> None:
        """Set ``prop`` on ``device_id`` (a sensor is overwritten at its next read)."""
        self._by_id[device_id].set(prop, value)

    def set_words(self, device_id: str, table: Table, offset: int, words: Sequence[int]) -> None:
        """Put raw register words (or bits) at ``offset`` of ``table`` on ``device_id``."""
        self._by_id[device_id].words[table][offset : offset + len(words)] = list(words)

    def words(self, device_id: str, table: Table, offset: int, count: int) -> list[int]:
        """Raw register words (or bits) at ``offset`` of ``table`` on ``device_id``."""
        return self._by_id[device_id].words[table][offset : offset + count]

    async def wait_requests(self, count: int, *, timeout: float = 5.0) -> None:
        """Return once :attr:`requests` holds at least ``count`` requests.

        Raises:
            TimeoutError: it did not within ``timeout`` seconds.
        """
        with anyio.fail_after(timeout):
            while len(self.requests) < count:
                self._request_seen = anyio.Event()
                await self._request_seen.wait()

    def _note(self, request: Request) -> None:
        self.requests.append(request)
        if self._request_seen is not None:
            self._request_seen.set()

    def freeze(self, device_id: str) -> None:
        """Stop ``device_id``'s sensors from changing (tests compare exact values)."""
        self._by_id[device_id].sensors = []

    def fail(self, device_id: str, code: int | None) -> None:
        """Answer every request to ``device_id`` with Modbus exception ``code`` (None: stop).

        Code 11 (gateway target failed to respond) is what a TCP gateway answers for an RTU
        slave that is gone.
        """
        if code is None:
            self._failing.pop(device_id, None)
        else:
            self._failing[device_id] = code

    def slow(self, device_id: str, seconds: float | None) -> None:
        """Answer every request to ``device_id`` after ``seconds`` (None: at once again)."""
        if seconds is None:
            self._delays.pop(device_id, None)
        else:
            self._delays[device_id] = seconds

    def _action(self, device_id: str, unit: _SimDevice) -> SimAction:
        async def action(
            function: int,
            _start: int,
            address: int,
            count: int,
            registers: list[int],
            values: list[int] | list[bool] | None,
        ) -> ExcCodes | None:
            if device_id in self._silent:
                await self._hush.wait()  # never answers (until the server stops)
                return ExcCodes.GATEWAY_NO_RESPONSE
            delay = self._delays.get(device_id)
            if delay:
                await anyio.sleep(delay)
            if device_id in self._failing:
                self._note(Request(device_id, function, address, count, refused=True))
                return ExcCodes(self._failing[device_id])
            table = _TABLE_OF_FUNCTION.get(function)
            if table is None:
                return None
            words = unit.words[table]
            if values is not None:
                self._note(Request(device_id, function, address, len(values)))
                words[address : address + len(values)] = [int(v) for v in values]
                return None
            if function in _READS:
                self._note(Request(device_id, function, address, count))
                unit.refresh(table)
            if table.is_bit:
                _pack_bits(words, registers)
            else:
                registers[: len(words)] = words
            return None

        return action

    def _connected(self, connected: bool) -> None:
        if connected:
            self.connections += 1
            self.accepted += 1
        else:
            self.connections -= 1
        if self._connections_changed is not None:
            self._connections_changed.set()

    async def wait_connections(self, count: int, *, timeout: float = 5.0) -> None:
        """Return once exactly ``count`` client connections are open.

        Raises:
            TimeoutError: not within ``timeout`` seconds.
        """
        with anyio.fail_after(timeout):
            while self.connections != count:
                self._connections_changed = anyio.Event()
                await self._connections_changed.wait()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Serve every device until cancelled."""
        from pymodbus.server import ModbusSerialServer, ModbusTcpServer
        from pymodbus.simulator import DataType, SimData, SimDevice

        self._hush = anyio.Event()  # silent slaves answer nothing until this run stops
        try:
            for line, units in self._units.items():
                sims = []
                for slave, unit in units.items():
                    w = unit.words
                    blocks = (
                        [SimData(0, len(w[Table.COIL]), False, DataType.BITS)],
                        [SimData(0, len(w[Table.DISCRETE_INPUT]), False, DataType.BITS)],
                        [SimData(0, len(w[Table.HOLDING]), 0, DataType.REGISTERS)],
                        [SimData(0, len(w[Table.INPUT]), 0, DataType.REGISTERS)],
                    )
                    sims.append(SimDevice(slave, blocks, action=self._action(unit.spec.id, unit)))
                server: ModbusBaseServer
                if isinstance(line, tuple):
                    server = ModbusTcpServer(
                        sims,
                        address=line,
                        trace_connect=self._connected,
                    )
                    where = f"{line[0]}:{line[1]}"
                else:  # RTU framing on a serial port, or on "socket://HOST:PORT"
                    cfg = next(iter(units.values())).spec.config
                    server = ModbusSerialServer(
                        sims,
                        port=line,
                        baudrate=cfg.baud_rate,
                        bytesize=cfg.data_bits,
                        parity=cfg.parity,
                        stopbits=cfg.stop_bits,
                        trace_connect=self._connected,
                    )
                    where = f"RTU line {line}"
                await server.serve_forever(background=True)
                self._servers.append(server)
                log.debug("simulating %d Modbus device(s) on %s", len(units), where)
            task_status.started()
            await anyio.sleep_forever()
        finally:
            with anyio.CancelScope(shield=True):
                self._hush.set()
                for server in self._servers:
                    await server.shutdown()  # type: ignore[no-untyped-call]  # unannotated in pymodbus 3.16
                self._servers.clear()

    @classmethod
    def demo_yaml(cls, allocate_port: Callable[[], int]) -> str:
        """A thermostat and an energy meter, each on its own port."""
        from importlib.resources import files

        text = files("edgedev_modbus").joinpath("demo.yaml").read_text(encoding="utf-8")
        return text.replace("THERMOSTAT_PORT", str(allocate_port())).replace(
            "METER_PORT", str(allocate_port())
        )
