"""What the twin agent accepts from the bus: names, sizes and depths, checked before storage.

Pure functions and one frozen settings class; :class:`~edgedev.agent.AgentCore` calls them on
every message before anything reaches a twin or the database.

Names follow Kubernetes and EdgeCore: a device id is ``namespace/name`` where the namespace
is a DNS-1123 label (at most 63 characters) and the name a DNS-1123 subdomain (at most 253);
a property name follows EdgeCore's rule for twin keys (``^[a-zA-Z0-9-_.,:/@#]{1,128}$``,
``edge/pkg/devicetwin/dtcommon/util.go``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")
_STATE = re.compile(r"[A-Za-z][A-Za-z_-]{0,31}")
_PROPERTY = re.compile(r"[a-zA-Z0-9\-_.,:/@#]{1,128}")
_NOT_SYNTAX = bytes(b for b in range(256) if b not in b'{}[]"')


@dataclass(frozen=True, slots=True)
class AgentLimits:
    """Bounds on what one client can make the agent hold or do (``edgedev agent`` options).

    Attributes:
        max_payload: bytes of one message's payload.
        max_depth: nesting of JSON objects and arrays in one payload.
        max_properties: properties named in one ``twin/update``, and properties of a
            device known without a model (a model lists its own).
        max_devices: devices of one edge node (from files and from mappers together).
        max_state_ids: device ids one ``mapper/state`` message may list; a longer list is
            refused whole.
        new_ids_per_minute: devices one mapper may make known per minute (a burst of as
            many, then at that rate); more are refused until its next announcement.
        max_store_bytes: bytes the twin store may take on disk; when it does, no new device
            or property is accepted from the bus (the twins there keep their updates). 0: no
            bound.
    """

    max_payload: int = 256 * 1024
    max_depth: int = 16
    max_properties: int = 1024
    max_devices: int = 10_000
    max_state_ids: int = 10_000
    new_ids_per_minute: int = 1_000
    max_store_bytes: int = 512 * 2**20

    def __post_init__(self) -> None:
        names = (
            "max_payload",
            "max_depth",
            "max_properties",
            "max_devices",
            "max_state_ids",
            "new_ids_per_minute",
        )
        for name in names:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.max_store_bytes < 0:
            raise ValueError("max_store_bytes must not be negative")


def device_id_problem(device_id: str) -> str | None:
    """Why ``device_id`` is not a valid ``namespace/name``, or ``None`` when it is."""
    namespace, sep, name = device_id.partition("/")
    if not sep:
        return f"device id {_short(device_id)} has no namespace (NAMESPACE/NAME)"
    if _LABEL.fullmatch(namespace) is None:
        return f"namespace {_short(namespace)} is not a DNS-1123 label"
    if _SUBDOMAIN.fullmatch(name) is None:
        return f"device name {_short(name)} is not a DNS-1123 subdomain"
    return None


def property_name_problem(name: str) -> str | None:
    """Why ``name`` is not a valid property name, or ``None`` when it is."""
    if _PROPERTY.fullmatch(name) is None:
        return f"property name {_short(name)} is not 1-128 of a-z A-Z 0-9 - _ . , : / @ #"
    return None


def state_problem(state: str) -> str | None:
    """Why ``state`` is not a device state word, or ``None`` when it is.

    Any word of up to 32 letters is taken (``online``, ``offline``, ``unhealthy``, and the
    ``OK`` or ``disconnected`` of KubeEdge's Go mapper framework), nothing longer.
    """
    if _STATE.fullmatch(state) is None:
        return f"state {_short(state)} is not a word of up to 32 letters"
    return None


def json_depth(payload: bytes, limit: int) -> int:
    """How deep objects and arrays nest in JSON ``payload``, counted up to ``limit + 1``.

    Brackets inside strings do not count. Byte operations do most of the work (a report of
    ten values costs a few microseconds), and the count stops once ``limit`` is passed, so a
    payload nested 100,000 deep costs no more than one nested ``limit + 1`` deep.
    """
    # escaped backslashes, then escaped quotes, cannot end a string: drop them; what is left
    # of the payload is brackets and quotes, and every second run between quotes is a string
    reduced = payload.replace(b"\\\\", b"").replace(b'\\"', b"").translate(None, _NOT_SYNTAX)
    brackets = b"".join(reduced.split(b'"')[::2])
    depth = deepest = 0
    for byte in brackets:
        if byte in b"{[":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    break
        else:
            depth -= 1
    return deepest


def _short(text: str, keep: int = 40) -> str:
    """``text`` quoted, cut to ``keep`` characters for a log line or a reason."""
    return repr(text) if len(text) <= keep else f"{text[:keep]!r}... ({len(text)} characters)"


class NewIdRate:
    """How many new device ids each mapper may still make known: a token bucket per mapper.

    Pure: the caller gives the time (milliseconds). Mappers are told apart by ``(node,
    mapper)``; at most ``tracked`` of them have their own bucket, and the mappers beyond share
    one, so that inventing mapper names buys nothing.

    Example:
        >>> rate = NewIdRate(per_minute=2)
        >>> [rate.take(("n", "m"), now=0) for _ in range(3)]
        [True, True, False]
        >>> rate.take(("n", "m"), now=30_000)  # half a minute later: one more
        True
    """

    def __init__(self, per_minute: int, tracked: int = 256) -> None:
        self.per_minute = per_minute
        self.tracked = tracked
        self._buckets: dict[tuple[str, str], tuple[float, int]] = {}

    def take(self, key: tuple[str, str], now: int) -> bool:
        """Whether ``key`` may make one more device known at ``now`` (spending it if so)."""
        if key not in self._buckets and len(self._buckets) >= self.tracked:
            key = ("*", "*")
        tokens, last = self._buckets.get(key, (float(self.per_minute), now))
        tokens = min(float(self.per_minute), tokens + (now - last) * self.per_minute / 60_000)
        if tokens < 1:
            self._buckets[key] = (tokens, now)
            return False
        self._buckets[key] = (tokens - 1, now)
        return True
