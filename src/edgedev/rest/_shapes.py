"""The JSON bodies of the REST API, shaped as KubeEdge's mapper-framework shapes them (pure).

kubeedge/kubeedge ``staging/src/github.com/kubeedge/mapper-framework/pkg/httpserver``:
``responsetype.go`` declares the responses, each embedding ``BaseResponse`` (``apiVersion``,
``statusCode``, ``timeStamp``: Go's encoding/json lifts its fields to the top), and
``pkg/common`` the ``Data`` they carry (``datamodel.go`` ``DataModel``, ``datamethod.go``
``DataMethod``, ``configmaptype.go`` ``DeviceModel``). Go writes the fields of a struct in
declaration order, by field name unless a JSON tag renames them; ``omitempty`` leaves out an
empty string or list. The dicts here keep the same keys in the same order, so that a client
written for a Go mapper reads them unchanged.
"""

from __future__ import annotations

import datetime
from typing import Any

from edgedev.config._spec import DeviceSpec, PropertySpec
from edgedev.twin._values import plain_float

API_VERSION = "v1"
"""restapi.go ``APIVersion``."""
API_BASE = f"/api/{API_VERSION}"
"""restapi.go ``APIBase``: every route starts with it."""
PING_MESSAGE = f"This is {API_VERSION} API, the server is running normally."
"""callback.go ``Ping``'s message."""


def timestamp(now: datetime.datetime | None = None) -> str:
    """``now`` (the current local time by default) as Go's ``time.RFC3339`` writes it.

    Seconds, no fraction, and ``Z`` for UTC, else the offset (``+02:00``).
    """
    moment = (now or datetime.datetime.now().astimezone()).replace(microsecond=0)
    text = moment.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def base(status: int, now: datetime.datetime | None = None) -> dict[str, Any]:
    """``BaseResponse`` (responsetype.go:10-14)."""
    return {"apiVersion": API_VERSION, "statusCode": status, "timeStamp": timestamp(now)}


def message(status: int, text: str) -> dict[str, Any]:
    """``PingResponse`` / ``DeviceWriteResponse`` (responsetype.go:25-33): base and Message.

    Errors take this shape too (upstream answers them in plain text, ``http.Error``).
    """
    return {**base(status), "Message": text}


def ping() -> dict[str, Any]:
    """The answer of ``GET /api/v1/ping`` (callback.go:15-21)."""
    return message(200, PING_MESSAGE)


def written(device_id: str, data: str) -> dict[str, Any]:
    """The answer of a method call that wrote ``data`` (callback.go:118-121)."""
    return message(200, f"Write data {data} to device {device_id} successfully.")


def value_type(prop: PropertySpec) -> str:
    """The type name the REST API gives: the DeviceModel's, in lower case.

    Upstream lowers the model's type (device.go:123 and :628) before it answers with it.
    """
    return prop.type.value.lower()


def device_read(spec: DeviceSpec, prop: PropertySpec, text: str, stamp: int) -> dict[str, Any]:
    """``DeviceReadResponse`` (responsetype.go:35-38) of one property's value.

    ``Data`` is a ``DataModel`` (datamodel.go:4-14); ``TimeStamp`` is in ms. Upstream reads
    the device again and stamps the answer with the time of the request; edgedev answers with
    the twin's reported value and the time it was read.
    """
    data = {
        "DeviceName": spec.name,
        "PropertyName": prop.name,
        "Namespace": spec.namespace,
        "Value": text,
        "Type": value_type(prop),
        "TimeStamp": stamp,
    }
    return {**base(200), "Data": data}


def method_path(spec: DeviceSpec, method: str) -> str:
    """Where a method is called, placeholders included (callback.go:83)."""
    device = f"{spec.namespace}/{spec.name}"
    return f"{API_BASE}/devicemethod/{device}/{method}/{{propertyName}}/{{data}}"


def device_methods(spec: DeviceSpec) -> dict[str, Any]:
    """``DeviceMethodReadResponse`` (responsetype.go:40-43) of every method of a device.

    ``Data`` is a ``DataMethod`` (datamethod.go:20-33); the methods in the Device's order
    (upstream ranges over a Go map: in no order).
    """
    methods = [
        {
            "Name": method.name,
            "Path": method_path(spec, method.name),
            "Parameters": [
                {"PropertyName": name, "ValueType": value_type(spec.property(name))}
                for name in method.property_names
            ],
        }
        for method in spec.methods
    ]
    return {**base(200), "Data": {"Methods": methods}}


def bound_text(value: float | None) -> str:
    """A ``minimum`` or ``maximum`` as the DeviceModel's text gives it ("" when unset)."""
    if value is None:
        return ""
    return str(int(value)) if value.is_integer() else plain_float(value)


def _omit_empty(fields: dict[str, str]) -> dict[str, str]:
    return {key: value for key, value in fields.items() if value}


def meta_model(spec: DeviceSpec) -> dict[str, Any]:
    """``MetaGetModelResponse`` (responsetype.go:45-48) of a device's DeviceModel.

    The ``DeviceModel`` fields (configmaptype.go:36-53, each ``omitempty``) follow the base,
    lifted as Go lifts an embedded struct. The properties are those the device has (the
    model's, as resolved for it); upstream never fills the model's description.
    """
    properties = [
        _omit_empty(
            {
                "name": p.name,
                "dataType": p.type.value,
                "description": p.description,
                "accessMode": p.access_mode.value,
                "minimum": bound_text(p.minimum),
                "maximum": bound_text(p.maximum),
                "unit": p.unit,
            }
        )
        for p in spec.properties
    ]
    model: dict[str, Any] = {
        "id": f"{spec.namespace}/{spec.model}",
        "name": spec.model,
        "namespace": spec.namespace,
    }
    if properties:
        model["properties"] = properties
    return {**base(200), **model}
