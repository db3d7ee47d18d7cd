"""Resolving models: each Device with its DeviceModel, its driver and its protocol settings."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from edgedev._errors import PluginError
from edgedev._plugins import Registry
from edgedev.config._crd import (
    API_GROUP,
    SHARED_PROPERTIES,
    DeviceModelResource,
    DeviceResource,
)
from edgedev.config._spec import DeviceSpec, PropertySpec
from edgedev.drivers import AnyDriver, ProtocolConfig
from edgedev.loader._build import device_spec
from edgedev.loader._documents import Document
from edgedev.loader._findings import Findings, Notes
from edgedev.loader._properties import properties
from edgedev.loader._validation import did_you_mean, validation_notes

PROTOCOL_ALIASES = {"bluetooth": "ble"}
"""Protocol names KubeEdge users write for an edgedev driver of another name."""
_KINDS = ("Device", "DeviceModel", "DeviceStatus")

_SharedKey = tuple[type[AnyDriver], str, int, int]
"""What devices that share one validated property list have in common: the driver, the
protocol, and the identities of the property list and of the DeviceModel."""


class Resolver:
    """Devices and DeviceModels in, resolved specs out; what is wrong goes to ``findings``.

    Give it every document (:meth:`add`), in any order (a model may come after its
    devices), then :meth:`resolve`.

    Args:
        drivers: where drivers come from.
        findings: where problems and warnings go.
    """

    def __init__(self, drivers: Registry[AnyDriver], findings: Findings) -> None:
        self.drivers = drivers
        self.findings = findings
        self._driver_names: list[str] | None = None
        self._models: dict[tuple[str, str], tuple[Document, DeviceModelResource]] = {}
        self._devices: list[tuple[Document, DeviceResource]] = []
        self._context: dict[str, Any] = {SHARED_PROPERTIES: {}}
        self._warned: set[_SharedKey] = set()
        self._shared: dict[_SharedKey, tuple[tuple[PropertySpec, ...], Notes]] = {}

    def add(self, doc: Document) -> None:
        """Take one document: a Device or DeviceModel is validated and kept; others skipped."""
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
            self.findings.problem(
                doc,
                f"unknown kind {kind!r}{hint} (expected Device, DeviceModel or DeviceStatus)",
                "kind",
            )
            return
        try:
            resource = model_type.model_validate(doc.data, context=self._context)
        except ValidationError as exc:
            self.findings.errors_of(doc, validation_notes(exc, model=model_type))
            return
        doc = doc.slim()
        if isinstance(resource, DeviceModelResource):
            key = (resource.metadata.namespace, resource.metadata.name)
            if key in self._models:
                first = self._models[key][0]
                self.findings.problem(
                    doc,
                    f"DeviceModel defined twice (first in {first.file}, document {first.index})",
                    "metadata.name",
                )
            self._models[key] = (doc, resource)
        elif isinstance(resource, DeviceResource):
            self._devices.append((doc, resource))

    def resolve(self) -> list[DeviceSpec]:
        """The spec of every valid Device added, in order (each id once)."""
        specs: list[DeviceSpec] = []
        seen: dict[str, Document] = {}
        for doc, device in self._devices:
            spec = self._device(doc, device)
            if spec is None:
                continue
            if spec.id in seen:
                first = seen[spec.id]
                self.findings.problem(
                    doc,
                    f"Device defined twice (first in {first.file}, document {first.index})",
                    "metadata.name",
                )
                continue
            seen[spec.id] = doc
            specs.append(spec)
        return specs

    def _device(self, doc: Document, device: DeviceResource) -> DeviceSpec | None:
        before = len(self.findings.problems)
        model = self._model_of(doc, device)
        if model is None:
            return None
        protocol = self.protocol_of(device.spec.protocol.protocol_name)
        if model.spec.protocol and self.protocol_of(model.spec.protocol) != protocol:
            self.findings.problem(
                doc,
                f"protocol {device.spec.protocol.protocol_name!r} differs from DeviceModel "
                f"{device.spec.device_model_ref.name!r}'s {model.spec.protocol!r}",
                "spec.protocol.protocolName",
            )
        try:
            driver = self.drivers.get(protocol)
        except PluginError as exc:
            hint = did_you_mean(protocol, [*self._names(), *PROTOCOL_ALIASES])
            self.findings.problem(doc, f"{exc}{hint}", "spec.protocol.protocolName")
            return None
        config = self._config(doc, device, model, driver)
        if config is None:
            return None
        props = self._properties(doc, device, model, driver, protocol)
        self._check_methods(doc, device, props)
        if len(self.findings.problems) > before:
            return None
        spec = device_spec(device, protocol, config, props, doc.file)
        for field, message in driver.check_device(spec):
            self.findings.problem(doc, message, f"spec.{field}")
        return spec

    def _model_of(self, doc: Document, device: DeviceResource) -> DeviceModelResource | None:
        ns, ref = device.metadata.namespace, device.spec.device_model_ref.name
        found = self._models.get((ns, ref))
        if found is None:
            self.findings.problem(
                doc,
                f"DeviceModel {ref!r} not found in namespace {ns!r}",
                "spec.deviceModelRef.name",
            )
            return None
        return found[1]

    def _config(
        self,
        doc: Document,
        device: DeviceResource,
        model: DeviceModelResource,
        driver: type[AnyDriver],
    ) -> ProtocolConfig | None:
        """The protocol settings: the model's ``protocolConfigData``, the Device's keys over."""
        settings = {**model.spec.protocol_config_data, **device.spec.protocol.config_data}
        settings.pop("customizedValues", None)  # KubeEdge's free-form values: no driver reads them
        try:
            return driver.protocol_config.model_validate(settings)
        except ValidationError as exc:
            notes = validation_notes(exc, "spec.protocol.configData", driver.protocol_config)
            self.findings.errors_of(doc, notes)
            return None

    def _properties(
        self,
        doc: Document,
        device: DeviceResource,
        model: DeviceModelResource,
        driver: type[AnyDriver],
        protocol: str,
    ) -> tuple[PropertySpec, ...]:
        """The Device's properties, worked out once per shared property list and model."""
        key = (driver, protocol, id(device.spec.properties), id(model))
        shared = self._shared.get(key)
        if shared is None:
            shared = self._shared[key] = properties(
                device, model, driver, protocol, self.protocol_of
            )
        props, notes = shared
        self.findings.errors_of(doc, notes.errors)
        if notes.warnings and key not in self._warned:
            self._warned.add(key)  # a fleet sharing one property list: warn once
            self.findings.warnings_of(doc, notes.warnings)
        return props

    def _check_methods(
        self, doc: Document, device: DeviceResource, props: tuple[PropertySpec, ...]
    ) -> None:
        """Each of ``spec.methods`` has a name of its own and names properties the device has."""
        names = {p.name for p in props}
        methods: set[str] = set()
        for i, method in enumerate(device.spec.methods):
            if method.name in methods:  # the CRD: "It must be unique"
                self.findings.problem(
                    doc, f"method {method.name!r} is named twice", f"spec.methods[{i}].name"
                )
            methods.add(method.name)
            for j, name in enumerate(method.property_names):
                if name not in names:
                    self.findings.problem(
                        doc,
                        f"method {method.name!r} names property {name!r}, which the device "
                        f"does not have{did_you_mean(name, names)}",
                        f"spec.methods[{i}].propertyNames[{j}]",
                    )

    def _names(self) -> list[str]:
        if self._driver_names is None:
            self._driver_names = self.drivers.names()
        return self._driver_names

    def protocol_of(self, name: str) -> str:
        """The driver name for protocol ``name`` (``bluetooth`` is ``ble`` unless installed)."""
        alias = PROTOCOL_ALIASES.get(name)
        if alias is None or name in self._names():
            return name
        return alias
