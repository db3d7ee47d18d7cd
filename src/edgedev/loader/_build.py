"""Building specs: the resolved, checked parts of a Device and its DeviceModel as specs."""

from __future__ import annotations

import math
from dataclasses import dataclass

from pydantic import BaseModel

from edgedev.config._crd import (
    DEFAULT_CYCLE_MS,
    DeviceProperty,
    DeviceResource,
    Extensions,
    ModelProperty,
)
from edgedev.config._spec import DeviceSpec, PropertySpec
from edgedev.drivers import ProtocolConfig
from edgedev.loader._findings import Notes
from edgedev.twin._values import check_value


@dataclass(frozen=True, slots=True)
class PropertyEntry:
    """One property as the two resources give it.

    Attributes:
        at: its place in the Device (``spec.properties[2]``), the prefix of its fields.
        given: the Device's entry (visitors, cycles, desired value).
        model: the DeviceModel's entry (type, access mode, limits).
    """

    at: str
    given: DeviceProperty
    model: ModelProperty


@dataclass(frozen=True, slots=True)
class Reporting:
    """How a property reports changes (``visitors.configData``, or their deprecated place)."""

    on_change: bool
    deadband: float


def _number(text: str | None, field: str, notes: Notes) -> float | None:
    if text is None or text == "":
        return None
    try:
        number = float(text)
    except ValueError:
        notes.error(field, f"{text!r} is not a number")
        return None
    if not math.isfinite(number):
        notes.error(field, f"{text!r} is not a finite number")
        return None
    return number


def property_spec(
    entry: PropertyEntry,
    visitor: BaseModel,
    extensions: Extensions,
    reporting: Reporting,
    notes: Notes,
) -> PropertySpec:
    """The spec of one property: the model's limits read, the desired value checked."""
    prop, mprop = entry.given, entry.model
    minimum = _number(mprop.minimum, f"DeviceModel {mprop.name}.minimum", notes)
    maximum = _number(mprop.maximum, f"DeviceModel {mprop.name}.maximum", notes)
    if minimum is not None and maximum is not None and minimum > maximum:
        notes.error(
            f"DeviceModel {mprop.name}.minimum",
            f"minimum {minimum:g} is greater than maximum {maximum:g}",
        )
    desired = prop.desired.value if prop.desired else None
    if desired == "":
        desired = None  # EdgeCore's form of "no desired value"
    if desired is not None:
        try:
            check_value(desired, mprop.type, minimum, maximum)
        except ValueError as exc:
            notes.error(f"{entry.at}.desired.value", f"desired value: {exc}")
    collect = (prop.collect_cycle or DEFAULT_CYCLE_MS) / 1000  # 0: upstream's default
    return PropertySpec(
        name=prop.name,
        type=mprop.type,
        visitor=visitor,
        access_mode=mprop.access_mode,
        minimum=minimum,
        maximum=maximum,
        unit=mprop.unit,
        description=mprop.description,
        collect_cycle=collect,
        report_cycle=prop.report_cycle / 1000 if prop.report_cycle else collect,
        report_to_cloud=prop.report_to_cloud,
        report_on_change=reporting.on_change,
        deadband=reporting.deadband,
        desired=desired,
        push_method=prop.push_method,
        customized_values=extensions.customized_values,
    )


def device_spec(
    device: DeviceResource,
    protocol: str,
    config: ProtocolConfig,
    properties: tuple[PropertySpec, ...],
    source: str,
) -> DeviceSpec:
    """The spec of one Device: its resolved protocol settings and properties."""
    return DeviceSpec(
        namespace=device.metadata.namespace,
        name=device.metadata.name,
        model=device.spec.device_model_ref.name,
        protocol=protocol,
        config=config,
        properties=properties,
        node_name=device.spec.node_name,
        source=source,
        timeout_ms=config.timeout,
        methods=tuple(device.spec.methods),
        state_report=device.spec.state_report,
    )
