"""MQTT payloads <-> property values (pure, no I/O).

A property's value arrives as the whole payload (``plain``: ``21.5``, ``on``, raw bytes), or
inside a JSON document at the property's ``jsonPath`` (``$.sensor.temperature``,
``$.readings[0]``). A write goes out the same way: the value's text, or a JSON document that
holds the value at the path.

``jsonPath`` is a small part of JSONPath, the part that names one value: an optional ``$``,
then ``.key``, ``['key']`` (for keys with dots or spaces) and ``[index]`` steps.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from edgedev.twin import PropertyType, Value, format_value, parse_value

Path = tuple[str | int, ...]
"""A parsed ``jsonPath``: keys and list indexes, from the document's root."""

MAX_PAYLOAD = 256 * 1024
"""Bytes of a payload that is read; a larger one is dropped (and counted)."""

_STEP = re.compile(
    r"""\.(?P<key>[^.\[\]'"]+)"""
    r"""|\[(?P<index>\d+)\]"""
    r"""|\[(?P<quote>['"])(?P<quoted>(?:(?!(?P=quote)).)+)(?P=quote)\]"""
)


class PayloadError(ValueError):
    """A payload that does not hold a value of the property; the message says why."""


class Absent(PayloadError):
    """A JSON payload with nothing at the property's path (it may carry other properties)."""


def parse_path(text: str) -> Path:
    """Parse a ``jsonPath`` (``$.a.b[0]``, ``a.b``, ``$['a.b']``).

    Raises:
        ValueError: not a path to one value; the message says where.
    """
    rest = text.strip()
    if rest.startswith("$"):
        rest = rest[1:]
    elif rest and not rest.startswith((".", "[")):
        rest = "." + rest  # "a.b" is "$.a.b"
    steps: list[str | int] = []
    at = 0
    while at < len(rest):
        match = _STEP.match(rest, at)
        if match is None:
            raise ValueError(
                f"{text!r} is not a path to one value ($.key, ['key'] and [index] steps; "
                f"cannot read {rest[at:]!r})"
            )
        if match["key"] is not None:
            steps.append(match["key"])
        elif match["index"] is not None:
            steps.append(int(match["index"]))
        else:
            steps.append(match["quoted"])
        at = match.end()
    if not steps:
        raise ValueError(f"{text!r} names the whole document: give the key of the value")
    return tuple(steps)


def show_path(path: Path) -> str:
    """``path`` written back as ``$.a['b c'][0]``."""
    out = "$"
    for step in path:
        if isinstance(step, int):
            out += f"[{step}]"
        elif re.fullmatch(r"[^.\[\]'\"\s]+", step):
            out += f".{step}"
        else:
            out += f"[{json.dumps(step)}]"
    return out


def _typed(found: Any, type_: PropertyType) -> Value:
    """A JSON value as a value of ``type_``."""
    if found is None:
        raise PayloadError("the value is null")
    if isinstance(found, dict | list):
        raise PayloadError(f"a JSON {'object' if isinstance(found, dict) else 'array'}, no value")
    if isinstance(found, str):
        try:
            return parse_value(found, type_) if type_ is not PropertyType.BYTES else found.encode()
        except ValueError as exc:
            raise PayloadError(str(exc)) from None
    if type_ is PropertyType.BOOLEAN:
        if isinstance(found, bool):
            return found
        if found in (0, 1):
            return bool(found)
        raise PayloadError(f"{found!r} is not a boolean")
    if isinstance(found, bool):
        if type_ in (PropertyType.STRING,):
            return "true" if found else "false"
        raise PayloadError(f"{json.dumps(found)} is not a number")
    if type_ is PropertyType.INT:
        if isinstance(found, float) and not found.is_integer():
            raise PayloadError(f"{found!r} is not an integer")
        return int(found)
    if type_ in (PropertyType.FLOAT, PropertyType.DOUBLE):
        return float(found)
    if type_ is PropertyType.STRING:
        return json.dumps(found)
    return json.dumps(found).encode()


def decode(payload: bytes, type_: PropertyType, path: Path | None = None) -> Value:
    """The value of a property of ``type_`` in ``payload``.

    Without ``path`` the payload is the value: UTF-8 text of it (surrounding spaces left out;
    numbers and booleans as :func:`edgedev.twin.parse_value` reads them), or the raw bytes of
    a ``BYTES`` property. With ``path`` it is a JSON document holding the value there (a JSON
    string is read as the text of a value, so ``"21.5"`` is a number for a FLOAT).

    Raises:
        Absent: nothing at the path (a document for other properties).
        PayloadError: too large, not UTF-8 or JSON, or not a value of the type.
    """
    if len(payload) > MAX_PAYLOAD:
        raise PayloadError(f"{len(payload)} bytes, more than the {MAX_PAYLOAD} read")
    if path is None and type_ is PropertyType.BYTES:
        return bytes(payload)
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise PayloadError("not UTF-8 text") from None
    if path is None:
        if type_ is PropertyType.STRING:
            return text
        try:
            value = parse_value(text, type_)
        except ValueError as exc:
            raise PayloadError(str(exc)) from None
        if isinstance(value, float) and not math.isfinite(value):
            raise PayloadError(f"{text.strip()!r} is not a finite number")
        return value
    try:
        found: Any = json.loads(text)
    except ValueError:
        raise PayloadError("not a JSON document") from None
    for step in path:
        if isinstance(step, int):
            if not isinstance(found, list) or step >= len(found):
                raise Absent(f"no [{step}] in the document at {show_path(path)}")
        elif not isinstance(found, dict) or step not in found:
            raise Absent(f"no {step!r} in the document at {show_path(path)}")
        found = found[step]
    return _typed(found, type_)


def encode(value: Value, type_: PropertyType, path: Path | None = None) -> bytes:
    """The payload of a write of ``value`` (the reverse of :func:`decode`).

    Plain: the value's text as the twin carries it (raw bytes for ``BYTES``). With ``path``:
    a JSON document with the value at the path, a JSON number, boolean or string.

    Raises:
        ValueError: ``path`` holds a list index (a write cannot build that document).
    """
    if path is None:
        if isinstance(value, bytes):
            return value
        return format_value(value, type_).encode()
    inner: Any
    if isinstance(value, bytes):
        inner = value.hex()
    elif isinstance(value, float) and value.is_integer() and type_ is PropertyType.INT:
        inner = int(value)
    else:
        inner = value
    for step in reversed(path):
        if isinstance(step, int):
            raise ValueError(f"a write cannot build {show_path(path)}: it has a list index")
        inner = {step: inner}
    return json.dumps(inner, separators=(",", ":")).encode()
