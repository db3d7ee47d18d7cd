"""Sparkplug B without I/O: topics, device ids, payloads and one session's messages.

Each rule is the Eclipse Sparkplug 3.0.0 specification's, cited by section; the messages are
read back with the protobuf code generated from Tahu's sparkplug_b.proto (and checked to be
what grpcio-tools makes of it).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

from edgedev.config import DeviceSpec, PropertySpec
from edgedev.config._crd import AccessMode
from edgedev.mapper import Reading
from edgedev.sparkplug._decoder import Decoder, Event
from edgedev.sparkplug._generate import PROTO
from edgedev.sparkplug._payloads import (
    BDSEQ,
    REBIRTH,
    DataType,
    Metric,
    bdseq_of,
    decode,
    encode,
    float32,
    metric_info,
    metric_value,
    node_death,
    rebirth_asked,
)
from edgedev.sparkplug._session import Aliases, EdgeSession, NodeMetric
from edgedev.sparkplug._topics import (
    EdgeNode,
    MessageType,
    Topic,
    kubeedge_device_id,
    sparkplug_device_id,
    state_topic,
)
from edgedev.twin import PropertyType
from protoc_helpers import check_committed

EDGE = EdgeNode("plant", "line1")


def test_the_committed_generated_code_matches_tahus_proto(tmp_path: Path):
    check_committed(PROTO, tmp_path, "python -m edgedev.sparkplug._generate")
    header = PROTO.path.read_text().splitlines()[:8]
    assert any("SPDX-License-Identifier: EPL-2.0" in line for line in header)


# topics (4.1, 4.2) ---------------------------------------------------------------------------
def test_topics_of_an_edge_node_and_its_devices():
    assert EDGE.topic(MessageType.NBIRTH) == "spBv1.0/plant/NBIRTH/line1"
    assert EDGE.topic(MessageType.DDATA, "pump") == "spBv1.0/plant/DDATA/line1/pump"
    assert EDGE.commands() == ("spBv1.0/plant/NCMD/line1", "spBv1.0/plant/DCMD/line1/+")
    assert state_topic("scada") == "spBv1.0/STATE/scada"
    with pytest.raises(ValueError, match="names a device"):
        EDGE.topic(MessageType.DBIRTH)


@pytest.mark.parametrize(
    ("text", "problem"),
    [("plant", "GROUP/EDGE_NODE"), ("/line1", "empty"), ("a+b/c", r"\+"), ("a/b/c", "/")],
)
def test_an_edge_node_id_is_two_valid_ids(text: str, problem: str):
    with pytest.raises(ValueError, match=problem):
        EdgeNode.parse(text)


def test_topics_parse_back():
    assert Topic.parse("spBv1.0/plant/DCMD/line1/pump") == Topic(MessageType.DCMD, EDGE, "pump")
    assert Topic.parse("spBv1.0/plant/NCMD/line1") == Topic(MessageType.NCMD, EDGE)
    assert Topic.parse("spBv1.0/STATE/scada") == Topic(MessageType.STATE, host="scada")
    for other in (
        "spBv1.0/plant/NCMD/line1/extra",
        "spBv1.0/plant/DCMD/line1",
        "spBv1.0/plant/BOGUS/line1",
        "$hw/events/device/default/x/twin/update",
        "spBv1.0/plant/DDATA/line1/",
    ):
        assert Topic.parse(other) is None, other


def test_device_ids_name_the_device_and_turn_back():
    # 4.1.5: no + / # in a device id; the default namespace keeps the bare name
    assert sparkplug_device_id("default/pump-1") == "pump-1"
    assert sparkplug_device_id("site-a/pump-1") == "site-a:pump-1"
    for device_id in ("default/pump-1", "site-a/pump-1", "x/a.b-c"):
        assert kubeedge_device_id(sparkplug_device_id(device_id)) == device_id
    assert kubeedge_device_id("Other Device") == "default/Other Device"


# payloads (6.4) ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("datatype", "value"),
    [
        (DataType.Int64, -5),
        (DataType.Int64, 2**63 - 1),
        (DataType.Int32, -2),
        (DataType.UInt64, 2**64 - 1),
        (DataType.Double, 0.1),
        (DataType.Float, 23.4),
        (DataType.Boolean, True),
        (DataType.String, "ünï"),
        (DataType.Bytes, b"\x00\xff"),
    ],
)
def test_values_travel_in_their_datatypes_field(datatype: DataType, value: object):
    data = encode([Metric("m", 1, datatype, value, 7)], timestamp=9, seq=3)  # type: ignore[arg-type]
    payload = decode(data)
    assert (payload.timestamp, payload.seq) == (9, 3)
    [metric] = payload.metrics
    assert (metric.name, metric.alias, metric.timestamp, metric.datatype) == ("m", 1, 7, datatype)
    assert metric_value(metric) == value


def test_a_negative_int64_is_twos_complement_in_the_unsigned_field():
    [metric] = decode(encode([Metric("m", None, DataType.Int64, -1, 0)], timestamp=0)).metrics
    assert metric.long_value == 2**64 - 1  # 6.4.17: Int64 in uint64
    # another encoder's Int8 over 8 bits reads the same
    other = decode(encode([Metric("m", None, DataType.UInt32, 255, 0)], timestamp=0)).metrics[0]
    assert metric_value(other, DataType.Int8) == -1


def test_a_float_reads_back_as_the_decimal_it_was():
    assert float32(23.4) == 23.4
    assert float32(0.1) == 0.1
    assert float32(1 / 3) == pytest.approx(0.33333334)


@pytest.mark.parametrize(
    ("datatype", "value"),
    [(DataType.Int8, 300), (DataType.UInt32, -1), (DataType.Double, "x"), (DataType.Boolean, 1)],
)
def test_a_value_that_does_not_fit_its_datatype_is_refused(datatype: DataType, value: object):
    with pytest.raises((TypeError, ValueError)):
        encode([Metric("m", None, datatype, value, 0)], timestamp=0)  # type: ignore[arg-type]


def test_ndeath_carries_bdseq_alone_and_no_seq():
    payload = decode(node_death(7, timestamp=1))
    assert not payload.HasField("seq")  # 4.2.1.3.2: MUST NOT include a sequence number
    assert [(m.name, m.datatype) for m in payload.metrics] == [(BDSEQ, DataType.Int64)]
    assert bdseq_of(payload) == 7


def test_garbage_is_not_a_payload():
    with pytest.raises(ValueError, match="not a Sparkplug B payload"):
        decode(b"\xff\xff\xff")


def test_a_rebirth_is_asked_by_setting_node_control_rebirth_true():
    asked = encode([Metric(REBIRTH, None, DataType.Boolean, True, 0)], timestamp=0)
    not_asked = encode([Metric(REBIRTH, None, DataType.Boolean, False, 0)], timestamp=0)
    assert rebirth_asked(decode(asked))
    assert not rebirth_asked(decode(not_asked))


# one session (5.4 - 5.17) ------------------------------------------------------------------
class _Visitor(BaseModel):
    pass


def _device(name: str = "pump", namespace: str = "default") -> DeviceSpec:
    visitor = _Visitor()
    return DeviceSpec(
        namespace,
        name,
        "pump-model",
        "modbus",
        _Visitor(),
        (
            PropertySpec(
                "temperature",
                PropertyType.FLOAT,
                visitor,
                access_mode=AccessMode.READ_ONLY,
                unit="degC",
                description="water out",
            ),
            PropertySpec("setpoint", PropertyType.INT, visitor, minimum=10, maximum=30),
            PropertySpec("running", PropertyType.BOOLEAN, visitor),
        ),
    )


def _reading(name: str, value: bool | float | int, text: str, ts: int = 5) -> Reading:
    return Reading(name, value, text, ts)


def test_nbirth_opens_the_session_with_seq_0_bdseq_and_rebirth_metric():
    session = EdgeSession(EDGE, 3, Aliases())
    out = session.node_birth([NodeMetric("Mapper/Devices", DataType.Int64, 1)], 100)
    assert out.topic == "spBv1.0/plant/NBIRTH/line1" and out.qos == 0
    payload = decode(out.payload)
    assert payload.seq == 0 and payload.timestamp == 100  # 4.2.1.1.2
    metrics = {m.name: m for m in payload.metrics}
    assert metric_value(metrics[BDSEQ]) == 3 and metrics[BDSEQ].datatype == DataType.Int64
    rebirth = metrics[REBIRTH]  # 5.17: boolean, false, no alias
    assert (rebirth.datatype, metric_value(rebirth), rebirth.HasField("alias")) == (
        DataType.Boolean,
        False,
        False,
    )
    assert metrics["Mapper/Devices"].HasField("alias")


def test_dbirth_names_every_property_with_alias_datatype_value_and_metadata():
    aliases = Aliases()
    session = EdgeSession(EDGE, 0, aliases)
    session.node_birth([], 1)
    last = {"temperature": _reading("temperature", 21.5, "21.5", ts=4)}
    out = session.device_birth(_device(), last, 10)
    assert out.topic == "spBv1.0/plant/DBIRTH/line1/pump"
    payload = decode(out.payload)
    assert payload.seq == 1
    metrics = {m.name: m for m in payload.metrics}
    temperature, setpoint, running = (metrics[n] for n in ("temperature", "setpoint", "running"))
    assert (temperature.datatype, metric_value(temperature), temperature.timestamp) == (
        DataType.Float,
        21.5,
        4,
    )
    info = metric_info(temperature)
    assert (info.unit, info.read_only, info.description) == ("degC", True, "water out")
    assert (setpoint.datatype, setpoint.is_null) == (DataType.Int64, True)  # 5.16: null
    assert (metric_info(setpoint).low, metric_info(setpoint).high) == (10.0, 30.0)
    assert metric_info(setpoint).read_only is False
    assert running.datatype == DataType.Boolean
    assert metric_value(metrics["Properties/Device"]) == "default/pump"
    every = [m.alias for m in payload.metrics]
    assert len(set(every)) == len(every) and all(every)  # 6.4.6: unique, all named and aliased


def test_ddata_carries_changed_metrics_by_alias_only():
    aliases = Aliases()
    session = EdgeSession(EDGE, 0, aliases)
    spec = _device()
    session.node_birth([], 1)
    session.device_birth(spec, {"setpoint": _reading("setpoint", 20, "20")}, 2)
    readings = [_reading("setpoint", 20, "20"), _reading("temperature", 21.5, "21.5")]
    out = session.device_data(spec, readings, 3)
    assert out is not None
    payload = decode(out.payload)
    [metric] = payload.metrics  # setpoint did not change since the birth
    assert not metric.HasField("name") and not metric.datatype  # 6.4.6
    assert metric.alias == aliases.alias(spec.id, "temperature")
    assert metric_value(metric, DataType.Float) == 21.5
    assert session.device_data(spec, readings, 4) is None  # nothing changed
    forced = session.device_data(spec, readings, 5, force=["setpoint"])
    assert forced is not None and [m.alias for m in decode(forced.payload).metrics] == [
        aliases.alias(spec.id, "setpoint")
    ]


def test_seq_runs_over_every_message_and_wraps_at_255():
    session = EdgeSession(EDGE, 0, Aliases())
    spec = _device()
    session.node_birth([], 0)
    session.device_birth(spec, {}, 0)
    seqs = []
    for n in range(300):
        out = session.device_data(spec, [_reading("setpoint", n, str(n))], n)
        assert out is not None
        seqs.append(decode(out.payload).seq)
    assert seqs[:3] == [2, 3, 4]
    assert seqs[253:256] == [255, 0, 1]  # 6.4.5
    death = session.device_death(spec.id, 0)
    assert death is not None and decode(death.payload).seq == (seqs[-1] + 1) % 256


def test_a_rebirth_starts_at_seq_0_again_with_the_same_bdseq_and_aliases():
    aliases = Aliases()
    session = EdgeSession(EDGE, 9, aliases)
    spec = _device()
    session.node_birth([], 0)
    first = decode(session.device_birth(spec, {}, 0).payload)
    session.device_data(spec, [_reading("setpoint", 1, "1")], 0)
    rebirth = decode(session.node_birth([], 1).payload)
    assert rebirth.seq == 0 and bdseq_of(rebirth) == 9  # 5.17
    assert not session.alive(spec.id)  # born again only by its DBIRTH
    again = decode(session.device_birth(spec, {}, 1).payload)
    assert again.seq == 1
    assert [(m.name, m.alias) for m in again.metrics] == [(m.name, m.alias) for m in first.metrics]


def test_ddeath_only_for_a_device_born_and_data_only_while_alive():
    session = EdgeSession(EDGE, 0, Aliases())
    spec = _device()
    session.node_birth([], 0)
    assert session.device_death(spec.id, 0) is None
    session.device_birth(spec, {}, 0)
    death = session.device_death(spec.id, 0)
    assert death is not None and death.topic == "spBv1.0/plant/DDEATH/line1/pump"
    assert decode(death.payload).HasField("seq")  # 4.2.2.3.2
    assert session.device_data(spec, [_reading("setpoint", 1, "1")], 0) is None


def test_history_is_flagged_and_not_taken_for_the_current_value():
    aliases = Aliases()
    session = EdgeSession(EDGE, 0, aliases)
    spec = _device()
    session.node_birth([], 0)
    session.device_birth(spec, {}, 0)
    out = session.history(spec.id, [_reading("setpoint", 11, "11", ts=1)], 5)
    assert out is not None
    [metric] = decode(out.payload).metrics
    assert metric.is_historical and metric.timestamp == 1
    current = session.device_data(spec, [_reading("setpoint", 11, "11")], 6)
    assert current is not None  # the history did not count as sent


def test_a_value_that_does_not_fit_is_left_out_and_counted():
    session = EdgeSession(EDGE, 0, Aliases())
    spec = _device()
    session.node_birth([], 0)
    session.device_birth(spec, {}, 0)
    out = session.device_data(spec, [_reading("setpoint", 2**70, "big")], 0)
    assert out is None and session.skipped == 1


def test_aliases_are_unique_across_devices_and_the_node():
    aliases = Aliases()
    a = aliases.alias("default/a", "x")
    b = aliases.alias("default/b", "x")
    n = aliases.alias("", "x")
    assert len({a, b, n}) == 3
    assert aliases.find(b) == ("default/b", "x")
    aliases.forget("default/b")
    assert aliases.find(b) is None
    assert aliases.alias("default/b", "x") not in (a, b, n)


# reading the traffic as a host does (watch, view) -------------------------------------------
def test_the_decoder_names_data_by_the_aliases_of_the_births():
    aliases = Aliases()
    session = EdgeSession(EDGE, 4, aliases)
    spec = _device("pump", "site-a")
    decoder = Decoder()
    nbirth = session.node_birth([], 1)
    event = decoder.feed(nbirth.topic, nbirth.payload)
    assert event is not None and (event.kind, event.bdseq, event.problem) == (
        MessageType.NBIRTH,
        4,
        None,
    )
    dbirth = session.device_birth(spec, {}, 2)
    event = decoder.feed(dbirth.topic, dbirth.payload)
    assert event is not None and event.where == "plant/line1/site-a:pump"
    setpoint = next(m for m in event.metrics if m.name == "setpoint")
    assert setpoint.info is not None and (setpoint.info.low, setpoint.text) == (10.0, "null")
    data = session.device_data(spec, [_reading("temperature", 21.5, "21.5")], 3)
    assert data is not None
    event = decoder.feed(data.topic, data.payload)
    assert event is not None and [(m.name, m.text) for m in event.metrics] == [
        ("temperature", "21.5")
    ]
    assert event.problem is None and event.seq == 2


def test_the_decoder_says_what_a_host_would_ask_a_rebirth_for():
    session = EdgeSession(EDGE, 0, Aliases())
    spec = _device()
    decoder = Decoder()
    session.node_birth([], 0)
    session.device_birth(spec, {}, 0)
    data = session.device_data(spec, [_reading("setpoint", 12, "12")], 0)
    assert data is not None
    event = decoder.feed(data.topic, data.payload)  # joined mid-session: no birth seen
    assert event is not None and event.metrics == () and len(event.unknown) == 1
    session.device_data(spec, [_reading("setpoint", 13, "13")], 0)  # lost on the way
    later = session.device_data(spec, [_reading("setpoint", 14, "14")], 0)
    assert later is not None
    event = decoder.feed(later.topic, later.payload)
    assert event is not None and event.problem == "seq 4 after 2"
    death = node_death(9, timestamp=0)
    event = decoder.feed(EDGE.topic(MessageType.NDEATH), death)
    assert event is not None and event.bdseq == 9
    assert decoder.feed("spBv1.0/STATE/scada", b'{"online": true, "timestamp": 1}') == Event(
        MessageType.STATE, host="scada", online=True
    )
    assert decoder.feed("other/topic", b"") is None
    garbage = decoder.feed(EDGE.topic(MessageType.NDATA), b"\xff\xff")
    assert garbage is not None and garbage.problem is not None


def test_an_ndeath_of_an_older_session_is_told_apart():
    decoder = Decoder()
    new = EdgeSession(EDGE, 5, Aliases()).node_birth([], 0)
    decoder.feed(new.topic, new.payload)
    old = decoder.feed(EDGE.topic(MessageType.NDEATH), node_death(4, timestamp=0))
    assert old is not None and old.problem is not None and "older session" in old.problem
