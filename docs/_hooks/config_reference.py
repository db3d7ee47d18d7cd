"""mkdocs hook: the configuration reference, generated from the pydantic models at build time.

The core's KubeEdge models (``edgedev.config``) and the ``ProtocolConfig``/``VisitorConfig``
of every driver installed under the ``edgedev.drivers`` entry points become
``reference/configuration.md``. A driver that fails to import is logged and named on the page;
it does not stop the build. The rendering functions are pure (schema in, markdown out).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from importlib.metadata import entry_points
from typing import Any

from pydantic import BaseModel

log = logging.getLogger("mkdocs.hooks.config_reference")

PAGE = "reference/configuration.md"
Schema = dict[str, Any]

INTRO = """# Configuration reference

Generated from the pydantic models when the documentation is built: it always matches the
code. Keys are written as in YAML (camelCase). Unknown keys are refused, so that a typo is
reported by `edgedev validate` with its file, device and field.

A **Device** and its **DeviceModel** are KubeEdge resources (`devices.kubeedge.io/v1beta1`);
`spec.protocol.configData` and each property's `visitors.configData` belong to the driver
named by `protocolName`, and are described under [Drivers](#drivers), except edgedev's own
keys in `visitors.configData` ([edgedev keys](#extensions)), which the
upstream CRD schema allows there (`reportOnChange` and `deadband` directly on a property still
load, with a deprecation warning). A DeviceModel's `protocolConfigData` and property
`visitors` are defaults that a Device's own keys override, key by key, as EdgeCore merges them.
`DeviceStatus` documents (EdgeCore's reports) are accepted and ignored.
"""


# pure rendering ------------------------------------------------------------------------
def anchor(prefix: str, name: str) -> str:
    """The explicit heading id of a schema object (unique across drivers)."""
    return f"{prefix}{name}".lower().replace("_", "-")


def enum_text(values: list[Any]) -> str:
    """The allowed values, as written in YAML (strings without quotes)."""
    return " | ".join(f"`{v if isinstance(v, str) else json.dumps(v)}`" for v in values)


def type_text(prop: Schema, defs: Schema, prefix: str = "") -> str:
    """A short human name of a JSON-schema type (``integer``, ``string or null``, ...)."""
    if "$ref" in prop:
        name = prop["$ref"].rsplit("/", 1)[-1]
        target = defs.get(name, {})
        if "enum" in target:
            return enum_text(target["enum"])
        return f"[{name}](#{anchor(prefix, name)})"
    if "enum" in prop:
        return enum_text(prop["enum"])
    if "const" in prop:
        return f"`{json.dumps(prop['const'])}`"
    if "anyOf" in prop:
        parts = [type_text(p, defs, prefix) for p in prop["anyOf"] if p.get("type") != "null"]
        nullable = any(p.get("type") == "null" for p in prop["anyOf"])
        return " or ".join(parts) + (" (optional)" if nullable else "")
    kind = prop.get("type", "any")
    if kind == "array":
        return f"list of {type_text(prop.get('items', {}), defs, prefix)}"
    if kind == "object" and isinstance(prop.get("additionalProperties"), dict):
        return f"map of {type_text(prop['additionalProperties'], defs, prefix)}"
    return str(kind)


def limits_text(prop: Schema) -> str:
    """Bounds and patterns of a field, from the field or its non-null ``anyOf`` branch."""
    sources = [prop, *(p for p in prop.get("anyOf", []) if p.get("type") != "null")]
    words = []
    for source in sources:
        for key, label in (
            ("minimum", ">="),
            ("exclusiveMinimum", ">"),
            ("maximum", "<="),
            ("exclusiveMaximum", "<"),
            ("minLength", "length >="),
            ("maxLength", "length <="),
            ("pattern", "matches"),
        ):
            if key in source:
                words.append(f"{label} `{source[key]}`")
    return ", ".join(words)


def cell(text: str) -> str:
    """Text safe inside a markdown table cell."""
    return " ".join(text.split()).replace("|", "\\|")


def object_markdown(
    title: str, schema: Schema, defs: Schema, *, level: int = 3, prefix: str = "", name: str = ""
) -> str:
    """One object schema as a heading, its description and a table of its keys."""
    ident = anchor(prefix, name).strip("-") or "-".join(title.lower().split())
    lines = [f"{'#' * level} {title} {{#{ident}}}", ""]
    if schema.get("description"):
        lines += [schema["description"].strip(), ""]
    properties: Schema = schema.get("properties", {})
    if not properties:
        return "\n".join([*lines, "No keys.", ""])
    required = set(schema.get("required", []))
    lines += ["| key | type | default | limits | description |", "| --- | --- | --- | --- | --- |"]
    for key, prop in properties.items():
        default = f"`{json.dumps(prop['default'])}`" if "default" in prop else ""
        default = "required" if key in required else default
        row = [f"`{key}`", type_text(prop, defs, prefix), default, limits_text(prop)]
        row.append(prop.get("description", ""))
        lines.append("| " + " | ".join(cell(c) for c in row) + " |")
    return "\n".join([*lines, ""])


def model_markdown(title: str, schema: Schema, *, level: int = 3, prefix: str = "") -> str:
    """A model's schema and the objects it refers to (its ``$defs``), as markdown sections.

    ``prefix`` makes the heading ids unique when several models share a ``$defs`` name.
    """
    defs: Schema = schema.get("$defs", {})
    parts = [object_markdown(title, schema, defs, level=level, prefix=prefix)]
    for name, sub in defs.items():
        if sub.get("type") == "object" or "properties" in sub:
            parts.append(
                object_markdown(name, sub, defs, level=level + 1, prefix=prefix, name=name)
            )
    return "\n".join(parts)


# discovery (imports) ---------------------------------------------------------------------
def schema_of(model: type[BaseModel]) -> Schema:
    """The JSON schema of ``model`` as users write it (aliases)."""
    return model.model_json_schema(by_alias=True)


def core_sections() -> Iterable[str]:
    """The Device and DeviceModel resources."""
    from edgedev.config import DeviceModelResource, DeviceResource
    from edgedev.config._crd import Extensions

    yield "## Resources\n"
    yield model_markdown("Device", schema_of(DeviceResource), prefix="device-")
    yield model_markdown("DeviceModel", schema_of(DeviceModelResource), prefix="devicemodel-")
    yield model_markdown(
        "edgedev keys in visitors.configData", schema_of(Extensions), prefix="extensions-"
    )


def driver_sections() -> Iterable[str]:
    """Per installed driver, its protocol and visitor ``configData``; broken ones named."""
    yield "## Drivers\n"
    points = sorted(entry_points(group="edgedev.drivers"), key=lambda p: p.name)
    if not points:
        yield "No driver is installed.\n"
    for point in points:
        dist = point.dist.name if point.dist else "unknown distribution"
        try:
            driver = point.load()
            protocol = schema_of(driver.protocol_config)
            visitor = schema_of(driver.visitor_config)
        except Exception as exc:  # a broken plugin must not hide the others
            log.info("driver %r (%s) left out of the reference: %r", point.name, dist, exc)
            yield f"### `{point.name}`\n\nFrom `{dist}`: failed to import ({exc!r}).\n"
            continue
        yield f"### `{point.name}`\n\nFrom `{dist}` (`{point.value}`).\n"
        for part, schema in (("protocol", protocol), ("visitor", visitor)):
            title = f"{point.name}: {part} configData"
            yield model_markdown(title, schema, level=4, prefix=f"{point.name}-{part}-")


def reference_markdown() -> str:
    """The whole page."""
    return "\n".join([INTRO, *core_sections(), *driver_sections()])


# mkdocs ----------------------------------------------------------------------------------
def on_files(files: Any, config: Any) -> Any:
    """Add the generated page to the site."""
    from mkdocs.structure.files import File

    files.append(File.generated(config, PAGE, content=reference_markdown()))
    return files
