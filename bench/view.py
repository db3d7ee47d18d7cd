"""Web view benchmark: 1000 devices x 50 properties at 1 s into one ``edgedev view`` process.

Starts, on loopback: a mosquitto (``PATH`` or ``/usr/sbin``; else edgedev's embedded broker),
the view exactly as a user runs it (``python -m edgedev view --port P``), and a publisher
process (this script with ``--publish``) that sends one ``twin/update`` per device per cycle,
spread evenly over the cycle, ``--properties`` values each; property ``p0`` carries the time
it was sent. Meanwhile this process plays a page: it follows ``/api/events`` with one device
open, and asks ``/api/fleet`` once a second. Over ``--seconds`` it measures:

* the view's CPU share and peak RSS (``/proc/PID/stat``, ``VmHWM``);
* lag: send time of ``p0`` to its arrival in an event at the page (p50, p99, max) -- the view
  keeps up when this stays near the coalescing period, however long the run;
* events per second at the page (coalesced: at most 1 / redraw);
* ``/api/fleet`` answer time and size with every device in it (the page's first load);
* messages the view's bus dropped for falling behind (from its log).

Usage::

    python bench/view.py --devices 1000 --properties 50 --cycle 1000 --seconds 30
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio
import httpx

from edgedev.testing import Mosquitto, free_port, wait_for_port

TICK = os.sysconf("SC_CLK_TCK")
ROOT = "bench-view"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def status_mb(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {key} in /proc status")


def publish(url: str, devices: int, properties: int, cycle: float, seconds: float) -> None:
    """The publisher process: every device reports every cycle, spread over the cycle."""
    from edgedev.bus import Bus, Channel, Topics
    from edgedev.wire import twin_report

    topics = Topics(ROOT)
    names = [f"p{i}" for i in range(properties)]
    ids = [f"bench/dev-{i:04d}" for i in range(devices)]
    topic_of = {d: topics.device(d, Channel.TWIN_UPDATE) for d in ids}

    async def main() -> None:
        async with Bus(url, client_id="bench-view-publisher") as bus:
            await bus.wait_connected()
            start = time.monotonic()
            turn = 0
            while time.monotonic() - start < seconds:
                for k, device in enumerate(ids):
                    due = start + turn * cycle + k * cycle / devices
                    delay = due - time.monotonic()
                    if delay > 0:
                        await anyio.sleep(delay)
                    sent = time.time()
                    ms = int(sent * 1000)
                    entries = [(names[0], f"{sent:.3f}", "float", ms)]
                    entries += [
                        (n, f"{(turn + j) % 100}.5", "float", ms) for j, n in enumerate(names[1:])
                    ]
                    bus.publish(topic_of[device], twin_report(entries), qos=0)
                turn += 1
            with anyio.fail_after(30):
                await bus.flush()

    anyio.run(main)


async def page(base: str, device: str, seconds: float, out: dict[str, object]) -> None:
    """Follow the event stream with ``device`` open; ask for the fleet once a second."""
    lags: list[float] = []
    events = 0
    fleet_ms: list[float] = []
    fleet_bytes = 0
    fleet_devices = 0
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:

        async def follow() -> None:
            nonlocal events
            async with http.stream("GET", "/api/events", params={"open": device}) as response:
                async for line in response.aiter_lines():
                    if not line.startswith("data: "):
                        continue
                    events += 1
                    body = json.loads(line[6:])
                    now = time.time()
                    lags.extend(
                        now - float(p["reported"])
                        for opened in body.get("open", [])
                        for p in opened["props"]
                        if p["name"] == "p0" and p["reported"]
                    )

        async def fleet() -> None:
            nonlocal fleet_bytes, fleet_devices
            while True:
                t = time.perf_counter()
                answer = await http.get("/api/fleet")
                fleet_ms.append((time.perf_counter() - t) * 1000)
                fleet_bytes = len(answer.content)
                fleet_devices = len(answer.json()["devices"])
                await anyio.sleep(1.0)

        with anyio.move_on_after(seconds):
            async with anyio.create_task_group() as tg:
                tg.start_soon(follow)
                tg.start_soon(fleet)
    lags.sort()
    out["events_per_s"] = round(events / seconds, 2)
    if lags:
        out["lag_ms"] = {
            "p50": round(1000 * lags[len(lags) // 2], 1),
            "p99": round(1000 * lags[min(len(lags) - 1, int(len(lags) * 0.99))], 1),
            "max": round(1000 * lags[-1], 1),
            "samples": len(lags),
        }
    out["fleet_ms"] = {
        "median": round(statistics.median(fleet_ms), 1) if fleet_ms else None,
        "max": round(max(fleet_ms), 1) if fleet_ms else None,
    }
    out["fleet_kb"] = round(fleet_bytes / 1024, 1)
    out["fleet_devices"] = fleet_devices


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--properties", type=int, default=50)
    parser.add_argument("--cycle", type=int, default=1000, help="ms between two reports")
    parser.add_argument("--seconds", type=float, default=30.0, help="measured window")
    parser.add_argument("--warmup", type=float, default=10.0)
    parser.add_argument("--publish", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    cycle = args.cycle / 1000
    if args.publish:
        publish(args.publish, args.devices, args.properties, cycle, args.seconds)
        return 0

    broker = Mosquitto() if Mosquitto.available() else None
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="bench-view-") as tmp:
        log_path = Path(tmp) / "view.log"
        try:
            if broker is not None:
                broker.start()
                url = broker.url
            else:
                port = free_port()
                url = f"mqtt://127.0.0.1:{port}"
                procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "edgedev.broker", "--port", str(port)],
                    )
                )
                wait_for_port("127.0.0.1", port)
            http_port = free_port()
            with log_path.open("wb") as log:
                view = subprocess.Popen(
                    [sys.executable, "-m", "edgedev", "view", "--broker", url,
                     "--topic-root", ROOT, "--port", str(http_port)],
                    stdout=log, stderr=subprocess.STDOUT,
                )  # fmt: skip
            procs.append(view)
            wait_for_port("127.0.0.1", http_port, timeout=30)
            total = args.warmup + args.seconds + 2
            publisher = subprocess.Popen(
                [sys.executable, __file__, "--publish", url, "--devices", str(args.devices),
                 "--properties", str(args.properties), "--cycle", str(args.cycle),
                 "--seconds", str(total)],
            )  # fmt: skip
            procs.append(publisher)
            time.sleep(args.warmup)
            cpu0, t0 = cpu_seconds(view.pid), time.monotonic()
            out: dict[str, object] = {}
            anyio.run(page, f"http://127.0.0.1:{http_port}", "bench/dev-0000", args.seconds, out)
            cpu1, t1 = cpu_seconds(view.pid), time.monotonic()
            result = {
                "devices": args.devices,
                "properties": args.properties,
                "cycle_ms": args.cycle,
                "values_per_s": round(args.devices * args.properties / cycle),
                "view_cpu_share": round((cpu1 - cpu0) / (t1 - t0), 3),
                "view_peak_rss_mb": round(status_mb(view.pid, "VmHWM"), 1),
                **out,
                "dropped_warnings": log_path.read_text(errors="replace").count("behind"),
                "broker": "mosquitto" if broker is not None else "embedded",
                "loadavg": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
            }
            print(json.dumps(result, indent=2))
        finally:
            for proc in reversed(procs):
                proc.terminate()
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
            if broker is not None:
                broker.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
