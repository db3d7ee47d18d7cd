"""Fleet benchmark: one mapper process for many simulated Modbus devices, end to end.

Starts, on loopback: ``--servers`` Modbus TCP server processes (``fleet_server.py``, many slave
ids each), a mosquitto (``PATH`` or ``/usr/sbin``; else edgedev's embedded broker, with a
note), one mapper process (``python -m edgedev run -f FLEET.yaml``, exactly what a user runs)
and a counting subscriber (``fleet_counter.py``, paho, its own process). Once every device has
reported (or ``--startup-timeout`` passed) and a warm-up has passed, it measures for
``--seconds``:

* values per second delivered to the subscriber, against the fleet's nominal rate;
* Modbus requests per second and per device per cycle, counted at the servers, against the
  minimum the read plan allows (one request per coalesced block);
* the mapper's CPU share, its CPU time per device read, and its peak RSS (``/proc/PID/stat``,
  ``VmHWM``), beside the CPU of the other processes and the machine's load;
* read-to-delivery latency percentiles (value timestamp to receipt at the subscriber);
* time from starting the mapper process to its first twin update.

The modes run one after the other with fresh processes: ``coalesced``; ``baseline``, the same
devices with ``coalesce: false`` (one request per property); and ``sqlite``, coalesced with
``edgedev run --data-dir`` (when the mapper has it); with ``--dmi``, ``coalesced`` and ``dmi``:
the mapper gets the same fleet from a fake EdgeCore over DMI (``fleet_edgecore.py``, with
EdgeCore's limiter) and reports twins there too, counted against the limit. Then it prints
the ratios and checks the targets of issue 8, saying by how much each missed one was missed.
``--profile DIR`` samples the mapper with py-spy during each window. See docs/performance.md.

Usage::

    python bench/fleet.py --devices 1000 --properties 50 --cycle 1000 --seconds 15
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

import fleet_config as fc

from edgedev.testing import Mosquitto, free_port, wait_for_port

HERE = Path(__file__).resolve().parent
TICK = os.sysconf("SC_CLK_TCK")

TARGET_VALUES_SHARE = 0.99  # "without falling behind": at least 99 % of the nominal rate
TARGET_P99_MS = 50.0
TARGET_RSS_MB = 100.0
TARGET_FIRST_UPDATE_S = 2.0


# processes -------------------------------------------------------------------------------
class Child:
    """A child process controlled by lines on its stdin and answering on its stdout."""

    def __init__(self, name: str, argv: list[str], *, stderr: IO[str] | None = None) -> None:
        self.name = name
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, text=True, cwd=HERE
        )
        self.pid = self.proc.pid
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def readline(self, timeout: float = 30.0) -> str:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"{self.name} did not answer in {timeout} s") from None
        if line is None:
            raise RuntimeError(f"{self.name} exited (code {self.proc.wait()})")
        return line

    def ask(self, command: str) -> Any:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return json.loads(self.readline())

    def wait_ready(self, timeout: float = 30.0) -> None:
        line = self.readline(timeout)
        if line != "ready":
            raise RuntimeError(f"{self.name}: expected 'ready', got {line!r}")

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def peak_rss_mb(pid: int, key: str = "VmHWM") -> float:
    """The process's peak resident set size (``VmHWM``), or another ``key`` such as
    ``VmRSS`` (the current one), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {key} in /proc status")


def machine_busy() -> tuple[float, float]:
    """CPU seconds busy and in total over all cores since boot (``/proc/stat``)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    total = sum(values[:8])
    return (total - idle) / TICK, total / TICK


class Broker:
    """The MQTT broker of a run: its URL, port, process id and kind."""

    def __init__(self, kind: str, port: int, proc: subprocess.Popen[bytes]) -> None:
        self.kind = kind
        self.port = port
        self.url = f"mqtt://127.0.0.1:{port}"
        self.pid = proc.pid
        self.proc = proc


@contextlib.contextmanager
def start_broker(choice: str) -> Iterator[Broker]:
    """Mosquitto (PATH or /usr/sbin) or, without it, edgedev's embedded broker in a process."""
    if choice == "embedded" or (choice == "auto" and not Mosquitto.available()):
        if choice == "auto":
            print("note: mosquitto not found; using the embedded broker (slower)", flush=True)
        port = free_port()
        argv = [sys.executable, "-m", "edgedev.broker", "--port", str(port)]
        proc = subprocess.Popen([*argv, "--log-level", "WARNING"], stdout=subprocess.DEVNULL)
        try:
            wait_for_port("127.0.0.1", port)
            yield Broker("embedded broker", port, proc)
        finally:
            proc.terminate()
            proc.wait(10)
        return
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="edgedev-fleet-mosquitto-") as folder:
        conf = Path(folder) / "mosquitto.conf"
        # set_tcp_nodelay: without it Nagle's algorithm holds a message to a subscriber that
        # sends nothing back until the delayed ACK (up to 40 ms) - a setting for production too
        conf.write_text(
            f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
            "max_queued_messages 0\nmax_inflight_messages 0\nset_tcp_nodelay true\n"
            "log_dest stderr\nlog_type error\n"
        )
        proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL)
        try:
            wait_for_port("127.0.0.1", port)
            yield Broker("mosquitto", port, proc)
        finally:
            proc.terminate()
            proc.wait(10)


# one run ---------------------------------------------------------------------------------
@dataclass
class Result:
    mode: str
    devices: int
    properties: int
    cycle_ms: int
    seconds: float = 0.0
    blocks: int = 0
    nominal_values_s: float = 0.0
    values_s: float = 0.0
    messages_s: float = 0.0
    requests_s: float = 0.0
    requests_per_device_cycle: float = 0.0
    connections: int = 0
    """Modbus TCP connections the servers held at the end of the window."""
    endpoints: int = 0
    """``ip:port`` endpoints the devices were spread over."""
    device_reads_min: int = 0
    device_reads_max: int = 0
    mapper_cpu: float = 0.0
    servers_cpu: float = 0.0
    broker_cpu: float = 0.0
    broker: str = ""
    counter_cpu: float = 0.0
    machine_cpu: float = 0.0
    foreign_cpu: float = 0.0
    loadavg: str = ""
    peak_rss_mb: float = 0.0
    startup_peak_rss_mb: float = 0.0
    """``VmHWM`` once every device has reported: loading the files and starting up."""
    rss_mb: float = 0.0
    """``VmRSS`` at the end of the window: the steady state."""
    latency_ms: dict[str, float | None] = field(default_factory=dict)
    validate_s: float | None = None
    mapper_online_s: float | None = None
    first_update_s: float | None = None
    all_devices_s: float | None = None
    offline_events: int = 0
    dmi: dict[str, Any] = field(default_factory=dict)
    """The fake EdgeCore's counts (``dmi`` mode)."""
    mapper_log: list[str] = field(default_factory=list)
    sink: str = ""
    """``--sink``: the pushMethod/dbMethod target every property also goes to."""
    sink_requests_s: float = 0.0
    sink_values_s: float = 0.0
    sink_dropped: int = 0
    sink_failures: int = 0


@contextlib.contextmanager
def stopping(children: list[Child]) -> Iterator[None]:
    try:
        yield
    finally:
        for child in reversed(children):
            child.stop()


@contextlib.contextmanager
def start_sink(kind: str) -> Iterator[tuple[str, dict[str, str]]]:
    """A sink server of ``--sink``: the property's ``pushMethod`` (YAML flow) and the mapper's
    environment (credentials). The servers are the tests' (tests/sink_servers.py)."""
    sys.path.insert(0, str(HERE.parent / "tests"))
    import anyio

    from sink_servers import HttpRecorder, MariaDB, RedisServer

    if kind == "redis":
        redis = RedisServer()
        redis.start()
        try:
            yield (
                "{dbMethod: {redis: {redisClientConfig: {addr: '127.0.0.1:"
                + str(redis.port)
                + "'}}}}",
                {"PASSWORD": redis.password},
            )
        finally:
            redis.close()
    elif kind == "mysql":
        maria = MariaDB()
        maria.start()
        anyio.run(maria.setup)
        try:
            yield (
                f"{{dbMethod: {{mysql: {{mysqlClientConfig: {{addr: '127.0.0.1:{maria.port}', "
                f"database: {maria.database}, userName: {maria.user}}}}}}}}}",
                {"PASSWORD": maria.password},
            )
        finally:
            maria.close()
    else:
        http = HttpRecorder(reply=lambda _r: (200, b""))
        http.requests = _Discard()
        http.start()
        try:
            yield (
                f"{{http: {{hostName: 'http://127.0.0.1', port: {http.port}, requestPath: /in}}}}",
                {},
            )
        finally:
            http.stop()


class _Discard(list):  # type: ignore[type-arg]
    """A list that keeps nothing: the bench counts at the mapper's /metrics."""

    def append(self, _item: object) -> None:
        pass


def sink_counters(port: int) -> dict[str, float]:
    """``edgedev_sink_*`` totals from the mapper's /metrics."""
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    totals: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("edgedev_sink_"):
            name = line.split("{", 1)[0]
            totals[name] = totals.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
    return totals


def run_mode(args: argparse.Namespace, mode: str, work: Path, sink: str | None = None) -> Result:
    devices, cycle = args.devices, args.cycle
    props = fc.properties(args.properties)
    result = Result(f"{mode}+{sink}" if sink else mode, devices, args.properties, cycle)
    result.sink = sink or ""
    push: str | None = None
    sink_env: dict[str, str] = {}
    health_port = free_port()
    result.blocks = fc.blocks_per_cycle(props, mode)
    result.nominal_values_s = devices * args.properties * 1000 / cycle

    ports = [[free_port() for _ in range(n)] for n in fc.ports_needed(devices, args.servers)]
    units = fc.assign(devices, args.servers, ports)
    fleet = work / f"fleet-{mode}.yaml"
    with contextlib.ExitStack() as stack:
        if sink:
            push, sink_env = stack.enter_context(start_sink(sink))
        fc.write_devices(fleet, units, props, mode, cycle, args.timeout, push)
        _run(args, mode, work, result, fleet, ports, units, health_port, sink_env)
    return result


def _run(
    args: argparse.Namespace,
    mode: str,
    work: Path,
    result: Result,
    fleet: Path,
    ports: list[list[int]],
    units: list[fc.Unit],
    health_port: int,
    sink_env: dict[str, str],
) -> None:
    devices, cycle = args.devices, args.cycle
    print(
        f"[{mode}] {devices} devices x {args.properties} properties every {cycle} ms, "
        f"{result.blocks} request(s) per device per cycle at best; "
        f"{fleet.stat().st_size / 1e6:.1f} MB of Device YAML",
        flush=True,
    )

    if mode == "coalesced":  # how much of the start-up is loading the files
        began = time.time()
        subprocess.run(
            [sys.executable, "-m", "edgedev", "validate", "-f", str(fleet)],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        result.validate_s = time.time() - began
        print(f"[{mode}] `edgedev validate` of the file: {result.validate_s:.2f} s", flush=True)
    cache = work / f"cache-{mode}"
    if args.cache == "warm" and mode != "dmi":  # as at a restart with the files unchanged
        fill = (
            "from edgedev.loader import load_devices; "
            f"load_devices([{str(fleet)!r}], cache={str(cache)!r})"
        )
        subprocess.run([sys.executable, "-c", fill], check=True)
        print(f"[{mode}] loader cache: warm (the files loaded once before the start)", flush=True)
    elif args.cache == "cold":
        print(f"[{mode}] loader cache: cold (empty: the start parses the files)", flush=True)

    children: list[Child] = []
    with contextlib.ExitStack() as stack:
        stack.enter_context(stopping(children))
        for server, server_ports in enumerate(ports):
            per_port: dict[int, int] = {}
            for unit in units:
                if unit.server == server:
                    per_port[unit.port] = per_port.get(unit.port, 0) + 1
            argv = [
                sys.executable,
                "fleet_server.py",
                "--properties",
                str(args.properties),
            ]
            for port in server_ports:
                argv += ["--port", f"{port}:{per_port.get(port, 0)}"]
            children.append(Child(f"server {server}", argv))
        servers = list(children)
        for child in servers:
            child.wait_ready()

        broker = stack.enter_context(start_broker(args.broker))
        broker_pid = broker.pid
        result.broker = broker.kind
        counter = Child(
            "counter",
            [
                sys.executable,
                "fleet_counter.py",
                "--port",
                str(broker.port),
                "--devices",
                str(devices),
            ],
        )
        children.append(counter)
        counter.wait_ready()

        edgecore: Child | None = None
        devices_from = ["-f", str(fleet)]
        if mode == "dmi":  # the devices come from EdgeCore over DMI instead of the file
            socket = work / "dmi.sock"
            edgecore = Child(
                "edgecore",
                [
                    sys.executable,
                    "fleet_edgecore.py",
                    "--file",
                    str(fleet),
                    "--socket",
                    str(socket),
                ],
            )
            children.append(edgecore)
            edgecore.wait_ready(timeout=180)  # encoding a large fleet as EdgeCore does
            devices_from = ["--dmi", "--protocol", "modbus", "--dmi-socket", str(socket)]
            devices_from += ["--mapper-socket", str(work / "mapper.sock")]

        log_path = work / f"mapper-{mode}.log"
        log_file = stack.enter_context(log_path.open("w"))
        started = time.time()
        mapper = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "edgedev",
                "run",
                *devices_from,
                "--broker",
                broker.url,
                "--name",
                f"fleet-{mode}",
                *(["--data-dir", str(work / f"data-{mode}")] if mode == "sqlite" else []),
                *(["--health-port", str(health_port)] if result.sink else []),
                *(["--no-cache"] if args.cache == "none" else ["--cache-dir", str(cache)]),
            ],
            env={**os.environ, **sink_env},
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        stack.callback(_stop_mapper, mapper)

        # start-up: wait until every device has reported once, then warm up
        deadline = started + args.startup_timeout
        snap = counter.ask("mark")
        while snap["all_devices_at"] is None and time.time() < deadline:
            if mapper.poll() is not None:
                raise RuntimeError(
                    f"the mapper exited with code {mapper.returncode}: see {log_path}"
                )
            time.sleep(0.5)
            snap = counter.ask("mark")
        if snap["all_devices_at"] is None:
            print(
                f"[{mode}] only {snap['devices']} of {devices} devices reported within "
                f"{args.startup_timeout:.0f} s; measuring anyway",
                flush=True,
            )
        for key, attr in (
            ("mapper_online", "mapper_online_s"),
            ("first_update", "first_update_s"),
            ("all_devices_at", "all_devices_s"),
        ):
            if snap[key] is not None:
                setattr(result, attr, snap[key] - started)
        result.startup_peak_rss_mb = peak_rss_mb(mapper.pid)
        print(
            f"[{mode}] mapper online after {_fmt(result.mapper_online_s, 's')}, first twin "
            f"update after {_fmt(result.first_update_s, 's')}, all devices after "
            f"{_fmt(result.all_devices_s, 's')}; warming up {args.warmup:.0f} s",
            flush=True,
        )
        time.sleep(args.warmup)

        # the measurement window
        ours = [mapper.pid, broker_pid, counter.pid, *(s.pid for s in servers)]
        spy = start_profile(args.profile, mapper.pid, mode, args.seconds)
        sink_before = sink_counters(health_port) if result.sink else {}
        before = _sample(servers, counter, ours)
        time.sleep(args.seconds)
        after = _sample(servers, counter, ours)
        sink_after = sink_counters(health_port) if result.sink else {}
        if spy is not None:
            spy.wait(30)
        result.peak_rss_mb = peak_rss_mb(mapper.pid)
        result.rss_mb = peak_rss_mb(mapper.pid, "VmRSS")
        if edgecore is not None:
            result.dmi = edgecore.ask("stats")
        stats = counter.ask(f"report {before['counter']['samples']} {after['counter']['samples']}")

    elapsed = after["t"] - before["t"]
    result.seconds = elapsed
    if result.sink:
        delta = {k: sink_after.get(k, 0.0) - sink_before.get(k, 0.0) for k in sink_after}
        result.sink_requests_s = delta.get("edgedev_sink_requests_total", 0.0) / elapsed
        result.sink_values_s = delta.get("edgedev_sink_delivered_total", 0.0) / elapsed
        result.sink_dropped = int(sink_after.get("edgedev_sink_dropped_total", 0.0))
        result.sink_failures = int(delta.get("edgedev_sink_failures_total", 0.0))
    cycles = elapsed * 1000 / cycle
    reads = after["reads"] - before["reads"]
    per_unit = [b - a for a, b in zip(before["units"], after["units"], strict=True)]
    result.values_s = (after["counter"]["values"] - before["counter"]["values"]) / elapsed
    result.messages_s = (after["counter"]["messages"] - before["counter"]["messages"]) / elapsed
    result.requests_s = reads / elapsed
    result.requests_per_device_cycle = reads / (devices * cycles)
    result.connections = after["connections"]
    result.endpoints = len({u.port for u in units})
    result.device_reads_min, result.device_reads_max = min(per_unit), max(per_unit)
    cpu = {pid: (after["cpu"][pid] - before["cpu"][pid]) / elapsed for pid in ours}
    result.mapper_cpu = cpu[mapper.pid]
    result.broker_cpu = cpu[broker_pid]
    result.counter_cpu = cpu[counter.pid]
    result.servers_cpu = sum(cpu[s.pid] for s in servers)
    busy = after["busy"][0] - before["busy"][0]
    total = after["busy"][1] - before["busy"][1]
    cores = os.cpu_count() or 1
    result.machine_cpu = busy / total * cores
    result.foreign_cpu = max(0.0, result.machine_cpu - sum(cpu.values()))
    result.loadavg = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    result.latency_ms = {k: v for k, v in stats.items() if k != "values"}
    result.offline_events = after["counter"]["offline"] - before["counter"]["offline"]
    result.mapper_log = [
        line for line in log_path.read_text().splitlines() if "WARNING" in line or "ERROR" in line
    ][:5]
    return result


def _sample(servers: list[Child], counter: Child, pids: list[int]) -> dict[str, Any]:
    t = time.time()
    cpu = {pid: cpu_seconds(pid) for pid in pids}
    busy = machine_busy()
    marks = [s.ask("mark") for s in servers]
    snap = counter.ask("mark")
    return {
        "t": t,
        "cpu": cpu,
        "busy": busy,
        "counter": snap,
        "reads": sum(m["reads"] for m in marks),
        "connections": sum(m.get("connections", 0) for m in marks),
        "units": [n for m in marks for n in m["units"]],
    }


def start_profile(
    folder: Path | None, pid: int, mode: str, seconds: float
) -> subprocess.Popen[bytes] | None:
    """Sample the mapper with py-spy for the window (``--profile``), as collapsed stacks."""
    if folder is None:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / f"mapper-{mode}.txt"
    argv = ["py-spy", "record", "-p", str(pid), "-d", str(int(seconds)), "-r", "100"]
    argv += ["-f", "raw", "--nonblocking", "-o", str(out)]
    print(f"[{mode}] sampling the mapper with py-spy into {out}", flush=True)
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def summarize_profile(path: Path, top: int = 25) -> list[str]:
    """The functions where the mapper spent its samples: own time and with callees."""
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        own[frames[-1]] = own.get(frames[-1], 0) + count
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + count
    lines = [f"  {total} samples; own% incl%  function (file:line)"]
    for frame, count in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"  {count / total:5.1%} {inclusive[frame] / total:5.1%}  {frame}")
    return lines


def _stop_mapper(mapper: subprocess.Popen[bytes]) -> None:
    if mapper.poll() is None:
        mapper.send_signal(signal.SIGTERM)
        try:
            mapper.wait(15)
        except subprocess.TimeoutExpired:
            mapper.kill()
            mapper.wait()


# report ----------------------------------------------------------------------------------
def _fmt(value: float | None, unit: str, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f} {unit}"


def cpu_per_read_ms(r: Result) -> float | None:
    """Mapper CPU time per device read, from the CPU share and the reads counted at servers."""
    reads_s = r.requests_s / r.blocks if r.blocks else 0.0
    return r.mapper_cpu / reads_s * 1000 if reads_s else None


def _capacity(r: Result) -> str:
    per_read = cpu_per_read_ms(r)
    return "-" if not per_read else f"{r.properties * 1000 / per_read:,.0f}"


def print_result(r: Result) -> None:
    lat = r.latency_ms
    share = r.values_s / r.nominal_values_s if r.nominal_values_s else 0.0
    print(
        f"\n== {r.mode}: {r.devices} devices x {r.properties} properties / {r.cycle_ms} ms, "
        f"measured over {r.seconds:.1f} s =="
    )
    rows = [
        (
            "values delivered /s",
            f"{r.values_s:,.0f} of {r.nominal_values_s:,.0f} "
            f"({share:.1%}); {r.messages_s:,.0f} twin updates/s",
        ),
        ("Modbus requests /s", f"{r.requests_s:,.0f} (counted at the servers)"),
        *(
            [
                (
                    f"{r.sink} sink",
                    f"{r.sink_values_s:,.0f} values/s in {r.sink_requests_s:,.1f} requests/s = "
                    f"{r.sink_requests_s * r.cycle_ms / 1000:,.1f} per cycle "
                    f"({r.sink_requests_s * r.cycle_ms / 1000 / r.devices:.3f} per device "
                    f"cycle); {r.sink_dropped} dropped, {r.sink_failures} failed requests",
                )
            ]
            if r.sink
            else []
        ),
        (
            "connections held",
            f"{r.connections} for {r.devices} devices on {r.endpoints} ip:port endpoints "
            "(counted at the servers)",
        ),
        (
            "requests /device /cycle",
            f"{r.requests_per_device_cycle:.3f} (minimum {r.blocks}); "
            f"per device in window {r.device_reads_min}.."
            f"{r.device_reads_max}",
        ),
        ("values per request", f"{r.values_s / r.requests_s:.1f}" if r.requests_s else "-"),
        ("mapper CPU", f"{r.mapper_cpu:.0%} of one core"),
        (
            "mapper CPU per read",
            f"{_fmt(cpu_per_read_ms(r), 'ms', 3)} per device read ({r.properties} values, "
            "request, decode, report, publish); one whole core would serve "
            f"{_capacity(r)} values/s",
        ),
        (
            "others' CPU",
            f"servers {r.servers_cpu:.0%}, {r.broker} {r.broker_cpu:.0%}, "
            f"counter {r.counter_cpu:.0%}, foreign load {r.foreign_cpu:.0%} "
            f"(machine {r.machine_cpu:.0%} of {os.cpu_count()} cores; "
            f"loadavg {r.loadavg})",
        ),
        (
            "mapper peak RSS",
            f"{r.peak_rss_mb:.0f} MiB (by the time every device reported "
            f"{r.startup_peak_rss_mb:.0f} MiB; at the end {r.rss_mb:.0f} MiB)",
        ),
        (
            "read -> delivery",
            "p50 {} / p90 {} / p99 {} / p99.9 {} / max {}".format(
                *(_fmt(lat.get(k), "ms", 1) for k in ("p50", "p90", "p99", "p999", "max"))
            ),
        ),
        (
            "start -> first update",
            f"{_fmt(r.first_update_s, 's')} (mapper online "
            f"{_fmt(r.mapper_online_s, 's')}, all devices "
            f"{_fmt(r.all_devices_s, 's')})",
        ),
        ("offline events", str(r.offline_events)),
    ]
    if r.dmi:
        d = r.dmi
        rows.append(
            (
                "DMI requests",
                f"{d['requests']} in all ({d['statuses']} ReportDeviceStatus, {d['states']} "
                f"ReportDeviceStates, {d['registrations']} MapperRegister); at most "
                f"{d['max_per_second']} in 1 s and {d['max_per_10s']} in 10 s; refused by the "
                f"limiter {d['limited']}; devices with a twin at EdgeCore {d['devices_reported']}",
            )
        )
    for label, text in rows:
        print(f"  {label:<24} {text}")
    for line in r.mapper_log:
        print(f"  mapper log: {line}")


def check_targets(r: Result) -> list[str]:
    """Issue 8's targets, each as a line that says met or by how much it was missed."""
    lines = []

    def check(name: str, ok: bool, detail: str) -> None:
        lines.append(f"  {'met   ' if ok else 'MISSED'} {name}: {detail}")

    share = r.values_s / r.nominal_values_s if r.nominal_values_s else 0.0
    check(
        "keeps up",
        share >= TARGET_VALUES_SHARE,
        f"{r.values_s:,.0f} values/s = {share:.1%} of nominal (target >= "
        f"{TARGET_VALUES_SHARE:.0%}"
        + (
            ""
            if share >= TARGET_VALUES_SHARE
            else f", short by {r.nominal_values_s - r.values_s:,.0f}/s"
        )
        + ")",
    )
    per_update = r.requests_s / r.messages_s if r.messages_s else 0.0
    check(  # 5 %: requests are counted at the servers, updates later at the subscriber
        "minimal requests",
        0 < per_update <= 1.05 * r.blocks and r.requests_per_device_cycle <= 1.01 * r.blocks,
        f"{per_update:.3f} requests per twin update (one per device read), "
        f"{r.requests_per_device_cycle:.3f} per device per cycle; minimum {r.blocks}",
    )
    p99 = r.latency_ms.get("p99")
    check(
        "p99 read -> delivery",
        p99 is not None and p99 < TARGET_P99_MS,
        f"{_fmt(p99, 'ms', 1)} (target < {TARGET_P99_MS:.0f} ms"
        + ("" if p99 is None or p99 < TARGET_P99_MS else f", over by {p99 - TARGET_P99_MS:.1f} ms")
        + ")",
    )
    check(
        "peak RSS",
        r.peak_rss_mb < TARGET_RSS_MB,
        f"{r.peak_rss_mb:.0f} MiB (target < {TARGET_RSS_MB:.0f} MiB"
        + (
            ""
            if r.peak_rss_mb < TARGET_RSS_MB
            else f", over by {r.peak_rss_mb - TARGET_RSS_MB:.0f} MiB"
        )
        + ")",
    )
    first = r.first_update_s
    check(
        "start -> first twin update",
        first is not None and first < TARGET_FIRST_UPDATE_S,
        f"{_fmt(first, 's')} (target < {TARGET_FIRST_UPDATE_S:.0f} s"
        + (
            ""
            if first is None or first < TARGET_FIRST_UPDATE_S
            else f", over by {first - TARGET_FIRST_UPDATE_S:.2f} s; `edgedev validate` alone, "
            f"i.e. start-up and loading the files, takes {_fmt(r.validate_s, 's')}"
        )
        + ")",
    )
    if r.dmi:
        check(
            "DMI within EdgeCore's limit",
            r.dmi["limited"] == 0,
            f"{r.dmi['limited']} requests refused by the limiter (1/s, burst 100); at most "
            f"{r.dmi['max_per_10s']} in 10 s",
        )
    return lines


def default_modes() -> list[str]:
    """coalesced and baseline, and sqlite when ``edgedev run`` takes ``--data-dir``."""
    help_text = subprocess.run(
        [sys.executable, "-m", "edgedev", "run", "--help"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    return ["coalesced", "baseline", *(["sqlite"] if "--data-dir" in help_text else [])]


def main() -> int:
    parser = argparse.ArgumentParser(
        description="Fleet benchmark: simulated Modbus servers, mosquitto, one mapper process "
        "and a counting subscriber, coalesced reads against one read per property."
    )
    parser.add_argument("--devices", type=int, default=1000, help="devices (default 1000)")
    parser.add_argument(
        "--properties", type=int, default=50, help="properties per device (default 50)"
    )
    parser.add_argument(
        "--cycle",
        type=int,
        default=1000,
        metavar="MS",
        help="collect and report cycle in ms (default 1000)",
    )
    parser.add_argument(
        "--seconds", type=float, default=20.0, help="measurement window per mode (default 20)"
    )
    parser.add_argument(
        "--servers", type=int, default=2, help="Modbus server processes (default 2)"
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=5.0,
        help="seconds between the last device's first report and the window",
    )
    parser.add_argument(
        "--timeout",
        type=int,
        default=3000,
        metavar="MS",
        help="the devices' configData.timeout (default 3000)",
    )
    parser.add_argument(
        "--startup-timeout",
        type=float,
        default=60.0,
        metavar="S",
        help="longest wait for every device's first report (default 60)",
    )
    parser.add_argument(
        "--modes",
        default="",
        help="comma-separated: coalesced, baseline, sqlite (coalesced with the mapper's "
        "--data-dir SQLite outbox); default all three, sqlite only when `edgedev run` has "
        "--data-dir",
    )
    parser.add_argument(
        "--broker",
        choices=("auto", "mosquitto", "embedded"),
        default="auto",
        help="auto: mosquitto when installed, else the embedded broker (default auto)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="sample the mapper with py-spy during the window; stacks and a summary in DIR",
    )
    parser.add_argument(
        "--sink",
        choices=("redis", "mysql", "http"),
        help="also run coalesced with every property pushed to this sink (pushMethod/dbMethod; "
        "redis-server, mariadbd or a local HTTP server), beside the run without it",
    )
    parser.add_argument(
        "--cache",
        choices=("warm", "cold", "none"),
        default="warm",
        help="the mapper's loader cache (`edgedev run --cache-dir`): warm, filled before the "
        "start as at a restart with unchanged files (default); cold, empty: the start parses "
        "the files and fills it; none: `--no-cache`",
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write results here")
    parser.add_argument(
        "--dmi",
        action="store_true",
        help="run coalesced and dmi: the same fleet from a fake EdgeCore over DMI",
    )
    args = parser.parse_args()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()] or (
        ["coalesced", "dmi"] if args.dmi else default_modes()
    )
    if not modes or any(m not in fc.MODES for m in modes):
        parser.error(f"--modes takes {', '.join(fc.MODES)}")
    if args.devices < 1 or args.properties < 1 or args.cycle < 1 or args.servers < 1:
        parser.error("--devices, --properties, --cycle and --servers must be positive")

    results: dict[str, Result] = {}
    with tempfile.TemporaryDirectory(prefix="edgedev-fleet-") as tmp:
        for mode in modes:
            results[mode] = run_mode(args, mode, Path(tmp))
            print_result(results[mode])
            if args.profile is not None and (args.profile / f"mapper-{mode}.txt").exists():
                print(f"\n== where the mapper spends its time ({mode}) ==")
                print("\n".join(summarize_profile(args.profile / f"mapper-{mode}.txt")))

        if args.sink:
            name = f"coalesced+{args.sink}"
            results[name] = run_mode(args, "coalesced", Path(tmp), sink=args.sink)
            print_result(results[name])

    if args.sink and "coalesced" in results:
        c, k = results["coalesced"], results[f"coalesced+{args.sink}"]
        print(f"\n== with the {args.sink} sink vs MQTT only ==")
        if c.values_s and k.values_s:
            per_c = c.mapper_cpu / c.values_s * 1e6
            per_k = k.mapper_cpu / k.values_s * 1e6
            print(
                f"  mapper CPU per value     {per_k:.1f} us vs {per_c:.1f} us "
                f"(+{per_k - per_c:.1f} us for the sink)"
            )
        print(
            f"  sink requests per cycle  {k.sink_requests_s * k.cycle_ms / 1000:.1f} for "
            f"{k.devices} devices ({k.sink_values_s:,.0f} values/s, {k.sink_dropped} dropped)"
        )
    if "coalesced" in results and "baseline" in results:
        c, b = results["coalesced"], results["baseline"]
        print("\n== coalesced vs one request per property ==")
        if b.values_s:
            print(
                f"  values/s delivered       x{c.values_s / b.values_s:.1f} "
                f"({c.values_s:,.0f} vs {b.values_s:,.0f})"
            )
        if c.requests_per_device_cycle:
            print(
                f"  requests per value       /{b.requests_per_device_cycle / b.properties / (c.requests_per_device_cycle / c.properties):.0f} "  # noqa: E501
                f"({c.requests_per_device_cycle / c.properties:.3f} vs "
                f"{b.requests_per_device_cycle / b.properties:.3f})"
            )
        if b.mapper_cpu and c.values_s and b.values_s:
            per_c = c.mapper_cpu / c.values_s * 1e6
            per_b = b.mapper_cpu / b.values_s * 1e6
            print(
                f"  mapper CPU per value     /{per_b / per_c:.1f} "
                f"({per_c:.1f} us vs {per_b:.1f} us)"
            )
    if "coalesced" in results and "sqlite" in results:
        c, q = results["coalesced"], results["sqlite"]
        print("\n== SQLite outbox (--data-dir) vs memory outbox ==")
        if c.values_s and c.mapper_cpu:
            print(
                f"  mapper CPU per value     x{q.mapper_cpu / q.values_s / (c.mapper_cpu / c.values_s):.2f} "  # noqa: E501
                f"({q.mapper_cpu / q.values_s * 1e6:.1f} us vs {c.mapper_cpu / c.values_s * 1e6:.1f} us)"  # noqa: E501
            )
        print(
            f"  values/s delivered       {q.values_s:,.0f} vs {c.values_s:,.0f}; p99 "
            f"{_fmt(q.latency_ms.get('p99'), 'ms', 1)} vs "
            f"{_fmt(c.latency_ms.get('p99'), 'ms', 1)}; "
            f"peak RSS {q.peak_rss_mb:.0f} vs {c.peak_rss_mb:.0f} MiB"
        )
    if "coalesced" in results:
        print("\n== targets (issue 8), coalesced ==")
        print("\n".join(check_targets(results["coalesced"])))
    if args.json:
        args.json.write_text(json.dumps({m: asdict(r) for m, r in results.items()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
