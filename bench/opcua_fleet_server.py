"""asyncua servers for the OPC-UA fleet benchmark, counting what clients ask of them.

One process, several servers (one per port), each with ``--devices`` objects of ``--nodes``
Double variables (``ns=2;s=d{device}.n{node}``). With ``--change`` every value changes once a
second (for subscriptions). Each server counts the Read requests for values and the nodes in
them, and reports the sessions and subscriptions open.

Control is on stdin/stdout, one line each: the process prints ``ready`` once every server
listens; ``mark`` prints a JSON snapshot ``{"t", "reads", "nodes", "sessions",
"subscriptions"}`` summed over the servers; end of input stops it. Run by
``bench/opcua_fleet.py``.
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


async def serve(ports: list[int], devices: int, nodes: int, change: bool) -> None:
    counts = {"reads": 0, "nodes": 0}
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
        while True:
            await asyncio.sleep(1.0)
            tick += 1
            for _, variables in started:
                for i, var in enumerate(variables):
                    await var.write_value(float(tick + i))

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
