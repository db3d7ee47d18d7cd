"""The fleet benchmark's EdgeCore: ``edgedev.testing.dmi.FakeEdgeCore`` serving a fleet file.

It holds every Device and DeviceModel of ``--file`` as EdgeCore would (numbers as float32
wrappers), serves DMI on ``--socket`` with EdgeCore's limiter (1 request/s, burst 100), and
counts what arrives. Control is on stdin/stdout: ``ready`` once serving; ``stats`` prints a
JSON object of the counts so far.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import anyio
import yaml

from edgedev.testing.dmi import FakeEdgeCore


def stats(core: FakeEdgeCore) -> dict[str, object]:
    devices = {(s.deviceNamespace, s.deviceName) for s in core.statuses}
    return {
        "requests": len(core.requests),
        "statuses": len(core.statuses),
        "states": len(core.states),
        "limited": core.limited,
        "invalid": len(core.invalid),
        "max_per_second": core.max_in_window(1.0),
        "max_per_10s": core.max_in_window(10.0),
        "devices_reported": len(devices),
        "registrations": len(core.registrations),
    }


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--file", type=Path, required=True)
    parser.add_argument("--socket", required=True)
    args = parser.parse_args()
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    docs = [d for d in yaml.load_all(args.file.read_text(), Loader=loader) if d]
    core = FakeEdgeCore(
        args.socket,
        devices=[d for d in docs if d["kind"] == "Device"],
        models=[d for d in docs if d["kind"] == "DeviceModel"],
    )
    async with core:
        print("ready", flush=True)
        while line := await anyio.to_thread.run_sync(sys.stdin.readline):
            if line.split() == ["stats"]:
                print(json.dumps(stats(core)), flush=True)


if __name__ == "__main__":
    anyio.run(main)
