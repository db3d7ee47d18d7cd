"""Every Device, DeviceModel and DeviceStatus we ship validates against KubeEdge's v1beta1 CRDs.

``kubectl apply`` with strict field validation refuses a field that the CRD's openAPIV3Schema
does not declare. ``tests/data/kubeedge_v1beta1_devices.schema.json`` is our own JSON Schema
written from those CRDs (its ``$comment`` names the upstream files and version).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = json.loads((ROOT / "tests/data/kubeedge_v1beta1_devices.schema.json").read_text())
SHIPPED = sorted(
    {
        *ROOT.glob("examples/**/*.yaml"),
        *ROOT.glob("deploy/**/*.yaml"),
        *ROOT.glob("mappers/*/deploy/**/*.yaml"),
        *ROOT.glob("mappers/*/src/*/*.yaml"),
        *ROOT.glob("tests/data/upstream/*.yaml"),
    }
)


def _validator(kind: str) -> jsonschema.Draft202012Validator:
    schema = {**SCHEMA, "$ref": f"#/$defs/{kind}"}
    return jsonschema.Draft202012Validator(schema)


def kubeedge_documents(path: Path) -> list[dict[str, Any]]:
    """The ``devices.kubeedge.io`` resources in ``path`` (a ConfigMap may embed them)."""
    found = []
    for doc in yaml.safe_load_all(path.read_text()):
        if not isinstance(doc, dict):
            continue
        if str(doc.get("apiVersion", "")).startswith("devices.kubeedge.io/"):
            found.append(doc)
        elif doc.get("kind") == "ConfigMap":
            for text in (doc.get("data") or {}).values():
                if "devices.kubeedge.io/" in text:
                    found.extend(d for d in yaml.safe_load_all(text) if isinstance(d, dict) and d)
    return found


def test_there_is_something_to_check():
    assert sum(len(kubeedge_documents(p)) for p in SHIPPED) >= 10


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(ROOT)))
def test_shipped_yaml_fits_the_upstream_crd_schema(path: Path):
    for doc in kubeedge_documents(path):
        assert doc.get("apiVersion") == "devices.kubeedge.io/v1beta1", path
        errors = [
            f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
            for e in _validator(doc["kind"]).iter_errors(doc)
        ]
        assert errors == [], f"{path} {doc['kind']} {doc['metadata'].get('name')}"


def test_the_schema_refuses_what_strict_field_validation_refuses():
    device = {
        "apiVersion": "devices.kubeedge.io/v1beta1",
        "kind": "Device",
        "metadata": {"name": "d"},
        "spec": {"properties": [{"name": "t", "reportOnChange": True}]},
    }
    assert not _validator("Device").is_valid(device)
    device["spec"]["properties"][0] = {
        "name": "t",
        "visitors": {"configData": {"reportOnChange": True}},
    }
    assert _validator("Device").is_valid(device)
