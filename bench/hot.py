"""Micro-benchmark of the mapper's pure hot functions, per device per cycle (no pytest, no I/O).

For one device of the fleet benchmark (``--properties`` sensors back to back in holding
registers: float32, scaled int16, uint16, int32), it times:

* ``decode``: cutting one coalesced block answer into values (the Modbus driver's read path
  after the round trip: split and decode every property);
* ``report``: turning the values into the ``twin/update`` payload (wire strings and JSON),
  as :class:`~edgedev.mapper.DeviceRunner` does once per device per cycle.

Usage::

    python bench/hot.py [--properties 50] [--repeat 2000]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import fleet_config as fc

from edgedev.loader import load_devices
from edgedev.twin._values import Value, format_value
from edgedev.wire import dumps, new_event_id, twin_report, type_name
from edgedev_modbus.driver import ModbusDriver
from edgedev_modbus.plan import Block, split_block


def best_of(func: Callable[[], object], repeat: int, rounds: int = 5) -> float:
    """The best mean time of one call over ``rounds`` rounds of ``repeat`` calls, in s."""
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(repeat):
            func()
        best = min(best, (time.perf_counter() - start) / repeat)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--properties", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=2000)
    parser.add_argument("--tmp", type=Path, default=Path("/tmp"))
    args = parser.parse_args()

    props = fc.properties(args.properties)
    path = args.tmp / f"edgedev-hot-{args.properties}.yaml"
    unit = fc.Unit("hot", 0, 1502, 1)
    fc.write_devices(path, [unit], props, "coalesced", 1000, 3000)
    (spec,) = load_devices([path])
    driver = ModbusDriver(spec)
    blocks: list[Block] = driver._plan(spec.properties)
    images = fc.frames(props, 16)
    frames = [[image[b.start : b.end] for b in blocks] for image in images]
    turn = iter(range(10**12))

    def decode() -> dict[str, Value]:
        frame = frames[next(turn) % len(frames)]
        values: dict[str, Value] = {}
        for block, words in zip(blocks, frame, strict=True):
            driver._decode_block(block, words, values)
        return values

    def decode_generic() -> dict[str, Value]:  # per property: the path before the block decoder
        frame = frames[next(turn) % len(frames)]
        values: dict[str, Value] = {}
        for block, words in zip(blocks, frame, strict=True):
            for name, part in split_block(block, words).items():
                values[name] = driver._layouts[name].decode(part, by_name[name].type)
        return values

    by_name = {p.name: p for p in spec.properties}
    values = decode()
    stamp = 1_700_000_000_000

    def report() -> bytes:
        entries = [
            (name, format_value(value, by_name[name].type), type_name(by_name[name].type), stamp)
            for name, value in values.items()
        ]
        return twin_report(entries)

    def report_dumps() -> bytes:  # the nested dicts and json.dumps: the builder before
        twin = {
            name: {
                "actual": {
                    "value": format_value(value, by_name[name].type),
                    "metadata": {"timestamp": stamp},
                },
                "metadata": {"type": type_name(by_name[name].type)},
            }
            for name, value in values.items()
        }
        return dumps({"event_id": new_event_id(), "timestamp": stamp, "twin": twin})

    n = args.properties
    print(f"{n} properties in {len(blocks)} block(s); best of 5 x {args.repeat} calls")
    cases = (
        ("decode", decode),
        ("decode, per property (generic path)", decode_generic),
        ("report", report),
        ("report, dicts + json.dumps (before)", report_dumps),
    )
    for label, func in cases:
        seconds = best_of(func, args.repeat)
        print(
            f"  {label:<36} {seconds * 1e6:7.1f} us per device-cycle, "
            f"{seconds * 1e6 / n:6.2f} us per value, {n / seconds:,.0f} values/s on one core"
        )
    payload = report()
    print(f"  payload {len(payload)} bytes ({len(payload) / n:.0f} per value)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
