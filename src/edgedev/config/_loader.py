"""Load Device and DeviceModel files, resolve references, and report every problem at once.

Each problem names the file, the YAML document, the resource and the field, so that a user
with twenty devices in one file knows exactly which line to fix.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import BaseModel, ValidationError

from edgedev._errors import ConfigError, PluginError, Problem
from edgedev.config._crd import (
    API_GROUP,
    SHARED_PROPERTIES,
    DeviceModelResource,
    DeviceResource,
    ModelProperty,
)
from edgedev.config._spec import DeviceSpec, PropertySpec
from edgedev.config._yaml import load_all
from edgedev.twin._values import check_value

if TYPE_CHECKING:
    from edgedev._plugins import Registry
    from edgedev.drivers import AnyDriver


@dataclass(frozen=True, slots=True)
class _Document:
    file: str
    index: int
    data: Mapping[str, Any]

    def slim(self) -> _Document:
        """This document without the data that its problems do not name (the raw YAML)."""
        return _Document(
            self.file,
            self.index,
            {"kind": self.data.get("kind"), "metadata": self.data.get("metadata")},
        )

    def problem(self, message: str, field: str | None = None) -> Problem:
        meta = self.data.get("metadata")
        name = None
        if isinstance(meta, Mapping) and isinstance(meta.get("name"), str):
            name = f"{meta.get('namespace') or 'default'}/{meta['name']}"
        kind = self.data.get("kind")
        return Problem(
            self.file, self.index, kind if isinstance(kind, str) else None, name, field, message
        )


def _loc(loc: Iterable[int | str]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _validation_fields(error: ValidationError, prefix: str = "") -> list[tuple[str | None, str]]:
    """``(field, message)`` of each error, fields under ``prefix``."""
    fields: list[tuple[str | None, str]] = []
    for item in error.errors(include_url=False):
        field = _loc(item["loc"])
        field = f"{prefix}.{field}" if prefix and field else (prefix or field)
        fields.append((field or None, item["msg"]))
    return fields


def _validation_problems(doc: _Document, error: ValidationError, prefix: str = "") -> list[Problem]:
    return [doc.problem(message, field) for field, message in _validation_fields(error, prefix)]


def _read_documents(path: Path, problems: list[Problem]) -> Iterator[_Document]:
    """The file's mappings one at a time, so that each can be dropped once converted."""
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(Problem(name, 0, None, None, None, f"cannot read file: {exc}"))
        return
    index = 0
    try:
        for index, data in enumerate(load_all(text), start=1):
            if data is None:
                continue
            if not isinstance(data, Mapping):
                problems.append(
                    Problem(
                        name, index, None, None, None, "expected a mapping (a Kubernetes resource)"
                    )
                )
                continue
            yield _Document(name, index, data)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        reason = getattr(exc, "problem", None) or str(exc)
        problems.append(
            Problem(name, index + 1, None, None, None, f"invalid YAML{where}: {reason}")
        )


def _number(text: str | None, field: str, problems: list[tuple[str | None, str]]) -> float | None:
    if text is None or text == "":
        return None
    try:
        number = float(text)
    except ValueError:
        problems.append((field, f"{text!r} is not a number"))
        return None
    if not math.isfinite(number):
        problems.append((field, f"{text!r} is not a finite number"))
        return None
    return number


class _Resolver:
    def __init__(self, drivers: Registry[AnyDriver]) -> None:
        self.drivers = drivers
        self.problems: list[Problem] = []
        self.models: dict[tuple[str, str], tuple[_Document, DeviceModelResource]] = {}
        self.devices: list[tuple[_Document, DeviceResource]] = []
        self._context: dict[str, Any] = {SHARED_PROPERTIES: {}}
        self._shared: dict[
            tuple[Any, str, int, int],
            tuple[tuple[PropertySpec, ...], list[tuple[str | None, str]]],
        ] = {}

    def add(self, doc: _Document) -> None:
        api, kind = doc.data.get("apiVersion"), doc.data.get("kind")
        if not (isinstance(api, str) and api.startswith(f"{API_GROUP}/")):
            return  # other Kubernetes resources may share the file
        model_type: type[BaseModel]
        if kind == "DeviceModel":
            model_type = DeviceModelResource
        elif kind == "Device":
            model_type = DeviceResource
        else:
            self.problems.append(
                doc.problem(f"unknown kind {kind!r} (expected Device or DeviceModel)", "kind")
            )
            return
        try:
            resource = model_type.model_validate(doc.data, context=self._context)
        except ValidationError as exc:
            self.problems.extend(_validation_problems(doc, exc))
            return
        doc = doc.slim()
        if isinstance(resource, DeviceModelResource):
            key = (resource.metadata.namespace, resource.metadata.name)
            if key in self.models:
                first = self.models[key][0]
                self.problems.append(
                    doc.problem(
                        f"DeviceModel defined twice "
                        f"(first in {first.file}, document {first.index})",
                        "metadata.name",
                    )
                )
            self.models[key] = (doc, resource)
        elif isinstance(resource, DeviceResource):
            self.devices.append((doc, resource))

    def resolve(self) -> list[DeviceSpec]:
        specs: list[DeviceSpec] = []
        seen: dict[str, _Document] = {}
        for doc, device in self.devices:
            spec = self._device(doc, device)
            if spec is None:
                continue
            if spec.id in seen:
                first = seen[spec.id]
                self.problems.append(
                    doc.problem(
                        f"Device defined twice (first in {first.file}, document {first.index})",
                        "metadata.name",
                    )
                )
                continue
            seen[spec.id] = doc
            specs.append(spec)
        return specs

    def _device(self, doc: _Document, device: DeviceResource) -> DeviceSpec | None:
        before = len(self.problems)
        ns = device.metadata.namespace
        ref = device.spec.device_model_ref.name
        found = self.models.get((ns, ref))
        if found is None:
            self.problems.append(
                doc.problem(
                    f"DeviceModel {ref!r} not found in namespace {ns!r}", "spec.deviceModelRef.name"
                )
            )
            return None
        model = found[1]
        protocol = device.spec.protocol.protocol_name
        if model.spec.protocol and model.spec.protocol != protocol:
            self.problems.append(
                doc.problem(
                    f"protocol {protocol!r} differs from "
                    f"DeviceModel {ref!r}'s {model.spec.protocol!r}",
                    "spec.protocol.protocolName",
                )
            )
        try:
            driver = self.drivers.get(protocol)
        except PluginError as exc:
            self.problems.append(doc.problem(str(exc), "spec.protocol.protocolName"))
            return None
        try:
            config: BaseModel = driver.protocol_config.model_validate(
                device.spec.protocol.config_data
            )
        except ValidationError as exc:
            self.problems.extend(_validation_problems(doc, exc, "spec.protocol.configData"))
            return None
        shared_key = (driver, protocol, id(device.spec.properties), id(model))
        shared = self._shared.get(shared_key)
        if shared is None:
            shared = self._shared[shared_key] = self._properties(device, model, driver, protocol)
        props, found_problems = shared
        self.problems.extend(doc.problem(message, field) for field, message in found_problems)
        if len(self.problems) > before:
            return None
        spec = DeviceSpec(
            namespace=ns,
            name=device.metadata.name,
            model=ref,
            protocol=protocol,
            config=config,
            properties=props,
            node_name=device.spec.node_name,
            source=doc.file,
        )
        for field, message in driver.check_device(spec):
            self.problems.append(doc.problem(message, f"spec.{field}"))
        return spec

    def _properties(
        self,
        device: DeviceResource,
        model: DeviceModelResource,
        driver: type[AnyDriver],
        protocol: str,
    ) -> tuple[tuple[PropertySpec, ...], list[tuple[str | None, str]]]:
        """The specs of a Device's properties, and the ``(field, message)`` of each problem.

        Devices of a fleet share one validated property list (the loader interns them), so
        the result is computed once per list and DeviceModel and shared by all its devices.
        """
        problems: list[tuple[str | None, str]] = []
        ref = device.spec.device_model_ref.name
        model_props = {p.name: p for p in model.spec.properties}
        props: list[PropertySpec] = []
        names: set[str] = set()
        for i, prop in enumerate(device.spec.properties):
            at = f"spec.properties[{i}]"
            if prop.name in names:
                problems.append((f"{at}.name", f"property {prop.name!r} listed twice"))
                continue
            names.add(prop.name)
            mprop = model_props.get(prop.name)
            if mprop is None:
                have = ", ".join(model_props) or "none"
                problems.append(
                    (
                        f"{at}.name",
                        f"property {prop.name!r} is not in DeviceModel {ref!r} (it has: {have})",
                    )
                )
                continue
            if prop.visitors.protocol_name and prop.visitors.protocol_name != protocol:
                problems.append(
                    (
                        f"{at}.visitors.protocolName",
                        f"visitor protocol {prop.visitors.protocol_name!r} differs from the "
                        f"device's {protocol!r}",
                    )
                )
            try:
                visitor = driver.visitor_config.model_validate(prop.visitors.config_data)
            except ValidationError as exc:
                problems.extend(_validation_fields(exc, f"{at}.visitors.configData"))
                continue
            pspec = self._property(problems, at, prop, mprop, visitor)
            for field, message in driver.check_property(pspec):
                problems.append((f"{at}.visitors.configData.{field}", message))
            props.append(pspec)
        return tuple(props), problems

    def _property(
        self,
        problems: list[tuple[str | None, str]],
        at: str,
        prop: Any,
        mprop: ModelProperty,
        visitor: BaseModel,
    ) -> PropertySpec:
        minimum = _number(mprop.minimum, f"DeviceModel {mprop.name}.minimum", problems)
        maximum = _number(mprop.maximum, f"DeviceModel {mprop.name}.maximum", problems)
        if minimum is not None and maximum is not None and minimum > maximum:
            problems.append(
                (
                    f"DeviceModel {mprop.name}.minimum",
                    f"minimum {minimum:g} is greater than maximum {maximum:g}",
                )
            )
        desired = prop.desired.value if prop.desired else None
        if desired is not None:
            try:
                check_value(desired, mprop.type, minimum, maximum)
            except ValueError as exc:
                problems.append((f"{at}.desired.value", f"desired value: {exc}"))
        collect = prop.collect_cycle / 1000
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
            report_on_change=prop.report_on_change,
            deadband=prop.deadband,
            desired=desired,
        )


def load_devices(
    paths: Iterable[str | Path], *, drivers: Registry[AnyDriver] | None = None
) -> list[DeviceSpec]:
    """Load every Device in ``paths``, resolved against its DeviceModel and driver.

    Files may hold several YAML documents and other Kubernetes resources, which are skipped.
    DeviceModels may sit in any of the files.

    Raises:
        ConfigError: with one :class:`~edgedev.Problem` per mistake found in any file.
    """
    if drivers is None:
        from edgedev.drivers import drivers as installed

        drivers = installed
    resolver = _Resolver(drivers)
    for path in paths:
        read_problems: list[Problem] = []
        at = len(resolver.problems)
        for doc in _read_documents(Path(path), read_problems):
            resolver.add(doc)
        resolver.problems[at:at] = read_problems  # a file's YAML problems come first
    specs = resolver.resolve()
    if resolver.problems:
        raise ConfigError(resolver.problems)
    return specs
