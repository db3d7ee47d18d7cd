"""Names for discovered things, valid where they go and unique, with no I/O.

What a server calls a thing (``Température Zone 1``, ``PumpType``, ``Motor/Speed``) must
become a name that Kubernetes and EdgeCore accept:

* Device and DeviceModel names are DNS-1123 labels here: lower-case ASCII letters, digits
  and ``-``, starting and ending with a letter or digit, at most 63 characters (the API
  server allows 253 with dots for these kinds; 63 without dots also fits label values and
  the ``{namespace}/{name}`` of the MQTT topics);
* property names must match EdgeCore's ``^[a-zA-Z0-9-_.,:/@#]{1,128}$``
  (:func:`edgedev.wire.key_refusal`), or EdgeCore refuses every twin report that carries
  them.

Letters with accents lose them (``é`` is ``e``); any other character outside the set becomes
a separator. Names made equal by that, or equal to begin with, are told apart by a number
(``speed``, ``speed_2``), given in the order the names come, so that the same input gives
the same names.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

from edgedev.wire._edgecore import MAX_KEY, key_refusal

__all__ = (
    "MAX_NAME",
    "kubernetes_name",
    "property_name",
    "unique_names",
)

MAX_NAME = 63
"""Longest Device or DeviceModel name made (a DNS-1123 label)."""

_CAMEL_LOWER = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_CAMEL_UPPER = re.compile(r"(?<=[A-Z])(?=[A-Z][a-z])")
_NOT_LABEL = re.compile(r"[^a-z0-9]+")
_NOT_KEY = re.compile(r"[^a-zA-Z0-9\-_.,:/@#]+")


def _ascii(text: str) -> str:
    """``text`` without accents, ligatures split (``Température`` is ``Temperature``)."""
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")


def kubernetes_name(text: str, *, fallback: str = "device", limit: int = MAX_NAME) -> str:
    """A Kubernetes resource name (DNS-1123 label) made from ``text``.

    Words of camelCase names are kept apart (``PumpType`` is ``pump-type``, ``EURange`` is
    ``eu-range``); runs of other characters become one ``-``.

    Args:
        text: the name as found.
        fallback: the name when nothing of ``text`` is left (``"°"``).
        limit: the longest name made.
    """
    words = _CAMEL_UPPER.sub("-", _CAMEL_LOWER.sub("-", _ascii(text)))
    name = _NOT_LABEL.sub("-", words.lower()).strip("-")[:limit].rstrip("-")
    return name or fallback


def property_name(text: str, *, fallback: str = "value", limit: int = MAX_KEY) -> str:
    """A property name that EdgeCore accepts, made from ``text``.

    Letters keep their case; runs of characters outside EdgeCore's set (a space, ``°``,
    ``(``) become one ``_``.

    Args:
        text: the name as found.
        fallback: the name when nothing of ``text`` is left.
        limit: the longest name made.
    """
    name = _NOT_KEY.sub("_", _ascii(text)).strip("_")[:limit]
    if not name:
        name = fallback
    assert key_refusal(name) is None, name
    return name


def unique_names(names: Sequence[str], *, separator: str, limit: int) -> list[str]:
    """``names`` with the repeated ones told apart by a number: ``a``, ``a-2``, ``a-3``.

    The first of equal names keeps it; a later one takes the lowest number whose name is
    neither among ``names`` nor given already (so a name that was unique stays as it is),
    shortened to fit ``limit`` with its number.

    Args:
        names: valid names, in a deterministic order.
        separator: between a name and its number (``-`` for Kubernetes names, ``_`` for
            property names).
        limit: the longest name allowed.
    """
    taken = set(names)
    seen: set[str] = set()
    result = []
    for name in names:
        if name not in seen:
            seen.add(name)
            result.append(name)
            continue
        number = 2
        while True:
            suffix = f"{separator}{number}"
            candidate = name[: limit - len(suffix)].rstrip(separator) + suffix
            if candidate not in taken:
                break
            number += 1
        taken.add(candidate)
        seen.add(candidate)
        result.append(candidate)
    return result
