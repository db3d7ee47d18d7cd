"""Discovered devices as KubeEdge DeviceModel and Device documents, with no I/O.

Devices of one kind (:attr:`DeviceDraft.kind`, an OPC-UA ObjectType) with the same
properties share one DeviceModel named after the kind; where instances of a kind differ,
the most common set of properties keeps the plain name and each other set gets the name
plus a suffix computed from its properties, so that it stays the same from one run to the
next. A device of no kind gets a DeviceModel of its own, named after the device.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from edgedev.config._crd import API_VERSION
from edgedev.discover._drafts import DeviceDraft, PropertyDraft
from edgedev.discover._names import MAX_NAME, kubernetes_name, property_name, unique_names
from edgedev.wire._edgecore import MAX_KEY

DEFAULT_CYCLE = 1000
"""``collectCycle`` (ms) of the properties made, unless ``--collect-cycle`` says otherwise."""

_Signature = tuple[tuple[Any, ...], ...]


@dataclass(frozen=True, slots=True)
class Options:
    """What every ``edgedev discover`` takes, whatever the protocol.

    Attributes:
        namespace: ``metadata.namespace`` of every document.
        node_name: ``spec.nodeName`` of the Devices (the edge node that serves them).
        collect_cycle: ``collectCycle`` of the properties, ms.
        name_prefix: put before every Device and DeviceModel name.
    """

    namespace: str = "default"
    node_name: str | None = None
    collect_cycle: int = DEFAULT_CYCLE
    name_prefix: str = ""


@dataclass(frozen=True, slots=True)
class Documents:
    """The documents made, and what the summary says of them.

    Attributes:
        documents: the DeviceModels, then the Devices.
        models: how many DeviceModels.
        devices: how many Devices.
        properties: how many properties, over every Device.
        renamed: property names changed to be valid for EdgeCore or unique.
    """

    documents: list[dict[str, Any]]
    models: int
    devices: int
    properties: int
    renamed: int


def _signature(device: DeviceDraft) -> _Signature:
    return tuple(p.model_part for p in device.properties)


def _digest(signature: _Signature) -> str:
    text = json.dumps([[str(v) if v is not None else None for v in p] for p in signature])
    return hashlib.sha256(text.encode()).hexdigest()[:6]


def _model_names(
    drafts: Sequence[DeviceDraft], device_names: Sequence[str], prefix: str
) -> list[str]:
    """The DeviceModel name of each device (shared by devices of one kind and signature)."""
    variants: dict[str, dict[_Signature, int]] = {}
    for draft in drafts:
        if draft.kind is not None:
            counts = variants.setdefault(draft.kind, {})
            signature = _signature(draft)
            counts[signature] = counts.get(signature, 0) + 1
    keys: list[tuple[str | None, _Signature | str]] = []
    wanted: list[str] = []
    for kind, counts in variants.items():
        common = max(counts.items(), key=lambda item: item[1])[0]  # first of the most used
        base = kubernetes_name(prefix + kind, fallback="model")
        for signature in counts:
            keys.append((kind, signature))
            if signature == common:
                wanted.append(base)
            else:
                suffix = f"-{_digest(signature)}"
                wanted.append(base[: MAX_NAME - len(suffix)].rstrip("-") + suffix)
    for draft, name in zip(drafts, device_names, strict=True):
        if draft.kind is None:
            keys.append((None, name))
            wanted.append(name)
    made = dict(zip(keys, unique_names(wanted, separator="-", limit=MAX_NAME), strict=True))
    return [
        made[(d.kind, _signature(d))] if d.kind is not None else made[(None, name)]
        for d, name in zip(drafts, device_names, strict=True)
    ]


def _property_names(properties: Sequence[PropertyDraft]) -> list[str]:
    names = [property_name(p.name) for p in properties]
    return unique_names(names, separator="_", limit=MAX_KEY)


def _model_document(
    name: str, protocol: str, properties: Sequence[PropertyDraft], names: Sequence[str], ns: str
) -> dict[str, Any]:
    entries = []
    for prop, prop_name in zip(properties, names, strict=True):
        entry: dict[str, Any] = {"name": prop_name}
        if prop.description:
            entry["description"] = prop.description
        entry["type"] = prop.type.value
        entry["accessMode"] = prop.access.value
        if prop.minimum is not None:
            entry["minimum"] = prop.minimum
        if prop.maximum is not None:
            entry["maximum"] = prop.maximum
        if prop.unit:
            entry["unit"] = prop.unit
        entries.append(entry)
    return {
        "apiVersion": API_VERSION,
        "kind": "DeviceModel",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"protocol": protocol, "properties": entries},
    }


def _device_document(
    name: str,
    model: str,
    protocol: str,
    draft: DeviceDraft,
    names: Sequence[str],
    options: Options,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "namespace": options.namespace}
    if draft.annotations:
        metadata["annotations"] = dict(draft.annotations)
    spec: dict[str, Any] = {"deviceModelRef": {"name": model}}
    if options.node_name:
        spec["nodeName"] = options.node_name
    spec["protocol"] = {"protocolName": protocol, "configData": dict(draft.protocol_config)}
    spec["properties"] = [
        {
            "name": prop_name,
            "collectCycle": max(options.collect_cycle, prop.min_cycle or 0),
            "visitors": {"protocolName": protocol, "configData": dict(prop.visitor)},
        }
        for prop, prop_name in zip(draft.properties, names, strict=True)
    ]
    return {"apiVersion": API_VERSION, "kind": "Device", "metadata": metadata, "spec": spec}


def build_documents(protocol: str, drafts: Sequence[DeviceDraft], options: Options) -> Documents:
    """The DeviceModels and Devices of ``drafts``, named validly, uniquely and repeatably.

    Args:
        protocol: the protocol (driver) name, ``spec.protocol`` of the documents.
        drafts: the devices found, in a deterministic order (names that clash are told
            apart in this order).
        options: namespace, node, collect cycle and name prefix.
    """
    prefix = options.name_prefix
    device_names = unique_names(
        [kubernetes_name(prefix + d.name) for d in drafts], separator="-", limit=MAX_NAME
    )
    model_names = _model_names(drafts, device_names, prefix)
    models: dict[str, dict[str, Any]] = {}
    devices = []
    renamed = 0
    properties = 0
    for draft, name, model in zip(drafts, device_names, model_names, strict=True):
        prop_names = _property_names(draft.properties)
        if model not in models:
            models[model] = _model_document(
                model, protocol, draft.properties, prop_names, options.namespace
            )
        renamed += sum(1 for p, n in zip(draft.properties, prop_names, strict=True) if p.name != n)
        properties += len(prop_names)
        devices.append(_device_document(name, model, protocol, draft, prop_names, options))
    return Documents(
        documents=[*models.values(), *devices],
        models=len(models),
        devices=len(devices),
        properties=properties,
        renamed=renamed,
    )
