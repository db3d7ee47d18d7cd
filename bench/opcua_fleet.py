"""OPC-UA fleet benchmark: devices on a few asyncua servers, one mapper process, counted at
the servers (sessions, subscriptions, Read requests and the nodes in them) and at a
subscriber (values delivered).

The fleet of issue 21: 100 devices x 100 DOUBLE nodes every 1 s on 4 servers. Run::

    .venv/bin/python bench/opcua_fleet.py --devices 100 --nodes 100 --servers 4 --cycle 1000
    .venv/bin/python bench/opcua_fleet.py ... --mode subscribe

In subscribe mode the servers change every value once a second; the share delivered is given
against the nominal rate and against the changes the servers made (a server process that falls
behind makes fewer). The mapper's ``edgedev_values_dropped_total`` is read from its /metrics.
Each server runs in a process of its own (``--server-procs`` to share fewer).

It reuses ``bench/fleet.py``'s process helpers (broker, counting subscriber, CPU sampling).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from fleet import (
    Child,
    _stop_mapper,
    cpu_seconds,
    machine_busy,
    peak_rss_mb,
    start_broker,
    stopping,
)

from edgedev.testing import free_port

NAMESPACE = "default"


def write_fleet(path: Path, ports: list[int], per_server: int, nodes: int, args: Any) -> None:
    lines = [
        "apiVersion: devices.kubeedge.io/v1beta1",
        "kind: DeviceModel",
        f"metadata: {{name: meter, namespace: {NAMESPACE}}}",
        "spec:",
        "  protocol: opcua",
        "  properties:",
        *(f"    - {{name: n{n}, type: DOUBLE, accessMode: ReadOnly}}" for n in range(nodes)),
    ]
    for s, port in enumerate(ports):
        for d in range(per_server):
            lines += [
                "---",
                "apiVersion: devices.kubeedge.io/v1beta1",
                "kind: Device",
                f"metadata: {{name: s{s}-d{d}, namespace: {NAMESPACE}}}",
                "spec:",
                "  deviceModelRef: {name: meter}",
                "  protocol:",
                "    protocolName: opcua",
                f"    configData: {{url: 'opc.tcp://127.0.0.1:{port}/fleet', "
                f"mode: {args.mode}, timeout: 5000}}",
                "  properties:",
                *(
                    f"    - {{name: n{n}, collectCycle: {args.cycle}, visitors: "
                    f"{{protocolName: opcua, configData: {{nodeID: 'ns=2;s=d{d}.n{n}'}}}}}}"
                    for n in range(nodes)
                ),
            ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def sample(servers: list[Child], counter: Child, pid: int) -> dict[str, Any]:
    marks = [s.ask("mark") for s in servers]
    total = {k: sum(m[k] for m in marks) for k in marks[0] if k != "t"}
    return {
        "t": time.time(),
        "cpu": cpu_seconds(pid),
        "servers_cpu": sum(cpu_seconds(s.pid) for s in servers),
        "busy": machine_busy(),
        "server": total,
        "counter": counter.ask("mark"),
    }


def dropped(port: int) -> dict[str, float]:
    """``edgedev_values_dropped_total`` by reason, from the mapper's /metrics."""
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    found: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("edgedev_values_dropped_total{"):
            reason = line.split('reason="', 1)[1].split('"', 1)[0]
            found[reason] = float(line.rsplit(" ", 1)[1])
    return found


def _tail(log: Path, lines: int = 12) -> None:
    """The mapper's warnings (the first few), printed as the run ends."""
    warnings = [line for line in log.read_text().splitlines() if "warning" in line.lower()]
    if warnings:
        print(f"mapper log: {len(warnings)} warnings; the first {min(lines, len(warnings))}:")
        for line in warnings[:lines]:
            print("  " + line[:160])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=100, help="devices in all (default 100)")
    parser.add_argument("--nodes", type=int, default=100, help="nodes per device (default 100)")
    parser.add_argument("--servers", type=int, default=4, help="OPC-UA servers (default 4)")
    parser.add_argument("--cycle", type=int, default=1000, help="collectCycle, ms")
    parser.add_argument("--seconds", type=float, default=10.0, help="measurement window")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--mode", choices=("poll", "subscribe"), default="poll")
    parser.add_argument("--broker", choices=("auto", "mosquitto", "embedded"), default="auto")
    parser.add_argument(
        "--server-procs", type=int, default=0, help="server processes (default: one per server)"
    )
    args = parser.parse_args()
    per_server = math.ceil(args.devices / args.servers)
    devices = per_server * args.servers
    ports = [free_port() for _ in range(args.servers)]
    nominal = devices * args.nodes * 1000 / args.cycle

    with tempfile.TemporaryDirectory(prefix="edgedev-opcua-fleet-") as folder:
        work = Path(folder)
        fleet = work / "fleet.yaml"
        write_fleet(fleet, ports, per_server, args.nodes, args)
        children: list[Child] = []
        with contextlib.ExitStack() as stack:
            stack.enter_context(stopping(children))
            procs = args.server_procs or args.servers
            servers = []
            for n in range(procs):
                argv = [sys.executable, "opcua_fleet_server.py", "--devices", str(per_server)]
                argv += ["--nodes", str(args.nodes), *(f"--port={p}" for p in ports[n::procs])]
                if args.mode == "subscribe":
                    argv.append("--change")
                servers.append(Child(f"servers {n}", argv))
            children += servers
            for child in servers:
                child.wait_ready(timeout=300)
            broker = stack.enter_context(start_broker(args.broker))
            counter = Child(
                "counter",
                [
                    sys.executable,
                    "fleet_counter.py",
                    *("--port", str(broker.port), "--devices", str(devices)),
                ],
            )
            children.append(counter)
            counter.wait_ready()
            log = stack.enter_context((work / "mapper.log").open("w"))
            started = time.time()
            health = free_port()
            mapper = subprocess.Popen(
                [
                    *(sys.executable, "-m", "edgedev", "run", "-f", str(fleet)),
                    *("--broker", broker.url, "--health-port", str(health)),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            stack.callback(_stop_mapper, mapper)
            stack.callback(_tail, work / "mapper.log")
            snap = counter.ask("mark")
            while snap["all_devices_at"] is None and time.time() < started + 120:
                if mapper.poll() is not None:
                    raise RuntimeError(f"the mapper exited: {(work / 'mapper.log').read_text()}")
                time.sleep(0.5)
                snap = counter.ask("mark")
            ready = (snap["all_devices_at"] or time.time()) - started
            time.sleep(args.warmup)
            drops_before = dropped(health)
            before = sample(servers, counter, mapper.pid)
            time.sleep(args.seconds)
            after = sample(servers, counter, mapper.pid)
            drops_after = dropped(health)
            rss = peak_rss_mb(mapper.pid)
            loadavg = " ".join(Path("/proc/loadavg").read_text().split()[:3])

    elapsed = after["t"] - before["t"]
    cycles = elapsed * 1000 / args.cycle
    s0, s1 = before["server"], after["server"]
    reads = s1["reads"] - s0["reads"]
    nodes = s1["nodes"] - s0["nodes"]
    values = after["counter"]["values"] - before["counter"]["values"]
    changes = s1.get("changes", 0) - s0.get("changes", 0)
    cpu = after["cpu"] - before["cpu"]
    servers_cpu = after["servers_cpu"] - before["servers_cpu"]
    drops = {k: v - drops_before.get(k, 0) for k, v in drops_after.items()}
    busy = (after["busy"][0] - before["busy"][0]) / (after["busy"][1] - before["busy"][1])
    print(
        f"== {args.mode}: {devices} devices x {args.nodes} nodes / {args.cycle} ms on "
        f"{args.servers} servers, measured over {elapsed:.1f} s =="
    )
    rows = [
        ("sessions held", f"{s1['sessions']} (counted at the servers)"),
        ("subscriptions", f"{s1['subscriptions']}"),
        ("Read requests /s", f"{reads / elapsed:,.1f} ({reads / cycles:.1f} per cycle)"),
        ("nodes per Read", f"{nodes / reads:,.0f}" if reads else "-"),
        (
            "values delivered /s",
            f"{values / elapsed:,.0f} of {nominal:,.0f} ({values / elapsed / nominal:.1%})",
        ),
        *(
            [
                (
                    "changes made /s",
                    f"{changes / elapsed:,.0f} at the servers; delivered "
                    f"{values / changes:.1%} of them; late rounds {s1['late'] - s0['late']}",
                )
            ]
            if changes
            else []
        ),
        (
            "values dropped",
            ", ".join(f"{k} {v:.0f}" for k, v in sorted(drops.items()) if v) or "none",
        ),
        ("mapper CPU", f"{cpu / elapsed:.0%} of one core"),
        ("CPU per value", f"{cpu / values * 1e6:.1f} us" if values else "-"),
        ("mapper peak RSS", f"{rss:.0f} MiB"),
        ("all devices reported", f"{ready:.1f} s after start"),
        ("servers CPU", f"{servers_cpu / elapsed:.0%} of one core"),
        ("machine busy", f"{busy:.0%} of all cores; load average {loadavg}"),
    ]
    for name, text in rows:
        print(f"  {name:22} {text}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
