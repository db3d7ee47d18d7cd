"""KubeEdge's MQTT wire format, both directions, and what EdgeCore accepts on it.

Every payload edgedev sends or parses on KubeEdge's device and node topics is defined here:
pydantic models for what comes in (:class:`TwinUpdate`, :class:`TwinDelta` ...), builders
for what goes out (:func:`twin_report`, :func:`state_update` ...), the ``MsgTwin`` entries
of a twin property and the type names of ``metadata.type``, and EdgeCore's acceptance rules
(twin types, value and name charsets: :func:`key_refusal`, :func:`value_refusal`).
"""

from __future__ import annotations

from edgedev.wire._edgecore import (
    EDGECORE_TYPES,
    MAX_VALUE,
    key_refusal,
    twin_type,
    value_refusal,
)
from edgedev.wire._messages import (
    BaseMessage,
    MapperState,
    MembershipDevice,
    MembershipResult,
    MsgTwin,
    StateUpdate,
    TwinDelta,
    TwinDocEntry,
    TwinDocument,
    TwinResult,
    TwinUpdate,
    TypeMetadata,
    ValueMetadata,
    WireValue,
    WriteError,
    desired_update,
    dumps,
    mapper_state,
    membership_result,
    membership_updated,
    new_event_id,
    now_ms,
    request,
    state_update,
    twin_delta,
    twin_document,
    twin_get,
    twin_report,
    twin_result,
    write_error_report,
)
from edgedev.wire._twin import (
    kubeedge_time,
    parse_type,
    property_entry,
    to_change,
    twin_entries,
    type_name,
)

__all__ = (
    "EDGECORE_TYPES",
    "MAX_VALUE",
    "BaseMessage",
    "MapperState",
    "MembershipDevice",
    "MembershipResult",
    "MsgTwin",
    "StateUpdate",
    "TwinDelta",
    "TwinDocEntry",
    "TwinDocument",
    "TwinResult",
    "TwinUpdate",
    "TypeMetadata",
    "ValueMetadata",
    "WireValue",
    "WriteError",
    "desired_update",
    "dumps",
    "key_refusal",
    "kubeedge_time",
    "mapper_state",
    "membership_result",
    "membership_updated",
    "new_event_id",
    "now_ms",
    "parse_type",
    "property_entry",
    "request",
    "state_update",
    "to_change",
    "twin_delta",
    "twin_document",
    "twin_entries",
    "twin_get",
    "twin_report",
    "twin_result",
    "twin_type",
    "type_name",
    "value_refusal",
    "write_error_report",
)
