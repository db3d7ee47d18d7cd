"""KubeEdge Device and DeviceModel documents built in tests, written and loaded as users do."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from edgedev.config._spec import DeviceSpec
from edgedev.loader import load_devices

API_VERSION = "devices.kubeedge.io/v1beta1"


def device_model(
    name: str, protocol: str, properties: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """A DeviceModel document: ``properties`` as in its ``spec.properties``."""
    return {
        "apiVersion": API_VERSION,
        "kind": "DeviceModel",
        "metadata": {"name": name},
        "spec": {"protocol": protocol, "properties": list(properties)},
    }


def device(
    name: str,
    model: str,
    protocol: str,
    config: Mapping[str, Any],
    properties: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    """A Device document of DeviceModel ``model``, with protocol ``configData`` ``config``."""
    return {
        "apiVersion": API_VERSION,
        "kind": "Device",
        "metadata": {"name": name},
        "spec": {
            "deviceModelRef": {"name": model},
            "protocol": {"protocolName": protocol, "configData": dict(config)},
            "properties": list(properties),
        },
    }


def device_property(
    name: str, protocol: str, cycle: int, config: Mapping[str, Any]
) -> dict[str, Any]:
    """One entry of a Device's ``spec.properties``: read every ``cycle`` ms at ``config``."""
    return {
        "name": name,
        "collectCycle": cycle,
        "visitors": {"protocolName": protocol, "configData": dict(config)},
    }


def write_documents(
    directory: Path, documents: Sequence[Mapping[str, Any]], prefix: str = "devices"
) -> Path:
    """Write ``documents`` as one multi-document YAML file (a new name each call)."""
    path = directory / f"{prefix}-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(yaml.safe_dump_all([dict(d) for d in documents], sort_keys=False))
    return path


def load_documents(directory: Path, documents: Sequence[Mapping[str, Any]]) -> list[DeviceSpec]:
    """Write ``documents`` to a file in ``directory`` and load it as ``edgedev run`` does."""
    return load_devices([write_documents(directory, documents)])


def unique_root(prefix: str = "test") -> str:
    """A topic root of its own, so that tests sharing a broker never see each other."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def docs_example(page: str | Path, name: str) -> str:
    """The fenced code block that follows ``<!-- docs-example: NAME -->`` in a docs page.

    So that a test runs the example a page shows, as written.

    Raises:
        LookupError: the page has no such example.
    """
    text = Path(page).read_text(encoding="utf-8")
    marker = f"<!-- docs-example: {name} -->"
    start = text.find(marker)
    if start < 0:
        raise LookupError(f"{page} has no example {name!r}")
    opening = text.index("```", start)
    body = text.index("\n", opening) + 1
    return text[body : text.index("```", body)]
