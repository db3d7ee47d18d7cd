"""Outage soak: a Modbus fleet whose mapper loses its broker for minutes, on a capped queue.

The fleet of ``bench/fleet.py`` (servers, mosquitto, counting subscriber) with one change: the
mapper (``edgedev run --data-dir DIR --outbox-max-mb MB``) reaches the broker through a TCP
relay of this process, which the benchmark cuts for ``--outage`` seconds (the connections are
dropped and new ones refused, as when a broker's node goes away), while the subscriber stays
connected to the broker itself. Every ``--every`` seconds during the outage it samples the
data directory's size, the mapper's CPU per cycle and RSS, and the queue from ``/metrics``;
then it restores the relay and measures how long the queue takes to drain and whether the
kept readings arrived in order, per device. Run::

    .venv/bin/python bench/outage.py --devices 1000 --properties 50 --outage 600 --max-mb 50

The claims it checks (issue 26): the disk stays under the bound, the CPU per cycle does not
grow while the queue is full, the readings kept arrive in order when the broker is back.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import fleet_config as fc
from fleet import Child, _stop_mapper, cpu_seconds, peak_rss_mb, start_broker, stopping

from edgedev.testing import free_port


class Relay:
    """A TCP relay from a local port to the broker that can be cut and restored."""

    def __init__(self, target: int) -> None:
        self.port = free_port()
        self.target = target
        self.open = True
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            client, _ = self._server.accept()
            if not self.open:
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._pairs.append((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        for s in (source, sink):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        """Drop every connection and refuse new ones."""
        self.open = False
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            for s in pair:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()

    def restore(self) -> None:
        self.open = True


def metrics(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    found: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("edgedev_queue_") or line.startswith("edgedev_values_dropped_total"):
            name, value = line.rsplit(" ", 1)
            found[name] = float(value)
    return found


def used(folder: Path) -> int:
    total = 0
    for f in folder.rglob("*"):
        with contextlib.suppress(FileNotFoundError):
            total += f.stat().st_size
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--properties", type=int, default=50)
    parser.add_argument("--cycle", type=int, default=1000, help="collectCycle, ms")
    parser.add_argument("--servers", type=int, default=2)
    parser.add_argument("--outage", type=float, default=600.0, help="seconds without broker")
    parser.add_argument("--every", type=float, default=60.0, help="seconds between samples")
    parser.add_argument("--max-mb", type=float, default=50.0, help="--outbox-max-mb")
    parser.add_argument("--warmup", type=float, default=20.0)
    parser.add_argument("--drain-timeout", type=float, default=600.0)
    args = parser.parse_args()
    props = fc.properties(args.properties)
    ports = [[free_port() for _ in range(n)] for n in fc.ports_needed(args.devices, args.servers)]
    units = fc.assign(args.devices, args.servers, ports)
    with tempfile.TemporaryDirectory(prefix="edgedev-outage-") as folder:
        work = Path(folder)
        fleet = work / "fleet.yaml"
        fc.write_devices(fleet, units, props, "coalesced", args.cycle, 3000, None)
        data = work / "data"
        children: list[Child] = []
        with contextlib.ExitStack() as stack:
            stack.enter_context(stopping(children))
            for server, server_ports in enumerate(ports):
                argv = [sys.executable, "fleet_server.py", "--properties", str(args.properties)]
                for port in server_ports:
                    count = sum(1 for u in units if u.port == port)
                    argv += ["--port", f"{port}:{count}"]
                children.append(Child(f"server {server}", argv))
            for child in children:
                child.wait_ready()
            broker = stack.enter_context(start_broker("mosquitto"))
            relay = Relay(broker.port)
            counter = Child(
                "counter",
                [sys.executable, "fleet_counter.py", "--port", str(broker.port)],
            )
            children.append(counter)
            counter.wait_ready()
            health = free_port()
            log = stack.enter_context((work / "mapper.log").open("w"))
            mapper = subprocess.Popen(
                [
                    *(sys.executable, "-m", "edgedev", "run", "-f", str(fleet)),
                    *("--broker", f"mqtt://127.0.0.1:{relay.port}"),
                    *("--data-dir", str(data), "--outbox-max-mb", str(args.max_mb)),
                    *("--health-port", str(health), "--name", "outage-soak"),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=os.environ,
            )
            stack.callback(_stop_mapper, mapper)
            time.sleep(args.warmup)
            before = counter.ask("mark")
            print(
                f"{args.devices} x {args.properties} every {args.cycle} ms; "
                f"{before['values']:,} values delivered in the warm-up; cutting the broker "
                f"for {args.outage:.0f} s, queue bounded at {args.max_mb:g} MiB",
                flush=True,
            )
            print(
                "  t (s)  files MiB  queue MiB  messages  dropped msgs  values dropped  "
                "CPU/cycle ms  RSS MiB  load",
                flush=True,
            )
            relay.cut()
            started = time.time()
            cpu, at = cpu_seconds(mapper.pid), time.time()
            peak_files = 0
            while (elapsed := time.time() - started) < args.outage:
                time.sleep(min(args.every, args.outage - elapsed))
                now_cpu, now = cpu_seconds(mapper.pid), time.time()
                per_cycle = (now_cpu - cpu) / ((now - at) * 1000 / args.cycle) * 1000
                cpu, at = now_cpu, now
                m = metrics(health)
                files = used(data)
                peak_files = max(peak_files, files)
                dropped_values = m.get('edgedev_values_dropped_total{reason="outbox_full"}', 0)
                print(
                    f"  {now - started:5.0f}  {files / 2**20:9.1f}  "
                    f"{m['edgedev_queue_bytes'] / 2**20:9.1f}  "
                    f"{m['edgedev_queue_messages']:8.0f}  "
                    f"{m['edgedev_queue_dropped_total']:12.0f}  {dropped_values:14.0f}  "
                    f"{per_cycle:12.1f}  {peak_rss_mb(mapper.pid, 'VmRSS'):7.0f}  "
                    f"{os.getloadavg()[0]:.1f}",
                    flush=True,
                )
            queued = metrics(health)["edgedev_queue_messages"]
            mark = counter.ask("mark")
            relay.restore()
            back = time.time()
            while metrics(health)["edgedev_queue_messages"] > args.devices * 2:
                if time.time() - back > args.drain_timeout:
                    print("  the queue did not drain in time", flush=True)
                    break
                time.sleep(1)
            drained = time.time() - back
            time.sleep(3)
            after = counter.ask("mark")
            peak = peak_rss_mb(mapper.pid)
    print(
        f"broker back: {queued:,.0f} queued messages drained in {drained:.0f} s; "
        f"{after['messages'] - mark['messages']:,} messages arrived since; "
        f"out of order: {after['out_of_order']}; duplicates (QoS 1 resends): "
        f"{after['duplicates']}",
        flush=True,
    )
    print(
        f"files peak {peak_files / 2**20:.1f} MiB for a {args.max_mb:g} MiB bound; "
        f"mapper peak RSS {peak:.0f} MiB",
        flush=True,
    )
    return 0 if after["out_of_order"] == 0 and peak_files <= args.max_mb * 2**20 else 1


if __name__ == "__main__":
    raise SystemExit(main())
