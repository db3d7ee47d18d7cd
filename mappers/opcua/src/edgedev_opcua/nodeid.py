"""OPC-UA node ids in their standard string form, parsed without I/O.

``ns=2;i=1001``, ``ns=2;s=Line1.Temp``, ``ns=3;g=<uuid>``, ``ns=1;b=<base64>``, and the
same with ``nsu=<namespace uri>`` instead of ``ns=<index>`` (the index is then looked up on
the server when the device connects, so the file survives a server that renumbers its
namespaces). A missing ``ns`` means namespace 0. Browse paths (``2:Line1/2:Temp``) name a
node by the browse names that lead to it from the Objects folder.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass
from enum import StrEnum

MAX_NAMESPACE = 0xFFFF
MAX_NUMERIC = 0xFFFF_FFFF


class IdKind(StrEnum):
    """How a node id's identifier is written (the letter before ``=``)."""

    NUMERIC = "i"
    STRING = "s"
    GUID = "g"
    OPAQUE = "b"


@dataclass(frozen=True, slots=True)
class NodeRef:
    """A parsed node id.

    Attributes:
        namespace: the namespace index, or its URI (``nsu=``) to resolve on the server.
        kind: the identifier's kind.
        identifier: the identifier (``int``, ``str``, :class:`uuid.UUID` or ``bytes``).
    """

    namespace: int | str
    kind: IdKind
    identifier: int | str | uuid.UUID | bytes

    def __str__(self) -> str:
        ns = (
            f"nsu={self.namespace};"
            if isinstance(self.namespace, str)
            else (f"ns={self.namespace};" if self.namespace else "")
        )
        ident = self.identifier
        text = base64.b64encode(ident).decode("ascii") if isinstance(ident, bytes) else str(ident)
        return f"{ns}{self.kind.value}={text}"


def parse_node_id(text: str) -> NodeRef:
    """Parse a node id string.

    Raises:
        ValueError: ``text`` is not a node id; the message says what is wrong.
    """
    rest = text.strip()
    namespace: int | str = 0
    if rest.startswith(("ns=", "nsu=")):
        head, sep, rest = rest.partition(";")
        if not sep:
            raise ValueError(f"{text!r}: expected ';' after {head!r} (as in ns=2;i=1001)")
        key, _, value = head.partition("=")
        if key == "nsu":
            if not value:
                raise ValueError(f"{text!r}: nsu= needs a namespace URI")
            namespace = value
        else:
            if not value.isdigit() or int(value) > MAX_NAMESPACE:
                raise ValueError(f"{text!r}: namespace index {value!r} is not 0..{MAX_NAMESPACE}")
            namespace = int(value)
    kind_text, sep, ident = rest.partition("=")
    if not sep or kind_text not in {k.value for k in IdKind}:
        raise ValueError(
            f"{text!r} is not a node id: expected ns=<index>; then i=<number>, s=<string>, "
            f"g=<guid> or b=<base64> (for example ns=2;i=1001 or ns=2;s=Line1.Temp)"
        )
    kind = IdKind(kind_text)
    return NodeRef(namespace, kind, _identifier(text, kind, ident))


def _identifier(text: str, kind: IdKind, ident: str) -> int | str | uuid.UUID | bytes:
    if kind is IdKind.NUMERIC:
        if not ident.isdigit() or int(ident) > MAX_NUMERIC:
            raise ValueError(f"{text!r}: numeric identifier {ident!r} is not 0..{MAX_NUMERIC}")
        return int(ident)
    if kind is IdKind.STRING:
        if not ident:
            raise ValueError(f"{text!r}: the string identifier is empty")
        return ident
    if kind is IdKind.GUID:
        try:
            return uuid.UUID(ident)
        except ValueError:
            raise ValueError(f"{text!r}: {ident!r} is not a GUID") from None
    try:
        data = base64.b64decode(ident, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{text!r}: {ident!r} is not base64") from None
    if not data:
        raise ValueError(f"{text!r}: the opaque identifier is empty")
    return data


@dataclass(frozen=True, slots=True)
class BrowseStep:
    """One step of a browse path: a child's browse name (namespace index and name)."""

    namespace: int
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}:{self.name}"


def parse_browse_path(text: str) -> tuple[BrowseStep, ...]:
    """Parse a browse path from the Objects folder: ``2:Line1/2:Temp``.

    Steps are separated by ``/`` (a leading ``/`` is allowed) and follow hierarchical
    references; each is ``<namespace index>:<browse name>`` (``Temp`` alone is namespace 0).

    Raises:
        ValueError: ``text`` is not such a path; the message says what is wrong.
    """
    steps = []
    for part in text.strip().removeprefix("/").split("/"):
        if not part.strip():
            raise ValueError(f"{text!r}: empty step (expected for example 2:Line1/2:Temp)")
        head, sep, name = part.partition(":")
        if not sep or not head.isdigit():
            head, name = "0", part
        if int(head) > MAX_NAMESPACE or not name:
            raise ValueError(f"{text!r}: {part!r} is not <namespace index>:<browse name>")
        steps.append(BrowseStep(int(head), name))
    return tuple(steps)
