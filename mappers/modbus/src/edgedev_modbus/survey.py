"""Surveying a Modbus endpoint: which units answer, what they say they are, what they serve.

The I/O half of ``edgedev discover modbus``, over the driver's own link
(:class:`~edgedev_modbus.link.ModbusLink`: one request at a time, each under the timeout).
Only read functions are sent: 1, 2, 3 and 4 (read coils, discrete inputs, holding and input
registers), 17 (report server id) and 43/14 (read device identification). Requests are spaced
to at most ``rate`` a second; the tables are walked by :class:`~edgedev_modbus.scan.RangeScan`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import anyio

from edgedev._text import plural
from edgedev.discover import Summary
from edgedev_modbus.codec import Table
from edgedev_modbus.driver import GATEWAY_PATH_UNAVAILABLE, GATEWAY_TARGET_FAILED, exception_name
from edgedev_modbus.found import PLURALS, Unit
from edgedev_modbus.link import ModbusLink
from edgedev_modbus.scan import FUNCTION, NO_ANSWER, RangeScan

if TYPE_CHECKING:
    from pymodbus.client import ModbusBaseClient
    from pymodbus.pdu import ModbusPDU

BASIC_IDENTIFICATION = 1
"""Read device identification code 01: the basic objects (vendor, product code, revision)."""
MAX_IDENTIFICATION_REQUESTS = 4
"""Requests one identification may take (the basic objects fit in one; a device may split)."""
ABSENT = frozenset({GATEWAY_PATH_UNAVAILABLE, GATEWAY_TARGET_FAILED})
"""Exceptions by which a gateway says that the unit behind it is not there."""

_READ: dict[Table, Callable[[ModbusBaseClient, int, int, int], Awaitable[ModbusPDU]]] = {
    Table.COIL: lambda c, a, n, u: c.read_coils(a, count=n, device_id=u),
    Table.DISCRETE_INPUT: lambda c, a, n, u: c.read_discrete_inputs(a, count=n, device_id=u),
    Table.HOLDING: lambda c, a, n, u: c.read_holding_registers(a, count=n, device_id=u),
    Table.INPUT: lambda c, a, n, u: c.read_input_registers(a, count=n, device_id=u),
}
REQUEST_NAMES = {1: "read coils", 2: "read discrete inputs", 3: "read holding", 4: "read input"}


class Surveyor:
    """Sends the survey's requests on one link, spaced and counted.

    Args:
        link: the endpoint's link.
        summary: receives the request counts.
        timeout: seconds each request may take.
        rate: requests a second at most (0: as fast as the device answers).
    """

    def __init__(self, link: ModbusLink, summary: Summary, *, timeout: float, rate: float) -> None:
        self.link = link
        self.summary = summary
        self.timeout = timeout
        self.gap = 1 / rate if rate > 0 else 0.0
        self._next = 0.0

    async def _call(
        self, kind: str, request: Callable[[ModbusBaseClient], Awaitable[ModbusPDU]]
    ) -> ModbusPDU | None:
        """One request, no sooner than the rate allows; ``None`` if it went unanswered.

        Raises:
            edgedev.DeviceError: the connection failed.
        """
        now = time.monotonic()
        if self._next > now:
            await anyio.sleep(self._next - now)
        self._next = max(now, self._next) + self.gap
        self.summary.sent(kind)
        try:
            return await self.link.call(request, timeout=self.timeout, urgent=False)
        except TimeoutError:
            return None

    async def probe(self, unit: int) -> Unit | None:
        """The unit, if it answers a read of holding register 0; ``None`` if it is absent.

        Data or any exception is an answer, but a gateway's "not there" (exception 10 or 11).
        """
        answer = await self._call(
            "read holding", lambda c: c.read_holding_registers(0, count=1, device_id=unit)
        )
        if answer is None:
            return None
        if answer.isError():
            code = answer.exception_code
            if code in ABSENT:
                return None
            return Unit(unit, f"answered with {exception_name(code)}")
        return Unit(unit, "answered")

    async def identify(self, unit: Unit) -> None:
        """Ask the unit what it is: device identification (43/14), report server id (17)."""
        object_id = 0
        for _ in range(MAX_IDENTIFICATION_REQUESTS):
            answer = await self._call("identification", _identification(object_id, unit.unit))
            if answer is None or answer.isError():
                break
            information = getattr(answer, "information", None) or {}
            unit.identity.update({k: v for k, v in information.items() if isinstance(v, bytes)})
            following = getattr(answer, "next_object_id", 0)
            if not getattr(answer, "more_follows", 0) or following <= object_id:
                break
            object_id = following
        answer = await self._call("server id", lambda c: c.report_device_id(device_id=unit.unit))
        if answer is not None and not answer.isError():
            identifier = getattr(answer, "identifier", b"")
            if isinstance(identifier, bytes) and identifier:
                unit.server_id = identifier

    async def scan(self, unit: Unit, table: Table, last: int, stride: int) -> RangeScan:
        """The readable ranges of one table of the unit."""
        scan = RangeScan(table, last, stride)
        read, number = _READ[table], unit.unit
        kind = REQUEST_NAMES[FUNCTION[table]]
        while (asked := scan.request()) is not None:
            answer = await self._call(kind, _reading(read, *asked, number))
            if answer is None:
                scan.answer(NO_ANSWER)
            elif answer.isError():
                scan.answer(answer.exception_code)
            else:
                scan.answer(None)
        unit.scans[table] = scan
        return scan


_Request = Callable[["ModbusBaseClient"], Awaitable["ModbusPDU"]]


def _identification(object_id: int, unit: int) -> _Request:
    def request(client: ModbusBaseClient) -> Awaitable[ModbusPDU]:
        return client.read_device_information(
            read_code=BASIC_IDENTIFICATION, object_id=object_id, device_id=unit
        )

    return request


def _reading(
    read: Callable[[ModbusBaseClient, int, int, int], Awaitable[ModbusPDU]],
    start: int,
    count: int,
    unit: int,
) -> _Request:
    def request(client: ModbusBaseClient) -> Awaitable[ModbusPDU]:
        return read(client, start, count, unit)

    return request


def table_line(scan: RangeScan) -> str:
    """``holding registers: 0-9, 100-119 (23 requests)``, for the summary."""
    from edgedev_modbus.found import ranges_text

    requests = plural(scan.requests, "request")
    text = f"{PLURALS[scan.table]}: {ranges_text(scan.ranges)} ({requests})"
    if scan.stopped:
        text += f"; stopped: {scan.stopped}"
    return text
