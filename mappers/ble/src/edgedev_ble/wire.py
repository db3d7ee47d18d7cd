"""The line protocol between ``edgedev simulate``'s peripherals and the simulated backend.

One JSON object per line, UTF-8, over TCP; bytes travel as hex. A client that sends ``id``
gets a reply with the same ``id``: ``{"id": n, "ok": true, ...}`` or
``{"id": n, "error": "text", "att": code}`` (``att``: the ATT error code, when the
peripheral refused). Pure: building and parsing lines, no I/O.

| client sends | the simulator answers |
| --- | --- |
| ``scan`` | ``adv`` (``address``, ``name``, ``rssi``, ``services``) per present |
| | peripheral, every second until the connection closes |
| ``connect`` (``address``) | ``name``, ``services``: ``[{uuid, handle, characteristics:`` |
| | ``[{uuid, handle, properties}]}]`` |
| ``read`` (``handle``) | ``value`` (hex) |
| ``write`` (``handle``, ``value``, ``response``) | ``ok``; nothing when ``response`` is false |
| ``notify`` (``handle``, ``on``) | ``ok``, then ``{"op": "notification", "handle", "value"}`` |
| ``drop`` (``address``, ``stayAway``) | ``ok``: the peripheral disconnects its clients and, |
| | with ``stayAway``, stops advertising and refuses connections (control) |
| ``return`` (``address``) | ``ok``: the peripheral advertises and connects again (control) |

Every message names its operation in ``op``; requests also carry ``id``.

The simulator closes the connection when the peripheral goes away (a disconnect).
"""

from __future__ import annotations

import json
from typing import Any

MAX_LINE = 1 << 16
"""Longest line either side accepts, in bytes."""

ATT_READ_NOT_PERMITTED = 0x02
ATT_WRITE_NOT_PERMITTED = 0x03
ATT_INVALID_HANDLE = 0x01
ATT_REQUEST_NOT_SUPPORTED = 0x06


def dump(message: dict[str, Any]) -> bytes:
    """One message as a line."""
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def load(line: bytes) -> dict[str, Any]:
    """One line as a message.

    Raises:
        ValueError: not a JSON object.
    """
    message = json.loads(line)
    if not isinstance(message, dict):
        raise ValueError("a message is a JSON object")
    return message


def hex_bytes(text: Any) -> bytes:
    """The bytes of a hex field.

    Raises:
        ValueError: not a hex string.
    """
    if not isinstance(text, str):
        raise ValueError("a value is a hex string")
    return bytes.fromhex(text)
