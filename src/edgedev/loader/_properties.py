"""Resolving a Device's properties against its DeviceModel and driver.

Each property's visitor is the model's ``visitors.configData`` with the Device's merged over
it; edgedev's own keys (``reportOnChange``, ``deadband``, ``customizedValues``) are taken out
and the rest validated by the driver's ``visitor_config``, then checked by the driver.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from edgedev.config._crd import (
    EXTENSION_KEYS,
    DeviceModelResource,
    DeviceResource,
    Extensions,
)
from edgedev.config._push import push_problems
from edgedev.config._spec import PropertySpec
from edgedev.drivers import AnyDriver, desired_value
from edgedev.loader._build import PropertyEntry, Reporting, property_spec
from edgedev.loader._findings import Notes
from edgedev.loader._validation import did_you_mean, validation_notes
from edgedev.twin._values import PropertyType

NANOSECONDS_LIKE = 10**9
"""A cycle this long in milliseconds (11.6 days) is most likely a nanosecond-era value."""

ProtocolOf = Callable[[str], str]
"""The driver name of a protocol name as users write it (``bluetooth`` is ``ble``)."""


def properties(
    device: DeviceResource,
    model: DeviceModelResource,
    driver: type[AnyDriver],
    protocol: str,
    protocol_of: ProtocolOf,
) -> tuple[tuple[PropertySpec, ...], Notes]:
    """The specs of a Device's properties, and what their checks found, by field.

    Devices of a fleet share one validated property list (the YAML reader interns them), so
    the caller computes this once per list and DeviceModel and shares it by all its devices.
    """
    notes = Notes()
    ref = device.spec.device_model_ref.name
    model_props = {p.name: p for p in model.spec.properties}
    props: list[PropertySpec] = []
    names: set[str] = set()
    for i, prop in enumerate(device.spec.properties):
        at = f"spec.properties[{i}]"
        if prop.name in names:
            notes.error(f"{at}.name", f"property {prop.name!r} listed twice")
            continue
        names.add(prop.name)
        mprop = model_props.get(prop.name)
        if mprop is None:
            have = ", ".join(model_props) or "none"
            hint = did_you_mean(prop.name, model_props)
            notes.error(
                f"{at}.name",
                f"property {prop.name!r} is not in DeviceModel {ref!r}{hint} (it has: {have})",
            )
            continue
        if mprop.type is PropertyType.STREAM and not driver.streams:
            notes.error(
                f"{at}.name",
                f"property {prop.name!r} is of type STREAM, which the {protocol} driver "
                f"cannot serve (it reads values, not video or audio streams)",
            )
            continue
        entry = PropertyEntry(at, prop, mprop)
        pspec = _resolved(entry, driver, protocol, protocol_of, notes)
        if pspec is None:
            continue
        found = driver.check_property(pspec)
        for field, message in found:
            notes.error(f"{at}.visitors.configData.{field}", message)
        if not found:
            _check_desired(f"{at}.desired.value", pspec, driver, notes)
        for field, message in driver.property_warnings(pspec):
            notes.warn(f"{at}.visitors.configData.{field}", message)
        props.append(pspec)
    return tuple(props), notes


def _check_desired(field: str, prop: PropertySpec, driver: type[AnyDriver], notes: Notes) -> None:
    """The one rule for desired values (:func:`~edgedev.drivers.desired_value`) on the file's.

    A value the type or range refuses is noted already (the spec's build checks those).
    """
    if prop.desired is None or any(f == field for f, _ in notes.errors):
        return
    try:
        desired_value(prop, prop.desired, driver)
    except ValueError as exc:
        notes.error(field, f"desired value: {exc}")


def _resolved(
    entry: PropertyEntry,
    driver: type[AnyDriver],
    protocol: str,
    protocol_of: ProtocolOf,
    notes: Notes,
) -> PropertySpec | None:
    """One property's spec: its visitor (the model's merged under the Device's), checked."""
    _check_visitor_protocol(entry, protocol, protocol_of, notes)
    data, ours = _merged_config(entry)
    where = f"{entry.at}.visitors.configData"
    try:
        extensions = Extensions.model_validate(ours)
    except ValidationError as exc:
        notes.errors.extend(validation_notes(exc, where))
        return None
    try:
        visitor = driver.visitor_config.model_validate(data)
    except ValidationError as exc:
        notes.errors.extend(validation_notes(exc, where, driver.visitor_config))
        return None
    reporting = _reporting(entry, extensions, ours, notes)
    _check_cycles(entry, notes)
    if entry.given.push_method is not None:
        push_errors, push_warnings = push_problems(entry.given.push_method, entry.model.type)
        notes.errors.extend((f"{entry.at}.pushMethod.{f}", m) for f, m in push_errors)
        notes.warnings.extend((f"{entry.at}.pushMethod.{f}", m) for f, m in push_warnings)
    return property_spec(entry, visitor, extensions, reporting, notes)


def _check_visitor_protocol(
    entry: PropertyEntry, protocol: str, protocol_of: ProtocolOf, notes: Notes
) -> None:
    """The visitor's protocol (the Device's, else the model's) must be the device's."""
    prop, mprop = entry.given, entry.model
    name = prop.visitors.protocol_name if prop.visitors else ""
    if not name and mprop.visitors is not None:
        name = mprop.visitors.protocol_name
    if name and protocol_of(name) != protocol:
        notes.error(
            f"{entry.at}.visitors.protocolName",
            f"visitor protocol {name!r} differs from the device's {protocol!r}",
        )


def _merged_config(entry: PropertyEntry) -> tuple[dict[str, Any], dict[str, Any]]:
    """The visitor's ``configData`` (the Device's keys over the model's), and edgedev's keys.

    Returns:
        The driver's part, and edgedev's own keys taken out of it (:data:`EXTENSION_KEYS`).
    """
    mprop, prop = entry.model, entry.given
    data: dict[str, Any] = dict(mprop.visitors.config_data) if mprop.visitors else {}
    if prop.visitors is not None:
        data.update(prop.visitors.config_data)
    ours = {key: data.pop(key) for key in EXTENSION_KEYS if key in data}
    return data, ours


def _reporting(
    entry: PropertyEntry, extensions: Extensions, ours: dict[str, Any], notes: Notes
) -> Reporting:
    """``reportOnChange`` and ``deadband``: in ``configData``, else in their deprecated place.

    The deprecated place (beside ``collectCycle``) is warned about; ``configData`` wins.
    """
    on_change, deadband = extensions.report_on_change, extensions.deadband
    prop = entry.given
    for key, old in (("reportOnChange", prop.report_on_change), ("deadband", prop.deadband)):
        if old is None:
            continue
        notes.warn(
            f"{entry.at}.{key}",
            f"deprecated place: move {key} into visitors.configData (KubeEdge's CRD refuses "
            f"it here under strict field validation)",
        )
        if key not in ours:
            if key == "deadband":
                deadband = float(old)
            else:
                on_change = bool(old)
    return Reporting(on_change, deadband)


def _check_cycles(entry: PropertyEntry, notes: Notes) -> None:
    """Warn of a cycle that looks like nanoseconds (KubeEdge's old unit)."""
    prop = entry.given
    for key, cycle in (("collectCycle", prop.collect_cycle), ("reportCycle", prop.report_cycle)):
        if cycle is not None and cycle >= NANOSECONDS_LIKE:
            notes.warn(
                f"{entry.at}.{key}",
                f"{key} {cycle} is milliseconds: {cycle / 86_400_000:.1f} days; if it was "
                f"meant as nanoseconds (old KubeEdge), write {cycle // 10**6}",
            )
