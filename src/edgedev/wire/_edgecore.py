"""What KubeEdge's EdgeCore accepts on ``twin/update``, and the text forms that it accepts.

EdgeCore's DeviceTwin module (kubeedge/kubeedge ``edge/pkg/devicetwin``, v1.15 to v1.23)
checks every reported entry of a ``twin/update`` and refuses the **whole** message (code 400)
when one entry breaks a rule, so one bad property would cost a device every other property
of its report:

* a property name must match ``^[a-zA-Z0-9-_.,:/@#]{1,128}$`` and a non-empty value
  ``^[a-zA-Z0-9-_.,:/@#]{1,512}$`` (``dtcommon/util.go`` ValidateTwinKey, ValidateTwinValue,
  called for every entry by ``dttype/types.go`` UnmarshalDeviceTwinUpdate);
* ``metadata.type`` must be one of "", ``string``, ``int``, ``integer``, ``float``,
  ``boolean``, ``deleted``; an ``int`` must parse as a base-10 integer, a ``float`` as a
  number, a ``boolean`` must be ``true`` or ``false`` (``dtcommon/util.go`` ValidateValue);
* EdgeCore then compares desired and reported values **as strings** and publishes a delta
  after every accepted update while they differ (``dttype/types_helper.go``
  BuildDeviceTwinDelta, ``dtmanager/twin.go`` DealDeviceTwin).

This module is the one place that knows those rules. Values are formatted by
:func:`edgedev.twin.format_value` (numbers never in exponent notation, bytes as lower-case
hex), their type named by :func:`twin_type`; the transports that report to EdgeCore ask
:func:`key_refusal` and :func:`value_refusal` of each entry
(:class:`edgedev.mapper.TwinFilter`), so that a property EdgeCore would refuse is left out of
the report instead of taking the others with it.
"""

from __future__ import annotations

import re

__all__ = (
    "EDGECORE_TYPES",
    "MAX_KEY",
    "MAX_VALUE",
    "desired_refusal",
    "key_refusal",
    "twin_type",
    "value_refusal",
)

EDGECORE_TYPES = frozenset({"", "string", "int", "integer", "float", "boolean", "deleted"})
"""``metadata.type`` values that EdgeCore's ValidateValue accepts."""
MAX_KEY = 128
"""Longest property name EdgeCore accepts."""
MAX_VALUE = 512
"""Longest value EdgeCore accepts."""

_CHARSET = "a-zA-Z0-9-_.,:/@#"
_KEY = re.compile(rf"[{_CHARSET}]{{1,{MAX_KEY}}}")
_VALUE = re.compile(rf"[{_CHARSET}]{{1,{MAX_VALUE}}}")
_BAD_CHAR = re.compile(rf"[^{_CHARSET}]")
_INT = re.compile(r"[+-]?[0-9]+")
_SHORT_INT = re.compile(r"-?[0-9]{1,18}")  # always within int64
_DECIMAL = re.compile(r"-?[0-9]{1,250}\.[0-9]{1,250}")  # what format_value makes of a float
_GO_FLOAT_WORDS = frozenset({"inf", "+inf", "-inf", "infinity", "+infinity", "-infinity", "nan"})

_TWIN_TYPES = {
    "INT": "int",
    "FLOAT": "float",
    "DOUBLE": "float",
    "BOOLEAN": "boolean",
    "STRING": "string",
    "BYTES": "string",
    "STREAM": "string",
}


def twin_type(model_type: str) -> str:
    """The ``metadata.type`` EdgeCore accepts for a DeviceModel type (``DOUBLE`` is ``float``).

    BYTES (hex text) and STREAM travel as ``string``.
    """
    return _TWIN_TYPES.get(model_type.upper(), "string")


def key_refusal(name: str) -> str | None:
    """Why EdgeCore refuses ``name`` as a property name, or ``None`` if it accepts it."""
    if _KEY.fullmatch(name):
        return None
    if not name:
        return "an empty property name"
    if len(name) > MAX_KEY:
        return f"a property name of {len(name)} characters (at most {MAX_KEY})"
    bad = _BAD_CHAR.search(name)
    char = bad.group() if bad else "?"
    return f"the character {char!r} in property name {name!r} (allowed: {_CHARSET})"


def value_refusal(text: str, type_: str) -> str | None:
    """Why EdgeCore refuses value ``text`` of ``metadata.type`` ``type_``, or ``None``."""
    # fast paths for what the mapper sends most: plain numbers and booleans
    if type_ == "float" and (_DECIMAL.fullmatch(text) or _SHORT_INT.fullmatch(text)):
        return None
    if type_ == "int" and _SHORT_INT.fullmatch(text):
        return None
    if type_ == "boolean" and text in ("true", "false"):
        return None
    if type_ not in EDGECORE_TYPES:
        return f"the twin type {type_!r} (EdgeCore knows {', '.join(sorted(EDGECORE_TYPES))})"
    if text and not _VALUE.fullmatch(text):
        if len(text) > MAX_VALUE:
            return f"a value of {len(text)} characters (at most {MAX_VALUE})"
        bad = _BAD_CHAR.search(text)
        char = bad.group() if bad else "?"
        return f"the character {char!r} in value {text[:40]!r} (allowed: {_CHARSET})"
    if type_ in ("int", "integer") and not (_INT.fullmatch(text) and -(2**63) <= int(text) < 2**63):
        return f"{text!r} as an int (EdgeCore wants a base-10 64-bit integer)"
    if type_ == "float" and not _is_go_float(text):
        return f"{text!r} as a float"
    if type_ == "boolean" and text not in ("true", "false"):
        return f"{text!r} as a boolean (EdgeCore wants true or false)"
    return None


def desired_refusal(text: str, model_type: str) -> str | None:
    """Why a desired value written as ``text`` could never be reported back, or ``None``.

    A mapper reports a value equal to the desired one in the desired value's own text, since
    EdgeCore compares desired and reported values as strings; so the text must be one that a
    report of its type carries (:func:`value_refusal`): no white space (around it or inside),
    EdgeCore's characters only, an integer in base-10 digits, a float without ``+``, a
    boolean ``true`` or ``false``. ``model_type`` is the DeviceModel's type (``INT`` ...).
    """
    if text != text.strip():
        return f"{text!r} has white space around it (give {text.strip()!r})"
    type_ = twin_type(model_type)
    why = value_refusal(text, type_)
    if why is None:
        return None
    if type_ == "boolean":
        return f"{text!r} is not a boolean: give true or false"
    return f"no report could carry it back: EdgeCore refuses {why}"


def _is_go_float(text: str) -> bool:
    if text.lower() in _GO_FLOAT_WORDS:
        return True
    if not text or "_" in text or text.strip() != text:
        return False
    try:
        float(text)
    except ValueError:
        return False
    return True
