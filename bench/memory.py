"""Where a mapper's memory goes: ``edgedev run`` on the Modbus fleet under tracemalloc.

Starts the servers and mosquitto of ``bench/fleet.py``, then runs ``edgedev run -f FLEET``
in this process with :mod:`tracemalloc` tracing, takes a snapshot once the fleet has run for
``--seconds``, and prints the largest allocations by line (and by file with ``--by file``),
beside the process's RSS and its peak (``VmHWM``). Run::

    .venv/bin/python bench/memory.py --devices 1000 --properties 50 --seconds 20

tracemalloc slows the mapper down (a fleet of 1000 falls behind while traced) and counts only
Python's allocations: the RSS beside them tells what it does not see (the interpreter, C
libraries, freed memory the allocator keeps).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

import fleet_config as fc
from fleet import Child, start_broker, stopping

from edgedev.testing import free_port


def status(key: str) -> float:
    """A ``/proc/self/status`` figure in MiB (``VmRSS``, ``VmHWM``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) / 1024
    return 0.0


def report(seconds: float, by: str, top: int, stop: threading.Event) -> None:
    """After ``seconds``, print the largest allocations, then stop the mapper."""
    if stop.wait(seconds):
        return
    snapshot = tracemalloc.take_snapshot()
    current, peak = tracemalloc.get_traced_memory()
    print(
        f"RSS {status('VmRSS'):.0f} MiB, peak {status('VmHWM'):.0f} MiB; traced "
        f"{current / 2**20:.1f} MiB now, {peak / 2**20:.1f} MiB at most",
        flush=True,
    )
    for stat in snapshot.statistics(by)[:top]:
        where = [
            f"{frame.filename.split('site-packages/')[-1]}:{frame.lineno}"
            for frame in stat.traceback
        ]
        print(
            f"  {stat.size / 2**20:7.2f} MiB {stat.count:9,d} blocks  " + " <- ".join(where),
            flush=True,
        )
    os.kill(os.getpid(), signal.SIGTERM)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--properties", type=int, default=50)
    parser.add_argument("--cycle", type=int, default=1000)
    parser.add_argument("--servers", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--by", choices=("lineno", "filename", "traceback"), default="lineno")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--frames", type=int, default=1, help="frames kept per allocation")
    args = parser.parse_args()
    props = fc.properties(args.properties)
    ports = [[free_port() for _ in range(n)] for n in fc.ports_needed(args.devices, args.servers)]
    units = fc.assign(args.devices, args.servers, ports)
    with tempfile.TemporaryDirectory(prefix="edgedev-memory-") as folder:
        fleet = Path(folder) / "fleet.yaml"
        fc.write_devices(fleet, units, props, "coalesced", args.cycle, 3000, None)
        children: list[Child] = []
        with contextlib.ExitStack() as stack:
            stack.enter_context(stopping(children))
            for server, server_ports in enumerate(ports):
                argv = [sys.executable, "fleet_server.py", "--properties", str(args.properties)]
                for port in server_ports:
                    argv += ["--port", f"{port}:{sum(1 for u in units if u.port == port)}"]
                children.append(Child(f"server {server}", argv))
            for child in children:
                child.wait_ready()
            broker = stack.enter_context(start_broker("mosquitto"))
            from edgedev.cli import main as edgedev

            stop = threading.Event()
            tracemalloc.start(args.frames)
            started = time.time()
            threading.Thread(
                target=report, args=(args.seconds, args.by, args.top, stop), daemon=True
            ).start()
            code = edgedev(["run", "-q", "-f", str(fleet), "--broker", broker.url])
            stop.set()
            print(f"edgedev run exited {code} after {time.time() - started:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
