"""The twin agent's message handling answers any payload with replies, never an exception."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgedev import DeviceSpec
from edgedev.agent import AgentCore, AgentLimits
from edgedev.agent._input import device_id_problem, json_depth
from edgedev.bus import Channel, Message, NodeChannel, Topics
from reliability_helpers import fleet_docs, load_docs

ROOT = "fz"
TOPICS = Topics(ROOT)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=16)
)
json_like = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
entry = st.none() | st.fixed_dictionaries(
    {},
    optional={
        "expected": st.fixed_dictionaries({}, optional={"value": json_like}) | json_like,
        "actual": st.fixed_dictionaries({}, optional={"value": json_like}) | json_like,
        "metadata": st.fixed_dictionaries({}, optional={"type": json_like}) | json_like,
        "version": json_like,
    },
)
message_like = st.fixed_dictionaries(
    {},
    optional={
        "event_id": json_like,
        "timestamp": json_like,
        "twin": st.dictionaries(st.sampled_from(["n", "x", ""]) | st.text(max_size=5), entry)
        | json_like,
        "state": json_like,
        "mapper": json_like,
        "devices": json_like,
    },
)
# hostile shapes (issue 16): deep nesting, oversized payloads, ids that are no names
BAD_IDS = ["bare", "../..", "$SYS/x", "UP/per", "a/" + "n" * 300, "-x/y", "ns/", "/x"]
deep = st.integers(1, 3000).map(lambda n: b"[" * n + b"]" * n) | st.integers(1, 3000).map(
    lambda n: b'{"twin":' * n + b"1" + b"}" * n
)
oversized = st.integers(2_000, 5_000).map(
    lambda n: json.dumps({"twin": {"n": {"actual": {"value": "x" * n}}}}).encode()
)
many_props = st.integers(0, 60).map(
    lambda n: json.dumps({"twin": {f"p{i}": {"actual": {"value": "1"}} for i in range(n)}}).encode()
)
will = st.lists(st.sampled_from([*BAD_IDS, "default/a0", "ns/new"]), max_size=6).map(
    lambda ids: json.dumps({"mapper": "m", "state": "online", "devices": ids}).encode()
)
payloads = (
    st.binary(max_size=200)
    | message_like.map(lambda d: json.dumps(d).encode())
    | json_like.map(lambda d: json.dumps(d).encode())
    | deep
    | oversized
    | many_props
    | will
)
topics = st.sampled_from(
    [TOPICS.device(d, c) for d in ("default/a0", "default/zz", "ns/new") for c in Channel]
    + [
        f"{ROOT}/device/{d}/twin/update"
        for d in BAD_IDS
        if d.count("/") == 1 and "" not in d.split("/")
    ]
    + [TOPICS.node(n, c) for n in ("n1", "other") for c in NodeChannel]
)
LIMITS = AgentLimits(max_payload=2000, max_depth=8, max_properties=40, max_devices=3)


@pytest.fixture(scope="module")
def specs(tmp_path_factory: pytest.TempPathFactory) -> list[DeviceSpec]:
    docs: list[dict[str, Any]] = fleet_docs(["a0"], ports={"a0": 1502})
    docs[0]["spec"]["properties"][0]["accessMode"] = "ReadWrite"
    return load_docs(Path(tmp_path_factory.mktemp("agent")), docs)


@pytest.mark.needs("edgedev_modbus")
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(topics, payloads), min_size=1, max_size=8))
def test_any_sequence_of_messages_gets_replies_not_exceptions(
    specs: list[DeviceSpec], messages: list[tuple[str, bytes]]
):
    core = AgentCore(TOPICS, "n1", LIMITS)
    core.adopt(specs, 1)
    for now, (topic, payload) in enumerate(messages, start=2):
        replies = core.handle(Message(topic, payload), now)
        for reply in replies:
            assert isinstance(reply.message.payload, bytes)
            json.loads(reply.message.payload)  # every answer is JSON
        # membership answers whatever was stored
        core.handle(Message(TOPICS.node("n1", NodeChannel.MEMBERSHIP_GET), b"{}"), now)
    devices, props = core.take_dirty()
    # nothing junk is kept: valid ids only, modelled properties only, bounded counts
    assert all(device_id_problem(d) is None for d in core.records)
    assert len(core.members("n1")) <= LIMITS.max_devices + len(specs)
    modelled = core.records["default/a0"].twin
    assert modelled.model is not None and set(modelled.properties) <= set(modelled.model)
    for record in core.records.values():
        assert len(record.twin.properties) <= max(LIMITS.max_properties, len(specs[0].properties))
    assert all(device_id_problem(row.id) is None for row in devices)
    assert all(device_id_problem(row.device) is None for row in props)


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


tricky_text = st.text(alphabet='{}[]"\\ab\n', max_size=8)
tricky_json = st.recursive(
    st.none() | tricky_text | st.integers(),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(tricky_text, children, max_size=3)
    ),
    max_leaves=30,
)


@settings(max_examples=500, deadline=None)
@given(tricky_json, st.booleans())
def test_json_depth_counts_nesting_outside_strings(value: Any, ascii_only: bool):
    payload = json.dumps(value, ensure_ascii=ascii_only).encode()
    assert json_depth(payload, 100) == _depth(value)
    assert json_depth(payload, 1) <= 2  # stops counting past the limit
