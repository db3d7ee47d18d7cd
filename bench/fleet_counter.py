"""The counting subscriber of the fleet benchmark: what reaches a twin agent, and how late.

Subscribes (paho, QoS 0, its own process) to every device's ``twin/update`` and
X. For each twin update it counts the
values and records, per value, the delay from the read (the value's
``actual.metadata.timestamp``, set by the mapper when the read returned) to the moment this
process received it.

Control is on stdin/stdout, one line each: ``ready`` once subscribed; ``mark`` prints a JSON
snapshot (counts so far, and the position to cut latency samples at); ``report A B`` prints
the latency percentiles of the samples between two marks; end of input stops it.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import threading
import time
from array import array
from collections import deque
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion


class Counter:
    def __init__(self, root: str) -> None:
        self.root = root
        self.lock = threading.Lock()
        self.messages = 0
        self.values = 0
        self.offline = 0
        self.first_update: float | None = None
        self.mapper_online: float | None = None
        self.devices: set[str] = set()
        self.all_devices_at: float | None = None
        self.expected_devices = 0
        self.last_stamp: dict[str, int] = {}  # per topic: the newest value timestamp so far
        self.out_of_order = 0
        """Twin updates whose values are older than a value of an earlier update of the
        same device (a queue delivered out of order); a resent one (QoS 1, an event id seen
        among the last 200,000) is a duplicate, not out of order."""
        self.duplicates = 0
        self._seen: set[str] = set()
        self._seen_order: deque[str] = deque()
        # one sample per (message, value timestamp): delay in ms and how many values had it
        self.delays = array("d")
        self.weights = array("I")

    def on_message(self, _client: Any, _userdata: Any, msg: Any) -> None:
        now = time.time()
        topic: str = msg.topic
        if topic.endswith("/twin/update"):
            body = json.loads(msg.payload)
            twin = body["twin"]
            event_id = body.get("event_id", "")
            stamps: dict[int, int] = {}
            for entry in twin.values():
                ts = entry["actual"]["metadata"]["timestamp"]
                stamps[ts] = stamps.get(ts, 0) + 1
            now_ms = now * 1000
            oldest, newest = min(stamps, default=0), max(stamps, default=0)
            with self.lock:
                if event_id in self._seen:
                    self.duplicates += 1
                elif oldest < self.last_stamp.get(topic, 0):
                    self.out_of_order += 1
                self._seen.add(event_id)
                self._seen_order.append(event_id)
                if len(self._seen_order) > 200_000:
                    self._seen.discard(self._seen_order.popleft())
                self.last_stamp[topic] = max(newest, self.last_stamp.get(topic, 0))
                if self.first_update is None:
                    self.first_update = now
                self.messages += 1
                self.values += len(twin)
                for ts, n in stamps.items():
                    self.delays.append(now_ms - ts)
                    self.weights.append(n)
                if self.all_devices_at is None:
                    self.devices.add(topic)
                    if len(self.devices) >= self.expected_devices > 0:
                        self.all_devices_at = now
        elif topic.endswith("/state/update") and json.loads(msg.payload).get("state") == "offline":
            with self.lock:
                self.offline += 1
        elif (
            "/mapper/" in topic
            and topic.endswith("/state")
            and not msg.retain  # an earlier run's announcement, kept by the broker
            and self.mapper_online is None
            and json.loads(msg.payload).get("state") == "online"
        ):
            self.mapper_online = now

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "t": time.time(),
                "messages": self.messages,
                "values": self.values,
                "offline": self.offline,
                "out_of_order": self.out_of_order,
                "duplicates": self.duplicates,
                "samples": len(self.delays),
                "devices": len(self.devices),
                "first_update": self.first_update,
                "all_devices_at": self.all_devices_at,
                "mapper_online": self.mapper_online,
            }

    def report(self, start: int, end: int) -> dict[str, Any]:
        with self.lock:
            pairs = sorted(zip(self.delays[start:end], self.weights[start:end], strict=True))
        total = sum(w for _, w in pairs)
        result: dict[str, Any] = {"values": total}
        for name, q in (("p50", 0.50), ("p90", 0.90), ("p99", 0.99), ("p999", 0.999)):
            rank, seen = q * total, 0
            for delay, weight in pairs:
                seen += weight
                if seen >= rank:
                    result[name] = delay
                    break
        result["max"] = pairs[-1][0] if pairs else None
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--root", default="$hw/events")
    parser.add_argument(
        "--devices", type=int, default=0, help="note when this many devices have reported"
    )
    args = parser.parse_args()
    counter = Counter(args.root)
    counter.expected_devices = args.devices
    subscribed = threading.Event()
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"fleet-counter-{args.port}")
    client.on_message = counter.on_message
    client.on_subscribe = lambda *_: subscribed.set()
    client.connect("127.0.0.1", args.port)
    client.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    client.subscribe(
        [
            (f"{args.root}/device/+/+/twin/update", 0),
            (f"{args.root}/device/+/+/state/update", 0),
            (f"{args.root}/node/+/mapper/+/state", 0),
        ]
    )
    client.loop_start()
    if not subscribed.wait(10):
        sys.exit("no SUBACK from the broker")
    print("ready", flush=True)
    for line in sys.stdin:
        words = line.split()
        if words == ["mark"]:
            print(json.dumps(counter.snapshot()), flush=True)
        elif len(words) == 3 and words[0] == "report":
            print(json.dumps(counter.report(int(words[1]), int(words[2]))), flush=True)
    client.disconnect()
    client.loop_stop()


if __name__ == "__main__":
    main()
