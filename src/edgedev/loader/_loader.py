"""Load Device and DeviceModel files, resolve references, and report every problem at once.

Each problem names the file, the YAML document, the resource and the field, so that a user
with twenty devices in one file knows exactly which line to fix.
"""

from __future__ import annotations

import difflib
import logging
import math
import os
import re
import typing
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import BaseModel, ValidationError

from edgedev._errors import ConfigError, PluginError, Problem
from edgedev._plugins import Registry
from edgedev.config._crd import (
    API_GROUP,
    EXTENSION_KEYS,
    SHARED_PROPERTIES,
    DeviceModelResource,
    DeviceProperty,
    DeviceResource,
    Extensions,
    ModelProperty,
)
from edgedev.config._push import push_problems
from edgedev.config._spec import DeviceSpec, PropertySpec
from edgedev.config._yaml import load_all
from edgedev.drivers import AnyDriver, ProtocolConfig
from edgedev.drivers import drivers as installed
from edgedev.twin._values import PropertyType, check_value

if TYPE_CHECKING:
    from pydantic_core import ErrorDetails

log = logging.getLogger("edgedev.config")

PROTOCOL_ALIASES = {"bluetooth": "ble"}
"""Protocol names KubeEdge users write for an edgedev driver of another name."""
NANOSECONDS_LIKE = 10**9
"""A cycle this long in milliseconds (11.6 days) is most likely a nanosecond-era value."""
_KINDS = ("Device", "DeviceModel", "DeviceStatus")
_QUOTED = re.compile(r"'([^']*)'")


def did_you_mean(wrong: str, choices: Iterable[str]) -> str:
    """``"; did you mean 'X'?"`` for the choice nearest to ``wrong``, or ``""``."""
    options = list(choices)
    near = difflib.get_close_matches(wrong, options, n=1, cutoff=0.6)
    if not near:
        lowered = {o.lower(): o for o in options}
        near = [lowered[wrong.lower()]] if wrong.lower() in lowered else []
    return f"; did you mean {near[0]!r}?" if near else ""


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


def _validation_fields(
    error: ValidationError, prefix: str = "", model: type[BaseModel] | None = None
) -> list[tuple[str | None, str]]:
    """``(field, message)`` of each error, fields under ``prefix``.

    With ``model`` (the model validated), a misspelled key gets the nearest valid one.
    """
    fields: list[tuple[str | None, str]] = []
    for item in error.errors(include_url=False):
        field = _loc(item["loc"])
        field = f"{prefix}.{field}" if prefix and field else (prefix or field)
        message = _message(item)
        if item["type"] == "extra_forbidden" and model is not None and item["loc"]:
            wrong = item["loc"][-1]
            if isinstance(wrong, str):
                message += did_you_mean(wrong, _keys_at(model, item["loc"][:-1]))
        fields.append((field or None, message))
    return fields


def _message(item: ErrorDetails) -> str:
    """Pydantic's message, quoting the wrong value of an enum-like field and the nearest."""
    message: str = item["msg"]
    expected = (item.get("ctx") or {}).get("expected")
    wrong = item.get("input")
    if item["type"] in ("enum", "literal_error") and isinstance(expected, str):
        hint = did_you_mean(wrong, _QUOTED.findall(expected)) if isinstance(wrong, str) else ""
        return f"got {wrong!r}{hint} ({message})"
    return message


def _model_in(annotation: object) -> object:
    """The pydantic model inside ``annotation`` (``X | None``, ``list[X]``), else itself."""
    for arg in typing.get_args(annotation):
        inner = _model_in(arg)
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            return inner
    return annotation


def _keys_at(model: type[BaseModel], loc: Iterable[int | str]) -> list[str]:
    """The YAML keys that the object at ``loc`` inside ``model`` takes."""
    current: object = model
    for part in loc:
        current = _model_in(current)
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        fields = current.model_fields
        found = next((f for n, f in fields.items() if part in (n, f.alias)), None)
        if found is None:
            return []
        current = found.annotation
    current = _model_in(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [f.alias or n for n, f in current.model_fields.items()]
    return []


def _validation_problems(
    doc: _Document, error: ValidationError, prefix: str = "", model: type[BaseModel] | None = None
) -> list[Problem]:
    found = _validation_fields(error, prefix, model)
    return [doc.problem(message, field) for field, message in found]


def source_name(path: str | os.PathLike[str]) -> str:
    """What the devices loaded from the file ``path`` hold in :attr:`DeviceSpec.source`."""
    return str(Path(path))


def _read_documents(path: Path, problems: list[Problem]) -> Iterator[_Document]:
    """The file's mappings one at a time, so that each can be dropped once converted."""
    name = source_name(path)
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


_SharedKey = tuple[type[AnyDriver], str, int, int]
"""What devices that share one validated property list have in common: the driver, the
protocol, and the identities of the property list and of the DeviceModel."""


class _Resolver:
    def __init__(self, drivers: Registry[AnyDriver]) -> None:
        self.drivers = drivers
        self.problems: list[Problem] = []
        self.warnings: list[Problem] = []
        self._driver_names: list[str] | None = None
        self.models: dict[tuple[str, str], tuple[_Document, DeviceModelResource]] = {}
        self.devices: list[tuple[_Document, DeviceResource]] = []
        self._context: dict[str, Any] = {SHARED_PROPERTIES: {}}
        self._warned: set[_SharedKey] = set()
        self._shared: dict[
            _SharedKey,
            tuple[
                tuple[PropertySpec, ...],
                list[tuple[str | None, str]],
                list[tuple[str | None, str]],
            ],
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
        elif kind == "DeviceStatus":
            return  # EdgeCore's report of a device's observed state (v1.23): nothing to run
        else:
            hint = did_you_mean(kind, _KINDS) if isinstance(kind, str) else ""
            self.problems.append(
                doc.problem(
                    f"unknown kind {kind!r}{hint} (expected Device, DeviceModel or DeviceStatus)",
                    "kind",
                )
            )
            return
        try:
            resource = model_type.model_validate(doc.data, context=self._context)
        except ValidationError as exc:
            self.problems.extend(_validation_problems(doc, exc, model=model_type))
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
        protocol = self._protocol(device.spec.protocol.protocol_name)
        if model.spec.protocol and self._protocol(model.spec.protocol) != protocol:
            self.problems.append(
                doc.problem(
                    f"protocol {device.spec.protocol.protocol_name!r} differs from "
                    f"DeviceModel {ref!r}'s {model.spec.protocol!r}",
                    "spec.protocol.protocolName",
                )
            )
        try:
            driver = self.drivers.get(protocol)
        except PluginError as exc:
            hint = did_you_mean(protocol, [*self._names(), *PROTOCOL_ALIASES])
            self.problems.append(doc.problem(f"{exc}{hint}", "spec.protocol.protocolName"))
            return None
        # the model's protocolConfigData are defaults that the Device's keys override
        settings = {**model.spec.protocol_config_data, **device.spec.protocol.config_data}
        settings.pop("customizedValues", None)  # KubeEdge's free-form values: no driver reads them
        try:
            config: ProtocolConfig = driver.protocol_config.model_validate(settings)
        except ValidationError as exc:
            self.problems.extend(
                _validation_problems(doc, exc, "spec.protocol.configData", driver.protocol_config)
            )
            return None
        shared_key = (driver, protocol, id(device.spec.properties), id(model))
        shared = self._shared.get(shared_key)
        if shared is None:
            shared = self._shared[shared_key] = self._properties(device, model, driver, protocol)
        props, found_problems, found_warnings = shared
        self.problems.extend(doc.problem(message, field) for field, message in found_problems)
        if found_warnings and shared_key not in self._warned:
            self._warned.add(shared_key)  # a fleet sharing one property list: warn once
            self.warnings.extend(doc.problem(m, f) for f, m in found_warnings)
        names = {p.name for p in props}
        methods: set[str] = set()
        for i, method in enumerate(device.spec.methods):
            if method.name in methods:  # the CRD: "It must be unique"
                self.problems.append(
                    doc.problem(f"method {method.name!r} is named twice", f"spec.methods[{i}].name")
                )
            methods.add(method.name)
            for j, name in enumerate(method.property_names):
                if name not in names:
                    self.problems.append(
                        doc.problem(
                            f"method {method.name!r} names property {name!r}, which the device "
                            f"does not have{did_you_mean(name, names)}",
                            f"spec.methods[{i}].propertyNames[{j}]",
                        )
                    )
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
            timeout_ms=config.timeout,
            methods=tuple(device.spec.methods),
            state_report=device.spec.state_report,
        )
        for field, message in driver.check_device(spec):
            self.problems.append(doc.problem(message, f"spec.{field}"))
        return spec

    def _names(self) -> list[str]:
        if self._driver_names is None:
            self._driver_names = self.drivers.names()
        return self._driver_names

    def _protocol(self, name: str) -> str:
        """The driver name for protocol ``name`` (``bluetooth`` is ``ble`` unless installed)."""
        alias = PROTOCOL_ALIASES.get(name)
        if alias is None or name in self._names():
            return name
        return alias

    def _properties(
        self,
        device: DeviceResource,
        model: DeviceModelResource,
        driver: type[AnyDriver],
        protocol: str,
    ) -> tuple[
        tuple[PropertySpec, ...], list[tuple[str | None, str]], list[tuple[str | None, str]]
    ]:
        """The specs of a Device's properties, and ``(field, message)`` problems and warnings.

        Devices of a fleet share one validated property list (the loader interns them), so
        the result is computed once per list and DeviceModel and shared by all its devices.
        """
        problems: list[tuple[str | None, str]] = []
        warnings: list[tuple[str | None, str]] = []
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
                hint = did_you_mean(prop.name, model_props)
                problems.append(
                    (
                        f"{at}.name",
                        f"property {prop.name!r} is not in DeviceModel {ref!r}{hint} "
                        f"(it has: {have})",
                    )
                )
                continue
            if mprop.type is PropertyType.STREAM and not driver.streams:
                problems.append(
                    (
                        f"{at}.name",
                        f"property {prop.name!r} is of type STREAM, which the {protocol} "
                        f"driver cannot serve (it reads values, not video or audio streams)",
                    )
                )
                continue
            pspec = self._visited(problems, warnings, at, prop, mprop, driver, protocol)
            if pspec is None:
                continue
            for field, message in driver.check_property(pspec):
                problems.append((f"{at}.visitors.configData.{field}", message))
            for field, message in driver.property_warnings(pspec):
                warnings.append((f"{at}.visitors.configData.{field}", message))
            props.append(pspec)
        return tuple(props), problems, warnings

    def _visited(
        self,
        problems: list[tuple[str | None, str]],
        warnings: list[tuple[str | None, str]],
        at: str,
        prop: DeviceProperty,
        mprop: ModelProperty,
        driver: type[AnyDriver],
        protocol: str,
    ) -> PropertySpec | None:
        """One property's spec: its visitor (the model's merged under the Device's), checked."""
        visitor_name = prop.visitors.protocol_name if prop.visitors else ""
        if not visitor_name and mprop.visitors is not None:
            visitor_name = mprop.visitors.protocol_name
        if visitor_name and self._protocol(visitor_name) != protocol:
            problems.append(
                (
                    f"{at}.visitors.protocolName",
                    f"visitor protocol {visitor_name!r} differs from the device's {protocol!r}",
                )
            )
        data: dict[str, Any] = dict(mprop.visitors.config_data) if mprop.visitors else {}
        if prop.visitors is not None:
            data.update(prop.visitors.config_data)
        ours = {key: data.pop(key) for key in EXTENSION_KEYS if key in data}
        try:
            extensions = Extensions.model_validate(ours)
        except ValidationError as exc:
            problems.extend(_validation_fields(exc, f"{at}.visitors.configData"))
            return None
        try:
            visitor = driver.visitor_config.model_validate(data)
        except ValidationError as exc:
            visitor_model = driver.visitor_config
            problems.extend(_validation_fields(exc, f"{at}.visitors.configData", visitor_model))
            return None
        report_on_change, deadband = extensions.report_on_change, extensions.deadband
        for key, old in (("reportOnChange", prop.report_on_change), ("deadband", prop.deadband)):
            if old is None:
                continue
            warnings.append(
                (
                    f"{at}.{key}",
                    f"deprecated place: move {key} into visitors.configData (KubeEdge's CRD "
                    f"refuses it here under strict field validation)",
                )
            )
            if key not in ours:
                if key == "deadband":
                    deadband = float(old)
                else:
                    report_on_change = bool(old)
        for key, cycle in (
            ("collectCycle", prop.collect_cycle),
            ("reportCycle", prop.report_cycle),
        ):
            if cycle is not None and cycle >= NANOSECONDS_LIKE:
                warnings.append(
                    (
                        f"{at}.{key}",
                        f"{key} {cycle} is milliseconds: {cycle / 86_400_000:.1f} days; "
                        f"if it was meant as nanoseconds (old KubeEdge), write {cycle // 10**6}",
                    )
                )
        if prop.push_method is not None:
            push_errors, push_warnings = push_problems(prop.push_method, mprop.type)
            problems.extend((f"{at}.pushMethod.{f}", m) for f, m in push_errors)
            warnings.extend((f"{at}.pushMethod.{f}", m) for f, m in push_warnings)
        return self._property(
            problems, at, prop, mprop, visitor, report_on_change, deadband, extensions
        )

    def _property(
        self,
        problems: list[tuple[str | None, str]],
        at: str,
        prop: DeviceProperty,
        mprop: ModelProperty,
        visitor: BaseModel,
        report_on_change: bool,
        deadband: float,
        extensions: Extensions,
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
        if desired == "":
            desired = None  # EdgeCore's form of "no desired value"
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
            report_on_change=report_on_change,
            deadband=deadband,
            desired=desired,
            push_method=prop.push_method,
            customized_values=extensions.customized_values,
        )


def load_devices(
    paths: Iterable[str | Path],
    *,
    drivers: Registry[AnyDriver] | None = None,
    warnings: list[Problem] | None = None,
) -> list[DeviceSpec]:
    """Load every Device in ``paths``, resolved against its DeviceModel and driver.

    Files may hold several YAML documents and other Kubernetes resources, which are skipped;
    ``DeviceStatus`` documents (EdgeCore's reports) are accepted and ignored. DeviceModels may
    sit in any of the files.

    Args:
        paths: the files.
        drivers: where drivers come from (default: installed entry points).
        warnings: receives what loads but deserves a look (a deprecated field, a cycle that
            looks like nanoseconds ...); logged on ``edgedev.config`` when not given.

    Raises:
        ConfigError: with one :class:`~edgedev.Problem` per mistake found in any file.
    """
    resolver = _Resolver(installed if drivers is None else drivers)
    for path in paths:
        read_problems: list[Problem] = []
        at = len(resolver.problems)
        for doc in _read_documents(Path(path), read_problems):
            resolver.add(doc)
        resolver.problems[at:at] = read_problems  # a file's YAML problems come first
    specs = resolver.resolve()
    if resolver.problems:
        raise ConfigError(resolver.problems)
    if warnings is not None:
        warnings.extend(resolver.warnings)
    else:
        for warning in resolver.warnings:
            log.warning("%s", warning)
    return specs


def load_resources(
    resources: Iterable[Mapping[str, Any]],
    *,
    source: str,
    drivers: Registry[AnyDriver] | None = None,
) -> list[DeviceSpec]:
    """Resolve Device and DeviceModel resources given as mappings (their Kubernetes JSON).

    The same validation as :func:`load_devices`, for resources that come from elsewhere than
    files (KubeEdge's DMI): each problem names ``source``, the resource's position in
    ``resources`` (1-based, as the document), the device and the field.

    Raises:
        ConfigError: with one :class:`~edgedev.Problem` per mistake found.
    """
    if drivers is None:
        from edgedev.drivers import drivers as installed

        drivers = installed
    resolver = _Resolver(drivers)
    for index, data in enumerate(resources, start=1):
        resolver.add(_Document(source, index, data))
    specs = resolver.resolve()
    if resolver.problems:
        raise ConfigError(resolver.problems)
    return specs
