"""The driver's block decoder gives exactly the values of the generic per-property path."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from modbus_helpers import device, load, model, visit

from edgedev.twin import Value, format_value
from edgedev_modbus.driver import ModbusDriver
from edgedev_modbus.plan import split_block

KINDS = [
    ("int16", 1),
    ("uint16", 1),
    ("int32", 2),
    ("uint32", 2),
    ("int64", 4),
    ("uint64", 4),
    ("float32", 2),
    ("float64", 4),
]
SCALES = [1, 0.1, 0.01, 2, -0.5, 1e-05, 2.5, 100.0, 0.3]
TYPES = ["INT", "FLOAT", "DOUBLE", "BOOLEAN"]


_DRIVERS: list[ModbusDriver] = []


def _driver(tmp_path: Path) -> ModbusDriver:
    if _DRIVERS:
        return _DRIVERS[0]
    props, visits, offset = [], [], 0
    for index, ((data_type, width), scale, type_) in enumerate(
        itertools.product(KINDS, SCALES, TYPES)
    ):
        if type_ == "BOOLEAN" and scale != 1:
            continue
        name = f"p{index}"
        props.append({"name": name, "type": type_, "accessMode": "ReadOnly"})
        config = {"register": "HoldingRegister", "offset": offset, "limit": width}
        visits.append(visit(name, dataType=data_type, scale=scale, **config))
        offset += width
    (spec,) = load(tmp_path, [model("fast", props), device("fast", "fast", 1502, visits)])
    _DRIVERS.append(ModbusDriver(spec))
    return _DRIVERS[0]


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_block_decode_equals_generic_decode(
    tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    """Every number layout and scale reports the same value and wire string either way."""
    driver = _driver(tmp_path_factory.getbasetemp())
    spec = driver.device
    for block in driver._plan(spec.properties):
        words = data.draw(
            st.lists(st.integers(0, 0xFFFF), min_size=block.count, max_size=block.count)
        )
        fast: dict[str, Value] = {}
        driver._decode_block(block, words, fast)
        types = {p.name: p.type for p in spec.properties}
        for name, part in split_block(block, words).items():
            slow = driver._layouts[name].decode(part, types[name])
            value = fast[name]
            assert type(value) is type(slow), name
            assert format_value(value, types[name]) == format_value(slow, types[name]), name
