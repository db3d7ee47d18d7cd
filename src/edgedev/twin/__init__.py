"""Device twins: typed values, desired/reported state and the delta, all without I/O."""

from __future__ import annotations

from edgedev.twin._state import DeviceState
from edgedev.twin._twin import (
    Change,
    Code,
    Outcome,
    PropertyModel,
    Refusal,
    Transition,
    Twin,
    TwinProperty,
    TwinValue,
    WriteFailure,
    compute_delta,
)
from edgedev.twin._values import (
    PropertyType,
    Value,
    check_value,
    coerce_value,
    format_value,
    is_pending,
    parse_value,
    text_equal,
    values_equal,
)

__all__ = (
    "Change",
    "Code",
    "DeviceState",
    "Outcome",
    "PropertyModel",
    "PropertyType",
    "Refusal",
    "Transition",
    "Twin",
    "TwinProperty",
    "TwinValue",
    "Value",
    "WriteFailure",
    "check_value",
    "coerce_value",
    "compute_delta",
    "format_value",
    "is_pending",
    "parse_value",
    "text_equal",
    "values_equal",
)
