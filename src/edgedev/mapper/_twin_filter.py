"""What EdgeCore takes in a twin report, for the transports that report to it (MQTT, DMI).

EdgeCore refuses a whole ``twin/update`` (or ``ReportDeviceStatus``) for one entry outside its
rules (:mod:`edgedev.wire`'s ``_edgecore.py`` says them). :class:`TwinFilter` leaves such
entries out, one reading at a time, and says so once per property.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from edgedev.config._spec import DeviceSpec
from edgedev.mapper._sinks import BadValue, Reading
from edgedev.twin._twin import WriteFailure
from edgedev.wire import key_refusal, type_name, value_refusal

log = logging.getLogger("edgedev.mapper")


@dataclass(frozen=True, slots=True)
class _TwinRules:
    """What a device's twin report may carry, worked out once per :class:`DeviceSpec`."""

    spec: DeviceSpec
    types: dict[str, str]  # EdgeCore's type name of each property with reportToCloud
    key_refusals: dict[str, str | None]


class TwinFilter:
    """The readings of a twin report that EdgeCore takes, with their EdgeCore type names.

    Properties with ``reportToCloud: false`` are left out. So is a value EdgeCore would
    refuse (:func:`~edgedev.wire.value_refusal`, :func:`~edgedev.wire.key_refusal`), with one
    warning per property, counted in :attr:`refused`: EdgeCore refuses a whole message, over
    MQTT and over DMI alike, for one bad entry. Every transport that reports twins to EdgeCore
    filters each reading once through its own filter.

    Args:
        over: how the reports travel, for the warning (``"MQTT"``, ``"DMI"``).

    Attributes:
        refused: values left out of twin reports, per device id.
    """

    def __init__(self, over: str) -> None:
        self._over = over
        self._rules: dict[str, _TwinRules] = {}
        self._last: _TwinRules | None = None
        self._refused_once: set[tuple[str, str]] = set()
        self.refused: Counter[str] = Counter()

    def accepted(
        self, device: DeviceSpec, readings: Sequence[Reading]
    ) -> list[tuple[Reading, str]]:
        """Each reading EdgeCore takes, with its property's EdgeCore type name."""
        rules = self._rules_of(device)
        entries = []
        for r in readings:
            type_ = rules.types.get(r.name)
            if type_ is None:  # reportToCloud: false
                continue
            why = rules.key_refusals[r.name] or value_refusal(r.text, type_)
            if why is not None:
                self._refuse(device.id, r.name, why)
                continue
            entries.append((r, type_))
        return entries

    def accepted_failures(
        self, device: DeviceSpec, failures: Mapping[str, WriteFailure]
    ) -> list[tuple[str, str, WriteFailure]]:
        """Each failed write whose name EdgeCore takes, with its EdgeCore type name.

        A property with ``reportToCloud: false`` keeps its error entry (EdgeCore ignores
        ``error``; edgedev's agent keeps it); a name of another device's model is a string.
        """
        entries = []
        for name, failure in failures.items():
            why = key_refusal(name)
            if why is not None:
                self._refuse(device.id, name, why)
                continue
            known = device.has_property(name)
            entries.append(
                (name, type_name(device.property(name).type) if known else "string", failure)
            )
        return entries

    def accepted_bad(
        self, device: DeviceSpec, values: Sequence[BadValue]
    ) -> list[tuple[BadValue, str]]:
        """Each Bad property whose name EdgeCore takes and that reports to the cloud, typed.

        Not values: none is counted as refused (a name EdgeCore refuses is warned of with
        the property's values).
        """
        rules = self._rules_of(device)
        entries = []
        for bad in values:
            type_ = rules.types.get(bad.name)
            if type_ is not None and rules.key_refusals[bad.name] is None:
                entries.append((bad, type_))
        return entries

    def forget(self, device: DeviceSpec) -> None:
        """Drop what was worked out for ``device`` (it left the mapper)."""
        self._rules.pop(device.id, None)

    def _rules_of(self, device: DeviceSpec) -> _TwinRules:
        rules = self._rules.get(device.id)
        if rules is None or rules.spec is not device:  # new, or updated at run time
            last = self._last
            if last is not None and last.spec.properties is device.properties:
                # a fleet's devices share their property list: and these dicts (read only)
                rules = _TwinRules(device, last.types, last.key_refusals)
            else:
                props = [p for p in device.properties if p.report_to_cloud]
                rules = _TwinRules(
                    device,
                    {p.name: type_name(p.type) for p in props},
                    {p.name: key_refusal(p.name) for p in props},
                )
            self._rules[device.id] = self._last = rules
        return rules

    def _refuse(self, device_id: str, name: str, why: str) -> None:
        self.refused[device_id] += 1
        if (device_id, name) not in self._refused_once:
            self._refused_once.add((device_id, name))
            log.warning(
                "device %s: property %s left out of twin reports over %s: EdgeCore refuses %s "
                "(and with it the whole report)",
                device_id,
                name,
                self._over,
                why,
            )
