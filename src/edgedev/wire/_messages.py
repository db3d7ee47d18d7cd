"""KubeEdge's MQTT payloads: typed models for parsing, builders for every message we send.

Parsing goes through pydantic because payloads come from the network and may be anything.
Outgoing messages are built here and nowhere else, as plain dicts (or, for the mapper's report,
one per device per cycle, as strings); ``tests/test_wire.py`` checks that each builder gives the
same bytes as the model it mirrors.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from edgedev.twin._twin import WriteFailure


def now_ms() -> int:
    """Milliseconds since the epoch, the timestamp unit of every payload."""
    return time.time_ns() // 1_000_000


def new_event_id() -> str:
    """A fresh ``event_id``; duplicates delivered after a reconnect keep their original id."""
    return uuid.uuid4().hex


def _text(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class ValueMetadata(_Wire):
    """``metadata`` of a value: when it was set (or measured), and how good it is.

    ``quality`` is edgedev's: ``Uncertain`` when the device says the value may be wrong
    (absent: Good). EdgeCore ignores it, and stamps reported values with its receive time.
    """

    timestamp: int = 0
    quality: str | None = None


class WireValue(_Wire):
    """``{"value": "<str>", "metadata": {"timestamp": ms}}``; ``value`` null removes it."""

    value: str | None = None
    metadata: ValueMetadata = Field(default_factory=ValueMetadata)

    @field_validator("value", mode="before")
    @classmethod
    def _value_text(cls, value: Any) -> Any:
        return _text(value)


class TypeMetadata(_Wire):
    """``metadata`` of a twin property: its type (``int``, ``float`` ...)."""

    type: str = ""


class WriteError(_Wire):
    """``error`` of a twin property: the mapper could not write the desired ``value``.

    An edgedev extension of KubeEdge's ``MsgTwin`` (other consumers ignore it). ``retry``
    says whether the mapper keeps trying with backoff (the device is unreachable or refused
    for now) or gave up until a new desired value arrives (read-only, out of range).
    """

    value: str | None = None
    reason: str = ""
    timestamp: int = 0
    retry: bool = True

    @field_validator("value", mode="before")
    @classmethod
    def _value_text(cls, value: Any) -> Any:
        return _text(value)


class QualityState(_Wire):
    """``quality`` of a twin property: the device gave no value (Bad), and why.

    An edgedev extension of KubeEdge's ``MsgTwin``, like ``error`` (other consumers, EdgeCore
    among them, ignore it): the mapper sends it instead of a value when the device says the
    value is Bad (an OPC-UA Bad status code, a Modbus exception for that register).
    """

    status: str = "Bad"
    reason: str = ""
    timestamp: int = 0


class MsgTwin(_Wire):
    """One property in a twin message (KubeEdge ``MsgTwin``).

    ``version`` is edgedev's optimistic-concurrency field: an update that names a version
    older than the stored one is refused with 409. ``"expected": null`` (or an ``expected``
    whose ``value`` is null) removes the desired value; ``"expected"`` in
    ``model_fields_set`` tells that apart from an absent key. ``error`` is edgedev's report
    of a failed write (see :class:`WriteError`), ``quality`` of a value the device gave as
    Bad (see :class:`QualityState`).
    """

    expected: WireValue | None = None
    actual: WireValue | None = None
    optional: bool | None = None
    metadata: TypeMetadata | None = None
    version: int | None = None
    error: WriteError | None = None
    quality: QualityState | None = None


class BaseMessage(_Wire):
    """``event_id`` and ``timestamp``, common to every message."""

    event_id: str = ""
    timestamp: int = 0


class TwinUpdate(BaseMessage):
    """``twin/update``: reported (``actual``) or desired (``expected``) values."""

    twin: dict[str, MsgTwin | None] = Field(default_factory=dict)


class TwinDelta(TwinUpdate):
    """``twin/update/delta``: the twin plus ``delta``, desired values not yet reported."""

    delta: dict[str, str] = Field(default_factory=dict)


class StateUpdate(BaseMessage):
    """``state/update``: ``online``, ``offline`` or another state word."""

    state: str


class CurrentState(StateUpdate):
    """``state/current`` (edgedev's, retained): a device's last state and who reported it.

    ``mapper`` and ``started`` name the mapper instance that reported it (see
    :class:`MapperState`), so that a client that learns it from the broker long after can
    tell whether that instance still runs; ``reason`` says why a device is ``offline`` or
    ``unhealthy``. An empty retained payload on the topic deletes it: the device was removed.
    """

    mapper: str = ""
    started: int = 0
    reason: str | None = None


class TwinResult(TwinUpdate):
    """``twin/update/result`` and ``twin/get/result``: the twin, or an error."""

    code: int | None = None
    reason: str | None = None


class MapperState(BaseMessage):
    """``node/{node}/mapper/{mapper}/state`` (retained): a mapper's state and its devices.

    A mapper sets this as its MQTT last will (retained too), so that the agent and every
    other client learn of a mapper that died and take all of its devices as offline.
    ``started`` (ms) tells instances of a mapper apart: the will of an instance older than
    the one serving the devices now is ignored.
    """

    mapper: str
    state: str
    devices: list[str] = Field(default_factory=list)
    started: int = 0


class TwinDocEntry(_Wire):
    """One property of ``twin/update/document``: its state before and after the update."""

    last: MsgTwin | None = None
    current: MsgTwin | None = None


class TwinDocument(BaseMessage):
    """``twin/update/document``: ``last`` and ``current`` of each property that changed."""

    twin: dict[str, TwinDocEntry] = Field(default_factory=dict)


class MembershipDevice(_Wire):
    """One device of ``membership/get/result`` (KubeEdge ``Device``)."""

    id: str = ""
    name: str = ""
    description: str = ""
    state: str = ""
    last_online: str = ""


class MembershipResult(BaseMessage):
    """``node/{node}/membership/get/result``: the devices bound to the node."""

    devices: list[MembershipDevice] = Field(default_factory=list)


_json_string = json.encoder.encode_basestring
"""A str as a JSON string literal, as :func:`dumps` writes it (non-ASCII kept)."""


def dumps(payload: Mapping[str, object]) -> bytes:
    """Compact JSON bytes."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def twin_report(
    entries: Iterable[tuple[str, str, str, int]],
    *,
    timestamp: int | None = None,
    event_id: str | None = None,
    quality: Mapping[str, str] | None = None,
) -> bytes:
    """Build a ``twin/update`` carrying reported values.

    Args:
        entries: ``(property, value string, wire type, value timestamp in ms)`` each.
        timestamp: the message timestamp; now by default.
        event_id: the message id; a fresh one by default.
        quality: the quality of the values that are not Good (``Uncertain``), by property:
            ``actual.metadata.quality`` (edgedev's; EdgeCore ignores it).
    """
    # The JSON is assembled from strings: the same bytes as dumps() of the nested dicts (a
    # repeated name keeps its first place and its last value), at a third of the cost.
    text = _json_string
    twin: dict[str, str] = {}
    for name, value, type_, ts in entries:
        stamp = (
            ts if not quality or name not in quality else f'{ts},"quality":{text(quality[name])}'
        )
        twin[name] = (
            f'{text(name)}:{{"actual":{{"value":{text(value)},"metadata":{{"timestamp":'
            f'{stamp}}}}},"metadata":{{"type":{text(type_)}}}}}'
        )
    stamp = now_ms() if timestamp is None else timestamp
    head = f'{{"event_id":{text(event_id or new_event_id())},"timestamp":{stamp},"twin":{{'
    return (head + ",".join(twin.values()) + "}}").encode()


def error_entry(failure: WriteFailure) -> dict[str, object]:
    """The ``error`` of a ``MsgTwin``: a failed write, as :class:`WriteError` reads it."""
    return {
        "value": failure.value,
        "reason": failure.reason,
        "timestamp": failure.timestamp,
        "retry": failure.retry,
    }


def write_error_report(
    entries: Iterable[tuple[str, str, WriteFailure]],
    *,
    timestamp: int | None = None,
    event_id: str | None = None,
) -> bytes:
    """Build a ``twin/update`` that reports failed writes, one ``error`` entry per property.

    A mapper sends one for all the refusals of one delta (EdgeCore and other consumers ignore
    ``error``; edgedev's agent keeps it beside the desired value).

    Args:
        entries: ``(property, wire type, failure)`` each; a repeated property keeps its
            first place and its last failure.
        timestamp: the message timestamp; now by default.
        event_id: the message id; a fresh one by default.
    """
    twin = {
        name: {"metadata": {"type": type_}, "error": error_entry(failure)}
        for name, type_, failure in entries
    }
    stamp = now_ms() if timestamp is None else timestamp
    return dumps({"event_id": event_id or new_event_id(), "timestamp": stamp, "twin": twin})


def quality_report(
    entries: Iterable[tuple[str, str, str, int]],
    *,
    timestamp: int | None = None,
    event_id: str | None = None,
) -> bytes:
    """Build a ``twin/update`` that says which properties have no value: Bad, and why.

    One ``quality`` entry (:class:`QualityState`) per property and no ``actual``, which the
    property's last value keeps (EdgeCore ignores the entry, as it does ``error``).

    Args:
        entries: ``(property, wire type, reason, timestamp in ms)`` each.
        timestamp: the message timestamp; now by default.
        event_id: the message id; a fresh one by default.
    """
    twin = {
        name: {
            "metadata": {"type": type_},
            "quality": {"status": "Bad", "reason": reason, "timestamp": ts},
        }
        for name, type_, reason, ts in entries
    }
    stamp = now_ms() if timestamp is None else timestamp
    return dumps({"event_id": event_id or new_event_id(), "timestamp": stamp, "twin": twin})


def request(*, event_id: str | None = None) -> bytes:
    """Build a request that carries nothing but its id and time.

    That is ``twin/get`` (answered on ``twin/get/result`` with the same id),
    ``membership/get`` and ``mapper/get`` (answered by every mapper of the node on its
    ``mapper/{mapper}/state``).
    """
    return dumps({"event_id": event_id or new_event_id(), "timestamp": now_ms()})


twin_get = request
"""Build a ``twin/get`` request (see :func:`request`)."""


def state_update(state: str, *, timestamp: int | None = None) -> bytes:
    """Build a ``state/update`` (``state`` is a :class:`~edgedev.twin.DeviceState`)."""
    return dumps(
        {
            "event_id": new_event_id(),
            "timestamp": now_ms() if timestamp is None else timestamp,
            "state": str(state),
        }
    )


def current_state(
    state: str,
    *,
    mapper: str,
    started: int,
    timestamp: int,
    reason: str | None = None,
) -> bytes:
    """Build a ``state/current`` (see :class:`CurrentState`)."""
    body: dict[str, Any] = {
        "event_id": new_event_id(),
        "timestamp": timestamp,
        "state": str(state),
        "mapper": mapper,
        "started": started,
    }
    if reason is not None:
        body["reason"] = reason
    return dumps(body)


def mapper_state(
    mapper: str, state: str, devices: Iterable[str], *, started: int, timestamp: int | None = None
) -> bytes:
    """Build a ``node/{node}/mapper/{mapper}/state`` (see :class:`MapperState`)."""
    return dumps(
        {
            "event_id": new_event_id(),
            "timestamp": now_ms() if timestamp is None else timestamp,
            "mapper": mapper,
            "state": str(state),
            "devices": list(devices),
            "started": started,
        }
    )


def twin_result(
    event_id: str,
    timestamp: int,
    twin: Mapping[str, object] | None = None,
    *,
    code: int | None = None,
    reason: str | None = None,
) -> bytes:
    """Build a ``twin/update/result`` or ``twin/get/result``: the twin, or ``code`` and ``reason``.

    Args:
        event_id: the id of the request answered.
        timestamp: the message timestamp (ms).
        twin: ``MsgTwin`` entries by property (when the request succeeded).
        code: the HTTP-like error code when it failed (400, 404, 409, 500).
        reason: why it failed.
    """
    body: dict[str, object] = {"event_id": event_id, "timestamp": timestamp}
    if code is not None:
        body["code"] = code
        body["reason"] = reason or ""
    else:
        body["twin"] = dict(twin or {})
    return dumps(body)


def twin_delta(twin: Mapping[str, object], delta: Mapping[str, str], *, timestamp: int) -> bytes:
    """Build a ``twin/update/delta``: the ``MsgTwin`` entries of the delta and the delta."""
    return dumps(
        {
            "event_id": new_event_id(),
            "timestamp": timestamp,
            "twin": dict(twin),
            "delta": dict(delta),
        }
    )


def twin_document(twin: Mapping[str, object], *, timestamp: int) -> bytes:
    """Build a ``twin/update/document``: ``{"last", "current"}`` ``MsgTwin`` of each property."""
    return dumps({"event_id": new_event_id(), "timestamp": timestamp, "twin": dict(twin)})


def membership_result(
    event_id: str, devices: Sequence[Mapping[str, str]], *, timestamp: int
) -> bytes:
    """Build a ``membership/get/result`` (devices as :class:`MembershipDevice` dicts)."""
    return dumps({"event_id": event_id, "timestamp": timestamp, "devices": list(devices)})


def membership_updated(
    added: Sequence[Mapping[str, str]],
    removed: Sequence[Mapping[str, str]] = (),
    *,
    timestamp: int,
) -> bytes:
    """Build a ``membership/updated``: devices bound to or removed from a node."""
    return dumps(
        {
            "event_id": new_event_id(),
            "timestamp": timestamp,
            "added_devices": list(added),
            "removed_devices": list(removed),
        }
    )


def desired_update(
    values: dict[str, str | None], *, version: int | None = None, event_id: str | None = None
) -> bytes:
    """Build a ``twin/update`` that sets desired values (``None`` removes one).

    A removal without ``version`` is a ``null`` property entry, the form EdgeCore understands
    (it deletes an optional twin property, ``dtmanager/twin.go`` dealTwinDelete) and edgedev's
    agent too; with ``version`` it is edgedev's ``"expected": null`` beside the version.

    Args:
        values: the desired value of each property, as its wire string, or ``None``.
        version: the version the sender last saw; the agent refuses it with 409 when older.
        event_id: the message id (the result carries it back); a fresh one by default.
    """
    now = now_ms()
    twin: dict[str, object] = {}
    for name, value in values.items():
        if value is None and version is None:
            twin[name] = None
            continue
        entry: dict[str, object] = {
            "expected": None if value is None else {"value": value, "metadata": {"timestamp": now}}
        }
        if version is not None:
            entry["version"] = version
        twin[name] = entry
    return dumps({"event_id": event_id or new_event_id(), "timestamp": now, "twin": twin})
