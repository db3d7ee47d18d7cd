"""What a KubeEdge twin desires, read from its MQTT payloads: pure, no I/O.

``twin/update/delta`` carries every value pending for a device (:func:`known_properties` keeps
those of its properties); the answer to ``twin/get`` carries the whole twin
(:func:`pending_values` finds what is pending in it). :func:`desired_stamps` says when each
desired value was set, so that the device's :class:`~edgedev.mapper.DesiredWriter` tells a
new request from a repeat.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from edgedev.config._spec import DeviceSpec
from edgedev.twin._values import is_pending
from edgedev.wire import MsgTwin

log = logging.getLogger("edgedev.mqtt")


def pending_values(spec: DeviceSpec, twin: Mapping[str, MsgTwin | None]) -> dict[str, str]:
    """Desired values of a whole twin (``twin/get/result``) that differ from the reported ones.

    Properties the device does not have are left out.
    """
    pending = {}
    for name, entry in twin.items():
        if entry is None or entry.expected is None or entry.expected.value is None:
            continue
        if not spec.has_property(name):
            continue
        desired = entry.expected.value
        actual = entry.actual.value if entry.actual is not None else None
        if is_pending(desired, actual, spec.property(name).type):
            pending[name] = desired
    return pending


def known_properties(spec: DeviceSpec, delta: Mapping[str, str]) -> dict[str, str]:
    """The entries of ``delta`` for properties ``spec`` has; one warning for the others.

    A delta naming properties the device does not have (a stale model, or a hostile client)
    costs one log line, and no write, report or answer per entry.
    """
    known = {name: value for name, value in delta.items() if spec.has_property(name)}
    if len(known) < len(delta):
        unknown = [name for name in delta if name not in known]
        log.warning(
            "device %s: ignored a delta for %d propert%s it does not have (%s%s)",
            spec.id,
            len(unknown),
            "y" if len(unknown) == 1 else "ies",
            ", ".join(repr(n[:40]) for n in unknown[:3]),
            ", ..." if len(unknown) > 3 else "",
        )
    return known


def desired_stamps(twin: Mapping[str, MsgTwin | None]) -> dict[str, int]:
    """When each desired value of a twin was set (ms), to tell a new request from a repeat."""
    return {
        name: entry.expected.metadata.timestamp
        for name, entry in twin.items()
        if entry is not None and entry.expected is not None
    }
