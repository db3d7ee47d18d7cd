"""The YAML loader refuses bad files with problems that name them; it never crashes."""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgedev import ConfigError, load_devices
from edgedev._errors import PluginError

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
)
json_like = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)

VALID: list[dict[str, Any]] = [
    {
        "apiVersion": "devices.kubeedge.io/v1beta1",
        "kind": "DeviceModel",
        "metadata": {"name": "m", "namespace": "x"},
        "spec": {
            "protocol": "modbus",
            "properties": [
                {"name": "t", "type": "FLOAT", "accessMode": "ReadWrite", "maximum": "100"}
            ],
        },
    },
    {
        "apiVersion": "devices.kubeedge.io/v1beta1",
        "kind": "Device",
        "metadata": {"name": "d", "namespace": "x"},
        "spec": {
            "deviceModelRef": {"name": "m"},
            "protocol": {"protocolName": "modbus", "configData": {"ip": "127.0.0.1", "port": 502}},
            "properties": [
                {
                    "name": "t",
                    "collectCycle": 1000,
                    "desired": {"value": "20"},
                    "visitors": {
                        "protocolName": "modbus",
                        "configData": {"register": "HoldingRegister", "offset": 0, "limit": 2},
                    },
                }
            ],
        },
    },
]


def load_text(text: str | bytes) -> None:
    """Load ``text`` as a file: devices or a ConfigError, nothing else."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.yaml"
        path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8", "replace"))
        try:
            load_devices([path])
        except ConfigError as exc:
            assert exc.problems, "a refusal says why"
            assert all(p.file == str(path) for p in exc.problems)
        except PluginError:
            pass  # a protocol nobody installed: reported by the CLI as such


@pytest.mark.needs("edgedev_modbus")
def test_the_valid_documents_load():
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ok.yaml"
        path.write_text(yaml.safe_dump_all(VALID))
        (device,) = load_devices([path])
    assert device.id == "x/d"


@FUZZ
@given(st.text(max_size=300))
def test_any_text_is_loaded_or_refused(text: str):
    load_text(text)


@FUZZ
@given(st.binary(max_size=300))
def test_any_bytes_are_loaded_or_refused(data: bytes):
    load_text(data)


@FUZZ
@given(st.lists(json_like, max_size=3))
def test_any_yaml_structure_is_loaded_or_refused(docs: list[Any]):
    load_text(yaml.safe_dump_all(docs))


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            out += paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            out += paths(value, (*prefix, index))
    return out


ALL_PATHS = [p for p in paths(VALID) if p]


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(ALL_PATHS), json_like), min_size=1, max_size=4))
def test_valid_documents_with_any_field_replaced_are_loaded_or_refused(
    changes: list[tuple[tuple[Any, ...], Any]],
):
    docs: Any = copy.deepcopy(VALID)
    for path, value in changes:
        node = docs
        try:
            for key in path[:-1]:
                node = node[key]
            node[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue  # an earlier change removed the way there
    load_text(yaml.safe_dump_all(docs))


@FUZZ
@given(st.sampled_from(ALL_PATHS))
def test_valid_documents_with_any_field_removed_are_loaded_or_refused(path: tuple[Any, ...]):
    docs: Any = copy.deepcopy(VALID)
    node = docs
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    load_text(yaml.safe_dump_all(docs))


# hostile shapes (issue 16): alias bombs at any place, of any fan-out and depth --------------
def alias_bomb(fan_out: int, depth: int, place: tuple[Any, ...]) -> str:
    """VALID with the field at ``place`` replaced by a chain of anchors ``depth`` deep."""
    docs: Any = copy.deepcopy(VALID)
    node = docs
    for key in place[:-1]:
        node = node[key]
    node[place[-1]] = "@BOMB@"
    text = yaml.safe_dump_all(docs, sort_keys=False, width=10_000)
    anchors = ["&a0 [" + ", ".join(["lol"] * fan_out) + "]"]
    anchors += [
        f"&a{level} [" + ", ".join([f"*a{level - 1}"] * fan_out) + "]"
        for level in range(1, depth + 1)
    ]
    # every anchor defined in one flow sequence, the last one used at the bomb's place
    bomb = "[" + ", ".join(anchors) + f", *a{depth}]"
    return text.replace("'@BOMB@'", bomb, 1)


@FUZZ
@given(
    st.integers(2, 12),
    st.integers(1, 9),
    st.sampled_from([p for p in ALL_PATHS if p and p[0] == 1]),
)
def test_alias_bombs_anywhere_are_refused_or_loaded_fast(
    fan_out: int, depth: int, place: tuple[Any, ...]
):
    text = alias_bomb(fan_out, depth, place)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bomb.yaml"
        path.write_text(text)
        try:
            load_devices([path])
        except ConfigError as exc:
            expands = fan_out ** (depth + 1) > 200_000
            message = str(exc)
            assert not expands or "nodes" in message, message
        except PluginError:
            pass
