"""asyncua servers for the OPC-UA fleet benchmark, counting what clients ask of them.

One process per ``--port`` group, several servers (one per port), each with ``--devices``
objects of ``--nodes`` Double variables (``ns=2;s=d{device}.n{node}``). With ``--change`` every
value changes once a second (for subscriptions), written in slices of 100 with a turn of the
event loop between two, so that the server answers requests while it writes (a server that
stops answering for the length of its writes would measure itself, not its client). Each
server counts the Read requests for values and the nodes in them, and the values it changed,
and reports the sessions and subscriptions open.

Control is on stdin/stdout, one line each: the process prints ``ready`` once every server
listens; ``mark`` prints a JSON snapshot ``{"t", "reads", "nodes", "changes", "late",
"sessions", "subscriptions"}`` summed over the servers (``late``: rounds of changes that took
longer than the second they had); end of input stops it. Run by ``bench/opcua_fleet.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import threading
import time
from typing import Any

from asyncua import Server, ua

VALUE = 13  # the Value attribute id


async def start(port: int, devices: int, nodes: int, counts: dict[str, int]) -> tuple[Any, list]:
    server = Server()
    await server.init()
    server.set_endpoint(f"opc.tcp://127.0.0.1:{port}/fleet")
    server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
    idx = await server.register_namespace("urn:edgedev:bench")
    assert idx == 2
    variables = []
    objects = server.nodes.objects
    for d in range(devices):
        folder = await objects.add_object(ua.NodeId(f"d{d}", idx), f"d{d}")
        for n in range(nodes):
            var = await folder.add_variable(ua.NodeId(f"d{d}.n{n}", idx), f"n{n}", float(n))
            variables.append(var)
    service = server.iserver.attribute_service
    original = service.read

    def read(params: Any) -> Any:
        asked = sum(1 for item in params.NodesToRead if item.AttributeId == VALUE)
        if asked:
            counts["reads"] += 1
            counts["nodes"] += asked
        return original(params)

    service.read = read
    await server.start()
    return server, variables


SLICE = 100
"""Values written between two turns of the event loop."""


async def serve(ports: list[int], devices: int, nodes: int, change: bool) -> None:
    counts = {"reads": 0, "nodes": 0, "changes": 0, "late": 0}
    started = [await start(port, devices, nodes, counts) for port in ports]
    loop = asyncio.get_running_loop()
    done = asyncio.Event()

    def control() -> None:
        for line in sys.stdin:
            if line.strip() == "mark":
                snapshot = {
                    "t": time.time(),
                    **counts,
                    "sessions": sum(len(s.iserver._external_sessions) for s, _ in started),
                    "subscriptions": sum(
                        len(s.iserver.subscription_service.subscriptions) for s, _ in started
                    ),
                }
                print(json.dumps(snapshot), flush=True)
        loop.call_soon_threadsafe(done.set)

    async def changing() -> None:
        tick = 0
        next_at = time.monotonic() + 1.0
        while True:
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            tick += 1
            for server, variables in started:
                for start in range(0, len(variables), SLICE):
                    for i, var in enumerate(variables[start : start + SLICE], start):
                        value = ua.DataValue(ua.Variant(float(tick + i), ua.VariantType.Double))
                        await server.write_attribute_value(var.nodeid, value)
                    counts["changes"] += len(variables[start : start + SLICE])
                    await asyncio.sleep(0)
            next_at += 1.0
            if time.monotonic() > next_at:
                counts["late"] += 1
                next_at = time.monotonic()

    print("ready", flush=True)
    threading.Thread(target=control, daemon=True).start()
    task = asyncio.create_task(changing()) if change else None
    try:
        await done.wait()
    finally:
        if task is not None:
            task.cancel()
        for server, _ in started:
            await server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, action="append", required=True)
    parser.add_argument("--devices", type=int, required=True, help="devices per server")
    parser.add_argument("--nodes", type=int, required=True, help="nodes per device")
    parser.add_argument("--change", action="store_true", help="change every value each second")
    args = parser.parse_args()
    logging.getLogger("asyncua").setLevel(logging.ERROR)
    asyncio.run(serve(args.port, args.devices, args.nodes, args.change))


if __name__ == "__main__":
    main()
