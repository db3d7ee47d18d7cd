"""An asyncua server for the discovery benchmark: a plant of ``--objects`` x ``--variables``.

Half the objects are instances of an ObjectType (``PumpType``: Speed with EURange and
EngineeringUnits, Running, and a Motor component), the rest plain objects in folders of 10,
each with ``--variables`` Double variables; so a run meets typed devices, folders,
components and metadata properties as a real server has them. The server counts the service
calls it serves (Browse, Read and the values read).

Control is on stdin/stdout: ``ready`` once it listens; ``mark`` prints the counts as JSON;
end of input stops it. Run by ``bench/opcua_discover.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from typing import Any

from asyncua import Server, ua


async def build(server: Server, objects: int, variables: int) -> int:
    ns = await server.register_namespace("urn:edgedev:bench:plant")
    pump_type = await server.nodes.base_object_type.add_object_type(ns, "PumpType")
    speed = await pump_type.add_variable(ns, "Speed", 0.0)
    await speed.set_modelling_rule(True)
    running = await pump_type.add_variable(ns, "Running", False)
    await running.set_modelling_rule(True)
    motor = await pump_type.add_object(ns, "Motor")
    await motor.set_modelling_rule(True)
    current = await motor.add_variable(ns, "Current", 0.0)
    await current.set_modelling_rule(True)
    plant = await server.nodes.objects.add_folder(ns, "Plant")
    count = 0
    folder = plant
    for o in range(objects):
        if o % 10 == 0:
            folder = await plant.add_folder(ns, f"Area{o // 10:03}")
        if o % 2 == 0:
            node = await folder.add_object(ns, f"Pump{o:04}", pump_type)
            speed = await node.get_child(f"{ns}:Speed")
            await speed.add_property(ns, "0:EURange", ua.Range(0.0, 3000.0))
            await speed.add_property(
                ns, "0:EngineeringUnits", ua.EUInformation(DisplayName=ua.LocalizedText("rpm"))
            )
            count += 3
            extra = variables - 3
        else:
            node = await folder.add_object(ns, f"Meter{o:04}")
            extra = variables
        for v in range(extra):
            await node.add_variable(ns, f"V{v:03}", float(v))
            count += 1
    return count


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--objects", type=int, default=100)
    parser.add_argument("--variables", type=int, default=100)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    server = Server()
    await server.init()
    server.set_endpoint(f"opc.tcp://127.0.0.1:{args.port}/plant")
    server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
    made = await build(server, args.objects, args.variables)
    counts = {"Browse": 0, "nodes browsed": 0, "Read": 0, "values read": 0}
    view, attributes = server.iserver.view_service, server.iserver.attribute_service
    browse, read = view.browse, attributes.read

    def counted_browse(params: Any) -> Any:
        counts["Browse"] += 1
        counts["nodes browsed"] += len(params.NodesToBrowse)
        return browse(params)

    def counted_read(params: Any) -> Any:
        counts["Read"] += 1
        counts["values read"] += len(params.NodesToRead)
        return read(params)

    view.browse = counted_browse
    attributes.read = counted_read
    async with server:
        print(json.dumps({"ready": made}), flush=True)
        loop = asyncio.get_running_loop()
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            if line.strip() == "mark":
                print(json.dumps(counts), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
