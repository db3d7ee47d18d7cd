"""Write latency: desired -> written -> read back -> reported, for 1 and for N properties at once.

Starts mosquitto (as ``bench/fleet.py`` does), ``edgedev simulate`` serving one Modbus device
of ``--properties`` writable holding registers, and ``edgedev run`` for that device, exactly
as a user runs them. This process plays EdgeCore's DeviceTwin: it publishes a
``twin/update/delta`` that sets new desired values (different in every round) and times
until the mapper's ``twin/update`` has reported each of them as the device's actual value,
i.e. the mapper wrote it, read it back and reported it. Rounds are ``--pause`` apart, and a
property is written again only a second after its last write (the mapper writes a property at
most once a second); the device also reads every ``--cycle`` ms meanwhile, as in service. Run::

    .venv/bin/python bench/write_latency.py --properties 50 --rounds 200

It prints p50, p90, p99 and max over the rounds for one property at a time and for all
``--properties`` at once (the latency of the last of them), and the time to the first.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from fleet import start_broker, stopping
from paho.mqtt.enums import CallbackAPIVersion

from edgedev.testing import free_port
from edgedev.wire import twin_delta

NAME = "wl"
WRITE_INTERVAL = 1.05
"""Seconds between two writes of one property: the mapper's ``min_interval`` (1 s) and a bit."""


def fleet_yaml(properties: int, port: int, cycle: int) -> str:
    """A DeviceModel of ``properties`` INT properties and one Device on ``port``."""
    model = [
        "apiVersion: devices.kubeedge.io/v1beta1",
        "kind: DeviceModel",
        "metadata: {name: setpoints}",
        "spec:",
        "  protocol: modbus",
        "  properties:",
    ]
    model += [f"    - {{name: p{i}, type: INT, accessMode: ReadWrite}}" for i in range(properties)]
    device = [
        "---",
        "apiVersion: devices.kubeedge.io/v1beta1",
        "kind: Device",
        f"metadata: {{name: {NAME}}}",
        "spec:",
        "  deviceModelRef: {name: setpoints}",
        "  protocol:",
        "    protocolName: modbus",
        f"    configData: {{ip: 127.0.0.1, port: {port}, slaveID: 1}}",
        "  properties:",
    ]
    for i in range(properties):
        device += [
            f"    - name: p{i}",
            f"      collectCycle: {cycle}",
            "      visitors:",
            "        protocolName: modbus",
            f"        configData: {{register: HoldingRegister, offset: {i}, dataType: uint16}}",
        ]
    return "\n".join(model + device) + "\n"


def twin_entry(value: str) -> dict[str, object]:
    """The ``MsgTwin`` of one property in a delta, as EdgeCore sends it."""
    return {
        "expected": {"value": value, "metadata": {"timestamp": int(time.time() * 1000)}},
        "optional": False,
        "metadata": {"type": "int"},
    }


class Reports:
    """Every ``twin/update`` of the device, with the time it arrived."""

    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("mqtt://").rsplit(":", 1)
        self.got: queue.Queue[tuple[float, dict[str, str]]] = queue.Queue()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2)
        self.client.on_message = self._message
        self.client.connect(host, int(port))
        self.client.subscribe(f"$hw/events/device/default/{NAME}/twin/update", qos=0)
        self.client.loop_start()

    def _message(self, _client: object, _userdata: object, msg: mqtt.MQTTMessage) -> None:
        now = time.perf_counter()
        body = json.loads(msg.payload)
        actual = {
            name: entry["actual"]["value"]
            for name, entry in body.get("twin", {}).items()
            if isinstance(entry, dict) and isinstance(entry.get("actual"), dict)
        }
        self.got.put((now, actual))

    def delta(self, values: dict[str, str]) -> float:
        """Publish a delta of ``values``; the time it was sent."""
        body = twin_delta(
            {n: twin_entry(v) for n, v in values.items()}, values, timestamp=int(time.time() * 1e3)
        )
        sent = time.perf_counter()
        self.client.publish(f"$hw/events/device/default/{NAME}/twin/update/delta", body, qos=1)
        return sent

    def wait(self, values: dict[str, str], timeout: float) -> tuple[float, float]:
        """Seconds until the first and until the last of ``values`` were reported as actual."""
        pending = dict(values)
        first = None
        deadline = time.perf_counter() + timeout
        while pending:
            left = deadline - time.perf_counter()
            if left <= 0:
                raise TimeoutError(f"not reported within {timeout} s: {sorted(pending)[:5]}")
            try:
                at, actual = self.got.get(timeout=left)
            except queue.Empty:
                continue
            done = [n for n, v in pending.items() if actual.get(n) == v]
            for name in done:
                del pending[name]
            if done and first is None:
                first = at
        assert first is not None
        return first, at

    def drain(self) -> None:
        with contextlib.suppress(queue.Empty):
            while True:
                self.got.get_nowait()


def percentiles(samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples)
    q = statistics.quantiles(ms, n=100, method="inclusive")
    return (
        f"p50 {q[49]:.1f} ms / p90 {q[89]:.1f} ms / p99 {q[98]:.1f} ms / max {ms[-1]:.1f} ms "
        f"(mean {statistics.fmean(ms):.1f} ms, {len(ms)} rounds)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--properties", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=200, help="rounds of each kind")
    parser.add_argument("--cycle", type=int, default=1000, help="the device's collectCycle, ms")
    parser.add_argument("--pause", type=float, default=0.05, help="seconds between rounds")
    parser.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="edgedev-writes-") as folder:
        port = free_port()
        fleet = Path(folder) / "device.yaml"
        fleet.write_text(fleet_yaml(args.properties, port, args.cycle))
        procs: list[subprocess.Popen[bytes]] = []
        with contextlib.ExitStack() as stack:
            stack.enter_context(stopping([]))
            broker = stack.enter_context(start_broker("auto"))
            edgedev = [sys.executable, "-m", "edgedev"]
            log = stack.enter_context((Path(folder) / "log").open("w"))
            procs.extend(
                subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
                for argv in (
                    [*edgedev, "simulate", "-q", "-f", str(fleet)],
                    [*edgedev, "run", "-q", "--no-cache", "-f", str(fleet), "--broker", broker.url],
                )
            )
            try:
                run(args, Reports(broker.url))
            finally:
                for proc in reversed(procs):
                    proc.terminate()
                    proc.wait(10)
    return 0


def run(args: argparse.Namespace, reports: Reports) -> None:
    names = [f"p{i}" for i in range(args.properties)]
    reports.wait({names[0]: "0"}, 30.0)  # the mapper reads the device: it is up
    print(
        f"1 Modbus device of {args.properties} INT holding registers, read every "
        f"{args.cycle} ms; mosquitto; {os.cpu_count()} cores",
        flush=True,
    )
    value = 1
    last_sent: dict[str, float] = {}
    for label, batch in (("1 property", 1), (f"{args.properties} properties", args.properties)):
        firsts, lasts = [], []
        for r in range(args.rounds):
            props = [names[(r + i) % len(names)] for i in range(batch)]
            values = {n: str(value + i) for i, n in enumerate(props)}
            value = (value + batch) % 60000 + 1
            # the mapper writes a property at most once a second (DesiredWriter.min_interval):
            # a round waits until that second has passed for each of its properties
            ready = max(last_sent.get(n, 0.0) for n in props) + WRITE_INTERVAL
            time.sleep(max(args.pause, ready - time.perf_counter()))
            reports.drain()
            sent = reports.delta(values)
            last_sent.update(dict.fromkeys(props, sent))
            first, last = reports.wait(values, args.timeout)
            firsts.append(first - sent)
            lasts.append(last - sent)
        print(f"{label} at once, desired -> reported:", flush=True)
        print(f"  all of them     {percentiles(lasts)}", flush=True)
        if batch > 1:
            print(f"  the first       {percentiles(firsts)}", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
