"""Device twins: typed values, desired/reported state and the delta, all without I/O."""

from __future__ import annotations

from edgedev._errors import NoSuchProperty
from edgedev.twin._numbers import (
    DECIMAL_CONTEXT,
    check_scale,
    scale_number,
    scaler,
    to_decimal,
    to_integer,
    to_number,
    unscale_number,
)
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
    Writable,
    check_value,
    check_writable,
    check_write,
    coerce_value,
    format_value,
    is_pending,
    parse_value,
    text_equal,
    values_equal,
)

__all__ = (
    "DECIMAL_CONTEXT",
    "Change",
    "Code",
    "DeviceState",
    "NoSuchProperty",
    "Outcome",
    "PropertyModel",
    "PropertyType",
    "Refusal",
    "Transition",
    "Twin",
    "TwinProperty",
    "TwinValue",
    "Value",
    "Writable",
    "WriteFailure",
    "check_scale",
    "check_value",
    "check_writable",
    "check_write",
    "coerce_value",
    "compute_delta",
    "format_value",
    "is_pending",
    "parse_value",
    "scale_number",
    "scaler",
    "text_equal",
    "to_decimal",
    "to_integer",
    "to_number",
    "unscale_number",
    "values_equal",
)
