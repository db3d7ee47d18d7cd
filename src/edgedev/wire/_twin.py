"""Twin state to KubeEdge payloads and back. Pure: no I/O, no clock.

The agent keeps :class:`~edgedev.twin.TwinProperty` objects; on the wire a property is a
KubeEdge ``MsgTwin``: ``expected`` and ``actual`` values with ``metadata.timestamp``, the type
in ``metadata.type``, plus edgedev's ``version`` and ``error``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping

from edgedev.twin._twin import Change, TwinProperty, WriteFailure
from edgedev.twin._values import PropertyType
from edgedev.wire._edgecore import twin_type
from edgedev.wire._messages import MsgTwin, error_entry

_ALIASES = {"integer": PropertyType.INT, "bool": PropertyType.BOOLEAN, "str": PropertyType.STRING}


def type_name(type_: PropertyType) -> str:
    """The name of ``type_`` in a twin's ``metadata.type``, one that EdgeCore accepts.

    ``int``, ``float`` (FLOAT and DOUBLE), ``boolean``, ``string`` (STRING, BYTES as hex
    text, STREAM); :func:`parse_type` reads back INT, FLOAT, BOOLEAN and STRING as they were.
    """
    return twin_type(type_.value)


def parse_type(name: str) -> PropertyType | None:
    """The type named by ``metadata.type`` (``int``, ``float`` ...), or ``None`` if unknown."""
    lowered = name.strip().lower()
    try:
        return PropertyType(lowered.upper())
    except ValueError:
        return _ALIASES.get(lowered)


def property_entry(prop: TwinProperty) -> dict[str, object]:
    """The ``MsgTwin`` of ``prop``, with its version and the last write failure if any."""
    entry: dict[str, object] = {}
    if prop.desired is not None:
        entry["expected"] = {
            "value": prop.desired.value,
            "metadata": {"timestamp": prop.desired.timestamp},
        }
    if prop.reported is not None:
        entry["actual"] = {
            "value": prop.reported.value,
            "metadata": {"timestamp": prop.reported.timestamp},
        }
    entry["metadata"] = {"type": type_name(prop.type)}
    entry["version"] = prop.version
    if prop.failure is not None:
        entry["error"] = error_entry(prop.failure)
    return entry


def twin_entries(
    properties: Mapping[str, TwinProperty], names: Iterable[str] | None = None
) -> dict[str, dict[str, object]]:
    """``MsgTwin`` entries of ``names`` (every property when ``None``), sorted by name."""
    chosen = sorted(properties if names is None else (n for n in names if n in properties))
    return {name: property_entry(properties[name]) for name in chosen}


def to_change(name: str, twin: MsgTwin | None) -> Change:
    """The :class:`~edgedev.twin.Change` that one ``MsgTwin`` of a ``twin/update`` asks for.

    A ``null`` entry, ``"expected": null`` and ``"expected": {"value": null}`` all remove the
    desired value; ``actual`` sets the reported value; ``error`` reports a failed write.
    """
    if twin is None:
        return Change(name, remove_desired=True)
    desired: str | None = None
    remove = False
    desired_ts = 0
    if "expected" in twin.model_fields_set:
        if twin.expected is None or twin.expected.value is None:
            remove = True
        else:
            desired = twin.expected.value
        if twin.expected is not None:
            desired_ts = twin.expected.metadata.timestamp
    reported: str | None = None
    reported_ts = 0
    if twin.actual is not None and twin.actual.value is not None:
        reported = twin.actual.value
        reported_ts = twin.actual.metadata.timestamp
    failure = None
    if twin.error is not None and twin.error.value is not None:
        failure = WriteFailure(
            twin.error.value,
            twin.error.reason or "write failed",
            twin.error.timestamp,
            twin.error.retry,
        )
    type_ = parse_type(twin.metadata.type) if twin.metadata is not None else None
    return Change(
        name,
        desired=desired,
        remove_desired=remove,
        reported=reported,
        desired_timestamp=desired_ts,
        reported_timestamp=reported_ts,
        type=type_,
        version=twin.version,
        failure=failure,
    )


def kubeedge_time(ms: int) -> str:
    """``last_online`` as KubeEdge writes it (``2006-01-02 15:04:05``, here in UTC)."""
    if ms <= 0:
        return ""
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
