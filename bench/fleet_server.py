"""Modbus TCP servers for the fleet benchmark: one process, several ports, many slave ids.

A light pymodbus server rather than :class:`edgedev_modbus.ModbusSimulator`: the simulator
re-encodes every sensor from its signal function on each read (about 0.4 ms per 50-property
read here), which would make the servers, not the mapper, the bottleneck of a 2-core machine.
Here every unit cycles through a few precomputed register images (values change on every
read) and counts the reads it serves.

Control is on stdin/stdout, one line each: the process prints ``ready`` once every port
listens; ``mark`` prints a JSON snapshot ``{"t", "reads", "units", "connections"}`` (reads
served so far, in total and per unit; client connections open now); end of input stops it.

Run by ``bench/fleet.py``; by hand::

    python bench/fleet.py --help
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fleet_config import UNITS_PER_PORT, frames, properties, register_span
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

_READS = frozenset({1, 2, 3, 4})
Action = Callable[[int, int, int, int, list[int], Any], Awaitable[None]]


def _action(index: int, counts: list[int], images: list[list[int]]) -> Action:
    count_of = len(images)

    async def action(
        function: int, start: int, address: int, count: int, registers: list[int], values: Any
    ) -> None:
        if values is None and function in _READS:
            served = counts[index] = counts[index] + 1
            image = images[served % count_of]
            first = address - start
            registers[first : first + count] = image[first : first + count]

    return action


async def serve(ports: list[tuple[int, int]], props: int) -> None:
    layout = properties(props)
    images = frames(layout, 16)
    span = register_span(layout)
    counts: list[int] = []
    servers = []
    connections = [0]

    def trace_connect(connected: bool) -> None:
        connections[0] += 1 if connected else -1

    for port, units in ports:
        devices = []
        for slave in range(1, units + 1):
            devices.append(
                SimDevice(
                    slave,
                    [SimData(0, span, 0, DataType.REGISTERS)],
                    action=_action(len(counts), counts, images),
                )
            )
            counts.append(0)
        server = ModbusTcpServer(devices, address=("127.0.0.1", port), trace_connect=trace_connect)
        await server.serve_forever(background=True)
        servers.append(server)

    loop = asyncio.get_running_loop()
    done = asyncio.Event()

    def control() -> None:
        for line in sys.stdin:
            if line.strip() == "mark":
                snapshot = {
                    "t": time.time(),
                    "reads": sum(counts),
                    "units": list(counts),
                    "connections": connections[0],
                }
                print(json.dumps(snapshot), flush=True)
        loop.call_soon_threadsafe(done.set)

    print("ready", flush=True)
    threading.Thread(target=control, daemon=True).start()
    try:
        await done.wait()
    finally:
        for server in servers:
            await server.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--port",
        action="append",
        required=True,
        metavar="PORT:UNITS",
        help=f"a port and how many slave ids it serves (<= {UNITS_PER_PORT})",
    )
    parser.add_argument("--properties", type=int, required=True)
    args = parser.parse_args()
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    ports = [(int(p), int(u)) for p, u in (item.split(":") for item in args.port)]
    asyncio.run(serve(ports, args.properties))


if __name__ == "__main__":
    main()
