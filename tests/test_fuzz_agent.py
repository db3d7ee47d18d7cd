"""The twin agent's message handling answers any payload with replies, never an exception."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgedev import DeviceSpec
from edgedev.agent import AgentCore
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
payloads = (
    st.binary(max_size=200)
    | message_like.map(lambda d: json.dumps(d).encode())
    | json_like.map(lambda d: json.dumps(d).encode())
)
topics = st.sampled_from(
    [TOPICS.device(d, c) for d in ("default/a0", "default/zz") for c in Channel]
    + [TOPICS.node(n, c) for n in ("n1", "other") for c in NodeChannel]
)


@pytest.fixture(scope="module")
def specs(tmp_path_factory: pytest.TempPathFactory) -> list[DeviceSpec]:
    docs: list[dict[str, Any]] = fleet_docs(["a0"], ports={"a0": 1502})
    docs[0]["spec"]["properties"][0]["accessMode"] = "ReadWrite"
    return load_docs(Path(tmp_path_factory.mktemp("agent")), docs)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(topics, payloads), min_size=1, max_size=8))
def test_any_sequence_of_messages_gets_replies_not_exceptions(
    specs: list[DeviceSpec], messages: list[tuple[str, bytes]]
):
    core = AgentCore(TOPICS, "n1")
    core.adopt(specs, 1)
    for now, (topic, payload) in enumerate(messages, start=2):
        replies = core.handle(Message(topic, payload), now)
        for reply in replies:
            assert isinstance(reply.message.payload, bytes)
            json.loads(reply.message.payload)  # every answer is JSON
    core.take_dirty()
